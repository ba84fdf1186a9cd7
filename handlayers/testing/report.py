"""Reports of a failed check: the example, expected against got, and the mistake in words."""

from __future__ import annotations

import ast
import inspect
import os
import textwrap
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jaxlib
import numpy as np

import handlayers
from handlayers._layer import sum_to_shape
from handlayers.testing.conventions import binds

if TYPE_CHECKING:
    from handlayers.testing.specs import Spec

_PACKAGE = os.path.dirname(os.path.abspath(handlayers.__file__))


def _hidden_folders() -> tuple[str, ...]:
    """The folders whose frames a user's traceback leaves out: ours, numpy's, jax's and jaxlib's."""
    packages = (handlayers, np, jax, jaxlib)
    return tuple(os.path.dirname(os.path.abspath(p.__file__)) + os.sep for p in packages)


class Hint(NamedTuple):
    """A known mistake that explains the wrong values of ``subject`` (gradient names).

    ``telling`` is whether this example tells it from the right answer: a factor of a zero
    gradient, or a sum of zeros, explains the example without telling anything.
    """

    subject: tuple[str, ...]
    words: str
    telling: bool = True


def show(x: Any) -> str:
    """A value as it reads best: Python floats by ``repr``, arrays by numpy, indented."""
    if x is None:
        return "None"
    if not _numbers(x):  # text, a dict: as Python writes it
        return repr(x)
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
    """The traceback of ``error`` without the frames of handlayers, numpy and jax (told by the
    file's folder, not its text): the lines the user wrote; without the note jax adds to an error
    raised in code it traced, that it hid its own frames."""
    hidden = _hidden_folders()
    frames = [
        f for f in traceback.extract_tb(error.__traceback__) if not os.path.abspath(f.filename).startswith(hidden)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    jax_note = {line for note in getattr(error, "__notes__", ()) if JAX_NOTE in note for line in note.split("\n")}
    return [line.rstrip("\n") for chunk in lines for line in chunk.split("\n") if line and line not in jax_note]


#: what jax's note on an error raised in code it traced says
JAX_NOTE = "JAX has removed its internal frames"


def _close(got: Any, want: Any, tol: float, rtol: float = 0.0) -> bool:
    """Whether ``got`` is ``want`` up to the layer's rounding (a few times its tolerance)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=4 * tol))


def beyond_rounding(row: Any) -> bool:
    """Whether a wrong row's value is off by more than the layer's rounding (:func:`_close`: a few
    times its tolerance), or is no array of numbers of the expected shape: what a mistake can be
    told from. A value within a few tolerances fails the check yet tells no mistake from another."""
    try:
        return not _close(row.got, row.expected, row.tol)
    except (TypeError, ValueError):  # a value that is no number
        return True


def diagnose(
    rows: Sequence[Any],
    *,
    batch: int | None,
    dout_is_ones: bool,
    expected_for: Callable[[str], Sequence[tuple[str, Any]]],
    cases: Sequence[tuple[str, str]] = (),
    width: int | None = None,
) -> list[str]:
    """The known mistakes that explain the wrong gradients in ``rows``, in words (:func:`mistakes`, phrased)."""
    found = mistakes(rows, batch=batch, dout_is_ones=dout_is_ones, expected_for=expected_for, cases=cases, width=width)
    return phrase([hint for hint in found if hint.telling])


def mistakes(
    rows: Sequence[Any],
    *,
    batch: int | None,
    dout_is_ones: bool,
    expected_for: Callable[[str], Sequence[tuple[str, Any]]],
    cases: Sequence[tuple[str, str]] = (),
    width: int | None = None,
) -> list[Hint]:
    """Every known mistake that explains a wrong gradient in ``rows``, one :class:`Hint` each.

    Args:
        rows: the compared values (``name``, ``expected``, ``got``, ``problem``, ``tol``).
        batch: the batch size ``n`` of a vector layer, ``None`` for a scalar layer.
        dout_is_ones: whether every element of ``dout`` is 1 (then "ignores dout" is unknowable).
        expected_for: ``expected_for(case)`` gives ``(name, gradient)`` pairs of the oracle in
            another case: ``"ones"`` (with dout = 1), ``"above"``/``"below"`` (inputs nudged up or
            down, past a kink that lies exactly on the example), and each of ``cases``.
        cases: more ``(case, words)`` to try: a gradient that equals the oracle's in that case
            gets ``words`` (an input computed at the wrong array, ...).
        width: ``k``, the entries per row of a vector layer's first input (for a mean over rows
            where the reference takes one over every entry).
    """
    # the gradients only: an output's row has no position (``"output"``, or ``h`` and ``c``)
    wrong = [r for r in rows if r.problem and r.expected is not None and r.got is not None and r.position is not None]
    # a gradient in a tuple of one (``return dx,``) has an extra axis that no sum explains: its row
    # says it is a tuple; the right value inside is the mistake, a shape or value hint would mislead
    wrapped = [r for r in wrong if _in_a_tuple_of_one(r)]
    # and a value that is no array of numbers (text, a dict) explains nothing
    wrong = [r for r in wrong if not _in_a_tuple_of_one(r) and _numbers(r.got)]
    found = [Hint((r.name,), _WRAPPED) for r in wrapped if _alone_in_a_tuple(r)]
    found += _sign_flips(wrong)
    flipped = {name for hint in found for name in hint.subject}
    # a squared loss's two gradients are each other's negatives: flipping both signs swaps them,
    # and the flip is the mistake people make, so a swap that flips explain tells nothing
    swaps = [h._replace(telling=not set(h.subject) <= flipped) for h in _swaps(wrong)]
    found += swaps
    swapped = {name for hint in swaps for name in hint.subject}
    for row in wrong:
        if not beyond_rounding(row):
            continue  # the values are right, or as good as (the row says what is wrong)
        got, want = np.asarray(row.got, np.float64), np.asarray(row.expected, np.float64)
        telling = bool(np.any(np.abs(want) > row.tol))  # every factor and sum of zeros is zero
        if got.shape != want.shape:
            found += [Hint((row.name,), w, telling) for w in _shape_hints(got, want, row.tol, batch)]
            continue
        if row.name not in flipped | swapped:
            found += [Hint((row.name,), w, telling) for w in _value_hints(row, got, want, batch, width)]
        found += [Hint((row.name,), w, told) for w, told in _case_hints(row, expected_for, dout_is_ones, cases)]
    return found


_WRAPPED = "is the right value in a tuple of one (a trailing comma?): a gradient is the array itself"


def _in_a_tuple_of_one(row: Any) -> bool:
    """Whether ``row.got`` is a tuple (or list) of one value where the value itself was due."""
    if not (isinstance(row.got, tuple | list) and len(row.got) == 1):
        return False
    try:
        return np.shape(row.got) != np.shape(row.expected)
    except ValueError:  # a ragged value inside (arrays of different lengths) has no shape: no array's
        return True


def _numbers(x: Any) -> bool:
    try:
        np.asarray(x, np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _alone_in_a_tuple(row: Any) -> bool:
    """Whether the one value in ``row.got`` is the right one."""
    try:
        return _close(row.got[0], row.expected, row.tol)
    except (TypeError, ValueError):  # a value that is no number
        return False


def explained(found: Sequence[tuple[set[str], Sequence[Hint]]]) -> list[Hint]:
    """The hints that explain every failing example: ``found`` holds, for each, the names of its
    wrong values and its hints. A hint stays where every example in which a value of its subject
    is wrong has it too, and at least one of them tells it (say nothing rather than something wrong)."""
    kept = []
    for subject, words in dict.fromkeys((h.subject, h.words) for _, hints in found for h in hints):
        relevant = [{(h.subject, h.words): h.telling for h in hints} for wrong, hints in found if wrong & set(subject)]
        if all((subject, words) in hints for hints in relevant) and any(h[subject, words] for h in relevant):
            kept.append(Hint(subject, words))
    return kept


def phrase(hints: Sequence[Hint], order: Sequence[str] = ()) -> list[str]:
    """One line per subject, its explanations joined by "or" (with n = 2, a missing 1/n is also a
    factor of 2: both are said); gradients explained alike, each by what it "is", share a line
    ("dx and dW are computed with ..."), in ``order`` (the gradients' names) where given: a
    mistake inside a layer (tanh's derivative) shows in every gradient that passes through it."""
    by_subject: dict[tuple[str, ...], list[str]] = {}
    for hint in hints:
        by_subject.setdefault(hint.subject, []).append(hint.words)
    groups: dict[tuple[Any, ...], list[tuple[str, ...]]] = {}
    for subject, words in by_subject.items():
        unique = tuple(dict.fromkeys(words))
        shared = len(subject) == 1 and all(w.startswith("is ") for w in unique)
        groups.setdefault(unique if shared else (subject, unique), []).append(subject)
    lines = []
    for key, subjects in groups.items():
        words = key if isinstance(key[0], str) else key[1]
        names = [name for subject in subjects for name in subject]
        if len(subjects) > 1:
            words = tuple("are " + w.removeprefix("is ") for w in words)
            names.sort(key=lambda name: order.index(name) if name in order else len(order))
        joined = " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]
        lines.append(f"{joined} {', or '.join(words)}")
    return lines


def _shape_hints(got: np.ndarray, want: np.ndarray, tol: float, batch: int | None) -> list[str]:
    if got.ndim == 0 and _close(got, np.sum(want), tol * want.size):
        kept = "the batch axis only (axis=0)" if batch is not None else "the axes that broadcasting stretched"
        return [f"sums over every axis, where it should sum over {kept}"]
    # every axis reversed (``.T``): a 2-d gradient's rows for its columns, or a 3-d one's too
    if got.shape == want.shape[::-1] and _close(got.T, want, tol):
        return ["is transposed"]
    try:
        summed = sum_to_shape(np, got, want.shape)
    except ValueError:
        return []
    if _close(summed, want, tol):
        where = "over the batch" if batch is not None else "over the axes that broadcasting stretched"
        return [f"is missing the sum {where}"]
    return []


def _value_hints(row: Any, got: np.ndarray, want: np.ndarray, batch: int | None, width: int | None) -> list[str]:
    n = batch if batch and batch > 1 else 0  # a mean over n rows: a batch of more than one
    k = width if width and width > 1 else 0  # k entries a row
    factors = (
        [(float(n), "is missing the 1/n of the mean"), (1 / n, "is averaged, not summed, over the batch")] if n else []
    )
    if k:
        factors += [
            (float(k), "is k times too large (k entries a row): a mean over the n rows, not over every entry"),
            (1 / k, "is k times too small (k entries a row): a mean over every entry, not over the n rows"),
        ]
    if n and k:
        factors += [
            (float(n * k), "is missing the 1/(n*k) of the mean over every entry"),
            (1 / (n * k), "is averaged over every entry (1/(n*k)) where it is summed"),
        ]
    factors += [(-1.0, "has the wrong sign"), (2.0, "has a factor of 2 too many"), (0.5, "has a factor of 2 too few")]
    matches = [words for factor, words in factors if _close(got, factor * want, row.tol)]
    if _close(got.T, want, row.tol):  # a square gradient's rows for its columns (other shapes: _shape_hints)
        matches.append("is transposed")
    if got.ndim >= 3 and _close(got, np.flip(want, axis=tuple(range(2, got.ndim))), row.tol):
        # a parameter's gradient, (out channels, in channels, *window): a conv kernel's
        matches.append(FLIPPED if row.position else REVERSED)
    return matches


#: a kernel's gradient, (out channels, in channels, *window), with the window turned around: a
#: textbook convolution's derivation applied to the cross-correlation that deep learning's layers compute
FLIPPED = (
    "has its window flipped (every axis after the first two reversed): the forward pass is a "
    "cross-correlation, which does not flip the kernel, so neither does its gradient"
)
#: the same of the first input's gradient (a batch), which has no kernel to speak of
REVERSED = "has every axis after the first two reversed"


def _case_hints(
    row: Any,
    expected_for: Callable[[str], Sequence[tuple[str, Any]]],
    dout_is_ones: bool,
    more: Sequence[tuple[str, str]],
) -> list[tuple[str, bool]]:
    """The other cases ``row.got`` is the gradient of, in words, each with whether this example
    tells it (``more``'s cases may be judged on some entries only: see :func:`_judged_case`)."""
    found = []
    if not dout_is_ones and _is_case(row, expected_for("ones")):
        found.append(("ignores dout (it is the gradient for dout = 1)", True))
    if _passes_at_kinks(row, expected_for):
        found.append(("passes the gradient through at the kink, where the contract takes 0", True))
    if _one_side_where_the_reference_splits(row, expected_for):
        found.append((_SPLIT, True))
    for case, words in more:
        judged = _judged_case(row, expected_for(case))
        if judged is not None:
            found.append((words, judged))
    return list(dict.fromkeys(found))


def _is_case(row: Any, expected: Sequence[tuple[str, Any]]) -> bool:
    """Whether ``row.got`` is the oracle's gradient in another case, ``expected``, and that is
    not the right one."""
    other = dict(expected).get(row.name)
    # the nudges move a smooth gradient by about 1e-9 of itself, a kink's by all of it
    distinct = other is not None and not _close(other, row.expected, row.tol, rtol=1e-7)
    return distinct and _close(row.got, other, row.tol, rtol=1e-7)


def _judged_case(row: Any, expected: Sequence[tuple[str, Any]]) -> bool | None:
    """Like :func:`_is_case`, for a case the oracle may have no value for at some entries (NaN:
    an input that no input maps to, say), judged on the others: ``None`` where ``row.got`` is not
    the case's gradient; else whether the example tells it (every entry judged, and the case's
    gradient not the right one). An example with no entry judged says nothing against it."""
    other = dict(expected).get(row.name)
    if other is None or np.shape(other) != np.shape(row.got):
        return None
    judged = ~np.isnan(np.asarray(other, np.float64))
    got, want, other = (np.asarray(a, np.float64)[judged] for a in (row.got, row.expected, other))
    if not _close(got, other, row.tol, rtol=1e-7):
        return None
    return bool(judged.all()) and not _close(other, want, row.tol, rtol=1e-7)


def _passes_at_kinks(row: Any, expected_for: Callable[[str], Sequence[tuple[str, Any]]]) -> bool:
    """Whether ``row.got`` takes, at the kinks that lie exactly on the example, the side where the
    gradient is not the contract's (a ``>=`` for a ``>``): it is the oracle's gradient with the
    inputs nudged up, or nudged down, or the two nudges' changes together (``above + below -
    expected``): a nudge crosses the kinks of a difference (a hinge's margin ``S_j - S_y + 1``) one
    way or the other by the order of its entries, so two kinks (in two rows, or either side of a
    row's label) may each be crossed by one of them."""
    # a side the oracle has no value for moves nothing
    above, below = (dict(expected_for(case)).get(row.name, row.expected) for case in ("above", "below"))
    want = np.asarray(row.expected, np.float64)
    if not np.shape(above) == np.shape(below) == want.shape:
        return False
    both = np.asarray(above, np.float64) + np.asarray(below, np.float64) - want
    return any(_is_case(row, [(row.name, side)]) for side in (above, below, both))


_SPLIT = (
    "differs only at a kink, where it takes one side's gradient and the reference the mean of both "
    "sides' (jax's gradient of max, min or clip at a tie); if that side is your convention, write it "
    "into the reference with jnp.where"
)


def _one_side_where_the_reference_splits(row: Any, expected_for: Callable[[str], Sequence[tuple[str, Any]]]) -> bool:
    """Whether ``row.got`` is the oracle's gradient but at kinks that lie exactly on the example,
    where the oracle takes the mean of its two sides (``jax.grad`` of ``jnp.maximum(x, 0)`` is 0.5
    at 0) and ``row.got``, entry by entry, one side (the gradient with the inputs nudged up, or down)."""
    sides = [dict(expected_for(case)).get(row.name) for case in ("above", "below")]
    got, want = np.asarray(row.got, np.float64), np.asarray(row.expected, np.float64)
    if any(side is None or np.shape(side) != want.shape for side in sides) or got.shape != want.shape:
        return False
    above, below = (np.asarray(side, np.float64) for side in sides)

    def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # the nudges move a smooth gradient by about 1e-9 of itself, a kink's by all of it
        return np.isclose(a, b, rtol=1e-7, atol=4 * row.tol)

    kink = ~close(above, below)
    split = close(want, (above + below) / 2) & (close(got, above) | close(got, below))
    return bool(kink.any() and split[kink].all() and close(got, want)[~kink].all())


def _sign_flips(wrong: Sequence[Any]) -> list[Hint]:
    """Every wrong gradient is its negative, and there are at least two: the sign of them all."""
    nonzero = [r for r in wrong if np.any(np.abs(np.asarray(r.expected, np.float64)) > r.tol)]
    flipped = all(_close(r.got, -np.asarray(r.expected, np.float64), r.tol) for r in wrong)
    if len(nonzero) < 2 or not flipped:
        return []
    return [Hint(tuple(r.name for r in nonzero), "all have the wrong sign (every sign is flipped: not a swap)")]


def _swaps(wrong: Sequence[Any]) -> list[Hint]:
    hints = []
    for i, a in enumerate(wrong):
        for b in wrong[i + 1 :]:
            if _close(a.got, b.expected, b.tol) and _close(b.got, a.expected, a.tol):
                hints.append(Hint((a.name, b.name), "are swapped"))
    return hints


def raised_report(
    name: str, spec: Spec, example: Any, backend: str, dtype: Any, error: Exception, setup: Sequence[str] = ()
) -> str:
    lines = [f"{name} raised {type(error).__name__} against {spec.name} ({_where(backend, dtype)}) on:"]
    lines += example_lines(spec.args, example.inputs, example.kwargs, example.dout, spec.douts)
    lines.append("Traceback (the layer's own lines):")
    lines += ["  " + line for line in user_traceback(error)]
    lines += [f"Likely mistake: {hint}." for hint in [_set_by_a_method(error, name, setup)] if hint]
    return "\n".join(lines)


def _set_by_a_method(error: Exception, layer: str, given: Sequence[str] = ()) -> str:
    """For an attribute missing from an object of the checked class (named ``layer``) that a
    method of the class taking no arguments assigns (``self.NAME = ...``): that nothing called
    the method first (the nnfs book's later losses: ``new_pass`` starts the sums ``calculate``
    adds to), and the ``--setup`` to give. The methods ``given`` (``--setup``) were called, in
    order: the hint puts the method before them (one of them may be what read the attribute), or,
    where it is among them, first; it says nothing where it came first (then something else went
    wrong). Empty where there is no such method, or it cannot be told, and for a ``CLASS.METHOD``
    (which ``--setup`` does not fit)."""
    name, obj = getattr(error, "name", None), getattr(error, "obj", None)
    if not isinstance(error, AttributeError) or not isinstance(name, str) or obj is None:
        return ""
    if layer != type(obj).__name__:  # another object's attribute, or a CLASS.METHOD's: not for --setup
        return ""
    try:
        members = inspect.getmembers(type(obj), inspect.isfunction)
        setters = [m for m, f in members if not m.startswith("__") and binds(f, obj) and name in _assigned(f)]
    except Exception:  # attributes or sources that cannot be read: no hint rather than no report
        return ""
    told = [m for m in given if m in setters]
    if not setters or (told and given[0] == told[0]):
        return ""
    if told:  # given, but after a method that reads the attribute
        before = ", ".join(f"{m}()" for m in given[: given.index(told[0])])
        order = [told[0], *(m for m in given if m != told[0])]
        return f"{name} is set by {told[0]}(), which the check calls after {before}: --setup {','.join(order)}"
    calls = " or ".join(f"{method}()" for method in setters)
    return f"{name} is set by {calls}, which the check calls only when told: --setup {','.join([setters[0], *given])}"


def _assigned(function: Any) -> set[str]:
    """The attributes of its first parameter (``self``) that ``function`` assigns; none where its
    source is not kept (a REPL, ``exec``)."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        return set()
    tree = ast.parse(source).body[0]
    arguments = getattr(tree, "args", None)
    if not arguments or not arguments.args:
        return set()
    this = arguments.args[0].arg
    targets = []  # what = and an annotated = assign (+= needs the attribute already, as a subscript does)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets += node.targets
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets.append(node.target)
    return {
        node.attr
        for target in targets
        for node in ast.walk(target)  # in tuples and lists too: self.a, self.b = ...
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)  # not self.a in self.a[0] = ...
        and isinstance(node.value, ast.Name)
        and node.value.id == this
    }


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


def typical_lines(spec: Spec, example: Any, rows: Sequence[Any], problems: Sequence[str]) -> list[str]:
    """A typical failing example (values not 0, sides of 2 or more, dout not 0 or 1), under the
    smallest one: only what is wrong on it."""
    lines = ["A typical failing example (the smallest can hide a mistake behind zeros and ones):"]
    lines += example_lines(spec.args, example.inputs, example.kwargs, example.dout, spec.douts)
    for row in rows:
        if row.problem:
            lines += value_lines(row.name, row.expected, row.got, row.problem)
    lines += [f"  {p}" for p in problems]
    return lines
