"""Dropout: inverted dropout with the mask given as an input, so that it is checkable like the rest."""

from __future__ import annotations

from typing import Any

import numpy as np

from handlayers._layer import Layer, shape_error

__all__ = ["Dropout"]


class Dropout(Layer):
    """Inverted dropout: ``R = A * keep / (1 - p)``.

    Each kept unit is scaled by ``1 / (1 - p)`` so that the expected output is ``A`` when ``keep``
    is True with probability ``1 - p``; at test time the layer is left out. The caller draws the
    mask (``keep = rng.random(A.shape) >= p``), which keeps the layer a pure function of its inputs.

    Args:
        A: an array of any shape.
        keep: a boolean array of ``A``'s shape, True where the unit is kept.

    Returns:
        R: ``A``'s shape. ``backward(dR)`` returns ``(dA, None)``, ``dA = dR * keep / (1 - p)``.
        A dropped unit is multiplied by 0, not replaced by 0: a dropped ``NaN`` stays ``NaN``.

    Raises:
        ValueError: at construction, for ``p`` outside ``[0, 1)``; in ``forward``, for a ``keep``
            of another shape than ``A``'s.
        TypeError: in ``forward``, for a ``keep`` that is not boolean.
    """

    labels = (1,)  # keep: a boolean input, which gets no gradient

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p < 1:  # NaN fails too
            raise ValueError(f"Dropout: p must lie in [0, 1), got {p!r}")
        self.p = float(p)  # a Python float: a numpy float64 would make a float32 layer float64

    def _check_shapes(self, A: tuple, keep: tuple) -> None:
        if keep != A:
            raise shape_error("Dropout", "keep of A's shape", A=A, keep=keep)

    def _forward(self, A: Any, keep: Any) -> Any:
        if keep.dtype != bool:
            raise TypeError(f"Dropout: keep must be boolean, got dtype {keep.dtype}")
        self.keep = keep.copy()  # backward reads it: a caller may reuse its mask array meanwhile
        return _scale(self._xp, A, self.keep, self.p)

    def _backward(self, dR: Any) -> tuple[Any, None]:
        return _scale(self._xp, dR, self.keep, self.p), None


def _scale(xp: Any, x: Any, keep: Any, p: float) -> Any:
    """``x * keep / (1 - p)``, a dropped NaN kept NaN (``0 * NaN`` is NaN)."""
    if xp is np:
        out = x * keep  # new: the division needs no temporary
        out /= 1 - p
        return out
    # inside jax.jit, XLA rewrites x * keep as where(keep, x, 0), which turns a dropped NaN into 0;
    # x * 0 is 0 or NaN, as the product with keep is
    return xp.where(keep, x, x * 0) / (1 - p)
