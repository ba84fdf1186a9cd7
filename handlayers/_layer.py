"""The one place where a layer finds its array library, checks shapes and shapes its gradients.

Every layer in :mod:`handlayers.scalar` and :mod:`handlayers.vector` derives from :class:`Layer`.
A subclass writes only the mathematics: ``_forward`` computes the output from inputs that are
already arrays of one library and one floating dtype, and stores what ``_backward`` reads;
``_backward`` returns one gradient per forward input, each of any shape that broadcasts to its
input (``Layer`` sums it back and casts it to the input's dtype), or ``None`` for an input the
layer was told needs no gradient.
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

import numpy as np

__all__ = [
    "Layer",
    "array_namespace",
    "as_input",
    "broadcast_shapes",
    "check_indices",
    "is_concrete",
    "keep_where",
    "shape_error",
    "sum_to_shape",
]


def _is_jax_array(x: Any) -> bool:
    # jax is imported only by users who use it, so an unimported jax means no jax arrays.
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(x, jax.Array)


def array_namespace(*xs: Any) -> Any:
    """The array library to compute in: ``jax.numpy`` if any input is a jax array, else numpy."""
    if any(_is_jax_array(x) for x in xs):
        import jax.numpy as jnp

        return jnp
    return np


def is_concrete(x: Any) -> bool:
    """Whether ``x`` holds values Python can read (``False`` for a tracer inside ``jax.jit``)."""
    jax = sys.modules.get("jax")
    return jax is None or not isinstance(x, jax.core.Tracer)


def broadcast_shapes(owner: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that ``shapes`` broadcast to, or a ``ValueError`` that names them."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        listed = ", ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{owner}: input shapes {listed} do not broadcast together") from None


def sum_to_shape(xp: Any, g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving an array of ``shape``.

    This is the backward of broadcasting: an input of shape ``(3, 1)`` used in an output of shape
    ``(2, 3, 4)`` receives the sum of the output gradient over axes 0 and 2.
    """
    if xp.shape(g) == tuple(shape):
        return g
    g = xp.broadcast_to(g, np.broadcast_shapes(xp.shape(g), shape))
    lead = g.ndim - len(shape)
    stretched = tuple(i + lead for i, size in enumerate(shape) if size == 1 and g.shape[i + lead] != 1)
    return xp.reshape(xp.sum(g, axis=tuple(range(lead)) + stretched), shape)


def keep_where(xp: Any, keep: Any, x: Any) -> Any:
    """``where(keep, x, 0)``: ``x`` where ``keep`` is True and +0 elsewhere, whatever ``x`` holds there.

    numpy's ``where`` branches on every element, which is slow when the mask is unpredictable (a
    ReLU's is): here it took 1 ms for 256K float32s. For a numpy ``x`` and ``keep`` of one shape this
    ANDs the bits of ``x`` with all-one or all-zero bits instead, branch-free and 15 to 20 times
    faster (and faster than ``np.maximum(x, 0)``), with the same result (``-0.0``, inf and NaN where
    ``keep`` is False become +0 either way; where it is True, NaN stays NaN).
    """
    if xp is np and x.shape == keep.shape and x.dtype.itemsize in (2, 4, 8):
        out = np.empty(x.shape, x.dtype)
        bits = out.view(f"u{x.dtype.itemsize}")  # the result's own memory: no temporary array
        bits[...] = keep  # 1 or 0
        np.negative(bits, out=bits)  # all ones (-1 wraps around) or all zeros
        np.bitwise_and(bits, x.view(bits.dtype), out=bits)
        return out
    return xp.where(keep, x, 0)


def shape_error(owner: str, expected: str, **shapes: tuple[int, ...]) -> ValueError:
    """A ``ValueError`` saying which shapes ``owner`` expected and which it got."""
    got = ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items())
    return ValueError(f"{owner}: expected {expected}; got {got}")


def check_indices(name: str, indices: Any, size: int) -> None:
    """Raise ``TypeError`` unless ``indices`` are integers, and, on eager inputs, ``ValueError``
    unless they lie in ``[0, size)``; ``name`` says what they are (``"labels"``)."""
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {indices.dtype}")
    if is_concrete(indices) and indices.size and not (int(indices.min()) >= 0 and int(indices.max()) < size):
        low, high = int(indices.min()), int(indices.max())
        raise ValueError(f"{name} must lie in [0, {size}), got values from {low} to {high}")


def _is_float_dtype(dtype: Any) -> bool:
    # bfloat16 (jax's) is floating but no numpy subtype of np.floating
    return np.issubdtype(dtype, np.floating) or np.dtype(dtype).name == "bfloat16"


def as_input(owner: str, name: str, x: Any) -> Any:
    """``x`` as a layer takes it: a number or an array of real numbers, else a ``TypeError``.

    Python numbers, numpy scalars and arrays and jax arrays pass unchanged (a Python number stays
    one: it takes the other inputs' dtype, as in numpy and jax arithmetic). Anything else is what
    ``np.asarray`` makes of it, a list or tuple of numbers becoming a numpy array; a string,
    ``None``, an object or complex array, a ragged list raise a ``TypeError`` naming ``name``.
    """
    if type(x) is np.ndarray or isinstance(x, np.ndarray | np.generic):  # first: the common case, fast
        array = x
    elif isinstance(x, bool | int | float) or _is_jax_array(x):
        return x
    else:
        try:
            array = np.asarray(x)
        except (ValueError, TypeError):  # a ragged list: numpy cannot make an array of it
            got = f"{_describe(x)}, which numpy cannot make one array of"
            raise TypeError(f"{owner}: {name} must be a number or an array of numbers; got {got}") from None
    if array.dtype.kind not in "biuf" and not _is_float_dtype(array.dtype):  # bfloat16's kind is "V"
        # a list's numbers may be fine and one element not: numpy's dtype for it says which kind
        got = f"{_describe(x)} (numpy makes dtype {array.dtype} of it)" if isinstance(x, list | tuple) else _describe(x)
        raise TypeError(f"{owner}: {name} must be a number or an array of numbers; got {got}")
    return array


def _describe(x: Any) -> str:
    """What a user passed, in a few words: its type and the start of its repr."""
    if isinstance(x, np.ndarray):
        return f"a numpy array of dtype {x.dtype}"
    text = repr(x)
    text = text if len(text) <= 40 else text[:37] + "..."
    return text if x is None else f"{type(x).__name__} {text}"


class Layer:
    """A layer with a hand-written backward: ``forward(*inputs)`` then ``backward(dout)``.

    ``forward`` takes the inputs in the order the layer documents and returns the output;
    ``backward`` takes the gradient of the output (the output's shape) and returns the gradient of
    every input in forward's order: the array itself for a one-input layer, a tuple otherwise.
    A layer of several outputs (``_forward`` returns a tuple) returns a tuple from ``forward``,
    and ``backward`` takes a tuple of as many gradients, one of each output's shape, which
    ``_backward`` receives as separate arguments.

    Inputs are turned into arrays of one library (``jax.numpy`` when any input is a jax array,
    numpy otherwise) and one floating dtype, found by that library's type promotion (Python numbers
    and integer arrays become the library's default float: float64 for numpy). Each gradient has
    its input's shape and, for a floating input, its dtype. Inputs listed in ``labels`` are not
    floating (integer class labels or indices, a boolean mask): they become arrays of their own
    dtype and get the gradient ``None``.
    """

    #: positions of the inputs that are not floating (integer labels or indices, boolean masks),
    #: which keep their dtype and receive no gradient
    labels: tuple[int, ...] = ()

    def forward(self, *inputs: Any) -> Any:
        """Compute the output from ``inputs`` and store what ``backward`` needs."""
        self._meta = None  # a forward that fails leaves nothing for backward to use
        signature = _forward_signature(type(self))
        names = list(signature.parameters)[1:]
        owner = f"{type(self).__name__}.forward"
        try:
            signature.bind(self, *inputs)
        except TypeError:
            raise TypeError(f"{owner} takes ({', '.join(names)}); got {len(inputs)} inputs") from None
        # names[-1] for the extra inputs of a `*inputs` parameter: the name that takes them
        inputs = tuple(as_input(owner, names[min(i, len(names) - 1)], x) for i, x in enumerate(inputs))
        self._check_shapes(*(np.shape(x) for x in inputs))
        xp = array_namespace(*inputs)
        floats = [x for i, x in enumerate(inputs) if i not in self.labels]
        dtype = xp.result_type(*floats)
        if not _is_float_dtype(dtype):
            dtype = xp.result_type(float)
        arrays = tuple(xp.asarray(x) if i in self.labels else xp.asarray(x, dtype=dtype) for i, x in enumerate(inputs))
        self._xp = xp
        out = self._forward(*arrays)
        # several outputs (a tuple): one shape each, and backward takes a tuple of as many douts
        several = isinstance(out, tuple)
        self._meta = (
            dtype,
            tuple(xp.shape(o) for o in out) if several else xp.shape(out),
            [None if i in self.labels else (xp.shape(x), _input_dtype(xp, x, dtype)) for i, x in enumerate(inputs)],
            several,
        )
        return tuple(_unwrap(xp, o) for o in out) if several else _unwrap(xp, out)

    def backward(self, dout: Any) -> Any:
        """The gradient of every forward input, given the gradient ``dout`` of the output (for a
        layer of several outputs, a tuple of their gradients, in order)."""
        if getattr(self, "_meta", None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before a successful forward")
        dtype, out_shape, inputs, several = self._meta
        xp = self._xp
        owner = type(self).__name__
        if several:
            douts = _douts(owner, xp, dout, dtype, out_shape)
        else:
            douts = (xp.asarray(as_input(f"{owner}.backward", "dout", dout), dtype=dtype),)
        if not several and xp.shape(douts[0]) != out_shape:
            raise ValueError(
                f"{type(self).__name__}.backward: dout has shape {xp.shape(douts[0])}, "
                f"but the output has shape {out_shape}"
            )
        grads = self._backward(*douts)
        if len(inputs) == 1:
            grads = (grads,)
        # None: a label, or an input the layer was told needs no gradient (vector.Affine(input_grad=False))
        shaped = tuple(
            None if meta is None or g is None else _own(xp, xp.asarray(sum_to_shape(xp, g, meta[0]), meta[1]), douts)
            for g, meta in zip(grads, inputs, strict=True)
        )
        return shaped[0] if len(shaped) == 1 else shaped

    def _check_shapes(self, *shapes: tuple[int, ...]) -> None:
        """Raise ``ValueError`` naming the shapes unless they fit; by default, unless they broadcast."""
        broadcast_shapes(type(self).__name__, *shapes)


@functools.cache
def _forward_signature(cls: type) -> inspect.Signature:
    """The signature of ``cls._forward``, ``self`` first; inspecting it costs more than a small layer."""
    return inspect.signature(cls._forward)


def _input_dtype(xp: Any, x: Any, compute_dtype: Any) -> Any:
    """The dtype an input's gradient takes: the input's own if floating, else the compute dtype.

    In jax, the dtype jax gives it: with jax's x64 off, a numpy float64 input's gradient is
    float32, as everything jax computes is (asking jax for float64 then would only warn).
    """
    dtype = getattr(x, "dtype", None)
    dtype = dtype if dtype is not None and _is_float_dtype(dtype) else compute_dtype
    if xp is np:
        return dtype
    import jax

    return jax.dtypes.canonicalize_dtype(dtype)


def _douts(owner: str, xp: Any, dout: Any, dtype: Any, out_shapes: tuple[tuple[int, ...], ...]) -> tuple[Any, ...]:
    """The gradients of a layer's several outputs: a tuple (or list) of one array per output, each
    of its output's shape, as arrays of ``dtype``; else a ``ValueError`` saying what was expected."""
    expected = ", ".join(str(s) for s in out_shapes)
    if not isinstance(dout, tuple | list) or len(dout) != len(out_shapes):
        got = f"{len(dout)} arrays" if isinstance(dout, tuple | list) else f"an array of shape {np.shape(dout)}"
        raise ValueError(
            f"{owner}.backward: dout must be a tuple of {len(out_shapes)} arrays, one per output, "
            f"of shapes {expected}; got {got}"
        )
    douts = tuple(xp.asarray(d, dtype=dtype) for d in dout)
    if any(xp.shape(d) != shape for d, shape in zip(douts, out_shapes, strict=True)):
        got = ", ".join(str(xp.shape(d)) for d in douts)
        raise ValueError(f"{owner}.backward: dout has shapes {got}, but the outputs have shapes {expected}")
    return douts


def _own(xp: Any, g: Any, douts: tuple[Any, ...]) -> Any:
    """A gradient the caller may keep and write to: never a view of a ``dout`` (Plus passes it on)
    or a read-only broadcast, and, as numpy does for arithmetic, a scalar rather than a 0-d array."""
    if (
        xp is np
        and isinstance(g, np.ndarray)
        and (not g.flags.writeable or any(np.may_share_memory(g, d) for d in douts))
    ):
        g = g.copy()
    return _unwrap(xp, g)


def _unwrap(xp: Any, x: Any) -> Any:
    """numpy returns scalars, not 0-d arrays, from arithmetic; so do the layers."""
    return x[()] if xp is np and isinstance(x, np.ndarray) and x.ndim == 0 else x
