"""Embedding: a lookup of rows of a table by integer indices."""

from __future__ import annotations

from typing import Any

import numpy as np

from handlayers._layer import Layer, check_indices, shape_error

__all__ = ["Embedding"]


class Embedding(Layer):
    """``E = W[idx]``: row ``idx[...]`` of the table ``W`` for every index.

    Args:
        idx: integer indices in ``[0, V)``, of any shape (``(n,)`` or ``(n, t)`` typically).
        W: (V, d) the table, one row per index.

    Returns:
        E: ``idx.shape + (d,)``. ``backward(dE)`` returns ``(None, dW)``: ``dW`` is 0 but at the
        rows ``idx`` names, each of which receives the sum of the ``dE`` rows that read it, so a
        repeated index adds up.

    Raises:
        TypeError: for indices that are not integers.
        ValueError: for indices outside ``[0, V)``, on eager inputs (inside ``jax.jit`` their
            values are unknown, so they are not checked, and what an index out of range gives is
            unspecified).
    """

    labels = (0,)  # idx: integers, which get no gradient

    def _check_shapes(self, idx: tuple, W: tuple) -> None:
        if len(W) != 2:
            raise shape_error("Embedding", "idx of any shape and W (V, d)", idx=idx, W=W)

    def _forward(self, idx: Any, W: Any) -> Any:
        check_indices("Embedding: idx", idx, W.shape[0])
        self.idx = idx.copy()  # backward reads it: a caller may reuse its index array meanwhile
        self.V = W.shape[0]
        return self._xp.take(W, idx, axis=0)

    def _backward(self, dE: Any) -> tuple[None, Any]:
        xp, idx, V = self._xp, self.idx, self.V
        d = dE.shape[-1]
        rows = xp.reshape(dE, (idx.size, d))  # one row per index (no -1: d may be 0)
        if xp is np:
            # one unbuffered scatter-add of all n*d entries: entry (i, j) goes to bin idx_i*d + j.
            # bincount sums in float64 (more accurate than the dtype; Layer casts back) and in
            # 1/4 of np.add.at's time
            flat = (idx.reshape(-1, 1).astype(np.intp) * d + np.arange(d)).ravel()
            dW = np.bincount(flat, weights=rows.ravel(), minlength=V * d).reshape(V, d)
        else:
            dW = xp.zeros((V, d), dE.dtype).at[xp.reshape(idx, -1)].add(rows)
        return None, dW
