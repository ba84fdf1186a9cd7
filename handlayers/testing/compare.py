"""The comparison: run a layer forward and backward, and compare every value with the oracle's."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np

from handlayers.testing.oracle import oracle
from handlayers.testing.report import diagnose, raised_report, report
from handlayers.testing.specs import SPECS, Spec
from handlayers.testing.strategies import Example, examples
from handlayers.testing.tolerance import tolerance

__all__ = ["Mismatch", "Result", "check", "check_backends", "check_example", "library", "to_backend"]


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
    several = len(spec.outputs) > 1  # then forward returns a tuple, and dout is one
    # TF32 (a GPU's default for float32 matmuls) is not float32: the tolerance is for float32
    with jax.enable_x64(True), jax.default_matmul_precision("highest"):
        inputs = tuple(to_backend(x, backend, dtype) for x in example.inputs)
        douts = tuple(to_backend(d, backend, dtype) for d in (example.dout if several else (example.dout,)))
        dout = douts if several else douts[0]
        before = copy.deepcopy([np.asarray(x) for x in (*inputs, *douts)])
        try:
            instance = layer(**example.kwargs)
            out = instance.forward(*inputs)
            grads = instance.backward(dout)
            again = instance.backward(dout)
        except Exception as error:
            raise Mismatch(raised_report(name, spec, example, backend, dtype, error)) from error
    expected_out, expected_grads = expected or oracle(spec, example)
    given = {library(x) for x in inputs}
    # jax if any input is jax, else numpy if any is numpy; from Python numbers alone a layer may
    # return Python numbers or numpy scalars (the built-in layers do the latter)
    libraries = {"jax"} if "jax" in given else {"numpy"} if "numpy" in given else {"python", "numpy"}
    problems: list[str] = []
    rows = [_Row("output", expected_out, out)]
    if several:
        rows = _output_rows(spec, expected_out, out, problems)
    outputs = len(rows)
    grads = (grads,) if len(spec.args) == 1 else grads
    if not isinstance(grads, tuple | list) or len(grads) != len(spec.args):
        n = len(grads) if isinstance(grads, tuple | list) else 1
        problems.append(f"backward returned {n} gradients, expected {len(spec.args)} ({', '.join(spec.grads)})")
    else:
        rows += [_Row(g, e, got) for g, e, got in zip(spec.grads, expected_grads, grads, strict=True)]
        again = (again,) if len(spec.args) == 1 else again
        if not all(_same(g, h) for g, h in zip(grads, again, strict=False)):
            problems.append("backward called a second time gave other gradients")
    # the tolerance reads dout's size and largest entry: of all the douts of several outputs
    sized = Example(example.inputs, example.kwargs, _flat(example.dout)) if several else example
    for row, x in zip(rows, (*[None] * outputs, *inputs), strict=False):
        want_dtype = dtype if x is None or not isinstance(x, np.ndarray | jax.Array) else np.asarray(x).dtype
        expected = _as_float(row.expected)
        tol = tolerance(spec, sized, dtype, expected, degree=spec.out_degree, output=True) if x is None else None
        _compare(row, libraries, want_dtype, tol or tolerance(spec, sized, dtype, expected, degree=spec.degree))
    for arg, x, old in zip((*spec.args, *spec.douts), (*inputs, *douts), before, strict=True):
        if not np.array_equal(np.asarray(x), old, equal_nan=True):
            problems.append(f"{arg}: forward or backward modified {'it' if arg in spec.douts else 'this input'}")
    worst = max((row.ratio for row in rows), default=0.0)
    if problems or any(row.problem for row in rows):
        hints = _hints(spec, example, rows[outputs:])
        raise Mismatch(report(name, spec, example, backend, dtype, rows, problems, hints))
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


def _output_rows(spec: Spec, expected: tuple[np.ndarray, ...], out: Any, problems: list[str]) -> list[_Row]:
    """One row per output of a layer of several outputs, named as in ``spec.outputs``; none, and
    a problem, when forward did not return a tuple of as many."""
    if isinstance(out, tuple | list) and len(out) == len(spec.outputs):
        return [_Row(name, e, got) for name, e, got in zip(spec.outputs, expected, out, strict=True)]
    names = ", ".join(spec.outputs)
    if isinstance(out, tuple | list):
        problems.append(f"forward returned {len(out)} outputs, expected {len(spec.outputs)} ({names})")
    else:
        problems.append(f"forward returned one array, expected a tuple of {len(spec.outputs)} outputs ({names})")
    return []


def _flat(douts: tuple[Any, ...]) -> np.ndarray:
    """Every entry of several douts in one flat array."""
    return np.concatenate([np.ravel(np.asarray(d, np.float64)) for d in douts])


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


def _hints(spec: Spec, example: Example, rows: list[_Row]) -> list[str]:
    def expected_for(case: str) -> list[tuple[str, Any]]:
        if case == "ones":
            ones = jax.tree.map(lambda d: np.ones_like(np.asarray(d, np.float64)), example.dout)
            other = Example(example.inputs, example.kwargs, ones)
        else:
            sign = 1.0 if case == "above" else -1.0
            other = Example(
                tuple(_nudge(x, sign, i in spec.labels) for i, x in enumerate(example.inputs)),
                example.kwargs,
                example.dout,
            )
        return list(zip(spec.grads, oracle(spec, other)[1], strict=True))

    batch = np.shape(example.inputs[0])[0] if spec.name.startswith("vector.") and np.ndim(example.inputs[0]) else None
    dout_is_ones = all(np.all(np.asarray(d) == 1) for d in jax.tree.leaves(example.dout))
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
