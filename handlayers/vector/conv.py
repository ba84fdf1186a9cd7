"""Convolution and pooling over images: ``Conv2d`` and ``MaxPool2d``.

Images are ``(n, c, h, w)``: ``n`` examples, ``c`` channels, ``h`` rows, ``w`` columns (torch's and
CS231n's layout). A kernel is ``(f, c, hh, ww)``: ``f`` filters of ``hh`` rows and ``ww`` columns.

numpy computes a convolution as matrix products over the ``hh * ww`` kernel offsets, with no
im2col matrix: see :class:`Conv2d`. jax computes it with ``lax.conv_general_dilated``, forward
and backward alike.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from handlayers._layer import Layer, keep_where, shape_error

__all__ = ["Conv2d", "MaxPool2d"]

#: bytes of one block of the numpy convolution's accumulator: images are taken a few at a time so
#: that the block they accumulate into stays in the cache across the kernel offsets
_BLOCK_BYTES = 2**18


def _hyperparameter(owner: str, name: str, value: Any, least: int) -> int:
    """``value`` as an ``int`` of at least ``least``, or a clear error."""
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}") from None
    if value < least:
        raise ValueError(f"{owner}: {name} must be at least {least}, got {value}")
    return value


def _out_size(size: int, kernel: int, stride: int) -> int:
    return 1 + (size - kernel) // stride


class Conv2d(Layer):
    """Cross-correlation of the zero-padded images with each filter, plus its bias.

    ``out[n, f, y, x] = b[f] + sum_{c, i, j} W[f, c, i, j] * Xp[n, c, stride*y + i, stride*x + j]``,
    where ``Xp`` is ``X`` with ``pad`` zeros added on each side of both spatial axes (what every
    framework calls a convolution).

    Args:
        X: (n, c, h, w) images.
        W: (f, c, hh, ww) filters, no larger than the padded images.
        b: (f,) biases.

    Returns:
        out: (n, f, oh, ow), ``oh = 1 + (h + 2*pad - hh) // stride``, ``ow`` likewise.
        ``backward(dout)`` returns ``(dX, dW, db)`` of the shapes of ``X, W, b``.

    numpy works on the padded images flattened row by row (the polyphase planes
    ``Xp[:, :, a::stride, b::stride]``, one per ``(a, b)``, when ``stride > 1``): kernel offset
    ``(i, j)`` then reads one contiguous stretch of each plane, so the convolution is ``hh * ww``
    matrix products ``W[:, :, i, j] @ stretch`` with no im2col copy. An output row so computed runs
    on past ``ow`` into the padding (a few columns, cropped); ``dout`` is zero there in backward.
    ``dW[:, :, i, j]`` is ``dout @ stretch.T``, and ``dX`` adds ``W[:, :, i, j].T @ dout`` into each
    stretch. jax: ``lax.conv_general_dilated`` forward; backward ``dX`` is the transposed
    convolution (``dout`` dilated by ``stride``, correlated with the flipped kernel) and ``dW``
    the correlation of ``X`` with ``dout``, each one ``conv_general_dilated``.
    """

    def __init__(self, stride: int = 1, pad: int = 0) -> None:
        self.stride = _hyperparameter("Conv2d", "stride", stride, 1)
        self.pad = _hyperparameter("Conv2d", "pad", pad, 0)

    def _check_shapes(self, X: tuple, W: tuple, b: tuple) -> None:
        padded = (X[2] + 2 * self.pad, X[3] + 2 * self.pad) if len(X) == 4 else None
        if not (len(X) == len(W) == 4 and len(b) == 1 and W[0] == b[0]):
            expected = "X (n, c, h, w), W (f, c, hh, ww), b (f,)"
        elif X[1] != W[1]:
            expected = "X and W with the same channels c"
        elif not (1 <= W[2] <= padded[0] and 1 <= W[3] <= padded[1]):
            expected = f"a kernel (hh, ww) no larger than the padded input (h + 2*pad, w + 2*pad) = {padded}"
        else:
            return
        raise shape_error("Conv2d", expected, X=X, W=W, b=b)

    def _forward(self, X: Any, W: Any, b: Any) -> Any:
        self.W = W
        if self._xp is np:
            # numpy keeps the padded planes, not X; the bias add also copies out of the wider rows
            self.X_shape = X.shape
            out, self.planes = _conv_numpy(X, W, self.stride, self.pad)
        else:
            self.X = X
            out = _conv_jax(X, W, self.stride, self.pad)
        return out + b[:, None, None]

    def _backward(self, dout: Any) -> tuple[Any, Any, Any]:
        if self._xp is np:
            dX, dW = _conv_numpy_backward(dout, self.planes, self.W, self.X_shape, self.stride, self.pad)
        else:
            dX, dW = _jit(_conv_jax_backward)(dout, self.X, self.W, self.stride, self.pad)
        db = dout.sum(axis=(0, 2, 3))  # b was broadcast over the batch and every position
        return dX, dW, db


# ---------------------------------------------------------------------------------------------
# Conv2d in numpy: matrix products over the kernel offsets, on flattened (polyphase) planes


class _Layout(NamedTuple):
    """How the numpy convolution lays out images of one shape in flattened polyphase planes."""

    oh: int
    ow: int
    hq: int  # plane rows; the planes get one more, into which an image's last stretches run on
    wq: int  # plane columns: the length of a plane's row, output rows included
    #: each kernel offset (i, j): its plane (a, b) = (i % s, j % s) and where its stretch starts
    offsets: list[tuple[int, int, int, int, int]]
    #: each plane (a, b): the slices of X it holds, and where they go in the plane
    phases: list[tuple[int, int, tuple[slice, ...], tuple[slice, ...]]]

    @property
    def length(self) -> int:
        """The length of a stretch: ``oh`` output rows of ``wq`` columns."""
        return self.oh * self.wq


def _layout(X_shape: tuple[int, ...], W_shape: tuple[int, ...], s: int, p: int) -> _Layout:
    h, w = X_shape[2:]
    hh, ww = W_shape[2:]
    hq, wq = -(-(h + 2 * p) // s), -(-(w + 2 * p) // s)
    offsets = [(i, j, i % s, j % s, (i // s) * wq + j // s) for i in range(hh) for j in range(ww)]

    def phase(a: int, size: int) -> tuple[slice, slice]:
        # plane a holds the padded indices s*y' + a, which are input indices s*y' + a - p
        first = (a - p) % s
        at = (first + p - a) // s
        return slice(first, None, s), slice(at, at + len(range(first, size, s)))

    every = slice(None)
    phases = []
    for a in range(s):
        rows, plane_rows = phase(a, h)
        for b in range(s):
            cols, plane_cols = phase(b, w)
            phases.append((a, b, (every, every, rows, cols), (every, every, plane_rows, plane_cols)))
    return _Layout(_out_size(h + 2 * p, hh, s), _out_size(w + 2 * p, ww, s), hq, wq, offsets, phases)


def _block(n: int, row_bytes: int) -> int:
    """How many images to take at a time: about ``_BLOCK_BYTES`` of rows of ``row_bytes`` each."""
    return max(1, min(n, _BLOCK_BYTES // max(1, row_bytes)))


def _conv_numpy(X: np.ndarray, W: np.ndarray, s: int, p: int) -> tuple[np.ndarray, np.ndarray]:
    """The convolution without bias, (n, f, oh, ow) (a view into a wider array), and the flattened
    planes (s, s, n, c, (hq + 1) * wq) that backward reads."""
    (n, c), f, k = X.shape[:2], W.shape[0], _layout(X.shape, W.shape, s, p)
    planes = np.zeros((s, s, n, c, k.hq + 1, k.wq), X.dtype)
    for a, b, x_at, plane_at in k.phases:
        planes[a, b][plane_at] = X[x_at]
    planes = planes.reshape(s, s, n, c, (k.hq + 1) * k.wq)
    kernel = np.ascontiguousarray(W.transpose(2, 3, 0, 1))  # (hh, ww, f, c): each offset's matrix
    out = np.empty((n, f, k.length), X.dtype)
    step = _block(n, f * k.length * X.itemsize)
    scratch = np.empty((step, f, k.length), X.dtype)
    # OpenBLAS kernels now and then raise the invalid flag on finite operands (numpy issues 13173,
    # 24067; one CI run here, in float32): no product of finite numbers is invalid, and a NaN input
    # is meant to pass through (overflow still warns)
    with np.errstate(invalid="ignore"):
        for start in range(0, n, step):
            block = slice(start, start + step)
            acc = out[block]
            tmp = scratch[: len(acc)]
            for q, (i, j, a, b, offset) in enumerate(k.offsets):
                stretch = planes[a, b, block, :, offset : offset + k.length]  # (images, c, length)
                if q == 0:
                    np.matmul(kernel[i, j], stretch, out=acc)
                else:
                    np.matmul(kernel[i, j], stretch, out=tmp)
                    acc += tmp
    return out.reshape(n, f, k.oh, k.wq)[..., : k.ow], planes


def _conv_numpy_backward(
    dout: np.ndarray, planes: np.ndarray, W: np.ndarray, X_shape: tuple[int, ...], s: int, p: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(dX, dW)`` from ``dout`` and what :func:`_conv_numpy` kept."""
    (n, c), f, k = X_shape[:2], W.shape[0], _layout(X_shape, W.shape, s, p)
    dtype = dout.dtype
    dz = np.zeros((n, f, k.oh, k.wq), dtype)  # dout, and 0 on the columns that ran on into the padding
    dz[..., : k.ow] = dout
    dz = dz.reshape(n, f, k.length)
    kernel = np.ascontiguousarray(W.transpose(2, 3, 0, 1))
    dkernel = np.zeros(kernel.shape, dtype)
    dplanes = np.zeros(planes.shape, dtype)
    step = _block(n, (f + c) * k.length * dtype.itemsize)
    scratch, products = np.empty((step, c, k.length), dtype), np.empty((step, f, c), dtype)
    with np.errstate(invalid="ignore"):  # as in _conv_numpy
        for start in range(0, n, step):
            block = slice(start, start + step)
            d = dz[block]
            tmp, product = scratch[: len(d)], products[: len(d)]
            for i, j, a, b, offset in k.offsets:
                stretch = planes[a, b, block, :, offset : offset + k.length]
                # out += W_ij @ stretch, so dW_ij += dout @ stretch.T and d(stretch) += W_ij.T @ dout
                np.matmul(d, stretch.transpose(0, 2, 1), out=product)
                dkernel[i, j] += product.sum(axis=0)
                np.matmul(kernel[i, j].T, d, out=tmp)
                dplanes[a, b, block, :, offset : offset + k.length] += tmp
    dplanes = dplanes.reshape(s, s, n, c, k.hq + 1, k.wq)
    dX = np.empty(X_shape, dtype)
    for a, b, x_at, plane_at in k.phases:
        dX[x_at] = dplanes[a, b][plane_at]
    return dX, np.ascontiguousarray(dkernel.transpose(2, 3, 0, 1))


# ---------------------------------------------------------------------------------------------
# Conv2d in jax: three convolutions


def _conv_jax(X: Any, W: Any, s: int, p: int) -> Any:
    from jax import lax

    return lax.conv_general_dilated(X, W, (s, s), [(p, p), (p, p)], dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _conv_jax_backward(dout: Any, X: Any, W: Any, s: int, p: int) -> tuple[Any, Any]:
    """``(dX, dW)``: the transposed convolution and the correlation of X with dout, written out."""
    import jax.numpy as jnp
    from jax import lax

    (h, w), (hh, ww), (oh, ow) = X.shape[2:], W.shape[2:], dout.shape[2:]

    def spread(size: int, kernel: int, out: int) -> tuple[int, int, int]:
        # dout dilated by s (s - 1 zeros between entries) spans s*(out - 1) + 1; padded so that
        # input position t meets every kernel entry that touched it: kernel - 1 - p before (a
        # negative padding crops), and after it up to a length of size + kernel - 1
        before = kernel - 1 - p
        return before, size + kernel - 1 - (s * (out - 1) + 1) - before, s - 1

    # dX: the transposed convolution: dout dilated by the stride and padded, correlated with the
    # kernel flipped in both spatial axes, its channel axes swapped (IOHW: f in, c out). With a
    # stride, lax.pad dilates dout rather than the convolution's lhs_dilation: XLA's algebraic
    # simplifier aborts the process on some of those (jax 0.10.2: X (1, 3, 6, 4), W (3, 3, 7, 2),
    # stride 2, pad 1, a case in the tests), and autodiff of lax.conv_general_dilated builds them.
    # Without one, the padding is the convolution's own, as in autodiff's program.
    padding = [spread(h, hh, oh), spread(w, ww, ow)]
    if s > 1:
        zero = jnp.zeros((), dout.dtype)
        dilated, padding = lax.pad(dout, zero, [(0, 0, 0), (0, 0, 0), *padding]), "VALID"
    else:
        dilated, padding = dout, [(before, after) for before, after, _ in padding]
    dX = lax.conv_general_dilated(
        dilated, W[:, :, ::-1, ::-1], (1, 1), padding, dimension_numbers=("NCHW", "IOHW", "NCHW")
    )
    # dW[f, c, i, j] = sum_{n, y, x} dout[n, f, y, x] * Xp[n, c, s*y + i, s*x + j]: a correlation
    # of Xp (channels as the batch, examples as the features) with dout dilated by s as the kernel
    dW = lax.conv_general_dilated(
        X,
        dout,
        (1, 1),
        [(p, s * (oh - 1) + hh - h - p), (p, s * (ow - 1) + ww - w - p)],
        rhs_dilation=(s, s),
        dimension_numbers=("CNHW", "IOHW", "CNHW"),
    )
    return dX, dW


# ---------------------------------------------------------------------------------------------
# MaxPool2d


class MaxPool2d(Layer):
    """The max of each ``size x size`` window of each image's channels, windows ``stride`` apart.

    ``out[n, c, y, x] = max_{i, j < size} X[n, c, stride*y + i, stride*x + j]``, no padding.

    Args:
        X: (n, c, h, w) images, ``h`` and ``w`` at least ``size``.

    Returns:
        out: (n, c, 1 + (h - size) // stride, 1 + (w - size) // stride). ``backward(dout)``
        returns ``dX``: each window's gradient goes to its first maximum in row-major order (we
        take numpy's ``argmax`` at a tie); windows that overlap (``stride < size``) add up.

    Both libraries scan the ``size * size`` offsets of the windows in row-major order, keeping the
    running max and the first offset that reached it (a later entry takes over only when strictly
    greater); backward adds ``dout`` back at each window's kept offset.
    """

    def __init__(self, size: int = 2, stride: int = 2) -> None:
        self.size = _hyperparameter("MaxPool2d", "size", size, 1)
        self.stride = _hyperparameter("MaxPool2d", "stride", stride, 1)

    def _check_shapes(self, X: tuple) -> None:
        if not (len(X) == 4 and X[2] >= self.size and X[3] >= self.size):
            raise shape_error("MaxPool2d", f"X (n, c, h, w) with h, w >= size {self.size}", X=X)

    def _forward(self, X: Any) -> Any:
        self.X_shape = tuple(X.shape)
        pool = _pool_numpy if self._xp is np else _jit(_pool_jax)
        out, self.first = pool(X, self.size, self.stride)
        return out

    def _backward(self, dout: Any) -> Any:
        unpool = _unpool_numpy if self._xp is np else _jit(_unpool_jax)
        return unpool(dout, self.first, self.X_shape, self.size, self.stride)


def _offsets(X_shape: tuple[int, ...], k: int, s: int) -> list[tuple[int, int, tuple[slice, ...]]]:
    """Each offset ``(i, j)`` of a ``k x k`` window, in row-major order, and the slices of X that
    hold that entry of every window."""
    oh, ow = _out_size(X_shape[2], k, s), _out_size(X_shape[3], k, s)
    every = slice(None)
    return [
        (i, j, (every, every, slice(i, i + s * (oh - 1) + 1, s), slice(j, j + s * (ow - 1) + 1, s)))
        for i in range(k)
        for j in range(k)
    ]


def _index_dtype(k: int) -> np.dtype:
    """The smallest unsigned integer dtype holding a ``k x k`` window's offsets ``0 .. k*k - 1``."""
    return np.min_scalar_type(k * k - 1)


def _pool_numpy(X: np.ndarray, k: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """The windows' max and, for each window, the index ``i*k + j`` of its first maximum."""
    offsets = _offsets(X.shape, k, s)
    out = X[offsets[0][2]].copy()
    first = np.zeros(out.shape, _index_dtype(k))
    greater = np.empty(out.shape, bool)
    for q, (_, _, where) in enumerate(offsets[1:], 1):
        entry = X[where]
        np.greater(entry, out, out=greater)  # strictly: at a tie the earlier offset stays
        np.maximum(out, entry, out=out)  # NaN propagates
        np.copyto(first, q, where=greater)
    return out, first


def _unpool_numpy(dout: np.ndarray, first: np.ndarray, X_shape: tuple[int, ...], k: int, s: int) -> np.ndarray:
    dX = np.zeros(X_shape, dout.dtype)
    for q, (_, _, where) in enumerate(_offsets(X_shape, k, s)):
        dX[where] += keep_where(np, first == q, dout)  # += : overlapping windows add up
    return dX


def _pool_jax(X: Any, k: int, s: int) -> tuple[Any, Any]:
    """:func:`_pool_numpy` in jax."""
    import jax.numpy as jnp

    offsets = _offsets(X.shape, k, s)
    out = _strided(X, offsets[0][2])
    index = _index_dtype(k)
    first = jnp.zeros(out.shape, index)
    for q, (_, _, where) in enumerate(offsets[1:], 1):
        entry = _strided(X, where)
        first = jnp.where(entry > out, jnp.asarray(q, index), first)
        out = jnp.maximum(out, entry)
    return out, first


def _unpool_jax(dout: Any, first: Any, X_shape: tuple[int, ...], k: int, s: int) -> Any:
    """:func:`_unpool_numpy` in jax: each offset's share of ``dout`` spread out to the positions of
    X that hold it (``i`` zeros before, ``s - 1`` between entries) by ``lax.pad``, and summed."""
    import jax.numpy as jnp
    from jax import lax

    zero = jnp.zeros((), dout.dtype)
    dX = jnp.zeros(X_shape, dout.dtype)
    for q, (_, _, where) in enumerate(_offsets(X_shape, k, s)):
        spread = [(0, 0, 0), (0, 0, 0)] + [
            (sl.start, size - sl.stop, s - 1) for sl, size in zip(where[2:], X_shape[2:], strict=True)
        ]
        dX = dX + lax.pad(jnp.where(first == q, dout, zero), zero, spread)
    return dX


def _strided(X: Any, where: tuple[slice, ...]) -> Any:
    """``X[where]`` for a jax array, by ``lax.slice`` (jax.numpy gathers a strided slice)."""
    from jax import lax

    starts = [sl.start or 0 for sl in where]
    stops = [X.shape[d] if sl.stop is None else sl.stop for d, sl in enumerate(where)]
    return lax.slice(X, starts, stops, [sl.step or 1 for sl in where])


@functools.cache
def _jit(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` compiled by ``jax.jit``, its Python-number and shape arguments static.

    Eagerly, jax compiles each operation for each new shape: one program per layer call instead
    compiles once per shape. Inside an outer ``jax.jit`` it is simply inlined.
    """
    import jax

    names = list(inspect.signature(function).parameters)
    return jax.jit(function, static_argnames=[name for name in names if name in _STATIC])


#: the arguments of the jitted helpers that are Python numbers or shapes, not arrays
_STATIC = {"k", "s", "p", "X_shape"}
