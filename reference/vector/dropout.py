"""Dropout: ``dropout`` with the mask as an input."""

import jax.numpy as jnp

__all__ = ["dropout"]


def dropout(A, keep, p=0.5):
    """``A * keep / (1 - p)`` for a boolean ``keep`` of ``A``'s shape (inverted dropout).

    Written with ``where``: under ``jax.jit``, XLA rewrites ``A * keep`` as ``where(keep, A, 0)``,
    which would turn a dropped NaN into 0; ``A * 0`` is 0 or NaN, as the product with ``keep`` is.
    """
    return jnp.where(keep, A, A * 0) / (1 - p)
