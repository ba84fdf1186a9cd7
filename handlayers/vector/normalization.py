"""Normalization: ``BatchNorm`` (over the batch, axis 0) and ``LayerNorm`` (over the features, axis 1).

Both compute ``Y = gamma * Xhat + beta`` with ``Xhat = (X - mean) / sqrt(var + eps)``, the mean
and the biased variance (divided by the count, not the count less one) taken along one axis of an
``(n, d)`` input, ``gamma`` and ``beta`` of shape ``(d,)``. Along that axis ``m`` values are
normalized together (``m = n`` for batch norm, ``m = d`` for layer norm), and the backward pass
is the one fused expression (the staged graph of the forward, summed up by hand)::

    dXhat = dY * gamma
    dX    = (1 / (m * sqrt(var + eps))) * (m * dXhat - sum(dXhat) - Xhat * sum(dXhat * Xhat))
    dgamma = sum over the batch of dY * Xhat,   dbeta = sum over the batch of dY

with the two inner sums along the normalized axis. Where the variance is 0 (a batch of one, a
constant feature or row), ``Xhat`` is 0, the output is ``beta``, and ``eps`` alone sets the
scale of ``dX``: ``dX = (gamma / sqrt(eps)) * (dXhat - mean(dXhat))``, which is 0 for a batch of one.
"""

from __future__ import annotations

import math
from typing import Any

from handlayers._layer import Layer, shape_error

__all__ = ["BatchNorm", "LayerNorm"]


def _standardize(xp: Any, X: Any, axis: int, eps: float) -> tuple[Any, Any]:
    """``Xhat = (X - mean) / sqrt(var + eps)`` along ``axis``, and ``1 / sqrt(var + eps)``.

    Finite for any finite ``X``: ``X`` is first multiplied by ``1 / 2**k`` (exact), with ``2**k``
    at least a quarter of its largest magnitude along ``axis`` and at least 1, so that no sum or
    square overflows; ``sqrt(var + eps) / 2**k`` is ``hypot(sqrt(var) / 2**k, sqrt(eps) / 2**k)``,
    which cannot overflow either, and ``2**k`` comes back in the second result. (A quarter, not a
    half: ``1 / 2**k`` stays a normal number, which XLA does not flush to 0.)
    """
    _, exponent = xp.frexp(xp.max(xp.abs(X), axis=axis, keepdims=True))  # largest < 2**exponent
    k = xp.maximum(exponent - 2, 0)
    one = xp.ones_like(X, shape=k.shape)
    down = xp.ldexp(one, -k)
    Xc = X * down
    Xc = Xc - xp.mean(Xc, axis=axis, keepdims=True)
    std = xp.hypot(xp.sqrt(xp.mean(Xc * Xc, axis=axis, keepdims=True)), math.sqrt(eps) * down)
    # 0 only where sqrt(eps) / 2**k fell below the dtype's range and Xc is 0: there Xhat is 0
    std = xp.maximum(std, xp.finfo(std.dtype).smallest_normal)
    return Xc / std, 1 / (std * xp.ldexp(one, k))


def _positive_eps(owner: str, eps: float) -> float:
    # eps = 0 is refused too: then a constant feature divides 0 by 0, and every result must be finite
    if not eps > 0:
        raise ValueError(f"{owner}: eps must be positive (it keeps a constant input finite); got {eps!r}")
    return float(eps)


class BatchNorm(Layer):
    """Batch normalization in training mode: each feature normalized over the batch.

    ``Y = gamma * (X - mean) / sqrt(var + eps) + beta``, the mean and biased variance of each
    feature (column) over the ``n`` examples. A batch of one is allowed: its output is ``beta``
    and ``dX`` is 0. A constant feature has variance 0, and ``eps`` alone scales its ``dX``.
    Finite for any finite input (see the module docstring for the backward pass).

    Args:
        X: (n, d) inputs, ``n >= 1``.
        gamma: (d,) scales.
        beta: (d,) shifts.

    Returns:
        Y: (n, d). ``backward(dY)`` returns ``(dX, dgamma, dbeta)`` of the shapes of ``X, gamma, beta``.

    ``BatchNorm(eps=1e-5)``: ``eps > 0`` is added to the variance (a ``ValueError`` otherwise).
    """

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = _positive_eps("BatchNorm", eps)

    def _check_shapes(self, X: tuple, gamma: tuple, beta: tuple) -> None:
        if not (len(X) == 2 and X[0] >= 1 and gamma == beta == (X[1],)):
            raise shape_error("BatchNorm", "X (n, d) with n >= 1, gamma (d,), beta (d,)", X=X, gamma=gamma, beta=beta)

    def _forward(self, X: Any, gamma: Any, beta: Any) -> Any:
        self.Xhat, self.inv_std = _standardize(self._xp, X, 0, self.eps)
        self.gamma = gamma
        return gamma * self.Xhat + beta

    def _backward(self, dY: Any) -> tuple[Any, Any, Any]:
        xp, Xhat, n = self._xp, self.Xhat, dY.shape[0]
        dgamma = xp.sum(dY * Xhat, axis=0)
        dbeta = xp.sum(dY, axis=0)
        # dXhat = dY * gamma, whose sums over the batch are gamma * dbeta and gamma * dgamma
        dX = (self.gamma * self.inv_std / n) * (n * dY - dbeta - Xhat * dgamma)
        return dX, dgamma, dbeta


class LayerNorm(Layer):
    """Layer normalization: each example normalized over its features.

    ``Y = gamma * (X - mean) / sqrt(var + eps) + beta``, the mean and biased variance of each
    example (row) over its ``d`` features; ``gamma`` and ``beta`` scale and shift each feature.
    A constant row has variance 0: its output is ``beta``, and ``eps`` alone scales its ``dX``,
    which is 0 when ``dY * gamma`` is constant along the row. Finite for any finite input (see
    the module docstring for the backward pass).

    Args:
        X: (n, d) inputs, ``d >= 1``.
        gamma: (d,) scales.
        beta: (d,) shifts.

    Returns:
        Y: (n, d). ``backward(dY)`` returns ``(dX, dgamma, dbeta)`` of the shapes of ``X, gamma, beta``.

    ``LayerNorm(eps=1e-5)``: ``eps > 0`` is added to the variance (a ``ValueError`` otherwise).
    """

    def __init__(self, eps: float = 1e-5) -> None:
        self.eps = _positive_eps("LayerNorm", eps)

    def _check_shapes(self, X: tuple, gamma: tuple, beta: tuple) -> None:
        if not (len(X) == 2 and X[1] >= 1 and gamma == beta == (X[1],)):
            raise shape_error("LayerNorm", "X (n, d) with d >= 1, gamma (d,), beta (d,)", X=X, gamma=gamma, beta=beta)

    def _forward(self, X: Any, gamma: Any, beta: Any) -> Any:
        self.Xhat, self.inv_std = _standardize(self._xp, X, 1, self.eps)
        self.gamma = gamma
        return gamma * self.Xhat + beta

    def _backward(self, dY: Any) -> tuple[Any, Any, Any]:
        xp, Xhat, d = self._xp, self.Xhat, dY.shape[1]
        dXhat = dY * self.gamma
        dX = (self.inv_std / d) * (
            d * dXhat - xp.sum(dXhat, axis=1, keepdims=True) - Xhat * xp.sum(dXhat * Xhat, axis=1, keepdims=True)
        )
        return dX, xp.sum(dY * Xhat, axis=0), xp.sum(dY, axis=0)
