"""The scalar layers as plain ``jax.numpy`` functions (elementwise; arguments broadcast)."""

import jax
import jax.numpy as jnp

__all__ = ["affine", "hinge_loss", "mlp", "plus", "relu", "sigmoid", "square", "squared_loss"]


def plus(a, b):
    """``a + b``."""
    return a + b


def square(x):
    """``x**2``."""
    return x * x


def affine(x, w, b):
    """``w*x + b``."""
    return w * x + b


def relu(a):
    """``max(a, 0)``, ``NaN`` kept. We take ∇relu(0) = 0, and 0 at ``NaN``, as ``jax.nn.relu`` does.

    The gradient flows only where ``a > 0``: ``where`` sends none to the branch it drops, and the
    other branch, ``max(a, 0)`` (0, or ``NaN`` at ``NaN``), is held constant. (``jnp.maximum``'s
    own gradient would give 0.5 at 0, splitting it between its arguments.)
    """
    return jnp.where(a > 0, a, jax.lax.stop_gradient(jnp.maximum(a, 0)))


def sigmoid(a):
    """``1 / (1 + exp(-a))``, computed from ``e = exp(-|a|)`` so that ``exp`` never overflows."""
    e = jnp.exp(-jnp.abs(a))
    return jnp.where(a >= 0, 1, e) / (1 + e)


def squared_loss(y_hat, y):
    """``(y_hat - y)**2``."""
    return (y_hat - y) ** 2


def hinge_loss(y_hat, y):
    """``max(0, 1 - y*y_hat)`` for labels ``y`` in {-1, +1}: ``relu`` of the margin, so the gradient
    where the margin is 0 or ``NaN`` is 0."""
    return relu(1 - y * y_hat)


def mlp(x, w1, b1, w2, b2, y):
    """``squared_loss(affine(relu(affine(x, w1, b1)), w2, b2), y)``."""
    return squared_loss(affine(relu(affine(x, w1, b1)), w2, b2), y)
