"""RNNStep, RNN and LSTMStep beyond the oracle test: BPTT against the step layer, lax.scan,
the gate order, saturation, the shapes drawn on purpose, and errors."""

import re

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import vector
from handlayers.testing import SPECS, check_backends, check_example, examples, oracle, tolerance
from tests.helpers import as_numpy, backend_array, seeded_example

NEW = ["vector.rnn_step", "vector.rnn", "vector.lstm_step"]
#: inputs of a fixed example of each: n = 2, d = 3, H = 2, t = 3
SHAPES = {
    "vector.rnn_step": [(2, 3), (2, 2), (3, 2), (2, 2), (2,)],
    "vector.rnn": [(2, 3, 3), (2, 2), (3, 2), (2, 2), (2,)],
    "vector.lstm_step": [(2, 3), (2, 2), (2, 2), (3, 8), (2, 8), (8,)],
}


@given(data=st.data())
def test_rnn_is_rnn_step_along_time(backend, data):
    """RNN's hidden states are RNNStep applied t times, and its backward is RNNStep's backward
    run back through time: dh_prev of each step joins the next earlier step's dh, the weight
    gradients add up over the steps, and the last dh_prev is dh0."""
    spec = SPECS["vector.rnn"]
    example = data.draw(examples(spec))
    x, h0, Wx, Wh, b = (backend_array(backend, v) for v in example.inputs)
    dh = np.asarray(example.dout)
    rnn = vector.RNN()
    hs = as_numpy(rnn.forward(x, h0, Wx, Wh, b))
    grads = [as_numpy(g) for g in rnn.backward(backend_array(backend, dh))]

    steps, h = [], h0
    for s in range(x.shape[1]):
        steps.append(vector.RNNStep())
        h = steps[-1].forward(x[:, s], h, Wx, Wh, b)
        np.testing.assert_allclose(
            hs[:, s],
            as_numpy(h),
            rtol=0,
            atol=tolerance(spec, example, np.float64),
        )
    dx, dh_next, dWx, dWh, db = [], np.zeros_like(as_numpy(h0)), 0, 0, 0
    for s in reversed(range(x.shape[1])):
        dx_s, dh_next, dWx_s, dWh_s, db_s = (as_numpy(g) for g in steps[s].backward(dh[:, s] + dh_next))
        dx.insert(0, dx_s)
        dWx, dWh, db = dWx + dWx_s, dWh + dWh_s, db + db_s
    expected_grads = [np.stack(dx, axis=1), dh_next, dWx, dWh, db]
    for got, expected, name in zip(grads, expected_grads, spec.grads, strict=True):
        error = np.max(np.abs(got - expected), initial=0.0)
        assert error <= tolerance(spec, example, np.float64, name)


@pytest.mark.jax
def rnn_inputs(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES["vector.rnn"]], rng.standard_normal((2, 3, 2))


def test_rnn_output_is_the_callers_own_array():
    """numpy RNN returns an array of its own: writing into it leaves what backward reads alone."""
    inputs, dh = rnn_inputs()
    layer = vector.RNN()
    h = layer.forward(*inputs)
    assert h.flags.c_contiguous
    h[...] = 0.0
    fresh = vector.RNN()
    fresh.forward(*inputs)
    for g, e in zip(layer.backward(dh), fresh.backward(dh), strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.jax
def test_numpy_rnn_does_not_go_through_jax():
    """numpy RNN's backward runs on numpy alone: jax's float64 switch changes none of its bits."""
    inputs, dh = rnn_inputs()
    layer = vector.RNN()
    layer.forward(*inputs)
    with jax.enable_x64(False):
        without = layer.backward(dh)
    for g, e in zip(without, layer.backward(dh), strict=True):
        np.testing.assert_array_equal(g, e)


def test_rnn_under_jit_is_a_loop_whatever_its_length():
    """Under jax.jit, RNN's forward and backward are each one lax.scan: the traced program has
    two scans and as many operations for 2 steps as for 7 (nothing unrolled over time)."""

    def program(t):
        def step(x, h0, Wx, Wh, b, dh):
            rnn = vector.RNN()
            return rnn.forward(x, h0, Wx, Wh, b), rnn.backward(dh)

        shapes = [(2, t, 3), (2, 4), (3, 4), (4, 4), (4,), (2, t, 4)]
        return jax.make_jaxpr(step)(*(np.zeros(s) for s in shapes)).jaxpr

    short, long = program(2), program(7)
    assert [e.primitive.name for e in short.eqns].count("scan") == 2
    assert len(short.eqns) == len(long.eqns)


def test_lstm_gates_come_in_the_order_i_f_o_g(backend):
    """With x = h_prev = 0 the gates are b's four blocks: i = sigmoid(log 3) = 3/4,
    f = sigmoid(0) = 1/2, o = sigmoid(-log 3) = 1/4, g = tanh(atanh(1/2)) = 1/2; so
    c = f * c_prev + i * g and h = o * tanh(c), worked out by hand."""
    b = np.array([np.log(3), 0.0, -np.log(3), np.arctanh(0.5)])
    c_prev = np.array([[2.0]])
    zeros = np.zeros((1, 1))
    h, c = vector.LSTMStep().forward(
        *(backend_array(backend, v) for v in (zeros, zeros, c_prev, np.zeros((1, 4)), np.zeros((1, 4)), b))
    )
    c_expected = 0.5 * 2.0 + 0.75 * 0.5
    np.testing.assert_allclose(as_numpy(c), [[c_expected]], rtol=1e-15)
    np.testing.assert_allclose(as_numpy(h), [[0.25 * np.tanh(c_expected)]], rtol=1e-15)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_saturated_units_give_finite_results_and_the_oracles_gradients(name, sign, backend, dtype):
    """Pre-activations of ±1e4 saturate tanh and the sigmoids: outputs and gradients stay finite,
    warn of nothing (pytest turns warnings into errors), and match the oracle."""
    spec = SPECS[name]
    shapes = SHAPES[name]
    example = seeded_example(spec, shapes)
    inputs = list(example.inputs)
    inputs[-1] = np.full(shapes[-1], sign * 1e4)  # b
    example = type(example)(tuple(np.asarray(v, dtype) for v in inputs), {}, example.dout)
    check_example(spec.layer, spec, example, backend=backend, dtype=dtype)
    layer = spec.layer()
    out = layer.forward(*(backend_array(backend, v) for v in example.inputs))
    grads = layer.backward(backend_array(backend, example.dout))
    for v in (*jax.tree.leaves(as_numpy(out)), *map(as_numpy, grads)):
        assert np.all(np.isfinite(v))


# the shapes the issue asks for on purpose, checked every run whatever Hypothesis draws:
# sequences of one step, a batch of one, one hidden unit, a longer sequence than the specs draw
ON_PURPOSE = [
    ("vector.rnn", [(1, 1, 2), (1, 3), (2, 3), (3, 3), (3,)]),
    ("vector.rnn", [(2, 1, 3), (2, 2), (3, 2), (2, 2), (2,)]),
    ("vector.rnn", [(1, 6, 2), (1, 3), (2, 3), (3, 3), (3,)]),
    ("vector.rnn_step", [(1, 2), (1, 3), (2, 3), (3, 3), (3,)]),
    ("vector.lstm_step", [(1, 2), (1, 1), (1, 1), (2, 4), (1, 4), (4,)]),
    ("vector.lstm_step", [(3, 1), (3, 2), (3, 2), (1, 8), (2, 8), (8,)]),
]


@pytest.mark.parametrize(("name", "shapes"), ON_PURPOSE)
def test_drawn_on_purpose_shapes_match_the_oracle(name, shapes, backends, dtype):
    """Length-1 sequences, batches of 1, one hidden unit and a 6-step sequence match the oracle
    on every backend."""
    spec = SPECS[name]
    check_backends(spec.layer, spec, seeded_example(spec, shapes), backends=backends, dtype=dtype)


@pytest.mark.parametrize("name", NEW)
def test_every_gradient_wrong_by_one_part_in_a_million_fails(name):
    """In float64, each gradient in turn, scaled by 1 + 1e-6, fails the check, naming it."""
    spec = SPECS[name]
    shapes = SHAPES[name]
    example = seeded_example(spec, shapes)
    assert all(np.max(np.abs(g)) > 1e-3 for g in oracle(spec, example)[1])  # large enough to show
    for index, grad in enumerate(spec.grads):

        class Wrong(spec.layer):
            def backward(self, dout, index=index):
                return tuple(g * (1 + 1e-6) if i == index else g for i, g in enumerate(super().backward(dout)))

        with pytest.raises(AssertionError, match=f"{grad}: WRONG"):
            check_example(Wrong, spec, example)


BAD = [
    (
        vector.RNNStep,
        [(2, 3), (2, 4), (3, 4), (4, 4), (3,)],
        "RNNStep: expected x (n, d), h_prev (n, H), Wx (d, H), Wh (H, H), b (H,); "
        "got x (2, 3), h_prev (2, 4), Wx (3, 4), Wh (4, 4), b (3,)",
    ),
    (vector.RNNStep, [(2, 3), (1, 4), (3, 4), (4, 4), (4,)], "got x (2, 3), h_prev (1, 4),"),
    (vector.RNNStep, [(2, 3), (2, 4), (4, 4), (4, 4), (4,)], "Wx (4, 4),"),
    (vector.RNNStep, [(2, 3), (2, 4), (3, 4), (4, 3), (4,)], "Wh (4, 3),"),
    (vector.RNNStep, [(3,), (2, 4), (3, 4), (4, 4), (4,)], "got x (3,),"),
    (
        vector.RNN,
        [(2, 5, 3), (2, 4), (3, 4), (4, 4), (4, 1)],
        "RNN: expected x (n, t, d) with t >= 1, h0 (n, H), Wx (d, H), Wh (H, H), b (H,); "
        "got x (2, 5, 3), h0 (2, 4), Wx (3, 4), Wh (4, 4), b (4, 1)",
    ),
    (vector.RNN, [(2, 0, 3), (2, 4), (3, 4), (4, 4), (4,)], "got x (2, 0, 3),"),
    (vector.RNN, [(2, 3), (2, 4), (3, 4), (4, 4), (4,)], "got x (2, 3), h0 (2, 4),"),
    (vector.RNN, [(2, 5, 3), (3, 4), (3, 4), (4, 4), (4,)], "got x (2, 5, 3), h0 (3, 4),"),
    (
        vector.LSTMStep,
        [(2, 3), (2, 4), (2, 4), (3, 16), (4, 16), (4,)],
        "LSTMStep: expected x (n, d), h_prev (n, H), c_prev (n, H), Wx (d, 4H), Wh (H, 4H), b (4H,); "
        "got x (2, 3), h_prev (2, 4), c_prev (2, 4), Wx (3, 16), Wh (4, 16), b (4,)",
    ),
    (vector.LSTMStep, [(2, 3), (2, 4), (2, 3), (3, 16), (4, 16), (16,)], "c_prev (2, 3),"),
    (vector.LSTMStep, [(2, 3), (2, 4), (2, 4), (3, 4), (4, 4), (4,)], "Wx (3, 4), Wh (4, 4), b (4,)"),
]


@pytest.mark.parametrize(("layer", "shapes", "message"), BAD)
def test_shapes_that_do_not_fit_raise_naming_them(layer, shapes, message, backend):
    """Inputs whose shapes do not fit raise ValueError naming the layer, what it expected and
    every shape it got."""
    with pytest.raises(ValueError, match=re.escape(message)):
        layer().forward(*(backend_array(backend, np.zeros(s)) for s in shapes))


def test_a_nan_input_reaches_the_states_that_depend_on_it(backend):
    """A NaN in x at step s reaches every hidden state from s on and none before, without a
    warning; a NaN in one entry of c_prev reaches that entry of c and h."""
    x, h0, Wx, Wh, b = seeded_example(SPECS["vector.rnn"], SHAPES["vector.rnn"]).inputs
    x = x.copy()
    x[0, 1, 0] = np.nan
    h = as_numpy(vector.RNN().forward(*(backend_array(backend, v) for v in (x, h0, Wx, Wh, b))))
    assert np.all(np.isnan(h[0, 1:]))
    assert np.all(np.isfinite(h[0, :1]))
    assert np.all(np.isfinite(h[1:]))
    inputs = list(seeded_example(SPECS["vector.lstm_step"], SHAPES["vector.lstm_step"]).inputs)
    inputs[2] = inputs[2].copy()
    inputs[2][1, 0] = np.nan  # c_prev
    h, c = (as_numpy(o) for o in vector.LSTMStep().forward(*(backend_array(backend, v) for v in inputs)))
    for out in (h, c):
        assert np.isnan(out[1, 0])
        assert np.sum(np.isnan(out)) == 1
