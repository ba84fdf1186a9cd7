"""jax functions with a hand-written backward, the way kernel writers ship one (jax.custom_vjp)."""

import jax
import jax.numpy as jnp

C = 0.7978845608028654  # sqrt(2 / pi)


def _gelu_parts(x):
    inner = C * (x + 0.044715 * x**3)
    return inner, jnp.tanh(inner)


@jax.custom_vjp
def gelu(x):
    """jax.nn.gelu's tanh approximation: 0.5 x (1 + tanh(c (x + 0.044715 x^3)))."""
    return 0.5 * x * (1 + _gelu_parts(x)[1])


def _gelu_fwd(x):
    return gelu(x), x


def _gelu_bwd(x, dout):
    _, t = _gelu_parts(x)
    return (dout * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * C * (1 + 3 * 0.044715 * x**2)),)


gelu.defvjp(_gelu_fwd, _gelu_bwd)


@jax.custom_vjp
def gelu_sign(x):
    return 0.5 * x * (1 + _gelu_parts(x)[1])


def _gelu_sign_bwd(x, dout):
    """The tanh term's derivative subtracted instead of added."""
    _, t = _gelu_parts(x)
    return (dout * (0.5 * (1 + t) - 0.5 * x * (1 - t**2) * C * (1 + 3 * 0.044715 * x**2)),)


gelu_sign.defvjp(lambda x: (gelu_sign(x), x), _gelu_sign_bwd)


@jax.custom_vjp
def relu(x):
    return jnp.maximum(x, 0)


relu.defvjp(lambda x: (relu(x), x), lambda x, dout: (jnp.where(x > 0, dout, 0.0),))


@jax.custom_vjp
def relu_dout_mask(x):
    return jnp.maximum(x, 0)


relu_dout_mask.defvjp(lambda x: (relu_dout_mask(x), x), lambda x, dout: (jnp.where(dout > 0, dout, 0.0),))


@jax.custom_vjp
def relu_numpy_backward(x):
    return jnp.maximum(x, 0)


def _numpy_bwd(x, dout):
    """Computes the mask with numpy: right eagerly, an error under jax.jit (x is a tracer)."""
    import numpy as np

    return (dout * (np.asarray(x) > 0),)


relu_numpy_backward.defvjp(lambda x: (relu_numpy_backward(x), x), _numpy_bwd)
