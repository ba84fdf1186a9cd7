"""Activations: elementwise ``ReLU`` and ``Sigmoid`` (the scalar layers serve a batch) and ``Softmax``."""

from __future__ import annotations

from typing import Any

from handlayers._layer import Layer, shape_error
from handlayers.scalar import ReLU, Sigmoid  # elementwise, so the same layers serve a batch

__all__ = ["ReLU", "Sigmoid", "Softmax"]


class Softmax(Layer):
    """``S = exp(Z - max(Z)) / sum(exp(Z - max(Z)))`` along ``axis``; finite for any finite ``Z``.

    Subtracting the max leaves the result unchanged and keeps every ``exp`` at most 1.
    ``backward(dS)`` returns ``dZ = S * (dS - sum(dS * S))``, the sum along ``axis``.

    Args:
        axis: the axis the probabilities sum to 1 along (default: the last).
    """

    def __init__(self, axis: int = -1) -> None:
        self.axis = axis

    def _check_shapes(self, Z: tuple) -> None:
        if not -len(Z) <= self.axis < len(Z):
            raise shape_error("Softmax", f"an array with an axis {self.axis}", Z=Z)

    def _forward(self, Z: Any) -> Any:
        xp, axis = self._xp, self.axis
        e = xp.exp(Z - xp.max(Z, axis=axis, keepdims=True))
        self.S = e / xp.sum(e, axis=axis, keepdims=True)
        return self.S

    def _backward(self, dS: Any) -> Any:
        S = self.S
        return S * (dS - self._xp.sum(dS * S, axis=self.axis, keepdims=True))
