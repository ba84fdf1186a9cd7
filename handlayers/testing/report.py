"""Reports of a failed check: the example, expected against got, and the mistake in words."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

import handlayers
from handlayers._layer import sum_to_shape

if TYPE_CHECKING:
    from handlayers.testing.specs import Spec

_PACKAGE = os.path.dirname(os.path.abspath(handlayers.__file__))


def show(x: Any) -> str:
    """A value as it reads best: Python floats by ``repr``, arrays by numpy, indented."""
    if x is None:
        return "None"
    if isinstance(x, float | int) or np.ndim(x) == 0:
        return repr(float(x))
    text = np.array2string(np.asarray(x), precision=8, separator=", ")
    return text.replace("\n", "\n" + " " * 13)


def example_lines(
    args: Sequence[str], inputs: Sequence[Any], kwargs: dict[str, Any], dout: Any, douts: Sequence[str] = ("dout",)
) -> list[str]:
    """The example, one ``name = value`` line each; ``douts`` names the gradients of several
    outputs (``dh``, ``dc``), of which ``dout`` is then a tuple."""
    lines = [f"  {name:<9} = {show(x)}" for name, x in zip(args, inputs, strict=True)]
    lines += [f"  {name:<9} = {value!r}  (constructor keyword)" for name, value in kwargs.items()]
    lines += [f"  {name:<9} = {show(d)}" for name, d in zip(douts, dout if len(douts) > 1 else (dout,), strict=True)]
    return lines


def value_lines(name: str, expected: Any, got: Any, problem: str | None) -> list[str]:
    """Expected against got for one value, marked ok or WRONG with the reason."""
    verdict = "ok" if problem is None else f"WRONG: {problem}"
    return [f"  {name}: {verdict}", f"    expected {show(expected)}", f"    got      {show(got)}"]


def user_traceback(error: BaseException) -> list[str]:
    """The traceback of ``error`` without handlayers' own frames: the lines the user wrote."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(_PACKAGE + os.sep)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return [line.rstrip("\n") for chunk in lines for line in chunk.split("\n") if line]


def _close(got: Any, want: Any, tol: float, rtol: float = 0.0) -> bool:
    """Whether ``got`` is ``want`` up to the layer's rounding (a few times its tolerance)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=4 * tol))


def diagnose(
    rows: Sequence[Any],
    *,
    batch: int | None,
    dout_is_ones: bool,
    expected_for: Callable[[str], Sequence[tuple[str, Any]]],
) -> list[str]:
    """The known mistakes that explain the wrong gradients in ``rows``, in words.

    Args:
        rows: the compared values (``name``, ``expected``, ``got``, ``problem``, ``tol``).
        batch: the batch size ``n`` of a vector layer, ``None`` for a scalar layer.
        dout_is_ones: whether every element of ``dout`` is 1 (then "ignores dout" is unknowable).
        expected_for: ``expected_for(case)`` gives ``(name, gradient)`` pairs of the oracle in
            another case: ``"ones"`` (with dout = 1), ``"above"``/``"below"`` (inputs nudged up or
            down, past a kink that lies exactly on the example).
    """
    wrong = [r for r in rows if r.problem and r.expected is not None and r.got is not None and r.name != "output"]
    hints, swapped = _swaps(wrong)
    for row in wrong:
        got, want = np.asarray(row.got, np.float64), np.asarray(row.expected, np.float64)
        if row.name in swapped or _close(got, want, row.tol):
            continue  # explained by a swap, or the values are right (the row says what is wrong)
        hint = _shape_hint(row.name, got, want, row.tol, batch) if got.shape != want.shape else None
        hint = hint or _value_hint(row, got, want, batch)
        hint = hint or _case_hint(row, expected_for, dout_is_ones)
        if hint:
            hints.append(hint)
    return hints


def _shape_hint(name: str, got: np.ndarray, want: np.ndarray, tol: float, batch: int | None) -> str | None:
    if got.ndim == 2 and got.shape == want.shape[::-1] and _close(got.T, want, tol):
        return f"{name} is transposed"
    try:
        summed = sum_to_shape(np, got, want.shape)
    except ValueError:
        return None
    if _close(summed, want, tol):
        where = "over the batch" if batch is not None else "over the axes that broadcasting stretched"
        return f"{name} is missing the sum {where}"
    return None


def _value_hint(row: Any, got: np.ndarray, want: np.ndarray, batch: int | None) -> str | None:
    if not np.any(np.abs(want) > row.tol):
        return None  # a zero gradient: no factor tells anything
    factors = []
    if batch and batch > 1:
        factors += [
            (float(batch), "is missing the 1/n of the mean"),
            (1 / batch, "is averaged, not summed, over the batch"),
        ]
    factors += [(-1.0, "has the wrong sign"), (2.0, "has a factor of 2 too many"), (0.5, "has a factor of 2 too few")]
    matches = [words for factor, words in factors if _close(got, factor * want, row.tol)]
    if matches:  # with n = 2, a missing 1/n is also a factor of 2: say both
        return f"{row.name} {', or '.join(matches)}"
    if got.ndim == 2 and got.shape[0] == got.shape[1] and _close(got.T, want, row.tol):
        return f"{row.name} is transposed"
    return None


def _case_hint(row: Any, expected_for: Callable[[str], Sequence[tuple[str, Any]]], dout_is_ones: bool) -> str | None:
    cases = [("above", "passes the gradient through at the kink, where the contract takes 0")]
    cases.append(("below", cases[0][1]))
    if not dout_is_ones:
        cases.insert(0, ("ones", "ignores dout (it is the gradient for dout = 1)"))
    for case, words in cases:
        other = dict(expected_for(case)).get(row.name)
        # the nudge moves a smooth gradient by about 1e-9 of itself, a kink's by all of it
        distinct = other is not None and not _close(other, row.expected, row.tol, rtol=1e-7)
        if distinct and _close(row.got, other, row.tol, rtol=1e-7):
            return f"{row.name} {words}"
    return None


def _swaps(wrong: Sequence[Any]) -> tuple[list[str], set[str]]:
    hints, names = [], set()
    for i, a in enumerate(wrong):
        for b in wrong[i + 1 :]:
            if _close(a.got, b.expected, b.tol) and _close(b.got, a.expected, a.tol):
                hints.append(f"{a.name} and {b.name} are swapped")
                names |= {a.name, b.name}
    return hints, names


def raised_report(name: str, spec: Spec, example: Any, backend: str, dtype: Any, error: Exception) -> str:
    lines = [f"{name} raised {type(error).__name__} against {spec.name} ({_where(backend, dtype)}) on:"]
    lines += example_lines(spec.args, example.inputs, example.kwargs, example.dout, spec.douts)
    lines.append("Traceback (the layer's own lines):")
    lines += ["  " + line for line in user_traceback(error)]
    return "\n".join(lines)


def _where(backend: str, dtype: Any) -> str:
    return f"Python floats, {np.dtype(dtype).name}" if backend == "python" else f"{backend}, {np.dtype(dtype).name}"


def report(
    name: str,
    spec: Spec,
    example: Any,
    backend: str,
    dtype: Any,
    rows: Sequence[Any],
    problems: list[str],
    hints: list[str],
) -> str:
    lines = [f"{name} does not match {spec.name} ({_where(backend, dtype)}) on:"]
    lines += example_lines(spec.args, example.inputs, example.kwargs, example.dout, spec.douts)
    for row in rows:
        lines += value_lines(row.name, row.expected, row.got, row.problem)
    lines += [f"  {p}" for p in problems]
    lines += [f"Likely mistake: {hint}." for hint in hints]
    return "\n".join(lines)
