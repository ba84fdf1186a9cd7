"""Dense layers: ``affine``, ``linear`` (torch's layout) and the one-hidden-layer ``mlp``."""

from reference.vector.activations import relu
from reference.vector.losses import squared_loss

__all__ = ["affine", "linear", "mlp"]


def affine(X, W, b):
    """``X @ W + b`` for X (n, d_in), W (d_in, d_out), b (d_out,)."""
    return X @ W + b


def linear(X, W, b):
    """``X @ W.T + b`` for X (n, d_in), W (d_out, d_in), b (d_out,)."""
    return X @ W.T + b


def mlp(X, W1, b1, W2, b2, Y):
    """``squared_loss(affine(relu(affine(X, W1, b1)), W2, b2), Y)``."""
    return squared_loss(affine(relu(affine(X, W1, b1)), W2, b2), Y)
