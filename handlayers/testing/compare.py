"""The comparison: run a layer forward and backward, and compare every value with the oracle's."""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np

from handlayers.testing import inner
from handlayers.testing.conventions import Adapted, Miscount, adapt, keyword_defaults, keywords_for, takes_no_dout
from handlayers.testing.oracle import Example, oracle, oracle_variants, quick_jit, release_compiled
from handlayers.testing.report import (
    Hint,
    beyond_rounding,
    explained,
    mistakes,
    phrase,
    raised_report,
    report,
    typical_lines,
)
from handlayers.testing.specs import SPECS, Spec
from handlayers.testing.strategies import examples
from handlayers.testing.tolerance import spec_tolerances

__all__ = [
    "Found",
    "Mismatch",
    "Result",
    "check",
    "check_backends",
    "check_example",
    "library",
    "to_backend",
    "typicality",
]


def to_backend(x: Any, backend: str, dtype: Any) -> Any:
    """``x`` for ``backend``: a numpy or jax array of ``dtype`` (integer and boolean arrays keep
    theirs), or for ``"python"`` a Python float. Python floats stay Python floats on every backend."""
    if isinstance(x, float) or backend == "python":
        return float(x)
    if np.asarray(x).dtype.kind in "biu":  # boolean, signed or unsigned integer: a copy too
        return np.array(x) if backend == "numpy" else jnp.asarray(x)
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
    """A layer disagrees with its reference; ``str()`` is the report, ``found`` what was found
    on the failing example (``None`` for a combined report)."""

    def __init__(self, text: str | None = None, found: Found | None = None) -> None:
        super().__init__(text)
        self.found = found

    def __str__(self) -> str:
        # a failing example's report is written when first asked for: a shrink never asks, and
        # the hints in it run the oracle in other cases
        if self.args == (None,) and self.found is not None:
            try:
                text = self.found.report()
            except Exception as error:  # the hints could not be worked out: the report without them
                text = f"{self.found.report(hints=[])}\n{_no_hint(error)}"
            self.args = (text,)
        return super().__str__()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


def _no_hint(error: Exception) -> str:
    """What a report says in place of its hints where working them out raised ``error``."""
    return f"(no hint: working them out raised {type(error).__name__}: {error})"


@dataclass
class _Row:
    """One compared value: the output or a gradient."""

    name: str
    expected: np.ndarray | None
    got: Any
    problem: str | None = None
    tol: float = 0.0
    ratio: float = 0.0  # error as a fraction of the tolerance
    position: int | None = None  # the input whose gradient it is; None for the output


@dataclass
class Found:
    """A failing example and what was wrong on it: the compared rows, the other problems, the
    mistakes that explain it, or the exception the layer raised (then no rows and no problems)."""

    name: str
    spec: Spec
    example: Example
    backend: str
    dtype: Any
    rows: list[_Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: Exception | None = None
    #: the methods an adapted class's objects were set up with (``--setup``), for its report
    setup: tuple[str, ...] = ()

    @functools.cached_property
    def _found(self) -> tuple[list[Hint], dict[str, tuple[str, str]]]:
        return ([], {}) if self.error is not None else _mistakes(self.spec, self.example, self.rows)

    @property
    def hints(self) -> list[Hint]:
        """The known mistakes that explain the example, found when first asked for: at a function
        called from several places, every place that explains a gradient (see :func:`_one_site`)."""
        return self._found[0]

    @property
    def ways(self) -> dict[str, tuple[str, str]]:
        """For the hints of a mistake inside the reference, their words and its function and way."""
        return self._found[1]

    @property
    def wrong(self) -> set[str]:
        """The names of the values wrong by more than rounding (:func:`report.beyond_rounding`):
        those whose mistake the example can tell. A value within a few tolerances (the check fails
        at one) says nothing against a mistake found in another example."""
        return {row.name for row in self.rows if row.problem and beyond_rounding(row)}

    def report(self, hints: list[Hint] | None = None) -> str:
        """The example's report, with ``hints``, or else with those of its own it tells."""
        if self.error is not None:
            return raised_report(self.name, self.spec, self.example, self.backend, self.dtype, self.error, self.setup)
        if hints is None:
            hints = _one_site([h for h in self.hints if h.telling], self.ways)
        said = phrase(hints, self.spec.grads)
        return report(self.name, self.spec, self.example, self.backend, self.dtype, self.rows, self.problems, said)


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

    ``layer`` is the layer class, any callable that makes a layer from the constructor keywords,
    or user code in another convention made one by :func:`~handlayers.testing.adapt` (then only
    the gradients it computes are compared, at ``dout = 1`` where it takes no ``dout``).
    ``backend`` is ``"numpy"``, ``"jax"`` or ``"python"`` (Python floats, for layers written for
    plain numbers). Checks the output and every gradient: its library (that of the inputs), shape
    and dtype (that of its input: the dtype checked), and its values within :func:`tolerance`; ``None`` for inputs
    that are not floating (integer labels or indices, boolean masks); that the inputs and ``dout``
    were not modified; and that a second ``backward`` gives the same gradients. Integers given for
    a float input or ``dout`` (``np.array([1, 2])``) are taken as float64 numbers; only the inputs
    ``spec.labels`` names stay integers. ``expected`` is
    ``oracle(spec, example)`` when the caller has it already
    (:func:`check_backends` computes it once for every backend).

    Returns:
        The worst error of the output and gradients, as a fraction of its tolerance.

    Raises:
        Mismatch: (an ``AssertionError``) with a report of the example, expected against got for
            every value, and, where the wrong answer matches a known mistake, that mistake in words.
            An exception raised by the layer becomes a ``Mismatch`` showing the layer's own lines.
        ValueError: for ``backend="python"``, or an example holding Python numbers, with a dtype
            other than float64, and for a spec of several outputs that names more or fewer than
            its reference returns.
    """
    example = _floating(spec, example)
    _python_floats_are_float64(backend, dtype, example)
    adapted = isinstance(layer, Adapted)
    if adapted and layer.unit_dout:  # a loss that starts backpropagation: its gradient at dout = 1
        example = Example(example.inputs, example.kwargs, np.ones(np.shape(example.dout)))
        expected = None
    found, worst = _run(layer, spec, example, backend, np.dtype(dtype), expected)
    if found is not None:
        raise Mismatch(found=found) from found.error
    return worst


def _python_floats_are_float64(backend: str, dtype: Any, example: Example | None = None) -> None:
    if np.dtype(dtype) == np.float64:
        return
    if backend == "python":
        raise ValueError(f"Python floats are float64: dtype {np.dtype(dtype)} needs arrays (backend 'numpy' or 'jax')")
    if example is not None and any(isinstance(x, float) for x in (*example.inputs, *jax.tree.leaves(example.dout))):
        raise ValueError(f"the example holds Python numbers, which are float64: dtype {np.dtype(dtype)} needs arrays")


def _floating(spec: Spec, example: Example) -> Example:
    """``example`` with the integers it gives for a float input or ``dout`` made float64 (a hand-
    written ``np.array([1, 2])`` means the numbers, not labels): the layer, the oracle and the
    tolerance see floats. Only the inputs ``spec.labels`` names stay integers."""

    def floating(x: Any) -> Any:
        if isinstance(x, int):  # a Python int or bool
            return float(x)
        if not isinstance(x, float) and np.asarray(x).dtype.kind in "biu":
            return np.asarray(x, np.float64)
        return x

    inputs = tuple(x if i in spec.labels else floating(x) for i, x in enumerate(example.inputs))
    return Example(inputs, example.kwargs, jax.tree.map(floating, example.dout))


def _run(
    layer: Any, spec: Spec, example: Example, backend: str, dtype: Any, expected: Any
) -> tuple[Found | None, float]:
    """Run ``layer`` on ``example`` and compare: what was found wrong (``None``: nothing) and the
    worst error as a fraction of its tolerance (infinite when something was found)."""
    name = getattr(layer, "__name__", type(layer).__name__)
    adapted = isinstance(layer, Adapted)
    several = len(spec.outputs) > 1  # then forward returns a tuple, and dout is one
    # TF32 (a GPU's default for float32 matmuls) is not float32: the tolerance is for float32
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        inputs = tuple(to_backend(x, backend, dtype) for x in example.inputs)
        douts = tuple(to_backend(d, backend, dtype) for d in (example.dout if several else (example.dout,)))
        dout = douts if several else douts[0]
        before = copy.deepcopy([np.asarray(x) for x in (*inputs, *douts)])
        try:
            instance = layer(**keywords_for(layer, keyword_defaults(spec.reference, spec.args), example.kwargs))
            out = instance.forward(*inputs)
            kept = np.array(out, copy=True) if isinstance(out, np.ndarray) else None
            grads = instance.backward(dout)
            again = instance.backward(dout)
        except Exception as error:
            setup = layer.setup if adapted else ()
            return Found(name, spec, example, backend, dtype, error=error, setup=setup), math.inf
    expected_out, expected_grads = expected or oracle(spec, example)
    given = {library(x) for x in inputs}
    # jax if any input is jax, else numpy if any is numpy; from Python numbers alone a layer may
    # return Python numbers or numpy scalars (the built-in layers do the latter)
    libraries = {"jax"} if "jax" in given else {"numpy"} if "numpy" in given else {"python", "numpy"}
    if adapted and layer.library:  # a jax function computes in jax whatever it is given
        libraries = {layer.library}
    compared = layer.compared if adapted else tuple(range(len(spec.args)))
    problems: list[str] = []
    rows = [_Row("output", expected_out, out if kept is None else kept)]  # the output as forward gave it
    if several:
        rows = _output_rows(spec, expected_out, out, problems)
    grads, again = (grads, again) if adapted or len(spec.args) != 1 else ((grads,), (again,))
    if isinstance(grads, Miscount):
        problems.append(str(grads))
    elif not isinstance(grads, tuple | list) or len(grads) != len(spec.args):
        n = len(grads) if isinstance(grads, tuple | list) else 1
        problems.append(str(Miscount(n, spec.grads)))
    else:
        rows += [_Row(spec.grads[i], expected_grads[i], grads[i], position=i) for i in compared]
        changed = [spec.grads[i] for i in compared if not _same(grads[i], _item(again, i))]
        if changed:
            problems.append(
                f"backward called a second time gave other values for {', '.join(changed)}: it changes what "
                "forward stored (or what it read) in place"
            )
    tol_out, tol_grads = spec_tolerances(spec, example, dtype, (expected_out, expected_grads))
    for row in rows:
        tol = tol_out if row.position is None else tol_grads[row.position]  # one tolerance for every output
        _compare(row, libraries, dtype, tol)  # None: an input that is not floating, whose gradient is None
    if kept is not None and not np.array_equal(out, kept, equal_nan=True):
        problems.append("output: backward wrote into forward's output (it changes what forward stored in place)")
    for arg, x, old in zip((*spec.args, *spec.douts), (*inputs, *douts), before, strict=True):
        if not np.array_equal(np.asarray(x), old, equal_nan=True):
            if arg in spec.douts:
                problems.append(f"{arg}: backward wrote into it (copy it before changing it: dA = dout.copy())")
            else:
                problems.append(f"{arg}: forward or backward wrote into this input")
    if problems or any(row.problem for row in rows):
        return Found(name, spec, example, backend, dtype, rows, problems), math.inf
    return None, max(row.ratio for row in rows)  # the output's row at least: it has no problem


def _item(values: Any, i: int) -> Any:
    return values[i] if isinstance(values, tuple | list) and i < len(values) else _MISSING


_MISSING = object()


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
    example = _floating(spec, example)
    expected = oracle(spec, example)
    return max(check_example(layer, spec, example, backend=b, dtype=dtype, expected=expected) for b in backends)


def _output_rows(spec: Spec, expected: tuple[np.ndarray, ...], out: Any, problems: list[str]) -> list[_Row]:
    """One row per output of a layer of several outputs, named as in ``spec.outputs``; none, and
    a problem, when forward did not return a tuple of as many."""
    names = ", ".join(spec.outputs)
    if len(expected) != len(spec.outputs):
        n = len(spec.outputs)
        raise ValueError(f"{spec.name} names {n} outputs ({names}); its reference returns {len(expected)}")
    if isinstance(out, tuple | list) and len(out) == len(spec.outputs):
        return [_Row(name, e, got) for name, e, got in zip(spec.outputs, expected, out, strict=True)]
    if isinstance(out, tuple | list):
        problems.append(f"forward returned {len(out)} outputs, expected {len(spec.outputs)} ({names})")
    else:
        problems.append(f"forward returned one array, expected a tuple of {len(spec.outputs)} outputs ({names})")
    return []


def _same(g: Any, h: Any) -> bool:
    if h is _MISSING:
        return False
    try:
        return bool(np.array_equal(g, h, equal_nan=True))
    except TypeError:  # values that are no numbers (a string, None) have no NaN to compare
        return bool(np.array_equal(g, h))


def _compare(row: _Row, libraries: set[str], want_dtype: Any, tol: float | None) -> None:
    if row.expected is None:  # the gradient of an input that is not floating: no tolerance either
        if row.got is not None:
            row.problem = f"expected None for an input that is not floating, got {type(row.got).__name__}"
        return
    row.tol = tol
    if library(row.got) not in libraries:
        row.problem = f"is a {library(row.got)} value, expected {' or '.join(sorted(libraries))}"
        return
    got = np.asarray(row.got)
    if got.shape != row.expected.shape:
        row.problem = f"has shape {got.shape}, expected {row.expected.shape}" + _per_row(row, got, tol)
        return
    problems = []
    if got.dtype != want_dtype and not (row.got.__class__ in (float, int) and want_dtype == np.float64):
        problems.append(f"has dtype {got.dtype}, expected {np.dtype(want_dtype)}")
    error = float(np.max(np.abs(got.astype(np.float64) - row.expected), initial=0.0))
    row.ratio = error / tol if error == error else math.inf  # NaN is infinitely wrong
    if not error <= tol:
        problems.append(f"worst error {error:.3g} exceeds tolerance {tol:.3g}")
    row.problem = "; ".join(problems) or None


def _per_row(row: _Row, got: np.ndarray, tol: float) -> str:
    """For an output of one value per row where the reference's is one value, their mean: what a
    loss that leaves the mean to another method returns (the nnfs book's ``Loss.calculate``)."""
    if row.position is not None or got.ndim != 1 or row.expected.ndim != 0 or got.dtype.kind not in "biuf":
        return ""
    if not abs(float(np.mean(got.astype(np.float64))) - float(row.expected)) <= 4 * tol:
        return ""
    return (
        ": one value per row, whose mean is the reference's (a loss that takes the mean in another "
        "method, as the nnfs book's Loss.calculate: check that method, --forward calculate)"
    )


def _mistakes(spec: Spec, example: Example, rows: list[_Row]) -> tuple[list[Hint], dict[str, tuple[str, str]]]:
    """The known mistakes that explain this example's wrong gradients (see :func:`report.mistakes`),
    and for those inside the reference, their words and their function and way."""
    floats_ = [i for i in range(len(spec.args)) if i not in spec.labels]
    dout_shape = np.shape(example.dout)
    out_shape = np.shape(rows[0].expected) if rows else ()
    cases = [
        (
            f"at:dout:{i}",
            f"is computed from dout where it should be from {spec.args[i]} (a mask or derivative "
            "taken from the wrong array)",
        )
        for i in floats_
        if not isinstance(example.dout, tuple) and np.shape(example.inputs[i]) == dout_shape
    ]
    like_output = [i for i in floats_ if np.shape(example.inputs[i]) == out_shape]
    cases += [
        (
            f"at:output:{i}",
            f"is the derivative taken at the output where it should be at {spec.args[i]} "
            f"(e.g. 1 - tanh(out)**2 with out = tanh({spec.args[i]}))",
        )
        for i in like_output
    ]
    # one input, shaped as the output: perhaps elementwise, with a derivative people write in
    # terms of the output (1 - out**2 for tanh) and then compute from the input
    cases += [
        (
            f"at:preimage:{i}",
            f"is the derivative written for the output but computed from {spec.args[i]} "
            f"(e.g. 1 - {spec.args[i]}**2 for tanh's 1 - out**2)",
        )
        for i in like_output
        if len(floats_) == 1
    ]
    # several outputs: one's gradient left out (an LSTM step's backward that forgets dnext_c)
    if len(spec.outputs) > 1:
        cases += [
            (f"without:{k}", f"is computed without {d} (as if the gradient of {spec.outputs[k]} were 0)")
            for k, d in enumerate(spec.douts)
        ]
    # tanh or sigmoid inside a reference of more (rnn_step, lstm_step): its derivative taken wrong
    # there, at every call or (where it is called from more than one place) at one place
    places: dict[str, list[inner.Site]] = {}
    if not (len(floats_) == 1 and like_output):
        # a reference that cannot be traced so (a scan of no steps: jax runs none under disable_jit)
        # tells nothing of its inner mistakes on this example, and keeps the other hints
        with contextlib.suppress(Exception):
            places = inner.sites(spec.reference, example.inputs, example.kwargs)
    variants = _inner_variants(places)
    cases += [(f"inner:{v}", words) for v, (_, words, _) in enumerate(variants)]
    inner_grads: list[tuple[Any, ...]] = []

    def expected_for(case: str) -> list[tuple[str, Any]]:
        inputs = list(example.inputs)
        dout = example.dout
        if case == "ones":
            dout = jax.tree.map(lambda d: np.ones_like(np.asarray(d, np.float64)), example.dout)
        elif case.startswith("at:preimage:"):
            i = int(case.rpartition(":")[2])
            inputs[i] = found = _preimage(spec, example, i)
            grad = oracle(spec, Example(tuple(inputs), example.kwargs, dout))[1][i]
            # the one float input's gradient, with no value where nothing maps to the input
            # (whatever the reference's gradient at NaN: ReLU passes dout there)
            return [(spec.grads[i], np.where(np.isnan(found), np.nan, grad))]
        elif case.startswith("without:"):
            k = int(case.partition(":")[2])
            dout = tuple(np.zeros_like(np.asarray(d, np.float64)) if j == k else d for j, d in enumerate(dout))
        elif case.startswith("inner:"):
            if not inner_grads:  # every variant at once, the first time one is asked for
                selectors = np.array([selector for selector, _, _ in variants])
                inner_grads[:] = oracle_variants(spec, example, inner.mistaken(spec.reference, places), selectors)
            return list(zip(spec.grads, inner_grads[int(case.partition(":")[2])], strict=True))
        elif case.startswith("at:"):
            _, source, i = case.split(":")
            value = example.dout if source == "dout" else rows[0].expected
            inputs[int(i)] = np.asarray(value, np.float64)
        else:
            sign = 1.0 if case == "above" else -1.0
            inputs = [_nudge(x, sign, i in spec.labels) for i, x in enumerate(example.inputs)]
        return list(zip(spec.grads, oracle(spec, Example(tuple(inputs), example.kwargs, dout))[1], strict=True))

    first = np.shape(example.inputs[floats_[0]]) if floats_ else ()
    vector = len(first) >= 1 and not spec.name.startswith("scalar.")
    batch = first[0] if vector else None
    width = int(np.prod(first[1:])) if vector and len(first) >= 2 else None
    dout_is_ones = all(np.all(np.asarray(d) == 1) for d in jax.tree.leaves(example.dout))
    found = mistakes(rows, batch=batch, dout_is_ones=dout_is_ones, expected_for=expected_for, cases=cases, width=width)
    return found, {words: group for _, words, group in variants}


def _one_site(hints: list[Hint], groups: dict[str, tuple[str, str]]) -> list[Hint]:
    """Of the sites at which a function's derivative is taken wrong the same way (``groups``: the
    words of each, and that way), those that explain the most gradients: a gradient that only one
    site reaches (an LSTM's dc_prev, tanh(c)) is explained by that site and by every site alike,
    and the other gradients tell which. Chosen once every example is taken into account (after
    :func:`report.explained`): an example of zeros may leave the sites alike where another tells
    them apart. Sites that explain as many are all kept."""
    counts: dict[str, int] = {}
    for hint in hints:
        if hint.words in groups:
            counts[hint.words] = counts.get(hint.words, 0) + len(hint.subject)
    most: dict[tuple[str, str], int] = {}
    for words, count in counts.items():
        most[groups[words]] = max(count, most.get(groups[words], 0))
    return [hint for hint in hints if hint.words not in groups or counts[hint.words] == most[groups[hint.words]]]


def _inner_variants(places: dict[str, list[inner.Site]]) -> list[tuple[list[int], str, tuple[str, str]]]:
    """The mistakes inside a reference to try, each as a selector of :func:`inner.mistaken`, its
    words and its function and way: each way to get each function's derivative wrong at all of
    its sites, and, for a function called from more than one site, at each site alone."""
    order = [(name, site) for name, found in places.items() for site in found]
    variants = []
    for name, found in places.items():
        for choice, how in enumerate(inner.FUNCTIONS[name], start=1):
            for chosen in [None, *found] if len(found) > 1 else [None]:
                selector = [choice if n == name and chosen in (None, site) else 0 for n, site in order]
                variants.append((selector, inner.words(name, how, chosen, len(found)), (name, how)))
    return variants


#: the interval :func:`_preimage` searches, and how many times it halves it: to about 1e-13
PREIMAGE_BOUND, PREIMAGE_STEPS = 1e3, 55

_PREIMAGES: dict[tuple[Any, ...], Callable[..., Any]] = {}


def _preimage(spec: Spec, example: Example, i: int) -> np.ndarray:
    """The inputs at which the reference's output is input ``i`` itself, entry by entry (as if
    the reference were elementwise), NaN where none is found: by bisection in
    ``[-PREIMAGE_BOUND, PREIMAGE_BOUND]`` in float64, one jitted program per reference. An entry
    counts as found where the output there is the input within a billionth of ``max(1, |input|)``
    (tanh gives no 2, and a reference that is not elementwise seldom gives its input anywhere)."""
    key = (spec.name, spec.reference, spec.labels, tuple(sorted(example.kwargs.items())), i)
    if key not in _PREIMAGES:
        _PREIMAGES[key] = quick_jit(_preimage_function(spec, example.kwargs, i))
    inputs = [np.asarray(x) if j in spec.labels else np.asarray(x, np.float64) for j, x in enumerate(example.inputs)]
    with jax.enable_x64(True):
        return np.asarray(_PREIMAGES[key](inputs))


def _preimage_function(spec: Spec, kwargs: dict[str, Any], i: int) -> Callable[..., Any]:
    def search(inputs: list[Any]) -> Any:
        x = inputs[i]

        def f(at: Any) -> Any:
            return spec.reference(*inputs[:i], at, *inputs[i + 1 :], **kwargs)

        low, high = jnp.full_like(x, -PREIMAGE_BOUND), jnp.full_like(x, PREIMAGE_BOUND)
        at_low, at_high = f(low), f(high)
        # rising or falling, as the ends say; where an end is NaN (sqrt, log), as 0 and 1 say; an
        # even function's ends tie: its preimage on the rising side
        ends = jnp.isnan(at_low) | jnp.isnan(at_high)
        rising = jnp.where(ends, f(jnp.ones_like(x)) >= f(jnp.zeros_like(x)), at_high >= at_low)

        def halve(_: int, bounds: tuple[Any, Any]) -> tuple[Any, Any]:
            low, high = bounds
            middle = (low + high) / 2
            above = (f(middle) < x) == rising  # the input sought is above the middle
            return jnp.where(above, middle, low), jnp.where(above, high, middle)

        low, high = jax.lax.fori_loop(0, PREIMAGE_STEPS, halve, (low, high))
        found = (low + high) / 2
        return jnp.where(jnp.abs(f(found) - x) <= 1e-9 * jnp.maximum(1, jnp.abs(x)), found, jnp.nan)

    return search


def _nudge(x: Any, sign: float, is_label: bool) -> Any:
    """``x`` moved by about a billionth of its size (at least 1e-9): across a kink that lies
    exactly on it. Each entry moves a little more than the one before, so that a kink in a
    difference of entries (a hinge's margin ``S_j - S_y + 1``) is crossed too."""
    if is_label:
        return x
    x = np.asarray(x, np.float64)
    steps = 1 + np.arange(x.size, dtype=np.float64).reshape(x.shape) / max(x.size, 1)
    return x + sign * 1e-9 * steps * np.maximum(1, np.abs(x))


@dataclass(frozen=True)
class Result:
    """What :func:`check` found: how many examples passed and the worst error ratio among them."""

    examples: int
    worst: float


#: how many examples :func:`check` draws, after a failure, looking for a typical failing one
TYPICAL_TRIES = 40


def check(
    layer: Any,
    reference: str | Spec,
    *,
    backend: str = "numpy",
    dtype: Any = np.float64,
    max_examples: int = 100,
    derandomize: bool = True,
    on_example: Callable[[int], None] | None = None,
    **convention: Any,
) -> Result:
    """Check ``layer`` against a reference function on examples drawn by Hypothesis.

    Args:
        layer: the layer class (``forward(*inputs)``, ``backward(dout)``), or code in another
            convention (a pair of functions, a loss function returning its gradient, a jax
            function, :class:`~handlayers.testing.Method`, an :class:`~handlayers.testing.Adapted`).
        reference: a name from :data:`SPECS` (``"scalar.relu"``) or a :class:`Spec`
            (:func:`~handlayers.testing.spec` makes one for any function).
        backend: ``"numpy"``, ``"jax"``, or ``"python"`` for plain Python floats (scalar only).
        dtype: the float dtype of the inputs: Python floats are float64, so ``"python"`` takes
            only that.
        max_examples: how many examples to draw; the kinks are among them.
        derandomize: draw the same examples every run.
        on_example: called after each example checked, passed or failed, with the number checked
            so far (1, 2, ...: past ``max_examples`` while Hypothesis shrinks a failing example),
            for a progress display.
        convention: the options of :func:`~handlayers.testing.adapt` (``params``, ``init``,
            ``grads``, ``output``, ``no_grad``, ``backward_args``, ``forward``, ``setup``).

    Returns:
        A :class:`Result`.

    Raises:
        Mismatch: with the report of the smallest failing example Hypothesis found, a typical
            failing example beside it where one is found, and the mistake where one known
            mistake explains every failing example found.
        KeyError: for an unknown reference name.
        ConventionError: where the options do not fit the code.
        ShapesError: where the reference raises on inputs drawn for it (shapes declared for it
            that it cannot take), even after a mismatch was found.
        ValueError: for ``backend="python"`` with a dtype other than float64, and for a spec of
            several outputs that names more or fewer than its reference returns.
    """
    _python_floats_are_float64(backend, dtype)
    spec = SPECS[reference] if isinstance(reference, str) else reference
    if not isinstance(layer, Adapted) and (convention or not _is_plain_layer(layer)):
        layer = adapt(layer, spec, **convention)
    variants = layer.variants() if isinstance(layer, Adapted) else [layer]
    ratios: list[float] = []
    checked = 0  # examples run, passed or failed
    release_compiled()  # a long run of checks (verify) compiles a program per shape
    strategy = examples(spec, dtype, python_floats=backend == "python")

    @_settings(max_examples, derandomize)
    @hypothesis.given(strategy)
    def run(example: Example) -> None:
        nonlocal checked
        try:
            expected = None if any(getattr(v, "unit_dout", False) for v in variants) else oracle(spec, example)
            for variant in variants:
                ratios.append(check_example(variant, spec, example, backend=backend, dtype=dtype, expected=expected))
        finally:
            checked += 1
            if on_example:
                on_example(checked)

    try:
        run()
    except Mismatch as mismatch:
        if mismatch.found is None or mismatch.found.error is not None:
            raise
        raise Mismatch(_full_report(mismatch.found, variants, strategy)) from None
    return Result(len(ratios) // len(variants), max(ratios))


def _is_plain_layer(layer: Any) -> bool:
    """A class in the contract's own convention: forward(*inputs), backward(dout)."""
    if not isinstance(layer, type):
        return False
    backward = getattr(layer, "backward", None)
    return callable(getattr(layer, "forward", None)) and callable(backward) and not takes_no_dout(layer)


def _settings(max_examples: int, derandomize: bool, **more: Any) -> Any:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        report_multiple_bugs=False,  # one report: the smallest example of the first bug found
        suppress_health_check=list(hypothesis.HealthCheck),
        **more,
    )


def typicality(spec: Spec, example: Example) -> float:
    """How typical ``example`` is, from 0 to 4: sides of 2 or more, unequal sides, values neither
    0 nor tiny nor all alike, and ``dout`` neither 0 nor ±1 (the smallest example is all 1s and
    0s, where mistakes hide)."""
    floats_ = [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]
    sides = [side for x in floats_ for side in x.shape]
    score = 0.0
    if sides:
        score += min(sides) >= 2 + len(set(sides)) / len(sides)
    score += float(np.mean([np.mean(_plain(x)) * _varied(x) for x in floats_])) if floats_ else 1.0
    dout = np.concatenate([np.ravel(np.asarray(d, np.float64)) for d in jax.tree.leaves(example.dout)])
    score += float(np.mean(_plain(dout) & (np.abs(dout) != 1))) if dout.size else 1.0
    return score


def _spread(spec: Spec, found: Found, variants: list[Any]) -> list[Found]:
    """Failing examples like ``found``'s with its values spread out: each float entry (and
    ``dout``'s) scaled by a random factor in [0.5, 1.5] and zeros and tiny values made random, so
    that equal entries differ (Hypothesis often fills an array with one value), on the same shapes."""
    rng = np.random.default_rng(0)
    spread = []
    for _ in range(TYPICAL_TRIES // 4):
        example = found.example
        inputs = tuple(x if i in spec.labels else _scatter(x, rng) for i, x in enumerate(example.inputs))
        dout = jax.tree.map(lambda d: _scatter(d, rng), example.dout)  # each dout of several outputs
        candidate = Example(inputs, example.kwargs, dout)
        for variant in variants:
            try:
                check_example(variant, spec, candidate, backend=found.backend, dtype=found.dtype)
            except Mismatch as mismatch:  # check_example's own: it always carries what it found
                spread.append(mismatch.found)
                break
    return spread


def _scatter(x: Any, rng: np.random.Generator) -> Any:
    values = np.asarray(x)
    tiny = np.abs(values) < 1e-2  # zeros and the like: a reader takes in 0.7 at a glance, not 2e-126
    scattered = np.where(tiny, rng.uniform(-3, 3, values.shape), values) * rng.uniform(0.5, 1.5, values.shape)
    return float(scattered) if isinstance(x, float) else scattered.astype(values.dtype)


def _varied(x: np.ndarray) -> float:
    """The fraction of distinct values (1 for a single value): a row of one value hides a transpose."""
    return len(np.unique(x)) / x.size if x.size else 1.0


def _plain(x: np.ndarray) -> np.ndarray:
    """Values a reader takes in at a glance: neither 0 nor tiny nor huge."""
    return (np.abs(x) >= 1e-2) & (np.abs(x) <= 1e3)


def _full_report(found: Found, variants: list[Any], strategy: Any) -> str:
    """The smallest failing example, a typical one beside it, and the mistakes that explain both."""
    others: list[Found] = []
    # where the example failed; with derandomize, Hypothesis seeds the search from its source
    backend, dtype = found.backend, found.dtype

    @_settings(TYPICAL_TRIES, True, phases=[hypothesis.Phase.generate, hypothesis.Phase.target])
    @hypothesis.given(strategy)
    def search(example: Example) -> None:
        hypothesis.target(typicality(found.spec, example))
        for variant in variants:
            try:
                check_example(variant, found.spec, example, backend=backend, dtype=dtype)
            except Mismatch as mismatch:  # check_example's own: it always carries what it found
                others.append(mismatch.found)
                return

    search()
    best = max([found, *others], key=lambda f: typicality(f.spec, f.example) if f.error is None else -1.0)
    valued = [f for f in (*others, *_spread(found.spec, best, variants)) if f.error is None]
    try:
        ways = {words: way for f in (found, *valued) for words, way in f.ways.items()}
        hints = _one_site(explained([(f.wrong, f.hints) for f in (found, *valued)]), ways)
        said = [f"Likely mistake: {line}." for line in phrase(hints, found.spec.grads)]
    except Exception as error:  # the hints could not be worked out: the report without them
        said = [_no_hint(error)]
    text = [found.report(hints=[])]
    smallest = typicality(found.spec, found.example)
    typical = max(valued, key=lambda f: typicality(f.spec, f.example), default=None)
    if typical is not None and typicality(typical.spec, typical.example) > smallest:
        text.append("\n".join(typical_lines(typical.spec, typical.example, typical.rows, typical.problems)))
    return "\n".join(text + said)
