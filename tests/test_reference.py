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
    points where the function is smooth along v (in every output element, the forward and backward
    one-sided differences agree up to curvature; this rejects the kinks, where the convention, not
    the limit, decides the gradient)."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    x = [np.asarray(v, np.float64) for i, v in enumerate(example.inputs) if i not in spec.labels]
    v = [data.draw(arrays(np.float64, xi.shape, grid(1.0, step=0.25))) for xi in x]  # the direction
    h = 1e-5
    f0 = reference_at(spec, example, x)
    f_plus = reference_at(spec, example, [xi + h * vi for xi, vi in zip(x, v, strict=True)])
    f_minus = reference_at(spec, example, [xi - h * vi for xi, vi in zip(x, v, strict=True)])
    dout = np.asarray(example.dout, np.float64)
    forward_diff, backward_diff = (f_plus - f0) / h, (f0 - f_minus) / h
    slopes = np.abs(forward_diff) + np.abs(backward_diff)
    # a kink moves the slope by O(|v|) >= 0.25 (v's grid step); curvature only by O(h * f'')
    assume(np.all(np.abs(forward_diff - backward_diff) <= 1e-3 * (1 + slopes)))
    scale = float(np.sum(np.abs(dout) * slopes)) + 1e-300

    directional = float(np.sum(dout * (f_plus - f_minus) / (2 * h)))
    grads = [g for g in oracle(spec, example)[1] if g is not None]
    by_vjp = float(sum(np.sum(g * vi) for g, vi in zip(grads, v, strict=True)))
    # Central differences err by O(h**2 f''') = 1e-10 of the scale where f is smooth; by O(h) =
    # 1e-5 of it where f is only once differentiable (a unit at its kink times a weight, as in
    # the MLP), or, where the slope itself is O(h), by the one-sided differences' disagreement;
    # and by f's own rounding, eps * |f| / h = 2e-11 * |f|; the inner product <vjp(dout), v> rounds
    # too, by a few eps of its terms' sizes, which may exceed the rest when dout is tiny somewhere.
    # A wrong reference errs by O(1).
    inner = 8 * np.finfo(np.float64).eps * float(sum(np.sum(np.abs(g * vi)) for g, vi in zip(grads, v, strict=True)))
    asymmetry = float(np.sum(np.abs(dout * (forward_diff - backward_diff))))
    rounding = 1e-9 * float(np.sum(np.abs(dout) * (np.abs(f_plus) + np.abs(f_minus))))
    assert by_vjp == pytest.approx(directional, rel=1e-4, abs=1e-4 * scale + asymmetry + rounding + inner)
