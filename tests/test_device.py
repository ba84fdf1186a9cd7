"""jax layers compute on their inputs' device: the CPU here, the GPU where there is one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlayers.testing import SPECS, Example, check_example, examples


def devices(platform):
    try:
        return jax.devices(platform)
    except RuntimeError:
        return []


@pytest.mark.jax
@pytest.mark.parametrize("platform", ["cpu", "gpu"])
@pytest.mark.parametrize("name", list(SPECS))
@settings(max_examples=max(5, settings().max_examples // 4))  # placement does not depend on values
@given(data=st.data())
def test_layer_computes_on_its_inputs_device(platform, name, data):
    """Output and gradients of a jax layer live on the device its inputs were put on."""
    found = devices(platform)
    if not found:
        pytest.skip(f"no {platform} device: jax sees {', '.join(str(d) for d in jax.devices())}")
    device, spec = found[0], SPECS[name]
    example = data.draw(examples(spec))
    layer = spec.layer(**example.kwargs)
    out = layer.forward(*(jax.device_put(x, device) for x in example.inputs))
    grads = layer.backward(jax.device_put(example.dout, device))
    outs = out if isinstance(out, tuple) else (out,)  # a tuple for a layer of several outputs
    for value in (*outs, *(grads if isinstance(grads, tuple) else (grads,))):
        assert value is None or value.devices() == {device}


@pytest.mark.jax
def test_a_float32_check_computes_in_float32_where_jax_would_use_tf32():
    """A GPU computes float32 matmuls in TF32 (10 mantissa bits) at jax's default precision. The
    checker runs the layer at full precision, since its float32 tolerance is float32's: a right
    ``Affine`` passes even where the program leaves jax's default (the suite sets ``highest``,
    ``conftest.py``). Skips where the default is float32 already (a CPU)."""
    spec = SPECS["vector.affine"]
    rng = np.random.default_rng(0)
    X, W, b, dout = (rng.standard_normal(shape) for shape in ((8, 64), (64, 8), (8,), (8, 8)))
    before = jax.config.jax_default_matmul_precision
    jax.config.update("jax_default_matmul_precision", None)  # jax's default
    try:
        x, w = jnp.asarray(X, np.float32), jnp.asarray(W, np.float32)
        if np.array_equal(x @ w, jnp.matmul(x, w, precision="highest")):
            pytest.skip(f"float32 matmuls are float32 at jax's default precision on {jax.devices()[0].platform}")
        check_example(spec.layer, spec, Example((X, W, b), {}, dout), backend="jax", dtype=np.float32)
    finally:
        jax.config.update("jax_default_matmul_precision", before)
