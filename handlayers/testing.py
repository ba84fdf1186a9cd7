"""Check a layer's hand-written backward against ``jax.vjp`` of a reference function.

This module is public: its strategies draw inputs for every reference function (use them in
your own Hypothesis tests), and :func:`check_example` compares a layer class against the oracle
on one drawn example, raising :class:`AssertionError` with a readable report.

It needs ``jax`` (the oracle) and ``hypothesis`` (the strategies).

Tolerances
----------
The oracle always runs in float64, on the very values the layer saw (a float32 input is exact in
float64), so the only differences are the layer's own rounding. A gradient ``g`` passes when::

    max |got - expected|  <=  (OPS + K) * (eps(dtype) * (max |expected| + max |dout| * M**degree) + tiny)

- ``eps(dtype)`` is the machine epsilon of the layer's dtype: 2**-52 for float64, 2**-23 for float32.
- ``K`` is the total size of the inputs and the output: no sum in any layer has more terms, and a
  sum of ``K`` terms may lose ``K`` roundings (Higham, *Accuracy and Stability*, §4.2).
- ``OPS = 16`` bounds the roundings of the longest elementwise chain in any layer (the MLP).
- The bound is normwise: the floor ``max |expected|`` keeps cancellation in one entry from failing
  a correct result, and ``max |dout| * M**degree`` (``M`` the largest input magnitude, at least 1,
  ``degree`` the degree of the layer's gradient in its inputs) is the size of the terms summed
  into any entry, so that an exactly cancelling sum (a zero gradient) is compared fairly.
- The output is checked the same way, with ``M**out_degree`` (no ``dout``) as its floor.
- Each rounding may also lose up to the smallest normal number of the dtype: results below it
  may be flushed to zero (XLA on CPU does), which is no error of the layer. So the bound is
  ``(OPS + K) * (eps * scale + smallest_normal)``.

For float64 that is about 1e-13 of the scale: a gradient wrong by one part in a million fails.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis.extra import numpy as hnp

import reference.scalar
import reference.vector
from handlayers import scalar, vector
from handlayers._report import diagnose, example_lines, user_traceback, value_lines

__all__ = [
    "OPS",
    "SPECS",
    "Example",
    "Mismatch",
    "Result",
    "Spec",
    "arrays",
    "broadcast_inputs",
    "check",
    "check_backends",
    "check_example",
    "douts",
    "examples",
    "floats",
    "grid",
    "oracle",
    "tolerance",
]

#: roundings in the longest elementwise chain of any layer (see the module docstring)
OPS = 16

#: the longest side of a drawn array: a side of 1 (broadcasting, a batch of one) and two unequal
#: sides above 1 (a missing transpose) are all a bug needs to show, and under jax every further
#: shape compiles anew
MAX_SIDE = 3


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
        degree: the degree of the gradients in the inputs' magnitude (for the tolerance).
        out_degree: the same for the output (default ``degree + 1``; 0 for a bounded output).
        elements: for elementwise (scalar) references, ``elements[i](dtype)`` draws the values of
            input ``i``; it lets :func:`examples` draw plain Python floats.
    """

    name: str
    reference: Callable[..., Any]
    layer: type
    args: tuple[str, ...]
    draw: Callable[[Any], st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]]
    labels: tuple[int, ...] = ()
    degree: int = 0
    out_degree: int = -1
    elements: tuple[Callable[[Any], st.SearchStrategy[float]], ...] = ()
    grads: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grads", tuple("d" + a for a in self.args))
        if self.out_degree < 0:
            object.__setattr__(self, "out_degree", self.degree + 1)


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
    dtype: Any,
    elements: Sequence[st.SearchStrategy[float]],
    *,
    max_dims: int = 3,
    max_side: int = 3,
    broadcast: bool = True,
) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Inputs of mutually broadcastable shapes, one per strategy in ``elements`` (with
    ``broadcast=False``, all of one shape).

    A 0-d input is sometimes a Python float (only for float64, the dtype Python floats have).
    """

    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if broadcast:
            shapes = hnp.mutually_broadcastable_shapes(num_shapes=len(elements), max_dims=max_dims, max_side=max_side)
            input_shapes = data(shapes).input_shapes
        else:
            input_shapes = [data(hnp.array_shapes(min_dims=0, max_dims=max_dims, max_side=max_side))] * len(elements)
        inputs = []
        for shape, element in zip(input_shapes, elements, strict=True):
            if shape == () and np.dtype(dtype) == np.float64 and data(st.booleans()):
                inputs.append(float(data(element)))
            else:
                inputs.append(data(arrays(dtype, shape, element)))
        return tuple(inputs), {}

    return draw()


def _spec(name: str, layer: type, args: str, degree: int, draw: Callable[[Any], Any], **extra: Any) -> Spec:
    family, function = name.split(".")
    module = getattr(reference, family)
    return Spec(name, getattr(module, function), layer, tuple(args.split()), draw, degree=degree, **extra)


def _scalar_spec(
    name: str, layer: type, args: str, degree: int, *elements: Callable[[Any], Any], broadcast: bool = True, **kw: Any
) -> Spec:
    """An elementwise spec: one element strategy per input, shapes that broadcast (or one shared shape)."""

    def draw(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        # Two axes show both kinds of broadcasting (an added axis, a stretched one); a third would
        # only multiply the shapes, and every new combination of shapes compiles anew under jax.
        elements_ = [e(dtype) for e in elements]
        return broadcast_inputs(dtype, elements_, max_dims=2, max_side=MAX_SIDE, broadcast=broadcast)

    return _spec(f"scalar.{name}", layer, args, degree, draw, elements=elements, **kw)


def _wide(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 100.0)


def _sigmoid_input(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 1000.0, specials=(0.0, 1000.0, -1000.0, 2.0))


def _label_pm1(dtype: Any) -> st.SearchStrategy[float]:
    return st.sampled_from([-1.0, 1.0])


def _mlp_value(dtype: Any) -> st.SearchStrategy[float]:
    # float64 rounds too finely to move a kink; float32 gets exact grid values (see grid)
    return floats(dtype, 4.0, specials=(0.0, 1.0, -1.0, 0.5)) if np.dtype(dtype) == np.float64 else grid(4.0)


def _side(max_side: int = MAX_SIDE) -> st.SearchStrategy[int]:
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
        shape = data(hnp.array_shapes(min_dims=1, max_dims=3, max_side=MAX_SIDE))
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
        # three unequal widths in every order: any transpose mixes two of them up
        n, (d_in, h, k) = data(_side()), data(st.sampled_from(list(itertools.permutations((1, 2, 3)))))
        shapes = [(n, d_in), (d_in, h), (h,), (h, k), (k,), (n, k)]
        return tuple(data(arrays(dtype, shape, _mlp_value(dtype))) for shape in shapes), {}

    return draw()


SPECS: dict[str, Spec] = {
    s.name: s
    for s in [
        _scalar_spec("plus", scalar.Plus, "a b", 0, _wide, _wide),
        _scalar_spec("square", scalar.Square, "x", 1, _wide),
        _scalar_spec("affine", scalar.Affine, "x w b", 1, _wide, _wide, _wide),
        _scalar_spec("relu", scalar.ReLU, "a", 0, _wide),
        _scalar_spec("sigmoid", scalar.Sigmoid, "a", 0, _sigmoid_input, out_degree=0),
        _scalar_spec("squared_loss", scalar.SquaredLoss, "y_hat y", 1, _wide, _wide),
        _scalar_spec("hinge_loss", scalar.HingeLoss, "y_hat y", 1, _wide, _label_pm1),
        # its six inputs share one shape: broadcasting is the layers' own, tested above, and six
        # broadcast shapes make nearly every example a new combination to compile under jax
        _scalar_spec("mlp", scalar.MLP, "x w1 b1 w2 b2 y", 5, *[_mlp_value] * 6, broadcast=False),
        _spec("vector.affine", vector.Affine, "X W b", 1, _affine_inputs),
        _spec("vector.relu", vector.ReLU, "A", 0, lambda dtype: _matrix_inputs(dtype, _wide)),
        _spec(
            "vector.sigmoid", vector.Sigmoid, "A", 0, lambda dtype: _matrix_inputs(dtype, _sigmoid_input), out_degree=0
        ),
        _spec("vector.softmax", vector.Softmax, "Z", 0, _softmax_inputs, out_degree=0),
        _spec("vector.squared_loss", vector.SquaredLoss, "Y_hat Y", 1, _pair_inputs),
        _spec("vector.hinge_loss", vector.HingeLoss, "S labels", 0, _labelled_inputs(_scores), labels=(1,)),
        _spec(
            "vector.softmax_cross_entropy",
            vector.SoftmaxCrossEntropy,
            "Z labels",
            0,
            _labelled_inputs(_logits),
            labels=(1,),
        ),
        _spec("vector.mlp", vector.MLP, "X W1 b1 W2 b2 Y", 5, _mlp_inputs),
    ]
}


def _matrix_inputs(dtype: Any, elements: Callable[[Any], st.SearchStrategy[float]]) -> Any:
    """One (n, d) array: the batched elementwise layers."""
    return hnp.array_shapes(min_dims=2, max_dims=2, max_side=MAX_SIDE).flatmap(
        lambda shape: arrays(dtype, shape, elements(dtype)).map(lambda a: ((a,), {}))
    )


def output_shape(spec: Spec, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """The shape of the reference's output for these inputs, found without computing it."""
    key = (spec.name, tuple(sorted(kwargs.items())), *((np.shape(x), np.asarray(x).dtype.name) for x in inputs))
    if key not in _OUTPUT_SHAPES:  # tracing the reference takes milliseconds: once per shape
        structs = [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in inputs]
        _OUTPUT_SHAPES[key] = tuple(jax.eval_shape(lambda *xs: spec.reference(*xs, **kwargs), *structs).shape)
    return _OUTPUT_SHAPES[key]


_OUTPUT_SHAPES: dict[tuple[Any, ...], tuple[int, ...]] = {}


def douts(shape: tuple[int, ...], dtype: Any = np.float64) -> st.SearchStrategy[Any]:
    """Output gradients of ``shape``: random values in [-10, 10], zeros and ones among them."""
    return arrays(dtype, shape, floats(dtype, 10.0, specials=(0.0, 1.0, -1.0, 0.5)))


def examples(spec: Spec, dtype: Any = np.float64, *, python_floats: bool = False) -> st.SearchStrategy[Example]:
    """Examples for ``spec``: inputs, constructor keywords and a random ``dout`` of the output's shape.

    With ``python_floats`` (elementwise references only), every input and ``dout`` is a plain
    Python float, as the lab's layers expect.
    """
    if python_floats:
        if not spec.elements:
            raise ValueError(f"{spec.name} takes arrays, not Python floats")
        inputs = st.tuples(*(e(np.float64) for e in spec.elements))
        dout = floats(np.float64, 10.0, specials=(0.0, 1.0, -1.0, 0.5))
        return st.builds(lambda xs, d: Example(tuple(map(float, xs)), {}, float(d)), inputs, dout)

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


def tolerance(
    spec: Spec, example: Example, dtype: Any, expected: np.ndarray, *, degree: int, output: bool = False
) -> float:
    """The largest error allowed in ``expected``, a gradient or (``output``) the output; see the
    module docstring for the derivation."""
    floats_ = [np.asarray(x) for i, x in enumerate(example.inputs) if i not in spec.labels]
    k = sum(x.size for x in floats_) + int(np.size(example.dout))
    m = max([1.0] + [float(np.max(np.abs(x), initial=0.0)) for x in floats_])
    scale = float(np.max(np.abs(expected), initial=0.0))
    terms = 1.0 if output else float(np.max(np.abs(np.asarray(example.dout)), initial=0.0))
    scale += terms * m**degree
    info = np.finfo(dtype)
    return (OPS + k) * (float(info.eps) * scale + float(info.smallest_normal))


def to_backend(x: Any, backend: str, dtype: Any) -> Any:
    """``x`` for ``backend``: a numpy or jax array of ``dtype`` (integer arrays keep theirs), or
    for ``"python"`` a Python float. Python floats stay Python floats on every backend."""
    if isinstance(x, float) or backend == "python":
        return float(x)
    if np.issubdtype(np.asarray(x).dtype, np.integer):
        return np.asarray(x) if backend == "numpy" else jnp.asarray(x)
    return np.array(x, dtype) if backend == "numpy" else jnp.asarray(x, dtype)  # a copy: the layer may write


def library(x: Any) -> str:
    """``"jax"`` for a jax array, ``"numpy"`` for numpy arrays and scalars, ``"python"`` for a
    Python number, else the type's name."""
    if isinstance(x, jax.Array):
        return "jax"
    if isinstance(x, np.ndarray | np.generic):
        return "numpy"
    if isinstance(x, int | float) and not isinstance(x, bool):
        return "python"
    return type(x).__name__


class Mismatch(AssertionError):
    """A layer disagrees with its reference; ``str()`` is the report, ``worst`` the error ratio."""


@dataclass
class _Row:
    """One compared value: the output or a gradient."""

    name: str
    expected: np.ndarray | None
    got: Any
    problem: str | None = None
    tol: float = 0.0
    ratio: float = 0.0  # error as a fraction of the tolerance


def check_example(
    layer: Callable[..., Any],
    spec: Spec,
    example: Example,
    *,
    backend: str = "numpy",
    dtype: Any = np.float64,
    expected: tuple[np.ndarray, tuple[np.ndarray | None, ...]] | None = None,
) -> float:
    """Run ``layer`` forward and backward on ``example`` and compare it with the oracle.

    ``layer`` is the layer class, or any callable that makes a layer from the constructor keywords.
    ``backend`` is ``"numpy"``, ``"jax"`` or ``"python"`` (Python floats, for layers written for
    plain numbers). Checks the output and every gradient: its library (that of the inputs), shape
    and dtype (those of its input), and its values within :func:`tolerance`; ``None`` for integer
    labels; and that the inputs were not modified. ``expected`` is ``oracle(spec, example)`` when
    the caller has it already (:func:`check_backends` computes it once for every backend).

    Returns:
        The worst error of the output and gradients, as a fraction of its tolerance.

    Raises:
        Mismatch: (an ``AssertionError``) with a report of the example, expected against got for
            every value, and, where the wrong answer matches a known mistake, that mistake in words.
            An exception raised by the layer becomes a ``Mismatch`` showing the layer's own lines.
    """
    dtype = np.dtype(dtype)
    name = getattr(layer, "__name__", type(layer).__name__)
    # TF32 (a GPU's default for float32 matmuls) is not float32: the tolerance is for float32
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        inputs = tuple(to_backend(x, backend, dtype) for x in example.inputs)
        dout = to_backend(example.dout, backend, dtype)
        before = copy.deepcopy([np.asarray(x) for x in (*inputs, dout)])
        try:
            instance = layer(**example.kwargs)
            out = instance.forward(*inputs)
            grads = instance.backward(dout)
            again = instance.backward(dout)
        except Exception as error:
            raise Mismatch(_raised_report(name, spec, example, backend, dtype, error)) from error
    expected_out, expected_grads = expected or oracle(spec, example)
    given = {library(x) for x in inputs}
    # jax if any input is jax, else numpy if any is numpy; from Python numbers alone a layer may
    # return Python numbers or numpy scalars (the built-in layers do the latter)
    libraries = {"jax"} if "jax" in given else {"numpy"} if "numpy" in given else {"python", "numpy"}
    problems: list[str] = []
    rows = [_Row("output", expected_out, out)]
    grads = (grads,) if len(spec.args) == 1 else grads
    if not isinstance(grads, tuple | list) or len(grads) != len(spec.args):
        n = len(grads) if isinstance(grads, tuple | list) else 1
        problems.append(f"backward returned {n} gradients, expected {len(spec.args)} ({', '.join(spec.grads)})")
    else:
        rows += [_Row(g, e, got) for g, e, got in zip(spec.grads, expected_grads, grads, strict=True)]
        again = (again,) if len(spec.args) == 1 else again
        if not all(_same(g, h) for g, h in zip(grads, again, strict=False)):
            problems.append("backward called a second time gave other gradients")
    for row, x in zip(rows, (None, *inputs), strict=False):
        want_dtype = dtype if x is None or not isinstance(x, np.ndarray | jax.Array) else np.asarray(x).dtype
        expected = _as_float(row.expected)
        tol = tolerance(spec, example, dtype, expected, degree=spec.out_degree, output=True) if x is None else None
        _compare(row, libraries, want_dtype, tol or tolerance(spec, example, dtype, expected, degree=spec.degree))
    for arg, x, old in zip((*spec.args, "dout"), (*inputs, dout), before, strict=True):
        if not np.array_equal(np.asarray(x), old, equal_nan=True):
            problems.append(f"{arg}: forward or backward modified {'it' if arg == 'dout' else 'this input'}")
    worst = max(row.ratio for row in rows)
    if problems or any(row.problem for row in rows):
        hints = _hints(spec, example, rows)
        raise Mismatch(_report(name, spec, example, backend, dtype, rows, problems, hints))
    return worst


def check_backends(
    layer: Callable[..., Any],
    spec: Spec,
    example: Example,
    *,
    backends: Sequence[str] = ("numpy", "jax"),
    dtype: Any = np.float64,
) -> float:
    """:func:`check_example` on each of ``backends``, with the oracle computed once for them all.

    Returns:
        The worst error ratio over the backends.

    Raises:
        Mismatch: for the first backend on which the layer fails.
    """
    expected = oracle(spec, example)
    return max(check_example(layer, spec, example, backend=b, dtype=dtype, expected=expected) for b in backends)


def _same(g: Any, h: Any) -> bool:
    return (g is None and h is None) or (g is not None and h is not None and np.array_equal(g, h, equal_nan=True))


def _as_float(x: Any) -> np.ndarray:
    return np.zeros(()) if x is None else np.asarray(x, np.float64)


def _compare(row: _Row, libraries: set[str], want_dtype: Any, tol: float) -> None:
    row.tol = tol
    if row.expected is None:
        if row.got is not None:
            row.problem = f"expected None for integer labels, got {type(row.got).__name__}"
        return
    if library(row.got) not in libraries:
        row.problem = f"is a {library(row.got)} value, expected {' or '.join(sorted(libraries))}"
        return
    got = np.asarray(row.got)
    if got.shape != row.expected.shape:
        row.problem = f"has shape {got.shape}, expected {row.expected.shape}"
        return
    problems = []
    if got.dtype != want_dtype and not (row.got.__class__ in (float, int) and want_dtype == np.float64):
        problems.append(f"has dtype {got.dtype}, expected {np.dtype(want_dtype)}")
    error = float(np.max(np.abs(got.astype(np.float64) - row.expected), initial=0.0))
    row.ratio = error / tol if error == error else math.inf  # NaN is infinitely wrong
    if not error <= tol:
        problems.append(f"worst error {error:.3g} exceeds tolerance {tol:.3g}")
    row.problem = "; ".join(problems) or None


def _raised_report(name: str, spec: Spec, example: Example, backend: str, dtype: Any, error: Exception) -> str:
    lines = [f"{name} raised {type(error).__name__} against {spec.name} ({_where(backend, dtype)}) on:"]
    lines += example_lines(spec.args, example.inputs, example.kwargs, example.dout)
    lines.append("Traceback (the layer's own lines):")
    lines += ["  " + line for line in user_traceback(error)]
    return "\n".join(lines)


def _where(backend: str, dtype: Any) -> str:
    return f"Python floats, {np.dtype(dtype).name}" if backend == "python" else f"{backend}, {np.dtype(dtype).name}"


def _report(
    name: str,
    spec: Spec,
    example: Example,
    backend: str,
    dtype: Any,
    rows: list[_Row],
    problems: list[str],
    hints: list[str],
) -> str:
    lines = [f"{name} does not match {spec.name} ({_where(backend, dtype)}) on:"]
    lines += example_lines(spec.args, example.inputs, example.kwargs, example.dout)
    for row in rows:
        lines += value_lines(row.name, row.expected, row.got, row.problem)
    lines += [f"  {p}" for p in problems]
    lines += [f"Likely mistake: {hint}." for hint in hints]
    return "\n".join(lines)


def _hints(spec: Spec, example: Example, rows: list[_Row]) -> list[str]:
    def expected_for(case: str) -> list[tuple[str, Any]]:
        if case == "ones":
            other = Example(example.inputs, example.kwargs, np.ones_like(np.asarray(example.dout, np.float64)))
        else:
            sign = 1.0 if case == "above" else -1.0
            other = Example(
                tuple(_nudge(x, sign, i in spec.labels) for i, x in enumerate(example.inputs)),
                example.kwargs,
                example.dout,
            )
        return list(zip(spec.grads, oracle(spec, other)[1], strict=True))

    batch = np.shape(example.inputs[0])[0] if spec.name.startswith("vector.") and np.ndim(example.inputs[0]) else None
    dout_is_ones = bool(np.all(np.asarray(example.dout) == 1))
    return diagnose(rows, batch=batch, dout_is_ones=dout_is_ones, expected_for=expected_for)


def _nudge(x: Any, sign: float, is_label: bool) -> Any:
    """``x`` moved by a millionth of its size (at least 1e-9): across a kink that lies exactly on it."""
    if is_label:
        return x
    x = np.asarray(x, np.float64)
    return x + sign * 1e-9 * np.maximum(1, np.abs(x))


@dataclass(frozen=True)
class Result:
    """What :func:`check` found: how many examples passed and the worst error ratio among them."""

    examples: int
    worst: float


def check(
    layer: Callable[..., Any],
    reference: str | Spec,
    *,
    backend: str = "numpy",
    dtype: Any = np.float64,
    max_examples: int = 100,
    derandomize: bool = True,
) -> Result:
    """Check ``layer`` against a reference function on examples drawn by Hypothesis.

    Args:
        layer: the layer class (``forward(*inputs)``, ``backward(dout)``).
        reference: a name from :data:`SPECS` (``"scalar.relu"``) or a :class:`Spec`.
        backend: ``"numpy"``, ``"jax"``, or ``"python"`` for plain Python floats (scalar only).
        dtype: the float dtype of the inputs (``"python"`` is always float64).
        max_examples: how many examples to draw; the kinks are among them.
        derandomize: draw the same examples every run.

    Returns:
        A :class:`Result`.

    Raises:
        Mismatch: with the report of the smallest failing example Hypothesis found.
        KeyError: for an unknown reference name.
    """
    spec = SPECS[reference] if isinstance(reference, str) else reference
    ratios: list[float] = []

    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        report_multiple_bugs=False,  # one report: the smallest example of the first bug found
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(examples(spec, dtype, python_floats=backend == "python"))
    def run(example: Example) -> None:
        ratios.append(check_example(layer, spec, example, backend=backend, dtype=dtype))

    run()
    return Result(len(ratios), max(ratios))
