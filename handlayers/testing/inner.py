"""Mistakes inside a layer: a tanh or a sigmoid differentiated the wrong way.

A backward pass through tanh or sigmoid composed with other operations (``rnn_step``: ``tanh(x @
Wx + h_prev @ Wh + b)``; ``lstm_step``'s gates and cell) often takes the derivative wrong: at the
output (``1 - tanh(out)**2``, where ``out`` is already tanh's value and the derivative is ``1 -
out**2``; ``sigmoid(out) * (1 - sigmoid(out))``), or with the output's formula on the input (``1 -
a**2``, ``a * (1 - a)``). The reference with such a function swapped for one of the same value
whose derivative is the mistaken one gives, by ``jax.vjp``, the gradients such a layer computes:
where the layer's gradients are those, the report names the mistake. The swap is made at every
call of the function, or at one place in the reference's code only (an LSTM step's ``tanh(c)``
and not its ``tanh(g)``), while the reference runs (is traced). A reference that is one tanh of one
input has such mistakes named already (the derivative at the output, or computed from the input).

Swapped are ``jnp.tanh`` (``jax.nn.tanh``), ``jax.nn.sigmoid``, ``jax.scipy.special.expit`` and
``reference.scalar.sigmoid`` where the reference finds them: as attributes of their modules, or as
names in the reference's own module (``from jax.nn import sigmoid``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import linecache
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from reference import scalar

__all__ = ["FUNCTIONS", "Site", "mistaken", "sites", "words"]

_TANH, _SIGMOID = jnp.tanh, jax.nn.sigmoid  # the real ones, whatever is swapped in

#: the functions swapped, each with the ways to get its derivative wrong:
#: ``{name: {how: (derivative(a, out), how in words, the formula)}}``
FUNCTIONS: dict[str, dict[str, tuple[Callable[[Any, Any], Any], str, str]]] = {
    "tanh": {
        "output": (
            lambda a, out: 1 - _TANH(out) ** 2,
            "taken at its output",
            "1 - tanh(out)**2, where out = tanh(a) (the derivative is 1 - out**2)",
        ),
        "input": (
            lambda a, out: 1 - a**2,
            "written for its output but computed from its input",
            "1 - a**2, where it is 1 - out**2 with out = tanh(a)",
        ),
    },
    "sigmoid": {
        "output": (
            lambda a, out: _SIGMOID(out) * (1 - _SIGMOID(out)),
            "taken at its output",
            "sigmoid(out) * (1 - sigmoid(out)), where out = sigmoid(a) (the derivative is out * (1 - out))",
        ),
        "input": (
            lambda a, out: a * (1 - a),
            "written for its output but computed from its input",
            "a * (1 - a), where it is out * (1 - out) with out = sigmoid(a)",
        ),
    },
}

#: where each function is found: (module, attribute) pairs
_HOMES = {
    "tanh": ((jnp, "tanh"), (jax.nn, "tanh")),
    "sigmoid": ((jax.nn, "sigmoid"), (jax.scipy.special, "expit"), (scalar, "sigmoid")),
}
_ORIGINALS = {name: tuple(dict.fromkeys(getattr(m, a) for m, a in homes)) for name, homes in _HOMES.items()}


class Site(NamedTuple):
    """One place in the code that calls a swapped function: its code object, the instruction
    (``f_lasti``), and the call as written (``jnp.tanh(c) (line 32 of reference/vector/recurrent.py)``)."""

    code: Any
    instruction: int
    text: str


def words(name: str, how: str, site: Site | None = None, places: int = 1) -> str:
    """The report's words for ``name``'s derivative taken wrong (``how``), at ``site``, or else
    wherever it is called (from how many ``places``, said where there are more than one)."""
    _, taken, formula = FUNCTIONS[name][how]
    where = f" in {site.text}" if site else f" wherever it is called ({places} places)" if places > 1 else ""
    return f"is computed with {name}'s derivative {taken}{where}: {formula}"


_JAX = os.path.dirname(jax.__file__) + os.sep


def _caller(frame: Any) -> Any:
    """The first frame from ``frame`` up whose code is not jax's: the call of a function handed to
    jax (``jax.vmap(jnp.tanh)(a)``, ``jax.tree.map(jnp.tanh, ...)``) is placed where jax is called."""
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_JAX):
        frame = frame.f_back
    return frame


def _site(frame: Any) -> Site:
    code, instruction = frame.f_code, frame.f_lasti
    lineno, end, start, stop = frame.f_lineno, None, None, None
    with contextlib.suppress(AttributeError, StopIteration):  # co_positions: Python 3.11 on
        lineno, end, start, stop = next(itertools.islice(code.co_positions(), instruction // 2, None))
    line = linecache.getline(code.co_filename, lineno or 0)
    # the columns count UTF-8 bytes (a line may hold a Greek letter)
    whole = end == lineno and start is not None and stop is not None
    call = line.encode()[start:stop].decode(errors="replace") if whole else line.strip()
    return Site(code, instruction, f"{call} (line {lineno} of {_shown(code.co_filename, frame.f_globals)})")


def _shown(filename: str, namespace: dict[str, Any]) -> str:
    """The file as a reader finds it: relative to the working directory where it lies below it,
    else as its module's path (``reference/vector/recurrent.py``, installed), else in full."""
    with contextlib.suppress(ValueError):  # another drive
        relative = os.path.relpath(filename)
        if not relative.startswith(os.pardir):
            return relative
    module = str(namespace.get("__name__", ""))
    if "." in module:
        tail = module.replace(".", os.sep) + (os.sep + "__init__.py" if filename.endswith("__init__.py") else ".py")
        if filename.endswith(os.sep + tail):
            return tail
    return filename


def _numbered(found: list[Site]) -> list[Site]:
    """``found`` with the calls that share their text (two on one line, where Python has no
    columns: 3.10, and the text is the whole line) told apart by the order they ran in."""
    texts = [site.text for site in found]
    if len(set(texts)) == len(texts):
        return found
    numbered = []
    for site in found:
        same = [other for other in found if other.text == site.text]
        if len(same) > 1:
            call, _, where = site.text.partition(" (line ")
            site = site._replace(text=f"{call} (call {same.index(site) + 1} of {len(same)} on line {where}")
        numbered.append(site)
    return numbered


_LOCK = threading.RLock()


@contextlib.contextmanager
def _swapping(reference: Callable[..., Any], stand_in: Callable[[str, Any], Callable[..., Any]]) -> Iterator[None]:
    """While inside: every home's function, and every name in ``reference``'s module bound to one,
    is ``stand_in(name, original)`` in this thread (in another, the original); and jax compiles
    nothing apart (:func:`jax.disable_jit`): a jitted reference, or a ``lax.scan`` body defined
    once, is traced anew (jax's caches would hold the functions of an earlier trace, or keep ours)."""
    home_modules = [vars(module) for homes in _HOMES.values() for module, _ in homes]
    own = getattr(inspect.unwrap(reference), "__globals__", None)
    namespaces = list({id(ns): ns for ns in [*home_modules, *([own] if own is not None else [])]}.values())
    owner = threading.get_ident()

    def ours(name: str, original: Any) -> Callable[..., Any]:
        swapped = stand_in(name, original)

        @functools.wraps(original)
        def either(*args: Any, **kwargs: Any) -> Any:
            return (swapped if threading.get_ident() == owner else original)(*args, **kwargs)

        return either

    with _LOCK:  # the swap is global while the reference runs
        saved = []
        try:
            for namespace in namespaces:
                for key, value in list(namespace.items()):
                    for name, originals in _ORIGINALS.items():
                        if any(value is original for original in originals):
                            saved.append((namespace, key, value))
                            namespace[key] = ours(name, value)
            with jax.disable_jit():
                yield
        finally:
            for namespace, key, value in saved:
                namespace[key] = value


_SITES: dict[tuple[Any, ...], dict[str, list[Site]]] = {}


def sites(reference: Callable[..., Any], inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, list[Site]]:
    """Where ``reference``, traced on arrays shaped like ``inputs``, calls each swapped function:
    ``{name: [site, ...]}`` in the order first called, only the functions it calls. Traced once
    per reference, keywords, shapes and dtypes."""
    key = (reference, tuple(sorted(kwargs.items())), *((np.shape(x), np.asarray(x).dtype.name) for x in inputs))
    if key not in _SITES:
        found: dict[str, dict[Site, None]] = {}

        def recorder(name: str, original: Any) -> Callable[..., Any]:
            def record(*args: Any, **kwargs_: Any) -> Any:
                found.setdefault(name, {})[_site(_caller(sys._getframe(2)))] = None
                return original(*args, **kwargs_)

            return record

        with _swapping(reference, recorder), jax.enable_x64(True):
            jax.eval_shape(lambda *xs: reference(*xs, **kwargs), *inputs)
        _SITES[key] = {name: _numbered(list(places)) for name, places in found.items()}
    return _SITES[key]


_MISTAKEN: dict[tuple[Any, ...], Callable[..., Any]] = {}


def mistaken(reference: Callable[..., Any], places: dict[str, list[Site]]) -> Callable[..., Any]:
    """``reference`` with a derivative chosen at each of ``places`` (:func:`sites`), as a function
    ``f(selector, *args, **kwargs)``: ``selector`` holds an integer for each site, in the order of
    ``places`` (a function's sites after another's), 0 for the right derivative and ``1 + i`` for
    the ``i``-th way of :data:`FUNCTIONS` to get it wrong. The values are the reference's whatever
    ``selector`` holds; ``selector`` may be traced (one compiled vjp for every choice, by
    ``jax.vmap``). One per reference and places."""
    key = (reference, tuple((name, tuple(found)) for name, found in places.items()))
    if key not in _MISTAKEN:
        order = [(name, site.code, site.instruction) for name, found in places.items() for site in found]
        index = {where: k for k, where in enumerate(order)}

        def with_mistakes(selector: Any, *args: Any, **kwargs: Any) -> Any:
            def stand_in(name: str, original: Any) -> Callable[..., Any]:
                derivatives = [derivative for derivative, _, _ in FUNCTIONS[name].values()]

                def chosen(*args_: Any, **kwargs_: Any) -> Any:
                    out = original(*args_, **kwargs_)
                    frame = _caller(sys._getframe(2))
                    k = index.get((name, frame.f_code, frame.f_lasti))
                    if k is None or len(args_) != 1 or kwargs_:
                        return out
                    (a,) = args_
                    held, choice = jax.lax.stop_gradient(out), selector[k]
                    ways = [choice == i for i in range(1, len(derivatives) + 1)]
                    slope = jax.lax.stop_gradient(jnp.select(ways, [d(a, held) for d in derivatives]))
                    # the same value; its derivative is the slope (a - a is 0, whose derivative is 1)
                    wrong = held + slope * (a - jax.lax.stop_gradient(a))
                    return jnp.where(choice == 0, out, wrong)

                return chosen

            with _swapping(reference, stand_in):
                return reference(*args, **kwargs)

        _MISTAKEN[key] = with_mistakes
    return _MISTAKEN[key]
