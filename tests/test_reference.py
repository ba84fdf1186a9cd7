"""The oracle is not trusted blindly: reference gradients against finite differences in float64."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from handlayers.testing import SPECS, Example, arrays, examples, grid, oracle

H = 1e-5  # the finite differences' step


def float_inputs(spec, example):
    """The inputs the gradient is taken of (not the labels), as float64 arrays."""
    return [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]


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
    x = float_inputs(spec, example)
    f0 = reference_at(spec, example, x)
    f_plus = reference_at(spec, example, [xi + H * vi for xi, vi in zip(x, v, strict=True)])
    f_minus = reference_at(spec, example, [xi - H * vi for xi, vi in zip(x, v, strict=True)])
    forward_diff, backward_diff = (f_plus - f0) / H, (f0 - f_minus) / H
    slopes = np.abs(forward_diff) + np.abs(backward_diff)
    if not np.all(np.abs(forward_diff - backward_diff) <= 1e-3 * (1 + slopes)):
        return None
    return f_plus, f_minus, forward_diff, backward_diff


def assert_vjp_matches_finite_differences(spec, example, v, differences, grads):
    """<vjp(dout), v> (``grads``: the oracle's gradients of the float inputs) equals <dout,
    directional derivative along v> by central differences."""
    x = float_inputs(spec, example)
    f_plus, f_minus, forward_diff, backward_diff = differences
    dout = np.asarray(example.dout, np.float64)
    scale = float(np.sum(np.abs(dout) * (np.abs(forward_diff) + np.abs(backward_diff)))) + 1e-300
    directional = float(np.sum(dout * (f_plus - f_minus) / (2 * H)))
    by_vjp = float(sum(np.sum(g * vi) for g, vi in zip(grads, v, strict=True)))
    # Central differences err by O(h**2 f''') = 1e-10 of the scale where f is smooth; by O(h) =
    # 1e-5 of it where f is only once differentiable (a unit at its kink times a weight, as in
    # the MLP), or, where the slope itself is O(h), by the one-sided differences' disagreement;
    # and by rounding, over h: f's own, a few eps of |f|, and that of the values f combines, a
    # few eps of the largest, which may be far larger than |f| (a cross-entropy of a confident
    # row, logsumexp(z) - z_y, is 17.00000004 - 17 at z = [17, 0]): the inputs x +- h v
    # themselves, M the largest input's magnitude (at least 1), and products up to
    # M**out_degree (a softmax's logits of 8192 round by eps * 8192, though its outputs are
    # below 1). The inner product <vjp(dout), v> rounds too, by a few eps of its terms' sizes,
    # which may exceed the rest when dout is tiny somewhere. A wrong reference errs by O(1).
    eps = np.finfo(np.float64).eps
    inner = 8 * eps * float(sum(np.sum(np.abs(g * vi)) for g, vi in zip(grads, v, strict=True)))
    asymmetry = float(np.sum(np.abs(dout * (forward_diff - backward_diff))))
    m = max([1.0] + [float(np.max(np.abs(xi), initial=0.0)) for xi in x])
    combined = 4 * eps / H * m ** max(spec.out_degree, 1)
    rounding = float(np.sum(np.abs(dout) * (1e-9 * (np.abs(f_plus) + np.abs(f_minus)) + combined)))
    assert by_vjp == pytest.approx(directional, rel=1e-4, abs=1e-4 * scale + asymmetry + rounding + inner)


def oracle_grads(spec, example):
    return [g for g in oracle(spec, example)[1] if g is not None]


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_reference_gradient_matches_finite_differences(name, data):
    """<vjp(dout), v> equals <dout, directional derivative along v> by central differences, at
    points where the function is smooth along v."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    v = [data.draw(arrays(np.float64, x.shape, grid(1.0, step=0.25))) for x in float_inputs(spec, example)]
    differences = smooth_along(spec, example, v)
    assume(differences is not None)
    assert_vjp_matches_finite_differences(spec, example, v, differences, oracle_grads(spec, example))


@pytest.mark.parametrize(
    ("name", "inputs", "v", "dout", "wrong"),
    [
        # logsumexp(z) - z_0 = 4.1e-8 is the difference of two values of 17: it rounds by eps * 17,
        # and central differences along [0, 0.25] err by 2.5e-4 of the derivative (1.03e-8)
        ("vector.softmax_cross_entropy", ([[17.0, 0.0]], [0]), [[0.0, 0.25]], 1.0, lambda g, v: 2 * g),
        # logits of 8192 + 0.3 and 8192 - 0.6 round, moved by h v, to different grids (the spacing
        # of floats doubles at 8192): the difference errs by 3e-8 where the derivative is 0 (an
        # error of 1e-4 then fails)
        ("vector.softmax", ([[8192.3, 8191.4]],), [[0.25, 0.25]], [[1.0, -1.0]], lambda g, v: g + 1e-3 * v),
    ],
)
def test_rounding_of_values_larger_than_the_output_is_allowed_for(name, inputs, v, dout, wrong):
    """f's rounding is that of the largest value it combines, not |f|'s (failures the suite drew
    or a review found); a wrong gradient still fails there."""
    spec = SPECS[name]
    example = Example(tuple(np.array(x) for x in inputs), {}, np.array(dout))
    v = [np.array(v)]
    differences = smooth_along(spec, example, v)
    assert differences is not None
    grads = oracle_grads(spec, example)
    assert_vjp_matches_finite_differences(spec, example, v, differences, grads)
    with pytest.raises(AssertionError):
        assert_vjp_matches_finite_differences(spec, example, v, differences, [wrong(grads[0], v[0])])
