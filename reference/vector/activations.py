"""Activations: ``relu`` and ``sigmoid`` (elementwise, the scalar ones) and ``softmax``."""

import jax
import jax.numpy as jnp

from reference.scalar import relu, sigmoid

__all__ = ["max_shifted", "relu", "sigmoid", "softmax"]


def max_shifted(Z, axis):
    """``Z - max(Z)`` along ``axis``, the max held constant under autodiff."""
    # Subtracting the max changes nothing mathematically and keeps exp at most 1; stop_gradient
    # keeps autodiff from differentiating the (cancelling) shift through max at tied logits.
    return Z - jax.lax.stop_gradient(jnp.max(Z, axis=axis, keepdims=True))


def softmax(Z, axis=-1):
    """``exp(Z - max) / sum(exp(Z - max))`` along ``axis``."""
    e = jnp.exp(max_shifted(Z, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)
