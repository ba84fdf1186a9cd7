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


# --- training (tests/test_train.py, tests/test_oracle_process.py) ---


def batch_of_8(dtype=np.float64):
    """The default MLP, its parameters from seed 0, the first 8 digits and their hand-written gradients."""
    from handlayers import train

    net, _ = train.MODELS["mlp"]()
    X, y, _, _ = train.load_digits(0)
    params = net.init(0, dtype)
    _, grads = net.loss_and_gradients(params, X[:8].astype(dtype), y[:8])
    return net, params, grads, X[:8], y[:8]


def reference_gradients(net, params, X, y):
    """``jax.grad`` of the network's reference loss in float64, in this process: one tuple a piece."""
    import jax

    from handlayers import train

    return train._in_x64(jax.grad(net.reference_loss))(params, X, y)


def fresh_python(probe, timeout=300):
    """Run the Python source ``probe`` in a fresh process that imports this checkout (CPU only) and
    return what it printed; its stderr is the failure message if it fails."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
