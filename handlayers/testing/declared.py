"""Specs for any reference: :func:`spec` builds one from the inputs' declared shapes.

``spec(jax.nn.gelu, shapes={"x": "n d"})`` checks a layer against any ``jax.numpy`` function.
Named dimensions (``n``, ``d_in``) are drawn small (1 to :data:`MAX_SIDE`; a batch of 1
included), sometimes equal to one drawn before, sometimes not: an equal pair hides nothing a
missing transpose shows, and an unequal one shows it. Values lie in ``[-BOUND, BOUND]`` with the
kinks ``0``, ``1``, ``-1`` and the user's own drawn often, exactly.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import hypothesis.strategies as st
import jax
import numpy as np

from handlayers.testing.conventions import signature
from handlayers.testing.specs import Spec
from handlayers.testing.strategies import MAX_SIDE, ShapesError, arrays, floats, refused

__all__ = ["BOUND", "parse_keywords", "parse_labels", "parse_shapes", "spec", "with_keywords"]

#: the largest magnitude drawn: the values layers see, with room for a factor to show
BOUND = 10.0

Dims = tuple[str | int, ...]


def parse_shapes(text: str | Mapping[str, str | Sequence[str | int]]) -> dict[str, Dims]:
    """``"X: n d_in; W: d_in d_out; b: d_out"`` (or a dict of such strings) as ``{name: dims}``;
    a dimension is a name or a literal size; ``"y:"`` with no dimension is a 0-d input."""
    items = _items(text)
    return {name: tuple(_dim(d) for d in (dims.split() if isinstance(dims, str) else dims)) for name, dims in items}


def parse_labels(text: str | Mapping[str, str]) -> dict[str, tuple[Dims, str | int]]:
    """``"labels: n < k"``: integer inputs of shape ``(n,)`` with values in ``[0, k)``; one ``<``
    and one bound each."""
    parsed = {}
    for name, declared in _items(text):
        dims, sep, bound = str(declared).partition("<")
        if not sep or not bound.strip() or "<" in bound:
            raise ValueError(f"labels {name!r}: expected 'DIMS < BOUND' (labels: n < k), got {declared!r}")
        parsed[name] = (tuple(_dim(d) for d in dims.split()), _dim(bound.strip()))
    return parsed


def parse_keywords(pairs: Sequence[str]) -> dict[str, Any]:
    """``["axis=1", "mode=train"]`` as ``{"axis": 1, "mode": "train"}``: a Python literal, else text;
    the name ends at the first ``=`` (``sep='='`` is ``{"sep": "="}``)."""
    keywords = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--kw {pair!r}: expected NAME=VALUE")
        try:
            keywords[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):  # not a literal: the text itself
            keywords[name] = value
    return keywords


def _items(text: str | Mapping[str, Any]) -> list[tuple[str, Any]]:
    if isinstance(text, Mapping):
        return list(text.items())
    items = []
    for part in filter(str.strip, text.split(";")):
        name, sep, rest = part.partition(":")
        if not sep or not name.strip().isidentifier():
            raise ValueError(f"expected 'NAME: DIMS', got {part.strip()!r}")
        if ":" in rest:  # "X: n d W: d m": two inputs where a ';' is missing
            raise ValueError(
                f"expected 'NAME: DIMS', one colon per input, inputs separated by ';', got {part.strip()!r}"
            )
        items.append((name.strip(), rest.strip()))
    return items


def _dim(text: str | int) -> str | int:
    if isinstance(text, int) or str(text).isdigit():
        return int(text)
    if not str(text).isidentifier():
        raise ValueError(f"a dimension is a name or a size, got {text!r}")
    return str(text)


def spec(
    function: Callable[..., Any],
    shapes: str | Mapping[str, Any],
    labels: str | Mapping[str, str] | None = None,
    kinks: Sequence[float] = (),
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    masks: str | Mapping[str, str] | None = None,
) -> Spec:
    """A :class:`~handlayers.testing.Spec` for ``function``, a ``jax.numpy`` function of the inputs.

    Args:
        function: the reference; ``jax.vjp`` of it is the oracle.
        shapes: each float input's shape, ``{"X": "n d_in", "W": "d_in d_out"}`` or the
            command line's ``"X: n d_in; W: d_in d_out"``.
        labels: integer inputs, ``{"labels": "n < k"}`` or ``"labels: n < k"``.
        kinks: values where the function has a kink, drawn often (with 0, 1 and -1).
        kwargs: keywords passed to the reference and to the layer (its constructor).
        name: the name reports give the reference (default: its module and name).
        masks: boolean inputs, ``{"mask": "n t"}`` or ``"mask: n t"`` (any values: for code that
            indexes with them, ``x[mask]``, where 0/1 integers would pick rows 0 and 1).

    The inputs are in the reference's signature order where every declared name is one of its
    parameters, else in the order declared.

    Raises:
        ValueError: for an input declared twice, no float input (no gradient to check), a
            declaration that does not parse, or keywords the reference does not take.
        ShapesError: (a ``ValueError``) where the reference cannot take inputs of the shapes
            declared, for some of the sizes drawn (tried before any example is drawn).
    """
    shapes_, labels_, masks_ = parse_shapes(shapes), parse_labels(labels or {}), parse_shapes(masks or {})
    declared = [*shapes_, *labels_, *masks_]
    if len(set(declared)) < len(declared):
        raise ValueError(f"an input is declared twice: {', '.join(declared)}")
    args = _order(function, declared)
    title = name or f"{getattr(function, '__module__', None) or ''}.{_function_name(function)}".lstrip(".")
    _takes_keywords(function, kwargs or {}, args, title)
    # labels and masks get no gradient, in the reference or in the code
    label_positions = tuple(i for i, a in enumerate(args) if a in labels_ or a in masks_)
    kwargs_ = dict(kwargs or {})
    sized = {a: shapes_[a] if a in shapes_ else masks_[a] if a in masks_ else labels_[a][0] for a in args}
    dims = [d for a in args for d in (*sized[a], *((labels_[a][1],) if a in labels_ else ()))]
    names = list(dict.fromkeys(d for d in dims if isinstance(d, str)))
    specials = tuple(dict.fromkeys((0.0, 1.0, -1.0, *map(float, kinks))))

    def draw(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        element = floats(dtype, BOUND, specials=specials)

        @st.composite
        def inputs(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
            sizes: dict[str, int] = {}
            for dim in names:  # sometimes equal to one drawn before, sometimes not
                earlier = st.sampled_from(sorted(set(sizes.values()))) if sizes else st.nothing()
                sizes[dim] = data(st.one_of(st.integers(1, MAX_SIDE), earlier))
            values = []
            for arg in args:
                if arg in labels_:
                    shape, bound = labels_[arg]
                    top = sizes[bound] if isinstance(bound, str) else bound
                    values.append(data(arrays(np.int64, _shape(shape, sizes), st.integers(0, top - 1))))
                elif arg in masks_:
                    values.append(data(arrays(np.bool_, _shape(masks_[arg], sizes), st.booleans())))
                else:
                    values.append(data(arrays(dtype, _shape(shapes_[arg], sizes), element)))
            return tuple(values), dict(kwargs_)

        return inputs()

    dtypes = [np.int64 if a in labels_ else np.bool_ if a in masks_ else np.float64 for a in args]
    _takes_shapes(function, title, sized, dtypes, names, kwargs_)
    return Spec(title, function, None, tuple(args), draw, labels=label_positions)  # type: ignore[arg-type]


#: the most assignments of sizes to the named dimensions that :func:`_takes_shapes` tries
SIZINGS = 81  # every sizing of up to four dimensions


def _takes_shapes(
    function: Callable[..., Any],
    title: str,
    shapes: Mapping[str, Dims],
    dtypes: Sequence[Any],
    names: Sequence[str],
    kwargs: Mapping[str, Any],
) -> None:
    """Raise :class:`ShapesError` where ``function`` refuses inputs of the declared ``shapes``:
    at the smallest sizes (every named dimension 1), with the lines of the user's own code in
    its traceback (an input not declared, a reference that fails whatever the sizes), or for some
    sizes of the named dimensions (1 to ``MAX_SIDE``, as drawn): every assignment of sizes where
    there are at most :data:`SIZINGS`, else the smallest and ``SIZINGS - 1`` drawn at random (from
    a fixed seed), smallest first, so the one named is small. Only shapes are traced
    (``jax.eval_shape``, float64): a few milliseconds each."""
    if MAX_SIDE ** len(names) <= SIZINGS:
        sizings = sorted(itertools.product(range(1, MAX_SIDE + 1), repeat=len(names)), key=sum)
    else:
        drawn = np.random.default_rng(0).integers(1, MAX_SIDE + 1, (SIZINGS - 1, len(names)))
        sizings = [(1,) * len(names), *sorted(map(tuple, drawn.tolist()), key=sum)]
    for i, sizing in enumerate(sizings):
        sizes = dict(zip(names, sizing, strict=True))
        structs = [
            jax.ShapeDtypeStruct(_shape(dims, sizes), dtype)
            for dims, dtype in zip(shapes.values(), dtypes, strict=True)
        ]
        try:
            with jax.enable_x64(True):
                jax.eval_shape(lambda *xs: function(*xs, **kwargs), *structs)
        except Exception as error:
            inputs = ", ".join(f"{a} {s.shape}" for a, s in zip(shapes, structs, strict=True))
            if i == 0:  # whatever the sizes: the reference's own lines say why
                from handlayers.testing.report import user_traceback

                lines = "\n  ".join(user_traceback(error))
                message = f"{title} raised {type(error).__name__} on inputs of the smallest shapes declared, {inputs}:"
                raise ShapesError(f"{message}\n  {lines}") from error
            raise ShapesError(refused(title, inputs, error)) from error


def _shape(dims: Dims, sizes: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(sizes[d] if isinstance(d, str) else d for d in dims)


def _function_name(function: Any) -> str:
    return getattr(function, "__qualname__", None) or getattr(function, "__name__", type(function).__name__)


def _order(function: Callable[..., Any], declared: list[str]) -> list[str]:
    parameters = list(getattr(signature(function), "parameters", ()))
    return [p for p in parameters if p in declared] if set(declared) <= set(parameters) else declared


def with_keywords(spec_: Spec, keywords: Mapping[str, Any]) -> Spec:
    """``spec_`` with ``keywords`` added to every example's (the reference's and the layer's
    keywords); examples where the reference cannot take them (an axis past the input's), or
    where they leave it without output (a padding smaller than the one drawn), are skipped."""
    if not keywords:
        return spec_
    _takes_keywords(spec_.reference, keywords, spec_.args, spec_.name)

    def fits(example: tuple[tuple[Any, ...], dict[str, Any]]) -> bool:
        inputs, drawn = example
        structs = [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in inputs]
        try:
            out = jax.eval_shape(lambda *xs: spec_.reference(*xs, **{**drawn, **keywords}), *structs)
        except Exception:  # the reference refuses these inputs with these keywords: draw others
            return False
        # shapes drawn for the example's own keywords may not fit the ones given: a kernel drawn
        # as large as the input padded by 2 leaves no output with a padding of 1 (jax's is then
        # empty, and the user's code rightly refuses negative sizes). No built-in draws an empty
        # output of its own: such an output is no example either.
        return not _empty(out)

    def draw(dtype: Any) -> Any:
        return spec_.draw(dtype).filter(fits).map(lambda e: (e[0], {**e[1], **keywords}))

    # no elements: Python floats carry no keywords, so such a spec is checked on arrays only
    return dataclasses.replace(spec_, draw=draw, elements=())


def _empty(shapes: Any) -> bool:
    """Whether any of the reference's outputs (``jax.eval_shape``'s) has no entries."""
    return any(0 in leaf.shape for leaf in jax.tree.leaves(shapes))


def _takes_keywords(
    function: Callable[..., Any], keywords: Mapping[str, Any], inputs: Sequence[str], name: str
) -> None:
    """Refuse, by name, a keyword the reference has no parameter for, or one that its inputs fill
    (they go to its first parameters, in order): it would refuse every example. Where Python
    cannot read its signature, or it takes ``**kwargs``, nothing is said."""
    found = signature(function)
    parameters = list(found.parameters.values()) if found is not None else []
    if found is None or any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    either, only = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
    positional = [p.name for p in parameters if p.kind in (inspect.Parameter.POSITIONAL_ONLY, either)]
    filled = {*inputs, *positional[: len(inputs)]}
    taken = [p.name for p in parameters if p.kind in (either, only) and p.name not in filled]
    for keyword in keywords:
        if keyword not in taken:
            what = "an input of" if keyword in filled else "no keyword of"
            raise ValueError(f"{keyword!r} is {what} {name}; its keywords: {', '.join(taken) or 'none'}")
