"""Activations: elementwise ``ReLU`` and ``Sigmoid`` (the scalar layers serve a batch), ``Tanh``,
``LeakyReLU`` and ``Softmax``."""

from __future__ import annotations

from typing import Any

from handlayers._layer import Layer, keep_where, shape_error
from handlayers.scalar import ReLU, Sigmoid  # elementwise, so the same layers serve a batch

__all__ = ["LeakyReLU", "ReLU", "Sigmoid", "Softmax", "Tanh"]


class Tanh(Layer):
    """``T = tanh(A)``, elementwise.

    Args:
        A: an array of any shape.

    Returns:
        T: ``A``'s shape. ``backward(dT)`` returns ``dA = dT * (1 - T) * (1 + T)``: that is
        ``dT * (1 - T**2)`` with no rounding of ``T**2``, so it is the exact derivative at the
        rounded ``T`` up to two roundings, also where ``|T|`` is near 1 (``1 - T`` is then exact).
    """

    def _forward(self, A: Any) -> Any:
        self.T = self._xp.tanh(A)
        return self.T

    def _backward(self, dT: Any) -> Any:
        T = self.T
        return dT * ((1 - T) * (1 + T))


class LeakyReLU(Layer):
    """``R = A`` where ``A > 0``, else ``alpha * A``, elementwise.

    Args:
        A: an array of any shape.

    Returns:
        R: ``A``'s shape. ``backward(dR)`` returns ``dA = dR`` where ``A > 0`` and ``alpha * dR``
        elsewhere: we take the gradient at the kink ``A == 0`` to be ``alpha`` (the slope of the
        side that ``A == 0`` belongs to, as for ``ReLU``, whose gradient there is 0).

    ``alpha``, the slope for ``A <= 0`` (default 0.01), is a Python float: a numpy float64 would
    turn a float32 layer into a float64 one.
    """

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = float(alpha)

    def _forward(self, A: Any) -> Any:
        self.positive = A > 0  # False at NaN: alpha * NaN is NaN
        return _leaky(self._xp, self.positive, A, self.alpha)

    def _backward(self, dR: Any) -> Any:
        return _leaky(self._xp, self.positive, dR, self.alpha)


def _leaky(xp: Any, positive: Any, x: Any, alpha: float) -> Any:
    """``where(positive, x, alpha * x)`` as ``where(positive, x, 0) + alpha * where(positive, 0, x)``.

    Each entry adds ``alpha * 0`` to ``x`` or 0 to ``alpha * x``, so the values are exactly
    ``where``'s; with :func:`keep_where`, branch-free for numpy, in half the time of one ``where``
    on a mask numpy cannot predict. (A zero may come out +0 where ``where`` gives -0.)
    """
    return keep_where(xp, positive, x) + alpha * keep_where(xp, ~positive, x)


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
