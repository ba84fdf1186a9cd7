"""Convolution and pooling on images of shape ``(n, c, h, w)``: ``conv2d`` and ``max_pool2d``."""

import jax.numpy as jnp

__all__ = ["conv2d", "max_pool2d"]


def conv2d(X, W, b, stride=1, pad=0):
    """Cross-correlation of ``X`` zero-padded by ``pad`` with ``W``, plus ``b``.

    ``out[n, f, y, x] = b[f] + sum_{c, i, j} W[f, c, i, j] * Xp[n, c, stride*y + i, stride*x + j]``
    for X (n, c, h, w), W (f, c, hh, ww), b (f,); out (n, f, oh, ow) with
    ``oh = 1 + (h + 2*pad - hh) // stride`` and ``ow`` likewise.

    Written as that sum over gathered windows: ``Xp[:, :, rows, cols]`` takes every output
    position's window (``patches[n, c, y, i, x, j] = Xp[n, c, stride*y + i, stride*x + j]``) and one
    ``einsum`` contracts it with W over ``c, i, j``, so autodiff's gradient of X is the scatter-add of
    the windows, overlapping ones adding up. Not ``lax.conv_general_dilated``: autodiff of it builds
    convolutions that abort XLA:CPU for some strided shapes (jax 0.10.2); and a different algorithm
    from the layers' (numpy: one matrix product per kernel offset; jax: ``lax`` convolutions).
    """
    hh, ww = W.shape[2:]
    Xp = jnp.pad(X, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = 1 + (Xp.shape[2] - hh) // stride, 1 + (Xp.shape[3] - ww) // stride
    rows = stride * jnp.arange(oh)[:, None] + jnp.arange(hh)  # (oh, hh): the rows of each window
    cols = stride * jnp.arange(ow)[:, None] + jnp.arange(ww)  # (ow, ww)
    patches = Xp[:, :, rows[:, :, None, None], cols[None, None, :, :]]  # (n, c, oh, hh, ow, ww)
    return jnp.einsum("ncyixj,fcij->nfyx", patches, W) + b[:, None, None]


def max_pool2d(X, size=2, stride=2):
    """The max of each ``size x size`` window of X (n, c, h, w), windows ``stride`` apart, no padding.

    Returns (n, c, 1 + (h - size) // stride, 1 + (w - size) // stride). At a tie, a window's
    gradient goes to its first maximum in row-major order (numpy's ``argmax``); windows that
    overlap add up. The rule is written out: the windows are gathered, ``argmax`` picks the
    entry, and ``take_along_axis`` takes it, so autodiff routes the gradient there alone.
    Autodiff of ``jnp.max`` over a window would split it among the ties, and autodiff of
    ``lax.reduce_window`` picks whichever entry XLA's reduction happens to keep (the first, on the
    CPU, in every case tried; XLA does not promise an order).
    """
    n, c, h, w = X.shape
    oh, ow = 1 + (h - size) // stride, 1 + (w - size) // stride
    rows = stride * jnp.arange(oh)[:, None] + jnp.arange(size)  # (oh, size): the rows of each window
    cols = stride * jnp.arange(ow)[:, None] + jnp.arange(size)
    windows = X[:, :, rows[:, None, :, None], cols[None, :, None, :]]  # (n, c, oh, ow, size, size)
    windows = windows.reshape(n, c, oh, ow, size * size)
    first = jnp.argmax(windows, axis=-1)[..., None]  # an integer: no gradient flows through it
    return jnp.take_along_axis(windows, first, axis=-1)[..., 0]
