"""Check a layer's hand-written backward against ``jax.vjp`` of a reference function.

This module is public: its strategies draw inputs for every reference function (use them in
your own Hypothesis tests), and :func:`check_example` compares a layer class against the oracle
on one drawn example, raising :class:`AssertionError` with a readable report.

It needs ``jax`` (the oracle) and ``hypothesis`` (the strategies).

Tolerances
----------
The oracle always runs in float64, on the very values the layer saw (a float32 input is exact in
float64), so the only differences are the layer's own rounding. A gradient ``g`` passes when::

    max |got - expected|  <=  (OPS + K) * eps(dtype) * (max |expected| + max |dout| * M**degree) + tiny

- ``eps(dtype)`` is the unit roundoff of the layer's dtype: 2**-52 for float64, 2**-23 for float32.
- ``K`` is the total size of the inputs and the output: no sum in any layer has more terms, and a
  sum of ``K`` terms may lose ``K`` roundings (Higham, *Accuracy and Stability*, §4.2).
- ``OPS = 16`` bounds the roundings of the longest elementwise chain in any layer (the MLP).
- The bound is normwise: the floor ``max |expected|`` keeps cancellation in one entry from failing
  a correct result, and ``max |dout| * M**degree`` (``M`` the largest input magnitude, at least 1,
  ``degree`` the degree of the layer's gradient in its inputs) is the size of the terms summed
  into any entry, so that an exactly cancelling sum (a zero gradient) is compared fairly.
- The output is checked the same way, with ``M**(degree + 1)`` as its floor.
- The smallest normal number of the dtype is added: results below it may be flushed to zero
  (XLA on CPU does), which is no error of the layer.

For float64 that is about 1e-13 of the scale: a gradient wrong by one part in a million fails.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis.extra import numpy as hnp

import reference.scalar
import reference.vector
from handlayers import scalar, vector

__all__ = [
    "OPS",
    "SPECS",
    "Example",
    "Spec",
    "check_example",
    "douts",
    "examples",
    "oracle",
    "tolerance",
]

#: roundings in the longest elementwise chain of any layer (see the module docstring)
OPS = 16


@dataclass(frozen=True)
class Example:
    """One drawn case: the forward inputs, the layer's constructor keywords, and ``dout``."""

    inputs: tuple[Any, ...]
    kwargs: dict[str, Any]
    dout: Any


@dataclass(frozen=True)
class Spec:
    """What checking a layer against one reference function needs.

    Attributes:
        name: the reference's name, ``"scalar.relu"``.
        reference: the ``jax.numpy`` function whose ``jax.vjp`` is the oracle.
        layer: the built-in layer class that implements it.
        args: the names of forward's inputs, in order (the gradients are ``d`` + each name).
        draw: ``draw(dtype)`` is a strategy of ``(inputs, kwargs)`` for that float dtype.
        labels: the positions of integer label inputs (gradient ``None``).
        degree: the degree of the gradient in the inputs' magnitude (for the tolerance).
    """

    name: str
    reference: Callable[..., Any]
    layer: type
    args: tuple[str, ...]
    draw: Callable[[Any], st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]]
    labels: tuple[int, ...] = ()
    degree: int = 0
    grads: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grads", tuple("d" + a for a in self.args))


# ---------------------------------------------------------------------------------------------
# Strategies


def floats(dtype: Any, bound: float, specials: Sequence[float] = (0.0, 1.0, -1.0)) -> st.SearchStrategy[float]:
    """Finite floats of ``dtype`` in ``[-bound, bound]``, with ``specials`` (the kinks) drawn often.

    No subnormals: XLA on CPU flushes them to zero, so they would test the platform, not the layer.
    """
    width = np.finfo(dtype).bits
    return st.one_of(
        st.sampled_from(list(specials)),
        st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )


def grid(bound: float, step: float = 0.125) -> st.SearchStrategy[float]:
    """Multiples of ``step`` in ``[-bound, bound]``: their products and short sums are exact in
    float32, so a kink inside a composite layer (a hidden unit at exactly 0) stays where it is."""
    n = int(bound / step)
    return st.integers(-n, n).map(lambda i: i * step)


def arrays(dtype: Any, shape: tuple[int, ...], elements: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    """Arrays of ``dtype`` and ``shape``; each element drawn from ``elements``."""
    return hnp.arrays(dtype, shape, elements=elements)


def broadcast_inputs(
    dtype: Any, elements: Sequence[st.SearchStrategy[float]], *, max_dims: int = 3, max_side: int = 3
) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Inputs of mutually broadcastable shapes, one per strategy in ``elements``.

    A 0-d input is sometimes a Python float (only for float64, the dtype Python floats have).
    """

    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        shapes = data(hnp.mutually_broadcastable_shapes(num_shapes=len(elements), max_dims=max_dims, max_side=max_side))
        inputs = []
        for shape, element in zip(shapes.input_shapes, elements, strict=True):
            if shape == () and np.dtype(dtype) == np.float64 and data(st.booleans()):
                inputs.append(float(data(element)))
            else:
                inputs.append(data(arrays(dtype, shape, element)))
        return tuple(inputs), {}

    return draw()


def _scalar_spec(name: str, layer: type, args: str, degree: int, *elements: Callable[[Any], Any]) -> Spec:
    return Spec(
        name=f"scalar.{name}",
        reference=getattr(reference.scalar, name),
        layer=layer,
        args=tuple(args.split()),
        degree=degree,
        draw=lambda dtype: broadcast_inputs(dtype, [e(dtype) for e in elements]),
    )


def _wide(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 100.0)


def _sigmoid_input(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 1000.0, specials=(0.0, 1000.0, -1000.0, 2.0))


def _label_pm1(dtype: Any) -> st.SearchStrategy[float]:
    return st.sampled_from([-1.0, 1.0])


def _mlp_value(dtype: Any) -> st.SearchStrategy[float]:
    # float64 rounds too finely to move a kink; float32 gets exact grid values (see grid)
    return floats(dtype, 4.0, specials=(0.0, 1.0, -1.0, 0.5)) if np.dtype(dtype) == np.float64 else grid(4.0)


def _side(max_side: int = 4) -> st.SearchStrategy[int]:
    return st.integers(1, max_side)


def _labels(n: int, k: int) -> st.SearchStrategy[Any]:
    return arrays(np.int64, (n,), st.integers(0, k - 1))


def _logits(dtype: Any) -> st.SearchStrategy[float]:
    # ties come from the specials; 1e4 would overflow exp without the max shift
    return floats(dtype, 1e4, specials=(0.0, 1.0, -1.0, 1e4, -1e4))


def _scores(dtype: Any) -> st.SearchStrategy[float]:
    # S_ij = S_i,label - 1 puts a hinge term exactly at 0; float32 gets grid values, whose
    # differences are exact, so rounding cannot move a term across 0
    return floats(dtype, 100.0, specials=(0.0, 1.0, -1.0, 2.0)) if np.dtype(dtype) == np.float64 else grid(100.0)


def _affine_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        n, d_in = data(_side()), data(_side())
        d_out = data(st.one_of(st.just(d_in), _side()))  # d_out == d_in, where a missing transpose hides
        e = _wide(dtype)
        return (
            data(arrays(dtype, (n, d_in), e)),
            data(arrays(dtype, (d_in, d_out), e)),
            data(arrays(dtype, (d_out,), e)),
        ), {}

    return draw()


def _softmax_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        shape = data(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
        axis = data(st.integers(-len(shape), len(shape) - 1))
        return (data(arrays(dtype, shape, _logits(dtype))),), {"axis": axis}

    return draw()


def _pair_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        shape = (data(_side()), data(_side()))
        return (data(arrays(dtype, shape, _wide(dtype))), data(arrays(dtype, shape, _wide(dtype)))), {}

    return draw()


def _labelled_inputs(elements: Callable[[Any], st.SearchStrategy[float]]) -> Callable[[Any], Any]:
    def inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        @st.composite
        def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
            n, k = data(_side()), data(_side())
            return (data(arrays(dtype, (n, k), elements(dtype))), data(_labels(n, k))), {}

        return draw()

    return inputs


def _mlp_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        n, d_in, h, k = (data(_side(3)) for _ in range(4))
        shapes = [(n, d_in), (d_in, h), (h,), (h, k), (k,), (n, k)]
        return tuple(data(arrays(dtype, shape, _mlp_value(dtype))) for shape in shapes), {}

    return draw()


def _vector_spec(name: str, layer: type, args: str, degree: int, draw: Callable[[Any], Any], labels=()) -> Spec:
    return Spec(
        name=f"vector.{name}",
        reference=getattr(reference.vector, name),
        layer=layer,
        args=tuple(args.split()),
        degree=degree,
        draw=draw,
        labels=labels,
    )


SPECS: dict[str, Spec] = {
    s.name: s
    for s in [
        _scalar_spec("plus", scalar.Plus, "a b", 0, _wide, _wide),
        _scalar_spec("square", scalar.Square, "x", 1, _wide),
        _scalar_spec("affine", scalar.Affine, "x w b", 1, _wide, _wide, _wide),
        _scalar_spec("relu", scalar.ReLU, "a", 0, _wide),
        _scalar_spec("sigmoid", scalar.Sigmoid, "a", 0, _sigmoid_input),
        _scalar_spec("squared_loss", scalar.SquaredLoss, "y_hat y", 1, _wide, _wide),
        _scalar_spec("hinge_loss", scalar.HingeLoss, "y_hat y", 1, _wide, _label_pm1),
        _scalar_spec("mlp", scalar.MLP, "x w1 b1 w2 b2 y", 5, *[_mlp_value] * 6),
        _vector_spec("affine", vector.Affine, "X W b", 1, _affine_inputs),
        _vector_spec("relu", vector.ReLU, "A", 0, lambda dtype: _matrix_inputs(dtype, _wide)),
        _vector_spec("sigmoid", vector.Sigmoid, "A", 0, lambda dtype: _matrix_inputs(dtype, _sigmoid_input)),
        _vector_spec("softmax", vector.Softmax, "Z", 0, _softmax_inputs),
        _vector_spec("squared_loss", vector.SquaredLoss, "Y_hat Y", 1, _pair_inputs),
        _vector_spec("hinge_loss", vector.HingeLoss, "S labels", 0, _labelled_inputs(_scores), labels=(1,)),
        _vector_spec(
            "softmax_cross_entropy", vector.SoftmaxCrossEntropy, "Z labels", 0, _labelled_inputs(_logits), labels=(1,)
        ),
        _vector_spec("mlp", vector.MLP, "X W1 b1 W2 b2 Y", 5, _mlp_inputs),
    ]
}


def _matrix_inputs(dtype: Any, elements: Callable[[Any], st.SearchStrategy[float]]) -> Any:
    """One (n, d) array: the batched elementwise layers."""
    return hnp.array_shapes(min_dims=2, max_dims=2, max_side=4).flatmap(
        lambda shape: arrays(dtype, shape, elements(dtype)).map(lambda a: ((a,), {}))
    )


def output_shape(spec: Spec, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """The shape of the reference's output for these inputs, found without computing it."""
    structs = [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in inputs]
    return tuple(jax.eval_shape(lambda *xs: spec.reference(*xs, **kwargs), *structs).shape)


def douts(shape: tuple[int, ...], dtype: Any = np.float64) -> st.SearchStrategy[Any]:
    """Output gradients of ``shape``: random values in [-10, 10], zeros and ones among them."""
    return arrays(dtype, shape, floats(dtype, 10.0, specials=(0.0, 1.0, -1.0, 0.5)))


def examples(spec: Spec, dtype: Any = np.float64) -> st.SearchStrategy[Example]:
    """Examples for ``spec``: inputs, constructor keywords and a random ``dout`` of the output's shape."""

    @st.composite
    def draw(data: st.DrawFn) -> Example:
        inputs, kwargs = data(spec.draw(dtype))
        shape = output_shape(spec, inputs, kwargs)
        return Example(inputs, kwargs, data(douts(shape, dtype)))

    return draw()


# ---------------------------------------------------------------------------------------------
# The oracle

_ORACLES: dict[tuple[Any, ...], Callable[..., Any]] = {}


def oracle(spec: Spec, example: Example) -> tuple[np.ndarray, tuple[np.ndarray | None, ...]]:
    """``(output, gradients)`` of ``spec.reference`` by ``jax.vjp``, in float64 on jax's default device.

    The jitted vjp is cached per reference and keywords, so each new shape compiles once.
    """
    key = (spec.name, tuple(sorted(example.kwargs.items())))
    if key not in _ORACLES:
        _ORACLES[key] = jax.jit(_vjp_function(spec, example.kwargs))
    floats_ = [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]
    labels = [np.asarray(example.inputs[i]) for i in spec.labels]
    with jax.enable_x64(True):
        out, grads = _ORACLES[key](floats_, labels, np.asarray(example.dout, np.float64))
    grads_iter = iter(grads)
    full = tuple(None if i in spec.labels else np.asarray(next(grads_iter)) for i in range(len(spec.args)))
    return np.asarray(out), full


def _vjp_function(spec: Spec, kwargs: dict[str, Any]) -> Callable[..., Any]:
    def run(floats_: list[Any], labels: list[Any], dout: Any) -> Any:
        def f(*xs: Any) -> Any:
            it, lab = iter(xs), iter(labels)
            args = [next(lab) if i in spec.labels else next(it) for i in range(len(spec.args))]
            return spec.reference(*args, **kwargs)

        out, vjp = jax.vjp(f, *floats_)
        return out, vjp(dout)

    return run


# ---------------------------------------------------------------------------------------------
# The comparison


def tolerance(spec: Spec, example: Example, dtype: Any, expected: np.ndarray, *, degree: int) -> float:
    """The largest error allowed in ``expected`` (see the module docstring for the derivation)."""
    floats_ = [np.asarray(x) for i, x in enumerate(example.inputs) if i not in spec.labels]
    k = sum(x.size for x in floats_) + int(np.size(example.dout))
    m = max([1.0] + [float(np.max(np.abs(x), initial=0.0)) for x in floats_])
    scale = float(np.max(np.abs(expected), initial=0.0))
    scale += float(np.max(np.abs(np.asarray(example.dout)), initial=0.0)) * m**degree
    info = np.finfo(dtype)
    return (OPS + k) * float(info.eps) * scale + float(info.smallest_normal)


def to_backend(x: Any, backend: str, dtype: Any) -> Any:
    """``x`` as an array of ``backend`` (``"numpy"`` or ``"jax"``); Python floats stay Python floats."""
    if isinstance(x, float):
        return x
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        return np.asarray(x) if backend == "numpy" else jnp.asarray(x)
    return np.asarray(x, dtype) if backend == "numpy" else jnp.asarray(x, dtype)


def library(x: Any) -> str:
    """``"jax"`` for a jax array, ``"numpy"`` for numpy arrays and scalars, else the type's name."""
    if isinstance(x, jax.Array):
        return "jax"
    if isinstance(x, np.ndarray | np.generic):
        return "numpy"
    return type(x).__name__


def check_example(
    layer: type, spec: Spec, example: Example, *, backend: str = "numpy", dtype: Any = np.float64
) -> None:
    """Run ``layer`` forward and backward on ``example`` and compare it with the oracle.

    ``layer`` is the layer class, or any callable that makes a layer from the constructor keywords.

    Checks the output and every gradient: its library (that of the inputs), shape and dtype (those
    of its input), and its values within :func:`tolerance`; ``None`` for integer labels; and that
    the inputs were not modified. Raises ``AssertionError`` describing every difference.
    """
    dtype = np.dtype(dtype)
    with jax.enable_x64(True):
        inputs = tuple(to_backend(x, backend, dtype) for x in example.inputs)
        before = copy.deepcopy([np.asarray(x) for x in inputs])
        dout = to_backend(example.dout, backend, dtype)
        instance = layer(**example.kwargs)
        out = instance.forward(*inputs)
        grads = instance.backward(dout)
    expected_out, expected_grads = oracle(spec, example)
    expected_lib = "jax" if any(library(x) == "jax" for x in inputs) else "numpy"
    problems: list[str] = []

    def compare(name: str, got: Any, want: np.ndarray, want_dtype: Any, degree: int) -> None:
        if library(got) != expected_lib:
            problems.append(f"{name}: is a {library(got)} value, expected {expected_lib}")
            return
        got_np = np.asarray(got)
        if got_np.shape != want.shape:
            problems.append(f"{name}: has shape {got_np.shape}, expected {want.shape}")
            return
        if got_np.dtype != want_dtype:
            problems.append(f"{name}: has dtype {got_np.dtype}, expected {np.dtype(want_dtype)}")
        error = float(np.max(np.abs(got_np.astype(np.float64) - want), initial=0.0))
        tol = tolerance(spec, example, dtype, want, degree=degree)
        if not error <= tol:  # also catches NaN
            problems.append(f"{name}: worst error {error:.3g} exceeds tolerance {tol:.3g}")

    compare("output", out, expected_out, dtype, spec.degree + 1)
    if len(spec.args) == 1:
        grads = (grads,)
    if not isinstance(grads, tuple) or len(grads) != len(spec.args):
        n = len(grads) if isinstance(grads, tuple) else 1
        problems.append(f"backward returned {n} gradients, expected {len(spec.args)} ({', '.join(spec.grads)})")
    else:
        for i, (name, got, want) in enumerate(zip(spec.grads, grads, expected_grads, strict=True)):
            if want is None:
                if got is not None:
                    problems.append(f"{name}: expected None for integer labels, got {type(got).__name__}")
                continue
            x = inputs[i]
            want_dtype = np.asarray(x).dtype if isinstance(x, np.ndarray | jax.Array) else dtype
            compare(name, got, want, want_dtype, spec.degree)
    for name, x, old in zip(spec.args, inputs, before, strict=True):
        if not np.array_equal(np.asarray(x), old, equal_nan=True):
            problems.append(f"{name}: forward or backward modified this input")
    if problems:
        raise AssertionError(
            f"{getattr(layer, '__name__', 'layer')} against {spec.name} ({backend}, {dtype.name}):\n  "
            + "\n  ".join(problems)
        )
