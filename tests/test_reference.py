"""The oracle is not trusted blindly: reference gradients against finite differences in float64."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from handlayers.testing import SPECS, Example, arrays, examples, grid, oracle

H = 1e-5  # the finite differences' step


def reference_at(spec, example, floats_):
    """The reference's output (float64 numpy) at the float inputs ``floats_``, labels as drawn."""
    it = iter(floats_)
    args = [example.inputs[i] if i in spec.labels else next(it) for i in range(len(spec.args))]
    return np.asarray(spec.reference(*args, **example.kwargs), np.float64)


def smooth_along(spec, example, v):
    """The one-sided differences of the reference at ``example`` along ``v``, if it is smooth
    along ``v`` there (in every output element, the forward and backward one-sided differences agree
    up to curvature; this rejects the kinks, where the convention, not the limit, decides the
    gradient), else ``None``: a kink moves the slope by O(|v|) >= 0.25 (v's grid step), curvature
    only by O(h * f'')."""
    x = [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]
    f0 = reference_at(spec, example, x)
    f_plus = reference_at(spec, example, [xi + H * vi for xi, vi in zip(x, v, strict=True)])
    f_minus = reference_at(spec, example, [xi - H * vi for xi, vi in zip(x, v, strict=True)])
    forward_diff, backward_diff = (f_plus - f0) / H, (f0 - f_minus) / H
    slopes = np.abs(forward_diff) + np.abs(backward_diff)
    if not np.all(np.abs(forward_diff - backward_diff) <= 1e-3 * (1 + slopes)):
        return None
    return f_plus, f_minus, forward_diff, backward_diff


def assert_vjp_matches_finite_differences(spec, example, v, differences):
    """<vjp(dout), v> equals <dout, directional derivative along v> by central differences."""
    x = [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]
    f_plus, f_minus, forward_diff, backward_diff = differences
    dout = np.asarray(example.dout, np.float64)
    scale = float(np.sum(np.abs(dout) * (np.abs(forward_diff) + np.abs(backward_diff)))) + 1e-300
    directional = float(np.sum(dout * (f_plus - f_minus) / (2 * H)))
    grads = [g for g in oracle(spec, example)[1] if g is not None]
    by_vjp = float(sum(np.sum(g * vi) for g, vi in zip(grads, v, strict=True)))
    # Central differences err by O(h**2 f''') = 1e-10 of the scale where f is smooth; by O(h) =
    # 1e-5 of it where f is only once differentiable (a unit at its kink times a weight, as in
    # the MLP), or, where the slope itself is O(h), by the one-sided differences' disagreement;
    # and by f's own rounding, a few eps of the largest value f's computation combines, over h
    # (2e-11 of it). That value is |f| itself or, where f is a difference of larger terms (a
    # cross-entropy of a confident row, logsumexp(z) - z_y, is 17.00000004 - 17 at z = [17, 0]), up
    # to M**out_degree, M the largest input's magnitude (at least 1; a spec of no degree: |f|
    # alone). The inner product <vjp(dout), v> rounds too, by a few eps of its terms' sizes, which
    # may exceed the rest when dout is tiny somewhere. A wrong reference errs by O(1).
    inner = 8 * np.finfo(np.float64).eps * float(sum(np.sum(np.abs(g * vi)) for g, vi in zip(grads, v, strict=True)))
    asymmetry = float(np.sum(np.abs(dout * (forward_diff - backward_diff))))
    m = max([1.0] + [float(np.max(np.abs(xi), initial=0.0)) for xi in x])
    terms = m**spec.out_degree if spec.out_degree >= 0 else 0.0
    rounding = 1e-9 * float(np.sum(np.abs(dout) * (np.abs(f_plus) + np.abs(f_minus) + 2 * terms)))
    assert by_vjp == pytest.approx(directional, rel=1e-4, abs=1e-4 * scale + asymmetry + rounding + inner)


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_reference_gradient_matches_finite_differences(name, data):
    """<vjp(dout), v> equals <dout, directional derivative along v> by central differences, at
    points where the function is smooth along v."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    floats_ = [x for i, x in enumerate(example.inputs) if i not in spec.labels]
    v = [data.draw(arrays(np.float64, np.shape(x), grid(1.0, step=0.25))) for x in floats_]  # the direction
    differences = smooth_along(spec, example, v)
    assume(differences is not None)
    assert_vjp_matches_finite_differences(spec, example, v, differences)


def test_a_confident_cross_entropy_is_a_difference_of_larger_terms():
    """At z = [17, 0] the loss, logsumexp(z) - z_0 = 4.1e-8, is the difference of two values of 17,
    so it rounds by eps * 17, not eps * 4.1e-8: central differences along [0, 0.25] then err by
    2.5e-4 of the derivative (1.03e-8), which a rounding bound of |f| alone called the oracle's error
    (a failure the suite drew)."""
    spec = SPECS["vector.softmax_cross_entropy"]
    example = Example((np.array([[17.0, 0.0]]), np.array([0])), {}, np.array(1.0))
    v = [np.array([[0.0, 0.25]])]
    differences = smooth_along(spec, example, v)
    assert differences is not None
    assert_vjp_matches_finite_differences(spec, example, v, differences)
