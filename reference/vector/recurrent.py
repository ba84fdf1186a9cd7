"""Recurrent layers: ``rnn_step``, ``rnn`` (``rnn_step`` along the time axis) and ``lstm_step``."""

import jax
import jax.numpy as jnp

from reference.scalar import sigmoid

__all__ = ["lstm_step", "rnn", "rnn_step"]


def rnn_step(x, h_prev, Wx, Wh, b):
    """``tanh(x @ Wx + h_prev @ Wh + b)`` for x (n, d), h_prev (n, H), Wx (d, H), Wh (H, H), b (H,)."""
    return jnp.tanh(x @ Wx + h_prev @ Wh + b)


def rnn(x, h0, Wx, Wh, b):
    """Every hidden state (n, t, H) of ``rnn_step`` applied along the t steps of x (n, t, d), from h0 (n, H)."""

    def step(h, x_s):
        h = rnn_step(x_s, h, Wx, Wh, b)
        return h, h

    _, hs = jax.lax.scan(step, h0, jnp.swapaxes(x, 0, 1))
    return jnp.swapaxes(hs, 0, 1)


def lstm_step(x, h_prev, c_prev, Wx, Wh, b):
    """``(h, c)``: ``a = x @ Wx + h_prev @ Wh + b`` split in the gates' inputs a_i, a_f, a_o, a_g;
    ``c = sigmoid(a_f) * c_prev + sigmoid(a_i) * tanh(a_g)``, ``h = sigmoid(a_o) * tanh(c)``."""
    a_i, a_f, a_o, a_g = jnp.split(x @ Wx + h_prev @ Wh + b, 4, axis=1)
    c = sigmoid(a_f) * c_prev + sigmoid(a_i) * jnp.tanh(a_g)
    return sigmoid(a_o) * jnp.tanh(c), c
