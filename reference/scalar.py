"""The scalar layers as plain ``jax.numpy`` functions (elementwise; arguments broadcast)."""

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
    """``max(a, 0)``, ``NaN`` kept. We take ∇relu(0) = 0: ``where`` sends no gradient to the branch
    it drops, here wherever ``a <= 0``. At ``NaN`` the gradient passes through, as in ``torch.relu``
    (``jax.nn.relu`` gives 0 there).

    (``jnp.maximum(a, 0)`` would give 0.5 at 0, splitting the gradient between its arguments.)
    """
    return jnp.where(a <= 0, 0, a)


def sigmoid(a):
    """``1 / (1 + exp(-a))``, computed from ``e = exp(-|a|)`` so that ``exp`` never overflows."""
    e = jnp.exp(-jnp.abs(a))
    return jnp.where(a >= 0, 1, e) / (1 + e)


def squared_loss(y_hat, y):
    """``(y_hat - y)**2``."""
    return (y_hat - y) ** 2


def hinge_loss(y_hat, y):
    """``max(0, 1 - y*y_hat)`` for labels ``y`` in {-1, +1}: ``relu`` of the margin, so the gradient
    where the margin is 0 is 0, and a ``NaN`` margin passes it through."""
    return relu(1 - y * y_hat)


def mlp(x, w1, b1, w2, b2, y):
    """``squared_loss(affine(relu(affine(x, w1, b1)), w2, b2), y)``."""
    return squared_loss(affine(relu(affine(x, w1, b1)), w2, b2), y)
