"""jax layers compute on their inputs' device: the CPU here, the GPU where there is one."""

import jax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlayers.testing import SPECS, examples


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
