"""Losses: means over the batch of ``n``, or over every entry."""

import jax
import jax.numpy as jnp

from reference.vector.activations import max_shifted, relu

__all__ = [
    "binary_cross_entropy_with_logits",
    "hinge_loss",
    "mean_squared_error",
    "softmax_cross_entropy",
    "softplus",
    "squared_loss",
]


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


def mean_squared_error(Y_hat, Y):
    """``mean((Y_hat - Y)**2)`` over every entry, for Y_hat and Y of one shape."""
    return jnp.mean((Y_hat - Y) ** 2)


@jax.custom_jvp
def softplus(Z):
    """``log(1 + exp(Z)) = max(Z, 0) + log(1 + exp(-|Z|))``, finite for any finite ``Z``; its
    derivative is ``sigmoid(Z)`` everywhere, ``Z == 0`` included.

    Autodiff of the formula alone differentiates ``max`` and ``abs`` at their kinks, and jax's
    choices there give the derivative 0 at ``Z == 0``, not ``sigmoid(0) = 1/2``: the function is
    smooth, its two pieces are not. The ``custom_jvp`` states the smooth function's derivative.
    """
    return jnp.maximum(Z, 0) + jnp.log1p(jnp.exp(-jnp.abs(Z)))


@softplus.defjvp
def _softplus_jvp(primals, tangents):
    (Z,), (dZ,) = primals, tangents
    return softplus(Z), jax.nn.sigmoid(Z) * dZ


def binary_cross_entropy_with_logits(Z, Y):
    """``mean(max(Z, 0) - Z*Y + log(1 + exp(-|Z|)))`` over every entry, for Z and Y of one shape.

    The loss is ``mean(softplus(Z) - Z*Y)``, whose ``softplus`` carries its derivative as a
    ``custom_jvp``, so that ``jax.grad`` gives the contract's ``dZ = (sigmoid(Z) - Y) / size``
    everywhere: autodiff of the formula as written gives ``-Y / size`` at ``Z == 0``.
    """
    return jnp.mean(softplus(Z) - Z * Y)
