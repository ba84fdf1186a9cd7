"""Scaled dot-product attention."""

import jax.numpy as jnp

from reference.vector.activations import softmax

__all__ = ["attention"]


def attention(Q, K, V, causal=False):
    """``softmax(Q @ K^T / sqrt(d)) @ V`` for Q (n, tq, d), K (n, tk, d), V (n, tk, dv), the
    softmax over the keys; ``causal=True`` gives query i no weight on keys j > i (tq == tk)."""
    S = Q @ jnp.swapaxes(K, 1, 2) / jnp.sqrt(Q.shape[2])
    if causal:
        t = S.shape[1]
        S = jnp.where(jnp.arange(t)[None, :] > jnp.arange(t)[:, None], -jnp.inf, S)
    return softmax(S, axis=2) @ V
