"""Normalization: ``batch_norm`` (over the batch) and ``layer_norm`` (over the features)."""

import jax.numpy as jnp

__all__ = ["batch_norm", "layer_norm"]


def _normalize(X, gamma, beta, eps, axis):
    mean = jnp.mean(X, axis=axis, keepdims=True)
    var = jnp.mean((X - mean) ** 2, axis=axis, keepdims=True)  # biased: divided by the count
    return gamma * (X - mean) / jnp.sqrt(var + eps) + beta


def batch_norm(X, gamma, beta, eps=1e-5):
    """``gamma * (X - mean) / sqrt(var + eps) + beta``, the mean and biased variance of each
    feature over the batch (axis 0), for X (n, d), gamma (d,), beta (d,)."""
    return _normalize(X, gamma, beta, eps, 0)


def layer_norm(X, gamma, beta, eps=1e-5):
    """``gamma * (X - mean) / sqrt(var + eps) + beta``, the mean and biased variance of each
    example over its features (axis 1), for X (n, d), gamma (d,), beta (d,)."""
    return _normalize(X, gamma, beta, eps, 1)
