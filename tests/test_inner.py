"""The reference with its tanh differentiated wrong, for the mistakes made inside a layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from handlayers.testing import inner
from reference.vector import rnn_step


@pytest.mark.parametrize(
    ("how", "derivative"),
    [("output", lambda a: 1 - np.tanh(np.tanh(a)) ** 2), ("input", lambda a: 1 - a**2)],
)
def test_the_swapped_tanh_has_the_wrong_derivative_and_the_right_value(how, derivative):
    """jnp.tanh and jax.nn.tanh inside the reference take the wrong derivative; the values stay."""
    a = np.array([-1.5, 0.0, 0.3, 2.0])
    function, used = inner.swapped(lambda a: jnp.sum(jnp.tanh(a) + jax.nn.tanh(a)), how)
    with jax.enable_x64(True):
        value, grad = jax.value_and_grad(function)(a)
    np.testing.assert_allclose(value, 2 * np.sum(np.tanh(a)), rtol=1e-15)
    np.testing.assert_allclose(grad, 2 * derivative(a), rtol=1e-14)
    assert used


def test_the_swap_ends_with_the_call_even_when_the_reference_raises():
    """Outside the swapped reference (also after it raised) jnp.tanh is jax's own; a reference
    without tanh leaves `used` empty; one function per reference and way."""
    original = jnp.tanh

    def fails(a):
        jnp.tanh(a)
        raise ValueError("mine")

    function, used = inner.swapped(fails, "output")
    with pytest.raises(ValueError, match="mine"):
        function(np.ones(2))
    assert jnp.tanh is original
    assert jax.nn.tanh is original
    assert used
    plain, plain_used = inner.swapped(jnp.exp, "output")
    plain(np.ones(2))
    assert plain_used == []
    assert inner.swapped(jnp.exp, "output")[0] is plain


def test_an_rnn_step_with_tanh_at_its_output_is_the_swapped_reference():
    """A vanilla RNN step's backward with 1 - tanh(next_h)**2 gives the swapped reference's gradients."""
    rng = np.random.default_rng(0)
    x, h, Wx, Wh, b = (rng.normal(size=shape) for shape in ((2, 3), (2, 4), (3, 4), (4, 4), (4,)))
    dout = rng.normal(size=(2, 4))
    out = np.tanh(x @ Wx + h @ Wh + b)
    da = dout * (1 - np.tanh(out) ** 2)
    function, _ = inner.swapped(rnn_step, "output")
    with jax.enable_x64(True):
        _, vjp = jax.vjp(function, x, h, Wx, Wh, b)
        grads = vjp(dout)
    for got, want in zip(grads, (da @ Wx.T, da @ Wh.T, x.T @ da, h.T @ da, da.sum(0)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
