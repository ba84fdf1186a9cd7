"""Small helpers shared by the tests (the strategies live in handlayers.testing)."""

import numpy as np


def backend_array(backend, x):
    """``x`` as an array of ``backend``, keeping its dtype (a tuple, the douts of a layer of
    several outputs, stays a tuple of such arrays)."""
    if isinstance(x, tuple):
        return tuple(backend_array(backend, d) for d in x)
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x)
    return np.asarray(x)


def as_numpy(x):
    """Any array or number as a numpy array (a tuple of them, several outputs, as a tuple)."""
    return tuple(as_numpy(o) for o in x) if isinstance(x, tuple) else np.asarray(x)


def flat_dout(example):
    """``example`` with its douts (a tuple, for a layer of several outputs) as one flat array,
    whose size and largest entry :func:`handlayers.testing.tolerance` reads."""
    from handlayers.testing import Example

    douts = example.dout if isinstance(example.dout, tuple) else (example.dout,)
    return Example(example.inputs, example.kwargs, np.concatenate([np.ravel(d) for d in douts]))


def seeded_example(spec, shapes, kwargs=None, seed=0, scale=1.0):
    """An example of ``spec`` with inputs of ``shapes``: standard normal values times ``scale``,
    and standard normal douts of the output's shape (a tuple of them for several outputs)."""
    from handlayers.testing import Example, output_shape

    rng = np.random.default_rng(seed)
    inputs = tuple(scale * rng.standard_normal(s) for s in shapes)
    shape = output_shape(spec, inputs, kwargs or {})
    several = len(spec.outputs) > 1
    dout = tuple(rng.standard_normal(s) for s in shape) if several else rng.standard_normal(shape)
    return Example(inputs, kwargs or {}, dout)
