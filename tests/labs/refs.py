"""References of a user's own, for `--against refs.py:FUNCTION`: jax.numpy functions of the inputs."""

import jax.numpy as jnp


def mean_squared_error(Y_hat, Y):
    """mean((Y_hat - Y)**2) over every entry (torch's default)."""
    return jnp.mean((Y_hat - Y) ** 2)


def linear(X, W, b):
    """X @ W.T + b with W (d_out, d_in), torch's layout."""
    return X @ W.T + b


def dense(X, W, b):
    """X @ W + b with W (d_in, d_out)."""
    return X @ W + b


def batch_norm(X, gamma, beta, eps=1e-5):
    """gamma (X - mean) / sqrt(var + eps) + beta over the batch, training mode."""
    mean = jnp.mean(X, axis=0)
    var = jnp.mean((X - mean) ** 2, axis=0)
    return gamma * (X - mean) / jnp.sqrt(var + eps) + beta


def multiply(x, y):
    """x * y."""
    return x * y


def hard_tanh(x):
    """clip(x, -1, 1): jax's gradient at -1 and 1 is 0.5, the mean of its sides'."""
    return jnp.clip(x, -1.0, 1.0)


def hard_tanh_closed(x):
    """clip(x, -1, 1) with the gradient 1 at -1 and 1 (the closed interval's convention)."""
    return jnp.where(jnp.abs(x) <= 1, x, jnp.sign(x))


def relu_split(x):
    """max(x, 0): jax's gradient at 0 is 0.5."""
    return jnp.maximum(x, 0.0)


def temporal_softmax_loss(x, y, mask):
    """CS231n assignment 3's loss: softmax cross-entropy at every (n, t) the mask keeps, summed,
    over n."""
    log_probs = x - jnp.max(x, axis=-1, keepdims=True)
    log_probs = log_probs - jnp.log(jnp.sum(jnp.exp(log_probs), axis=-1, keepdims=True))
    picked = jnp.take_along_axis(log_probs, y[..., None], axis=-1)[..., 0]
    return -jnp.sum(jnp.where(mask, picked, 0.0)) / x.shape[0]
