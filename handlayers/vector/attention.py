"""Scaled dot-product attention, with an optional causal mask.

Dimensions: ``n`` examples, ``tq`` queries, ``tk`` keys (and values), ``d`` the width of queries
and keys, ``dv`` the width of values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from handlayers._layer import Layer, shape_error

__all__ = ["Attention"]


def _bmm(xp: Any, a: Any, b: Any, *, ta: bool = False, tb: bool = False) -> Any:
    """The batched matrix product ``a @ b`` of (n, ., .) arrays, ``a`` or ``b`` transposed first
    (``ta``, ``tb``). Under jax it is one ``einsum``, a product along the axes where they lie:
    ``matmul`` of a ``swapaxes`` made XLA copy the transpose first, and took Attention's forward
    plus backward in ``jax.jit`` from 6 to 13 ms at (32, 128, 64) on the CPU. numpy's ``einsum``
    does not call BLAS for a batch of products; its ``matmul`` takes the transposed views as they
    are."""
    if xp is np:
        return (xp.swapaxes(a, 1, 2) if ta else a) @ (xp.swapaxes(b, 1, 2) if tb else b)
    return xp.einsum(f"n{'ji' if ta else 'ij'},n{'kj' if tb else 'jk'}->nik", a, b)


class Attention(Layer):
    """``Y = softmax(Q @ K^T / sqrt(d)) @ V``, the softmax over the keys; finite for any finite
    scores, however large (the row's max is subtracted before ``exp``).

    Args:
        Q: (n, tq, d) queries.
        K: (n, tk, d) keys, ``tk >= 1``.
        V: (n, tk, dv) values.
        causal: mask the keys after each query: query ``i`` sees keys ``j <= i`` only (its weight
            on ``j > i`` is exactly 0). Needs ``tq == tk``.

    Returns:
        Y: (n, tq, dv). ``backward(dY)`` returns ``(dQ, dK, dV)``.

    The backward, with ``P`` the attention weights: ``dV = P^T @ dY``, ``dP = dY @ V^T``, then
    through the row softmax ``dS = P * (dP - rowsum(dP * P))``, then ``dQ = dS @ K / sqrt(d)`` and
    ``dK = dS^T @ Q / sqrt(d)``. ``rowsum(dP * P)`` equals ``rowsum(dY * Y)`` (``Y = P @ V``),
    a sum over ``dv`` instead of ``tk`` terms, as flash attention computes it.
    """

    def __init__(self, causal: bool = False) -> None:
        self.causal = causal

    def _check_shapes(self, Q: tuple, K: tuple, V: tuple) -> None:
        fits = len(Q) == len(K) == len(V) == 3 and Q[0] == K[0] == V[0] and Q[2] == K[2] and K[1] == V[1]
        if not (fits and K[1] >= 1 and K[2] >= 1):
            expected = "Q (n, tq, d), K (n, tk, d), V (n, tk, dv), tk >= 1, d >= 1"
            raise shape_error("Attention", expected, Q=Q, K=K, V=V)
        if self.causal and Q[1] != K[1]:
            raise shape_error("Attention(causal=True)", "as many queries as keys, tq == tk", Q=Q, K=K, V=V)

    def _forward(self, Q: Any, K: Any, V: Any) -> Any:
        xp = self._xp
        self.scale = 1 / math.sqrt(Q.shape[2])
        Qs = Q * self.scale  # scaling Q costs tq * d products, scaling the scores tq * tk
        S = _bmm(xp, Qs, K, tb=True)
        if self.causal:
            t = S.shape[1]
            S = xp.where(xp.arange(t)[None, :] > xp.arange(t)[:, None], -xp.inf, S)  # exp(-inf) = 0
        e = xp.exp(S - xp.max(S, axis=2, keepdims=True))  # every row keeps key 0: its max is finite
        P = e / xp.sum(e, axis=2, keepdims=True)
        Y = _bmm(xp, P, V)
        self.Qs, self.K, self.V, self.P, self.Y = Qs, K, V, P, Y
        return Y

    def _backward(self, dY: Any) -> tuple[Any, Any, Any]:
        xp, P = self._xp, self.P
        dV = _bmm(xp, P, dY, ta=True)
        dP = _bmm(xp, dY, self.V, tb=True)
        dS = P * (dP - xp.sum(dY * self.Y, axis=2, keepdims=True))  # masked entries: P = 0
        dQ = _bmm(xp, dS, self.K) * self.scale
        dK = _bmm(xp, dS, self.Qs, ta=True)
        return dQ, dK, dV
