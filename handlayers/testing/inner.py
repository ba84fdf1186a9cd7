"""Mistakes inside a layer: its tanh differentiated the wrong way.

A backward pass through tanh composed with other operations (``rnn_step``: ``tanh(x @ Wx + h_prev
@ Wh + b)``) often takes tanh's derivative wrong: at the output (``1 - tanh(out)**2``, where
``out`` is already tanh's value and the derivative is ``1 - out**2``), or with the output's
formula on the input (``1 - a**2``). The reference with its ``jnp.tanh`` swapped for a tanh whose
derivative is wrong so gives, by ``jax.vjp``, the gradients such a layer computes: where the
layer's gradients are those, the report names the mistake. A reference that is one tanh of one
input has such mistakes named already (the derivative at the output, or computed from the input).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

__all__ = ["HOWS", "swapped"]

_TANH = jnp.tanh  # the real one, whatever is swapped in

#: the ways to get tanh's derivative wrong, each ``derivative(a, out)`` with its words
HOWS: dict[str, tuple[Callable[[Any, Any], Any], str]] = {
    "output": (
        lambda a, out: 1 - _TANH(out) ** 2,
        "is computed with tanh's derivative taken at its output: 1 - tanh(out)**2, where out = tanh(a) "
        "(the derivative is 1 - out**2)",
    ),
    "input": (
        lambda a, out: 1 - a**2,
        "is computed with tanh's derivative written for its output but computed from its input: "
        "1 - a**2, where it is 1 - out**2 with out = tanh(a)",
    ),
}


def _wrong_tanh(derivative: Callable[[Any, Any], Any]) -> Callable[[Any], Any]:
    @jax.custom_jvp
    def tanh(a: Any) -> Any:
        return _TANH(a)

    @tanh.defjvp
    def jvp(primals: tuple[Any], tangents: tuple[Any]) -> tuple[Any, Any]:
        (a,), (da,) = primals, tangents
        out = _TANH(a)
        return out, derivative(a, out) * da

    return tanh


#: where references find tanh: ``jnp.tanh`` and ``jax.nn.tanh``
_HOMES = (jnp, jax.nn)
_LOCK = threading.RLock()
_SWAPPED: dict[tuple[Any, str], tuple[Callable[..., Any], list[bool]]] = {}


def swapped(reference: Callable[..., Any], how: str) -> tuple[Callable[..., Any], list[bool]]:
    """``reference`` with every ``jnp.tanh`` (and ``jax.nn.tanh``) it calls differentiated wrong
    (``how``, a key of :data:`HOWS`), and a list that is not empty once a trace of it has called
    tanh (a reference without tanh gives nothing to compare). One per reference and way: the
    oracle's cache keeps the function."""
    key = (reference, how)
    if key not in _SWAPPED:
        used: list[bool] = []
        wrong = _wrong_tanh(HOWS[how][0])

        def tanh(a: Any) -> Any:
            used.append(True)
            return wrong(a)

        @functools.wraps(reference)
        def with_wrong_tanh(*args: Any, **kwargs: Any) -> Any:
            with _LOCK:  # the swap is global while the reference runs (is traced)
                saved = [(home, home.tanh) for home in _HOMES]
                for home, _ in saved:
                    home.tanh = tanh
                try:
                    return reference(*args, **kwargs)
                finally:
                    for home, original in saved:
                        home.tanh = original

        _SWAPPED[key] = (with_wrong_tanh, used)
    return _SWAPPED[key]
