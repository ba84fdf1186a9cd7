"""Recurrent layers: one step of a vanilla RNN, a whole sequence of them, and one LSTM step.

Dimensions: ``n`` examples, ``t`` time steps, ``d`` input features, ``H`` hidden units. Sequences
are batch-major, ``(n, t, d)``, as in CS231n and torch's ``batch_first=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from handlayers._layer import Layer, shape_error
from handlayers.scalar import Sigmoid

__all__ = ["RNN", "LSTMStep", "RNNStep"]


def _step_fits(gates: int, x: tuple, h_prev: tuple, Wx: tuple, Wh: tuple, b: tuple, *states: tuple) -> bool:
    """Whether ``x (n, d), h_prev (n, H), Wx (d, G), Wh (H, G), b (G,)`` fit, ``G = gates * H``,
    and every array in ``states`` is ``(n, H)`` too."""
    if not (len(x) == len(h_prev) == len(Wx) == len(Wh) == 2 and len(b) == 1):
        return False
    (n, d), (_, H) = x, h_prev
    G = gates * H
    return h_prev[0] == n and Wx == (d, G) and Wh == (H, G) and b == (G,) and all(s == (n, H) for s in states)


class RNNStep(Layer):
    """One step of a vanilla RNN: ``h = tanh(x @ Wx + h_prev @ Wh + b)``.

    Args:
        x: (n, d) inputs.
        h_prev: (n, H) previous hidden state.
        Wx: (d, H) input-to-hidden weights.
        Wh: (H, H) hidden-to-hidden weights.
        b: (H,) biases.

    Returns:
        h: (n, H). ``backward(dh)`` returns ``(dx, dh_prev, dWx, dWh, db)``.
    """

    def _check_shapes(self, x: tuple, h_prev: tuple, Wx: tuple, Wh: tuple, b: tuple) -> None:
        if not _step_fits(1, x, h_prev, Wx, Wh, b):
            expected = "x (n, d), h_prev (n, H), Wx (d, H), Wh (H, H), b (H,)"
            raise shape_error("RNNStep", expected, x=x, h_prev=h_prev, Wx=Wx, Wh=Wh, b=b)

    def _forward(self, x: Any, h_prev: Any, Wx: Any, Wh: Any, b: Any) -> Any:
        self.x, self.h_prev, self.Wx, self.Wh = x, h_prev, Wx, Wh
        self.h = self._xp.tanh(x @ Wx + h_prev @ Wh + b)
        return self.h

    def _backward(self, dh: Any) -> tuple[Any, ...]:
        da = dh * (1 - self.h * self.h)  # h = tanh(a): tanh' = 1 - tanh**2
        dx = da @ self.Wx.T
        dh_prev = da @ self.Wh.T
        dWx = self.x.T @ da
        dWh = self.h_prev.T @ da
        db = self._xp.sum(da, axis=0)
        return dx, dh_prev, dWx, dWh, db


def _scan(xp: Any, step: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, *, reverse: bool = False) -> Any:
    """``(carry, ys)`` of ``step(carry, x_s) -> (carry, y_s)`` over the leading axis of ``xs`` (an
    array or a tuple of arrays), the ``y_s`` stacked: ``jax.lax.scan`` under jax (one compiled
    loop, also inside ``jax.jit``), a Python loop under numpy."""
    if xp is not np:
        import jax

        return jax.lax.scan(step, carry, xs, reverse=reverse)
    length = len(xs[0]) if isinstance(xs, tuple) else len(xs)
    ys: list[Any] = [None] * length
    for s in reversed(range(length)) if reverse else range(length):
        carry, ys[s] = step(carry, tuple(x[s] for x in xs) if isinstance(xs, tuple) else xs[s])
    return carry, np.stack(ys)


class RNN(Layer):
    """A vanilla RNN over a sequence: :class:`RNNStep` applied along ``t``, returning every hidden
    state: ``h_s = tanh(x_s @ Wx + h_{s-1} @ Wh + b)`` for ``s = 1 .. t``, starting from ``h0``.

    Args:
        x: (n, t, d) input sequences, ``t >= 1``.
        h0: (n, H) initial hidden state.
        Wx: (d, H), Wh: (H, H), b: (H,), shared by every step.

    Returns:
        h: (n, t, H), the hidden state after each step. ``backward(dh)`` returns
        ``(dx, dh0, dWx, dWh, db)``, by backpropagation through time.

    Only the product ``h_{s-1} @ Wh`` and its backward ``da_s @ Wh.T`` need a loop over time; the
    input products and the weight gradients are one matrix product each over all ``n * t`` rows.
    Under jax the loops are ``jax.lax.scan``.
    """

    def _check_shapes(self, x: tuple, h0: tuple, Wx: tuple, Wh: tuple, b: tuple) -> None:
        if not (len(x) == 3 and x[1] >= 1 and _step_fits(1, (x[0], x[2]), h0, Wx, Wh, b)):
            expected = "x (n, t, d) with t >= 1, h0 (n, H), Wx (d, H), Wh (H, H), b (H,)"
            raise shape_error("RNN", expected, x=x, h0=h0, Wx=Wx, Wh=Wh, b=b)

    def _forward(self, x: Any, h0: Any, Wx: Any, Wh: Any, b: Any) -> Any:
        xp = self._xp
        xa = xp.tensordot(xp.swapaxes(x, 0, 1), Wx, 1) + b  # the inputs' part of every step, (t, n, H)

        def step(h: Any, xa_s: Any) -> tuple[Any, Any]:
            h = xp.tanh(xa_s + h @ Wh)
            return h, h

        _, hs = _scan(xp, step, h0, xa)  # time-major: (t, n, H)
        self.x, self.h0, self.Wx, self.Wh, self.hs = x, h0, Wx, Wh, hs
        h = xp.swapaxes(hs, 0, 1)
        return np.ascontiguousarray(h) if xp is np else h  # the caller's own array, no view of hs

    def _backward(self, dh: Any) -> tuple[Any, ...]:
        xp, h0, Wh, hs = self._xp, self.h0, self.Wh, self.hs
        WhT = Wh.T

        def step(dh_next: Any, dh_and_h: tuple[Any, Any]) -> tuple[Any, Any]:
            dh_s, h_s = dh_and_h
            da = (dh_s + dh_next) * (1 - h_s * h_s)  # h_s feeds the output and the next step
            return da @ WhT, da

        dh0, da = _scan(xp, step, xp.zeros_like(h0), (xp.swapaxes(dh, 0, 1), hs), reverse=True)  # da (t, n, H)
        h_prev = xp.concatenate([h0[None], hs[:-1]])  # h_{s-1} of each step
        # each a product over all n * t rows (tensordot: one matrix product, also under numpy)
        dx = xp.swapaxes(xp.tensordot(da, self.Wx, (2, 1)), 0, 1)
        dWx = xp.tensordot(self.x, da, ([0, 1], [1, 0]))
        dWh = xp.tensordot(h_prev, da, ([0, 1], [0, 1]))
        db = xp.sum(da, axis=(0, 1))
        return dx, dh0, dWx, dWh, db


class LSTMStep(Layer):
    """One step of an LSTM, with two outputs: the hidden state ``h`` and the cell state ``c``.

    ``a = x @ Wx + h_prev @ Wh + b`` is split in four ``(n, H)`` blocks in the order ``i, f, o, g``
    (input, forget and output gates, candidate), and::

        c = sigmoid(f) * c_prev + sigmoid(i) * tanh(g)
        h = sigmoid(o) * tanh(c)

    Args:
        x: (n, d) inputs.
        h_prev: (n, H), c_prev: (n, H) previous hidden and cell states.
        Wx: (d, 4H), Wh: (H, 4H), b: (4H,), the four blocks side by side.

    Returns:
        ``(h, c)``, each (n, H). ``backward((dh, dc))`` returns
        ``(dx, dh_prev, dc_prev, dWx, dWh, db)``.
    """

    def __init__(self) -> None:
        self.gates = Sigmoid()  # i, f and o, in one elementwise layer

    def _check_shapes(self, x: tuple, h_prev: tuple, c_prev: tuple, Wx: tuple, Wh: tuple, b: tuple) -> None:
        if not _step_fits(4, x, h_prev, Wx, Wh, b, c_prev):
            expected = "x (n, d), h_prev (n, H), c_prev (n, H), Wx (d, 4H), Wh (H, 4H), b (4H,)"
            raise shape_error("LSTMStep", expected, x=x, h_prev=h_prev, c_prev=c_prev, Wx=Wx, Wh=Wh, b=b)

    def _forward(self, x: Any, h_prev: Any, c_prev: Any, Wx: Any, Wh: Any, b: Any) -> tuple[Any, Any]:
        xp, H = self._xp, h_prev.shape[1]
        a = x @ Wx + h_prev @ Wh + b
        s = self.gates.forward(a[:, : 3 * H])
        i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 2 * H :]
        g = xp.tanh(a[:, 3 * H :])
        c = f * c_prev + i * g
        tanh_c = xp.tanh(c)
        self.x, self.h_prev, self.c_prev, self.Wx, self.Wh = x, h_prev, c_prev, Wx, Wh
        self.i, self.f, self.o, self.g, self.tanh_c = i, f, o, g, tanh_c
        return o * tanh_c, c

    def _backward(self, dh: Any, dc: Any) -> tuple[Any, ...]:
        xp, i, f, o, g, tanh_c = self._xp, self.i, self.f, self.o, self.g, self.tanh_c
        dc = dc + dh * o * (1 - tanh_c * tanh_c)  # c feeds h = o * tanh(c) as well as the output c
        ds = xp.concatenate([dc * g, dc * self.c_prev, dh * tanh_c], axis=1)  # d sigmoid(i), (f), (o)
        da = xp.concatenate([self.gates.backward(ds), dc * i * (1 - g * g)], axis=1)
        dx = da @ self.Wx.T
        dh_prev = da @ self.Wh.T
        dc_prev = dc * f
        dWx = self.x.T @ da
        dWh = self.h_prev.T @ da
        db = xp.sum(da, axis=0)
        return dx, dh_prev, dc_prev, dWx, dWh, db
