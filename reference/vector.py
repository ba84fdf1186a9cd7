"""The batched layers as plain ``jax.numpy`` functions; the leading axis is the batch of ``n``."""

import jax
import jax.numpy as jnp

from reference.scalar import relu, sigmoid

__all__ = ["affine", "hinge_loss", "mlp", "relu", "sigmoid", "softmax", "softmax_cross_entropy", "squared_loss"]


def affine(X, W, b):
    """``X @ W + b`` for X (n, d_in), W (d_in, d_out), b (d_out,)."""
    return X @ W + b


def _shifted(Z, axis):
    # Subtracting the max changes nothing mathematically and keeps exp at most 1; stop_gradient
    # keeps autodiff from differentiating the (cancelling) shift through max at tied logits.
    return Z - jax.lax.stop_gradient(jnp.max(Z, axis=axis, keepdims=True))


def softmax(Z, axis=-1):
    """``exp(Z - max) / sum(exp(Z - max))`` along ``axis``."""
    e = jnp.exp(_shifted(Z, axis))
    return e / jnp.sum(e, axis=axis, keepdims=True)


def squared_loss(Y_hat, Y):
    """``(1/n) * sum((Y_hat - Y)**2)`` for Y_hat, Y (n, k)."""
    return jnp.sum((Y_hat - Y) ** 2) / Y.shape[0]


def hinge_loss(S, labels):
    """``(1/n) * sum_i sum_{j != labels_i} max(0, S_ij - S_i,labels_i + 1)``; no gradient where a term is 0."""
    correct = jnp.take_along_axis(S, labels[:, None], axis=1)
    margins = S - correct + 1
    active = (margins > 0) & (jnp.arange(S.shape[1]) != labels[:, None])
    return jnp.sum(jnp.where(active, margins, 0)) / S.shape[0]


def softmax_cross_entropy(Z, labels):
    """``-(1/n) * sum_i log softmax(Z_i)[labels_i]`` for Z (n, k) and integer labels (n,)."""
    shifted = _shifted(Z, 1)
    log_p = shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=1, keepdims=True))
    return -jnp.sum(jnp.take_along_axis(log_p, labels[:, None], axis=1)) / Z.shape[0]


def mlp(X, W1, b1, W2, b2, Y):
    """``squared_loss(affine(relu(affine(X, W1, b1)), W2, b2), Y)``."""
    return squared_loss(affine(relu(affine(X, W1, b1)), W2, b2), Y)
