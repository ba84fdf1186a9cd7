"""Losses: means over the batch of ``n``."""

import jax.numpy as jnp

from reference.vector.activations import max_shifted, relu

__all__ = ["hinge_loss", "softmax_cross_entropy", "squared_loss"]


def squared_loss(Y_hat, Y):
    """``(1/n) * sum((Y_hat - Y)**2)`` for Y_hat, Y (n, k)."""
    return jnp.sum((Y_hat - Y) ** 2) / Y.shape[0]


def hinge_loss(S, labels):
    """``(1/n) * sum_i sum_{j != labels_i} max(0, S_ij - S_i,labels_i + 1)``: ``relu`` of each term,
    so no gradient where a term is 0, and ``NaN`` (the gradient passing through) where a term is."""
    correct = jnp.take_along_axis(S, labels[:, None], axis=1)
    is_label = jnp.arange(S.shape[1]) == labels[:, None]
    return jnp.sum(jnp.where(is_label, 0, relu(S - correct + 1))) / S.shape[0]


def softmax_cross_entropy(Z, labels):
    """``-(1/n) * sum_i log softmax(Z_i)[labels_i]`` for Z (n, k) and integer labels (n,)."""
    shifted = max_shifted(Z, 1)
    log_p = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
    return -jnp.sum(jnp.take_along_axis(log_p, labels[:, None], axis=1)) / Z.shape[0]
