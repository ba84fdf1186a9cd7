"""Optimizers as pure update rules: ``state = opt.init(params)``, then every step
``params, state = opt.step(params, grads, state)``, which returns new arrays and changes none.

Parameters and gradients are numpy or ``jax.numpy`` arrays in any nesting of lists and tuples (a
:class:`handlayers.nn.Sequential`'s ``[(W1, b1), (), (W2, b2)]``); the state has the same nesting,
so a jax step with its optimizer jits whole. Each rule is optax's, written out (the suite checks
them against optax): ``SGD`` is ``optax.sgd``, ``Momentum`` is ``optax.sgd(momentum=...)``,
``Adam`` is ``optax.adam`` and, with ``weight_decay``, ``optax.adamw``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handlayers._layer import array_namespace

__all__ = ["SGD", "Adam", "Momentum", "tree_map"]


def tree_map(f: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``f`` applied to the arrays of ``tree`` and the arrays at the same places in ``rest``."""
    if isinstance(tree, list | tuple):
        return type(tree)(tree_map(f, *children) for children in zip(tree, *rest, strict=True))
    return f(tree, *rest)


@dataclass(frozen=True)
class SGD:
    """``p = p - lr * g``."""

    lr: float = 0.01

    def init(self, params: Any) -> tuple:
        return ()

    def step(self, params: Any, grads: Any, state: tuple) -> tuple[Any, tuple]:
        return tree_map(lambda p, g: p - self.lr * g, params, grads), state


@dataclass(frozen=True)
class Momentum:
    """Heavy-ball momentum: ``v = momentum * v + g``, then ``p = p - lr * v`` (``v`` starts at 0)."""

    lr: float = 0.01
    momentum: float = 0.9

    def init(self, params: Any) -> Any:
        return tree_map(lambda p: p * 0, params)  # zeros of each parameter's library, shape and dtype

    def step(self, params: Any, grads: Any, velocity: Any) -> tuple[Any, Any]:
        velocity = tree_map(lambda v, g: self.momentum * v + g, velocity, grads)
        return tree_map(lambda p, v: p - self.lr * v, params, velocity), velocity


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma and Ba), with decoupled weight decay (AdamW, Loshchilov and Hutter) as an option.

    At step ``t = 1, 2, ...``::

        m = b1 * m + (1 - b1) * g            # the moments start at 0
        v = b2 * v + (1 - b2) * g**2
        u = (m / (1 - b1**t)) / (sqrt(v / (1 - b2**t)) + eps)
        p = p - lr * (u + weight_decay * p)
    """

    lr: float = 1e-3
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0

    def init(self, params: Any) -> tuple[Any, Any, Any]:
        leaves: list[Any] = []
        tree_map(leaves.append, params)
        xp = array_namespace(*leaves)
        zeros = tree_map(lambda p: p * 0, params)
        return xp.asarray(0), zeros, zeros  # t counts the steps taken, an array so that jit keeps one trace

    def step(self, params: Any, grads: Any, state: tuple[Any, Any, Any]) -> tuple[Any, tuple[Any, Any, Any]]:
        t, m, v = state
        t = t + 1
        b1, b2 = self.b1, self.b2
        m = tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = tree_map(lambda v, g: b2 * v + (1 - b2) * (g * g), v, grads)

        def update(p: Any, m: Any, v: Any) -> Any:
            xp = array_namespace(p)
            c1, c2 = (xp.asarray(1 - b**t, dtype=p.dtype) for b in (b1, b2))  # the bias corrections
            u = (m / c1) / (xp.sqrt(v / c2) + self.eps)
            return p - self.lr * (u + self.weight_decay * p)

        return tree_map(update, params, m, v), (t, m, v)
