"""Small helpers shared by the tests (the strategies live in handlayers.testing)."""

import numpy as np


def backend_array(backend, x):
    """``x`` as an array of ``backend``, keeping its dtype."""
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(x)
    return np.asarray(x)


def as_numpy(x):
    """Any array or number as a numpy array."""
    return np.asarray(x)
