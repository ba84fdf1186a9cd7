"""The oracle is not trusted blindly: reference gradients against finite differences in float64."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from handlayers.testing import SPECS, arrays, examples, grid, oracle


def reference_at(spec, example, floats_):
    """The reference's output (float64 numpy) at the float inputs ``floats_``, labels as drawn."""
    it = iter(floats_)
    args = [example.inputs[i] if i in spec.labels else next(it) for i in range(len(spec.args))]
    return np.asarray(spec.reference(*args, **example.kwargs), np.float64)


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_reference_gradient_matches_finite_differences(name, data):
    """<vjp(dout), v> equals <dout, directional derivative along v> by central differences, at
    points where the function is smooth along v (forward and backward one-sided differences agree;
    this rejects the kinks, where the convention, not the limit, decides the gradient)."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    x = [np.asarray(v, np.float64) for i, v in enumerate(example.inputs) if i not in spec.labels]
    # direction: random, scaled to each element's magnitude so that one step suits every element
    v = [data.draw(arrays(np.float64, xi.shape, grid(1.0, step=0.25))) * np.maximum(1, np.abs(xi)) for xi in x]
    h = 1e-5
    f0 = reference_at(spec, example, x)
    f_plus = reference_at(spec, example, [xi + h * vi for xi, vi in zip(x, v, strict=True)])
    f_minus = reference_at(spec, example, [xi - h * vi for xi, vi in zip(x, v, strict=True)])
    dout = np.asarray(example.dout, np.float64)
    forward_diff, backward_diff = (f_plus - f0) / h, (f0 - f_minus) / h
    scale = float(np.sum(np.abs(dout) * (np.abs(forward_diff) + np.abs(backward_diff)))) + 1e-300
    assume(float(np.sum(np.abs(dout * (forward_diff - backward_diff)))) <= 1e-3 * scale)

    directional = float(np.sum(dout * (f_plus - f_minus) / (2 * h)))
    grads = [g for g in oracle(spec, example)[1] if g is not None]
    by_vjp = float(sum(np.sum(g * vi) for g, vi in zip(grads, v, strict=True)))
    # central differences err by O(h**2), or by O(h) = 1e-5 of the scale where f is only once
    # differentiable (a product with a unit at its kink, as in the MLP), bounded by 1e-4; and by
    # the rounding of f itself, eps * |f| / h = 2e-11 * |f|, bounded by 1e-9 * |f|
    rounding = float(np.sum(np.abs(dout) * (np.abs(f_plus) + np.abs(f_minus))))
    assert by_vjp == pytest.approx(directional, rel=1e-4, abs=1e-4 * scale + 1e-9 * rounding)
