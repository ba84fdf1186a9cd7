"""The tolerance measured on the reference: its formula, what it sees, and what it must allow."""

import dataclasses
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from handlayers._layer import Layer
from handlayers.testing import SPECS, Example, Mismatch, Spec, check_example, oracle, tolerance, tolerances

T = sys.modules[tolerance.__module__]  # the module; handlayers.testing.tolerance is the function
EPS64, TINY64 = float(np.finfo(np.float64).eps), float(np.finfo(np.float64).smallest_normal)
EPS32 = float(np.finfo(np.float32).eps)
SLOPES = np.array([0.5, -2.0, 1.0, 3.0])  # closed over by a reference below


def user_spec(name, reference, layer, args):
    """A spec for a reference of the test's own (its draw is never used: the examples are fixed)."""
    return Spec(name, reference, layer, tuple(args.split()), SPECS["scalar.relu"].draw)


def test_a_sum_counts_its_terms_and_its_result():
    """For ``a + b`` the output's B is ``|a| + |b| + |a + b|`` (each input and the sum rounded) and
    each gradient's is ``|dout|`` (the gradient is dout itself), up to the nearby points."""
    example = Example((np.array(3.0), np.array(-1.0)), {}, np.array(2.0))
    output, grads = T.rounding_sensitivity(SPECS["scalar.plus"].reference, example, np.float64)
    assert output == pytest.approx(3 + 1 + 2, rel=8 * EPS64)
    assert grads == pytest.approx((2.0, 2.0), rel=8 * EPS64)


def test_the_tolerance_is_the_documented_formula(dtype):
    """(OPS + K) * (eps * B + smallest_normal), K the size of the float inputs and dout, B at least
    max |dout| for a gradient: integer labels count for nothing and get None."""
    spec = SPECS["vector.hinge_loss"]
    example = Example((np.array([[0.5, -0.25, 0.125]], dtype), np.array([2])), {}, np.array(3.0, dtype))
    b_out, b_grads = T.rounding_sensitivity(spec.reference, example, dtype)
    info = np.finfo(dtype)
    k = T.OPS + 3 + 1  # the scores and dout, not the label
    out, grads = tolerances(spec.reference, example, dtype)
    assert out == k * (float(info.eps) * b_out + float(info.smallest_normal))
    assert grads == (k * (float(info.eps) * max(b_grads[0], 3.0) + float(info.smallest_normal)), None)
    measured = dataclasses.replace(spec, degree=None)  # a spec without a degree measures its tolerance
    assert tolerance(measured, example, dtype) == out
    assert tolerance(measured, example, dtype, "dS") == grads[0]
    with pytest.raises(ValueError, match="dlabels is the gradient of an input that is not floating"):
        tolerance(measured, example, dtype, "dlabels")


def test_a_spec_with_a_degree_gets_the_normwise_bound(dtype):
    """A built-in spec with a degree is checked with the a-priori normwise bound of that degree,
    (OPS + K) * (eps * (max |expected| + max |dout| * M**degree) + smallest_normal), the output
    with M**out_degree alone; it needs no compilation. Several outputs count their largest."""
    spec = SPECS["vector.affine"]
    X, W, b = np.array([[2.0, -3.0]], dtype), np.array([[0.5], [0.25]], dtype), np.array([1.0], dtype)
    example = Example((X, W, b), {}, np.array([[-4.0]], dtype))
    out, (_, dW, _) = oracle(spec, example)
    eps, tiny, k = float(np.finfo(dtype).eps), float(np.finfo(dtype).smallest_normal), T.OPS + 2 + 2 + 1 + 1
    assert tolerance(spec, example, dtype) == k * (eps * (np.abs(out).max() + 3.0**2) + tiny)
    assert tolerance(spec, example, dtype, "dW") == k * (eps * (np.abs(dW).max() + 4.0 * 3.0) + tiny)
    several = Example((X,), {}, (np.ones(2), -np.ones(3)))
    got = T.normwise_tolerance(several, dtype, (np.ones(1), np.full(1, 5.0)), 0)
    assert got == (T.OPS + 2 + 5) * (eps * (5.0 + 1.0) + tiny)


def test_the_normwise_bounds_of_one_example_are_its_normwise_tolerances(dtype):
    """normwise_bounds reads the example once and gives each result, in any order, its own bound:
    (OPS + K) * (eps * (max |expected| + max |dout| * M**degree) + tiny), the output's with
    M**degree alone, reading no dout (an example without one keeps working)."""
    X, W = np.array([[2.0, -3.0]], dtype), np.array([[0.5], [0.25]], dtype)
    example = Example((X, W), {}, np.array([[-4.0]], dtype))
    eps, tiny, k = float(np.finfo(dtype).eps), float(np.finfo(dtype).smallest_normal), T.OPS + 2 + 2 + 1
    bound = T.normwise_bounds(example, dtype)
    # (expected, degree, output, max |expected| + terms * M**degree) with M = 3 and max |dout| = 4
    cases = [(np.full(3, -7.0), 2, False, 7 + 4 * 9), (np.ones(1), 2, True, 1 + 9), (np.ones(2), 1, False, 1 + 4 * 3)]
    for expected, degree, output, scale in cases + cases[::-1]:
        assert bound(expected, degree, output=output) == k * (eps * scale + tiny)
        assert T.normwise_tolerance(example, dtype, expected, degree, output=output) == k * (eps * scale + tiny)
    no_dout = T.normwise_bounds(Example((X, W), {}, None), dtype)
    assert no_dout(np.ones(1), 2, output=True) == k * (eps * 10.0 + tiny)
    # below 1: M is 1 at least, the largest expected and dout are what they are
    small = T.normwise_bounds(Example((X / 8, W), {}, np.array([[0.5]], dtype)), dtype)
    assert small(np.full(3, 0.25), 2) == k * (eps * (0.25 + 0.5) + tiny)
    assert small(np.full(3, -0.25), 1, output=True) == k * (eps * (0.25 + 1) + tiny)


def test_boolean_and_integer_inputs_are_held_fixed():
    """Any input that is not floating (a boolean mask, integer indices) gets None and counts for
    nothing, with no spec: the reference and the example are all it takes."""

    def masked_pick(A, keep, idx):
        return jnp.sum((A * keep)[idx])

    example = Example(
        (np.array([[1.0, -2.0], [3.0, 4.0]]), np.array([[True, False], [True, True]]), np.array([1, 1])), {}, 1.0
    )
    out, grads = tolerances(masked_pick, example, np.float64)
    assert grads[1:] == (None, None)
    # B of the output: the entries of row 1 (kept, picked twice) and their products and sums
    assert out > (T.OPS + 4 + 1) * EPS64 * (3 + 4)


def test_a_transcendental_result_counts_ulps_times():
    """For ``exp(x)`` the output's B is ``e**x * (|x| + ULPS)`` (the input rounded once, the result
    ``ULPS`` times) and the gradient's, ``dout * e**x``, is ``|dout| * e**x * (|x| + ULPS + 2)``
    (``dout`` and the product rounded once each), up to the nearby points."""
    x, dout = np.array([0.5, -2.0]), np.array([3.0, -1.0])
    output, (dx,) = T.rounding_sensitivity(jnp.exp, Example((x,), {}, dout), np.float64)
    assert output == pytest.approx(np.max(np.exp(x) * (np.abs(x) + T.ULPS)), rel=8 * EPS64)
    assert dx == pytest.approx(np.max(np.abs(dout) * np.exp(x) * (np.abs(x) + T.ULPS + 2)), rel=8 * EPS64)


def test_a_value_under_stop_gradient_is_the_same_value():
    """``x - stop_gradient(x)`` is exactly 0 whatever rounds ``x``: its B is 0, not ``2 * |x|``."""
    example = Example((np.array([0.5, -2.0]),), {}, np.array([3.0, -1.0]))
    output, (dx,) = T.rounding_sensitivity(lambda x: x - jax.lax.stop_gradient(x), example, np.float64)
    assert output == 0
    assert dx == pytest.approx(3.0, rel=8 * EPS64)  # the gradient is dout


def test_a_float32_value_inside_a_reference_is_rounded_too():
    """A reference that computes a step in float32: that step's result is a rounded value like any
    other, so ``3 * float32(x)`` has B ``6 * |x|`` (the input and the product), not ``3 * |x|``."""
    example = Example((np.array([0.5, -2.0]),), {}, np.array([3.0, -1.0]))
    output, _ = T.rounding_sensitivity(lambda x: (x.astype(jnp.float32) * 3).astype(x.dtype), example, np.float64)
    assert output == pytest.approx(12.0, rel=1e-6)


@pytest.mark.parametrize(
    "reference",
    [
        jax.nn.relu,  # a custom_jvp inside
        jax.nn.softplus,
        lambda x: jax.nn.gelu(x, approximate=False),
        lambda x: jax.lax.cumsum(x) * jax.lax.stop_gradient(x),
        lambda x: jax.checkpoint(jnp.sin)(x),
        lambda x: jax.lax.scan(lambda c, v: (c * v + 1, c), 1.0, x)[1],
        lambda x: jnp.tanh(x * SLOPES),
    ],
    ids=["relu", "softplus", "gelu", "stop_gradient", "checkpoint", "scan", "constant"],
)
def test_any_jax_function_is_measured(reference):
    """Calls (jit, custom_jvp, checkpoint), stop_gradient, loops and an array the function closes
    over (a constant of its jaxpr) are measured too: finite and at least the rounding of the
    output's own size."""
    x = np.array([-1.5, 0.0, 0.75, 2.0])
    example = Example((x,), {}, np.array([1.0, -2.0, 0.5, 3.0]))
    out, (dx,) = tolerances(reference, example, np.float64)
    expected_out, (expected_dx,) = oracle(user_spec("f", reference, None, "x"), example)
    assert math.isfinite(out)
    assert math.isfinite(dx)
    assert out >= (T.OPS + 8) * EPS64 * np.max(np.abs(expected_out))
    assert dx >= (T.OPS + 8) * EPS64 * np.max(np.abs(expected_dx))


def _tanh_times(x):
    return jnp.tanh(x) * x


def _tanh_slopes(x):
    return jnp.tanh(x * SLOPES)  # under jax.jit, SLOPES is a constant of the called jaxpr


@pytest.mark.parametrize(
    ("called", "plain", "compared"),
    [
        (jax.jit(_tanh_times), _tanh_times, slice(None)),
        (jax.jit(_tanh_slopes), _tanh_slopes, slice(None)),
        (jax.checkpoint(_tanh_times), _tanh_times, slice(None)),
        (jax.nn.relu, lambda x: jnp.maximum(x, 0.0), slice(1)),  # its own jvp rule: the output only
    ],
    ids=["jit", "jit closing over an array", "checkpoint", "custom_jvp"],
)
def test_a_call_is_measured_by_the_operations_inside_it(called, plain, compared):
    """A call (jit, with or without constants of its own, checkpoint, custom_jvp) is entered and
    its operations perturbed one by one, as the same operations outside a call are: not rounded
    once as a whole (jax.nn.relu's max is exact, and its output gets no rounding of its own)."""
    example = Example((np.array([-1.5, 0.0, 0.75, 2.0]),), {}, np.array([1.0, -2.0, 0.5, 3.0]))
    got, want = (tolerances(f, example, np.float64) for f in (called, plain))
    assert [got[0], *got[1]][compared] == [want[0], *want[1]][compared]


def test_a_custom_vjp_reference_is_measured():
    """A reference with a custom_vjp (its backward written by hand) is measured through its rules."""

    @jax.custom_vjp
    def cube(x):
        return x * x * x

    cube.defvjp(lambda x: (x * x * x, x), lambda x, g: (3 * x * x * g,))
    example = Example((np.array([2.0, -1.0]),), {}, np.array([1.0, 1.0]))
    out, (dx,) = tolerances(cube, example, np.float64)
    assert out >= (T.OPS + 4) * EPS64 * 8
    assert dx >= (T.OPS + 4) * EPS64 * 12


def test_the_same_example_gets_the_same_tolerance():
    """The nearby points are drawn with a fixed seed: measuring again, cache emptied, gives the same."""
    spec = SPECS["vector.layer_norm"]
    example = Example((np.array([[1.0, 2.0, 4.0]]), np.ones(3), np.zeros(3)), {"eps": 0.5}, np.ones((1, 3)))
    first = tolerances(spec.reference, example, np.float32)
    T._RECENT.clear()
    assert tolerances(spec.reference, example, np.float32) == first


def _double(x):
    return 2 * x


def _reciprocal(x):
    return 1 / x


def _points_bound(reference, dtype, monkeypatch):
    """``B`` of the output at the points near ``x = 1.5`` (eight entries), over ``B`` at the example alone."""
    example = Example((np.full(8, 1.5),), {}, np.ones(8))
    monkeypatch.setattr(T, "_RECENT", T.OrderedDict())
    near = T.rounding_sensitivity(reference, example, dtype)[0]
    with monkeypatch.context() as patch:
        patch.setattr(T, "POINTS", 1)
        patch.setattr(T, "_RECENT", T.OrderedDict())
        alone = T.rounding_sensitivity(reference, example, dtype)[0]
    return near / alone


def test_the_nearby_points_lie_within_a_rounding_on_both_sides(dtype, monkeypatch):
    """Every point is the example times ``1 + eps * u``, ``|u| <= 1``, with ``u`` of both signs:
    ``B`` of ``2 * x`` grows with ``|x|`` and ``B`` of ``1 / x`` shrinks with it, so each one's
    largest ``B`` lies above its ``B`` at the example and within ``eps`` of it."""
    eps = float(np.finfo(dtype).eps)
    slack = 1 + 1e-12  # the float64 rounding of the points themselves
    grows = _points_bound(_double, dtype, monkeypatch)
    assert 1 < grows <= (1 + eps) * slack
    shrinks = _points_bound(_reciprocal, dtype, monkeypatch)
    assert 1 < shrinks <= slack / (1 - eps)


@pytest.mark.parametrize("rows", [1, 2, 3, 4])
def test_a_large_example_is_measured_a_block_of_rows_at_a_time(rows, monkeypatch):
    """``B`` of every result is the same whether the Jacobian's rows are pulled back all at once or
    ``rows`` at a time (6 results of ``2 * x``: 6, 3 or 2 blocks, the last one wrapping around for
    4). The oracle perturbs ``x``, ``dout`` and the two products: 12 values, so a budget of
    ``12 * rows + 6`` entries makes blocks of ``rows``."""
    example = Example((np.array([0.5, -2.0, 3.0]),), {}, np.array([1.0, -4.0, 0.25]))
    monkeypatch.setattr(T, "_RECENT", T.OrderedDict())
    at_once = T.rounding_sensitivity(_double, example, np.float64)
    monkeypatch.setattr(T, "_JACOBIAN_ENTRIES", 12 * rows + 6)
    monkeypatch.setattr(T, "_FUNCTIONS", {})
    monkeypatch.setattr(T, "_RECENT", T.OrderedDict())
    assert T.rounding_sensitivity(_double, example, np.float64) == at_once


def test_a_float32_and_a_float64_check_of_one_example_are_measured_apart(monkeypatch):
    """The points lie a rounding of the layer's dtype away, so each dtype gets its own ``B``,
    whichever is measured first."""
    example = Example((np.full(8, 1.5),), {}, np.ones(8))
    measured = {}
    for order in ((np.float32, np.float64), (np.float64, np.float32)):
        monkeypatch.setattr(T, "_RECENT", T.OrderedDict())
        for dtype in order:
            measured.setdefault(dtype, []).append(T.rounding_sensitivity(_double, example, dtype))
    assert measured[np.float32][0] == measured[np.float32][1]
    assert measured[np.float64][0] == measured[np.float64][1]
    assert measured[np.float32][0][0] > measured[np.float64][0][0]


class TextbookSigmoid(Layer):
    """``s = 1 / (1 + exp(-a))`` and ``da = dout * s * (1 - s)``, as every course writes it."""

    def _forward(self, a):
        self.s = 1 / (1 + self._xp.exp(-a))
        return self.s

    def _backward(self, ds):
        return ds * self.s * (1 - self.s)


def test_a_gradient_computed_from_the_output_is_allowed():
    """A float32 textbook sigmoid at a = 20 rounds s to 1 and returns da = s * (1 - s) = 0 where
    the true value is 2e-9: right for float32 (an error of eps * |dout|), and allowed by the
    floor max |dout| of a gradient's B, though the reference's stable form has a B of about 7e-8."""
    spec = SPECS["scalar.sigmoid"]
    example = Example((np.array(20.0, np.float32),), {}, np.array(1.0, np.float32))
    layer = TextbookSigmoid()
    layer.forward(example.inputs[0])
    assert layer.backward(example.dout) == 0
    check_example(TextbookSigmoid, spec, example, dtype=np.float32)
    b = T.rounding_sensitivity(spec.reference, example, np.float32)[1][0]
    assert (T.OPS + 2) * EPS32 * b < oracle(spec, example)[1][0] / 1000


C = math.sqrt(2 / math.pi)


class TanhGelu(Layer):
    """GELU's tanh form in numpy, whose float64 tanh is accurate to an ulp."""

    def _forward(self, x):
        self.x, self.t = x, self._xp.tanh(C * (x + 0.044715 * x**3))
        return 0.5 * x * (1 + self.t)

    def _backward(self, dy):
        x, t = self.x, self.t
        return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t) * (1 + t) * C * (1 + 3 * 0.044715 * x * x))


def test_the_oracles_own_rounding_is_allowed():
    """jax's float64 tanh is a few ulps off, and GELU's derivative multiplies that error where
    ``1 - tanh**2`` cancels: a right float64 GELU passes at every point of [3, 6], where the
    oracle misses by more than the old bound ``(OPS + K) * eps * (|expected| + |dout|)`` allowed."""
    spec = user_spec("user.gelu", lambda x: jax.nn.gelu(x, approximate=True), TanhGelu, "x")
    errors = []
    for x in np.linspace(3.0, 6.0, 61):
        example = Example((np.array([x]),), {}, np.array([1.0]))
        check_example(TanhGelu, spec, example)
        layer = TanhGelu()
        layer.forward(np.array([x]))
        expected = oracle(spec, example)[1][0]
        errors.append(
            abs(layer.backward(np.array([1.0]))[0] - expected[0]) / ((T.OPS + 2) * EPS64 * (abs(expected[0]) + 1))
        )
    assert max(errors) > 1


def test_a_gelu_wrong_by_one_part_in_a_million_fails():
    """The allowance for the oracle's rounding still catches a gradient wrong by 1e-6."""
    spec = user_spec("user.gelu", lambda x: jax.nn.gelu(x, approximate=True), TanhGelu, "x")

    class Wrong(TanhGelu):
        def _backward(self, dy):
            return super()._backward(dy) * (1 + 1e-6)

    with pytest.raises(Mismatch, match="dx: WRONG"):
        check_example(Wrong, spec, Example((np.array([4.63, 0.5, -1.0]),), {}, np.array([1.0, 2.0, 1.0])))


class Residual(Layer):
    """``(a * b + c - y) ** 2``, its backward by hand."""

    def _forward(self, a, b, c, y):
        self.a, self.b = a, b
        self.u = a * b + c - y
        return self.u * self.u

    def _backward(self, dl):
        du = 2 * self.u * dl
        return du * self.b, du * self.a, du, -du


def test_a_stationary_point_is_measured_nearby(monkeypatch):
    """At ``a * b + c == y`` (exact in float64) the squared residual and its first-order
    change are 0, but float32 rounds ``a * b`` and leaves a residual of 2**-24: the bound at the
    points a rounding away allows it, the bound at the example alone would not."""
    one = np.float32(1 + 2**-12)  # one * one needs 25 bits: float32 rounds it
    inputs = (one, one, np.float32(-1.0), np.float32(2**-11 + 2**-24))
    example = Example(tuple(np.array(x) for x in inputs), {}, np.array(1.0, np.float32))
    spec = user_spec("user.residual", lambda a, b, c, y: (a * b + c - y) ** 2, Residual, "a b c y")
    assert oracle(spec, example)[0] == 0
    check_example(Residual, spec, example, dtype=np.float32)
    monkeypatch.setattr(T, "POINTS", 1)
    monkeypatch.setattr(T, "_FUNCTIONS", {})
    monkeypatch.setattr(T, "_RECENT", T.OrderedDict())
    with pytest.raises(Mismatch, match="output: WRONG"):
        check_example(Residual, spec, example, dtype=np.float32)


def test_recent_examples_are_kept_and_old_ones_dropped():
    """The cache of measured examples keeps the last 16 and drops the oldest."""
    spec = SPECS["scalar.square"]
    T._RECENT.clear()
    for i in range(17):
        tolerances(spec.reference, Example((np.array(float(i)),), {}, np.array(1.0)), np.float64)
    assert len(T._RECENT) == 16
    key = T._example_key
    assert key(spec.reference, Example((np.array(0.0),), {}, np.array(1.0)), np.float64) not in T._RECENT
    assert key(spec.reference, Example((np.array(16.0),), {}, np.array(1.0)), np.float64) in T._RECENT
    first = Example((np.array(1.0),), {}, np.array(1.0))
    tolerances(spec.reference, first, np.float64)  # a hit moves it to the end
    assert next(reversed(T._RECENT)) == T._example_key(spec.reference, first, np.float64)


@pytest.mark.slow
def test_several_outputs_are_measured_as_one_flat_output():
    """A reference of several outputs (LSTMStep's (h, c)) is measured with its douts flattened into
    one: the same tolerance as a reference returning their entries in one flat array."""
    spec = SPECS["vector.lstm_step"]
    rng = np.random.default_rng(0)
    shapes = [(1, 2), (1, 1), (1, 1), (2, 4), (1, 4), (4,)]
    inputs = tuple(rng.uniform(-1, 1, s) for s in shapes)
    example = Example(inputs, {}, (np.array([[0.5]]), np.array([[-2.0]])))
    measured = dataclasses.replace(spec, degree=None)
    out, grads = tolerances(spec.reference, example, np.float64)
    assert tolerance(measured, example, np.float64) == out

    def flat(*args):
        return jnp.concatenate([jnp.ravel(o) for o in spec.reference(*args)])

    flat_example = Example(inputs, {}, np.array([0.5, -2.0]))
    assert (out, grads) == tolerances(flat, flat_example, np.float64)
