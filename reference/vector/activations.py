"""Activations: ``relu`` and ``sigmoid`` (elementwise, the scalar ones), ``tanh``, ``leaky_relu``
and ``softmax``."""

import jax
import jax.numpy as jnp

from reference.scalar import relu, sigmoid

__all__ = ["leaky_relu", "max_shifted", "relu", "sigmoid", "softmax", "tanh"]


def max_shifted(Z, axis):
    """``Z - max(Z)`` along ``axis``, the max held constant under autodiff."""
    # Subtracting the max changes nothing mathematically and keeps exp at most 1; stop_gradient
    # keeps autodiff from differentiating the (cancelling) shift through max at tied logits.
    return Z - jax.lax.stop_gradient(jnp.max(Z, axis=axis, keepdims=True))


def softmax(Z, axis=-1):
    """``exp(Z - max) / sum(exp(Z - max))`` along ``axis``."""
    e = jnp.exp(max_shifted(Z, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def tanh(A):
    """``tanh(A)``, elementwise."""
    return jnp.tanh(A)


def leaky_relu(A, alpha=0.01):
    """``A`` where ``A > 0``, else ``alpha * A``. The gradient at ``A == 0`` is ``alpha``: ``where``
    sends the gradient to the branch it takes, and at 0 it takes ``alpha * A``."""
    return jnp.where(A > 0, A, alpha * A)
