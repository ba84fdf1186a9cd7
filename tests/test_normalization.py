"""BatchNorm and LayerNorm beyond the oracle test: the edges pinned exactly, errors, NaN, huge inputs."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import vector
from handlayers.testing import OPS, SPECS, Example, check_example, examples, oracle, tolerance
from tests.helpers import as_numpy, backend_array

NORMS = ["vector.batch_norm", "vector.layer_norm"]
AXIS = {"vector.batch_norm": 0, "vector.layer_norm": 1}  # the axis each normalizes along


def forward_backward(layer, inputs, dY, backend):
    """Output and gradients of ``layer`` as numpy arrays."""
    out = layer.forward(*(backend_array(backend, x) for x in inputs))
    grads = layer.backward(backend_array(backend, dY))
    return as_numpy(out), tuple(as_numpy(g) for g in grads)


@pytest.mark.parametrize("name", NORMS)
def test_a_single_value_to_normalize_gives_beta_and_zero_dX(name, backend, dtype):
    """A batch of one (batch norm) or a single feature (layer norm) has variance 0 and nothing
    to subtract but itself: the output is beta and dX is 0, exactly; dgamma is 0 and dbeta is dY."""
    X = np.array([[3.5, -120.25, 0.0]], dtype)
    gamma, beta = np.array([2.0, -0.5, 7.0], dtype), np.array([0.25, -1.0, 3.0], dtype)
    dY = np.array([[1.5, -2.0, 0.75]], dtype)
    if name == "vector.layer_norm":  # one feature per example: (3, 1)
        X, gamma, beta, dY = X.T, gamma[:1], beta[:1], dY.T
    spec = SPECS[name]
    out, (dX, dgamma, dbeta) = forward_backward(spec.layer(), (X, gamma, beta), dY, backend)
    np.testing.assert_array_equal(out, np.broadcast_to(beta, X.shape))
    np.testing.assert_array_equal(dX, np.zeros_like(X))
    np.testing.assert_array_equal(dgamma, np.zeros_like(gamma))
    np.testing.assert_array_equal(dbeta, dY.sum(axis=0))
    check_example(spec.layer, spec, Example((X, gamma, beta), {}, dY), backend=backend, dtype=dtype)


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("value", [0.5, -3.0, 1.25, 96.0])
def test_a_constant_slice_leaves_only_eps(name, value, backend, dtype):
    """A constant feature (batch norm) or row (layer norm), of a value whose mean is exact, gives
    beta there and no dgamma from it, exactly; its dX is (gamma / sqrt(eps)) * (dXhat - mean(dXhat)),
    as the oracle says (dXhat = dY * gamma)."""
    spec, axis = SPECS[name], AXIS[name]
    X = np.array([[1.0, -2.0, 4.0, 8.5], [0.5, 3.0, -1.0, 2.0], [-6.0, 0.25, 2.5, -3.5], [2.0, 1.0, 0.0, 5.0]], dtype)
    X[(slice(None), 1) if axis == 0 else (1, slice(None))] = value
    gamma, beta = np.array([1.5, -2.0, 0.5, 3.0], dtype), np.array([0.0, 0.75, -1.0, 2.0], dtype)
    dY = np.array(
        [[1.0, -0.5, 2.0, 0.25], [3.0, 1.0, -1.0, 0.5], [-2.0, 0.75, 1.5, 1.0], [0.5, 2.0, -0.25, -1.0]], dtype
    )
    out, (_, dgamma, _) = forward_backward(spec.layer(), (X, gamma, beta), dY, backend)
    if axis == 0:
        np.testing.assert_array_equal(out[:, 1], np.full(4, beta[1]))
        assert dgamma[1] == 0
    else:
        np.testing.assert_array_equal(out[1], beta)
    example = Example((X, gamma, beta), {}, dY)
    expected = oracle(spec, example)[1][0]
    dXhat = (dY * gamma).astype(np.float64)
    slice_ = dXhat[:, 1] if axis == 0 else dXhat[1]
    by_hand = (slice_ - slice_.mean()) / np.sqrt(1e-5)
    np.testing.assert_allclose(expected[:, 1] if axis == 0 else expected[1], by_hand, rtol=1e-12, atol=1e-12)
    check_example(spec.layer, spec, example, backend=backend, dtype=dtype)


def test_a_constant_row_of_layer_norm_with_a_constant_dout_passes(backend):
    """The trap: a constant row whose dout * gamma is constant too has a true dX of 0; the
    oracle's dout - mean(dout) misses it by an ulp times 1/sqrt(eps), more than the old bound
    (OPS + K) * eps * (|expected| + |dout|) allowed. The right layer passes."""
    spec = SPECS["vector.layer_norm"]
    X, gamma, beta, dY = np.full((1, 3), 0.1), np.ones(3), np.zeros(3), np.full((1, 3), 0.1)
    example = Example((X, gamma, beta), {}, dY)
    expected = oracle(spec, example)[1][0]
    _, (dX, _, _) = forward_backward(spec.layer(), (X, gamma, beta), dY, backend)
    old_bound = (OPS + 12) * np.finfo(np.float64).eps * (np.max(np.abs(expected)) + 0.1)
    assert np.max(np.abs(expected)) > old_bound  # the oracle's own rounding
    assert np.max(np.abs(dX)) < 1e-20
    check_example(spec.layer, spec, example, backend=backend)


@pytest.mark.parametrize("layer", [vector.BatchNorm, vector.LayerNorm])
@pytest.mark.parametrize("eps", [-1e-5, 0.0, float("nan")])
def test_eps_must_be_positive(layer, eps):
    """A negative eps, 0 (a constant input would divide 0 by 0) or NaN raises ValueError at construction."""
    with pytest.raises(ValueError, match=f"{layer.__name__}: eps must be positive"):
        layer(eps=eps)


BAD_SHAPES = [
    ("vector.batch_norm", [(2, 3), (4,), (3,)], "X (2, 3), gamma (4,), beta (3,)"),
    ("vector.batch_norm", [(2, 3), (3,), (2,)], "X (2, 3), gamma (3,), beta (2,)"),
    ("vector.batch_norm", [(3,), (3,), (3,)], "X (3,), gamma (3,), beta (3,)"),
    ("vector.batch_norm", [(0, 3), (3,), (3,)], "X (0, 3), gamma (3,), beta (3,)"),  # no batch to average
    ("vector.layer_norm", [(2, 3), (3, 1), (3,)], "X (2, 3), gamma (3, 1), beta (3,)"),
    ("vector.layer_norm", [(2, 3), (3,), (4,)], "X (2, 3), gamma (3,), beta (4,)"),
    ("vector.layer_norm", [(2, 3, 1), (1,), (1,)], "X (2, 3, 1), gamma (1,), beta (1,)"),
    ("vector.layer_norm", [(2, 0), (0,), (0,)], "X (2, 0), gamma (0,), beta (0,)"),  # no features to average
]


EXPECTED = {
    "vector.batch_norm": "BatchNorm: expected X (n, d) with n >= 1, gamma (d,), beta (d,)",
    "vector.layer_norm": "LayerNorm: expected X (n, d) with d >= 1, gamma (d,), beta (d,)",
}


@pytest.mark.parametrize(("name", "shapes", "named"), BAD_SHAPES)
def test_shapes_that_do_not_fit_raise(name, shapes, named, backend):
    """gamma or beta of the wrong length, X not (n, d), or nothing to average raise ValueError
    naming the layer, the shapes it takes, and the shapes it got."""
    layer = SPECS[name].layer()
    with pytest.raises(ValueError, match=f"^{re.escape(EXPECTED[name])}; got {re.escape(named)}$"):
        layer.forward(*(backend_array(backend, np.ones(s)) for s in shapes))


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("where", ["X", "gamma", "beta"])
def test_nan_reaches_exactly_the_outputs_that_depend_on_it(name, where, backend, dtype):
    """NaN in X[1, 2] spoils feature 2 (batch norm) or example 1 (layer norm) and nothing else;
    NaN in gamma[2] or beta[2] spoils feature 2. No warning is raised (warnings are errors here)."""
    X = np.array([[1.0, 2.0, -3.0], [0.5, -1.0, 4.0], [2.0, 0.0, 1.0]], dtype)
    gamma, beta = np.array([1.0, 2.0, 0.5], dtype), np.array([0.0, 1.0, -1.0], dtype)
    inputs = {"X": X, "gamma": gamma, "beta": beta}
    inputs[where][(1, 2) if where == "X" else 2] = np.nan
    out, _ = forward_backward(SPECS[name].layer(), (X, gamma, beta), np.ones_like(X), backend)
    spoiled = np.zeros(X.shape, bool)
    if where == "X" and AXIS[name] == 1:
        spoiled[1, :] = True
    else:
        spoiled[:, 2] = True
    np.testing.assert_array_equal(np.isnan(out), spoiled)


@pytest.mark.parametrize("name", NORMS)
@pytest.mark.parametrize("size", ["max", "tiny"])
def test_any_finite_input_gives_finite_results(name, size, backend, dtype):
    """Inputs at the largest finite value (whose squares and sums overflow) or far below sqrt(eps)
    give finite outputs and gradients: at the largest, [M, -M, -M] normalizes to [√2, -1/√2, -1/√2]."""
    big = float(np.finfo(dtype).max) if size == "max" else 1e-30
    column = np.array([big, -big, -big], dtype)
    X = column[:, None] if AXIS[name] == 0 else column[None, :]
    gamma, beta = np.ones(X.shape[1], dtype), np.zeros(X.shape[1], dtype)
    dY = np.arange(1, 4, dtype=dtype).reshape(X.shape)
    out, grads = forward_backward(SPECS[name].layer(), (X, gamma, beta), dY, backend)
    assert np.all(np.isfinite(out))
    assert all(np.all(np.isfinite(g)) for g in grads)
    if size == "max":
        np.testing.assert_allclose(out.ravel(), [np.sqrt(2), -1 / np.sqrt(2), -1 / np.sqrt(2)], rtol=1e-6)


@pytest.mark.parametrize("name", NORMS)
def test_each_slice_is_scaled_by_its_own_largest_value(name, backend):
    """Beside a slice of magnitude 2**1000, one of 2**-1000 and one of the smallest normal numbers
    normalize as if alone: each is scaled (exactly, by a power of 2) by its own largest value,
    never down into the subnormals, which XLA on the CPU flushes to 0. With eps = 1e-5 their
    variance is eps's: Xhat = X / sqrt(eps)."""
    columns = [2.0**1000, 2.0**-1000, float(np.finfo(np.float64).smallest_normal)]
    X = np.array([columns, [-c for c in columns]])
    X = X if AXIS[name] == 0 else X.T
    gamma, beta = np.ones(X.shape[1]), np.zeros(X.shape[1])
    out, _ = forward_backward(SPECS[name].layer(), (X, gamma, beta), np.ones_like(X), backend)
    expected = np.array([[1.0, 2.0**-1000 / np.sqrt(1e-5), columns[2] / np.sqrt(1e-5)]])
    expected = np.concatenate([expected, -expected])
    np.testing.assert_allclose(out, expected if AXIS[name] == 0 else expected.T, rtol=1e-12)


@pytest.mark.parametrize("name", NORMS)
@given(data=st.data())
def test_dX_sums_to_zero_along_the_normalized_axis(name, backend, data):
    """Adding a constant to X along the normalized axis changes nothing, so dX sums to 0 along it
    (up to the rounding of dX itself)."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    _, (dX, _, _) = forward_backward(spec.layer(**example.kwargs), example.inputs, example.dout, backend)
    m = dX.shape[AXIS[name]]
    assert np.max(np.abs(dX.sum(axis=AXIS[name]))) <= m * tolerance(spec, example, np.float64, "dX")
