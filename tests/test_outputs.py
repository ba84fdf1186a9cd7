"""Layers of several outputs (LSTMStep's ``(h, c)``): Layer's tuple of douts, and the checker
drawing, comparing and naming each output."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import testing, vector
from handlayers.__main__ import main
from handlayers.testing import SPECS, Example, check_example, examples, oracle
from tests.helpers import as_numpy, backend_array

LSTM = SPECS["vector.lstm_step"]
LABS = Path(__file__).parent / "labs"


def lstm_inputs(backend, dtype=np.float64, n=2, d=3, H=2, seed=0):
    """Random inputs of LSTMStep: x (n, d), h_prev, c_prev (n, H), Wx (d, 4H), Wh (H, 4H), b (4H,)."""
    rng = np.random.default_rng(seed)
    shapes = [(n, d), (n, H), (n, H), (d, 4 * H), (H, 4 * H), (4 * H,)]
    return [backend_array(backend, rng.standard_normal(s).astype(dtype)) for s in shapes]


def test_forward_returns_a_tuple_of_outputs_and_backward_takes_one(backend):
    """forward returns (h, c), each (n, H) in the inputs' library; backward((dh, dc)) returns
    the six gradients, each of its input's shape."""
    layer = vector.LSTMStep()
    inputs = lstm_inputs(backend)
    out = layer.forward(*inputs)
    assert isinstance(out, tuple)
    assert [np.shape(o) for o in out] == [(2, 2), (2, 2)]
    assert {type(o) for o in out} == {type(inputs[0])}
    grads = layer.backward((np.ones((2, 2)), np.zeros((2, 2))))
    assert [np.shape(g) for g in grads] == [np.shape(x) for x in inputs]


@pytest.mark.parametrize(
    ("dout", "message"),
    [
        (
            (np.ones((2, 2)),),
            "LSTMStep.backward: dout must be a tuple of 2 arrays, one per output, of shapes (2, 2), (2, 2); "
            "got 1 arrays",
        ),
        (
            (np.ones((2, 2)),) * 3,
            "LSTMStep.backward: dout must be a tuple of 2 arrays, one per output, of shapes (2, 2), (2, 2); "
            "got 3 arrays",
        ),
        (
            np.ones((2, 2)),
            "LSTMStep.backward: dout must be a tuple of 2 arrays, one per output, of shapes (2, 2), (2, 2); "
            "got an array of shape (2, 2)",
        ),
        (
            (np.ones((2, 2)), np.ones((2, 3))),
            "LSTMStep.backward: dout has shapes (2, 2), (2, 3), but the outputs have shapes (2, 2), (2, 2)",
        ),
    ],
)
def test_a_dout_that_is_no_tuple_of_the_outputs_shapes_raises(dout, message, backend):
    """A dout tuple of the wrong length, a lone array, or a dout of the wrong shape raises
    ValueError saying what backward expected and what it got."""
    layer = vector.LSTMStep()
    layer.forward(*lstm_inputs(backend))
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        layer.backward(backend_array(backend, dout))


def test_a_list_of_douts_works_like_a_tuple(backend):
    """backward([dh, dc]) gives what backward((dh, dc)) gives."""
    layer = vector.LSTMStep()
    layer.forward(*lstm_inputs(backend))
    dh, dc = np.full((2, 2), 0.5), np.full((2, 2), -2.0)
    for g, h in zip(layer.backward([dh, dc]), layer.backward((dh, dc)), strict=True):
        np.testing.assert_array_equal(as_numpy(g), as_numpy(h))


def test_douts_are_cast_to_the_layers_dtype(backend):
    """float64 douts given to a float32 layer are cast to float32 first, as one dout is: the
    gradients are float32, and the very bits that float32 douts give."""
    layer = vector.LSTMStep()
    layer.forward(*lstm_inputs(backend, np.float32))
    douts = tuple(np.random.default_rng(1).standard_normal((2, 2, 2)))
    grads = layer.backward(douts)
    assert {as_numpy(g).dtype for g in grads} == {np.dtype(np.float32)}
    for g, h in zip(grads, layer.backward(tuple(d.astype(np.float32) for d in douts)), strict=True):
        np.testing.assert_array_equal(as_numpy(g), as_numpy(h))


@given(data=st.data())
def test_examples_draw_one_dout_per_output(data, dtype):
    """The strategies draw a tuple of douts, one of each output's shape and the example's dtype."""
    example = data.draw(examples(LSTM, dtype))
    n, H = np.shape(example.inputs[1])
    assert isinstance(example.dout, tuple)
    assert [(np.shape(d), d.dtype) for d in example.dout] == [((n, H), np.dtype(dtype))] * 2


@given(data=st.data())
def test_the_oracle_adds_the_gradients_of_each_output(data):
    """The oracle's vjp with a tuple cotangent (dh, dc) is the sum of its vjps with (dh, 0) and
    (0, dc): each output contributes its own gradient."""
    example = data.draw(examples(LSTM))
    dh, dc = example.dout
    out, both = oracle(LSTM, example)
    _, only_h = oracle(LSTM, Example(example.inputs, {}, (dh, np.zeros_like(dc))))
    _, only_c = oracle(LSTM, Example(example.inputs, {}, (np.zeros_like(dh), dc)))
    assert isinstance(out, tuple)
    assert len(out) == 2
    for g, gh, gc in zip(both, only_h, only_c, strict=True):
        np.testing.assert_allclose(g, gh + gc, rtol=1e-12, atol=1e-12 * (1 + np.max(np.abs(g))))


def test_the_report_names_each_output_and_its_dout():
    """A wrong c is reported under its name, h stays ok, and the example shows dh and dc."""

    class WrongC(vector.LSTMStep):
        def forward(self, *inputs):
            h, c = super().forward(*inputs)
            return h, c * (1 + 1e-6)

    example = Example(tuple(lstm_inputs("numpy")), {}, (np.ones((2, 2)), np.full((2, 2), 0.5)))
    with pytest.raises(testing.Mismatch) as mismatch:
        check_example(WrongC, LSTM, example)
    report = str(mismatch.value)
    assert "  h: ok" in report
    assert "  c: WRONG: worst error" in report
    assert "  dh        = [[1., 1.]," in report
    assert "  dc        = [[0.5, 0.5]," in report


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        (lambda h, c: h, "forward returned one array, expected a tuple of 2 outputs (h, c)"),
        (lambda h, c: (h, c, c), "forward returned 3 outputs, expected 2 (h, c)"),
    ],
)
def test_a_forward_that_returns_the_wrong_outputs_is_reported(returned, problem):
    """A layer whose forward does not return one array per output fails, saying so."""

    class Wrong(vector.LSTMStep):
        def forward(self, *inputs):
            return returned(*super().forward(*inputs))

    example = Example(tuple(lstm_inputs("numpy")), {}, (np.ones((2, 2)), np.ones((2, 2))))
    with pytest.raises(testing.Mismatch, match=re.escape(problem)):
        check_example(Wrong, LSTM, example)


@pytest.mark.jax
def test_a_layer_of_several_outputs_runs_inside_jit():
    """forward's tuple and backward's tuple of douts trace through jax.jit."""

    @jax.jit
    def step(inputs, douts):
        layer = vector.LSTMStep()
        return layer.forward(*inputs), layer.backward(douts)

    inputs = lstm_inputs("jax")
    out, grads = step(inputs, (np.ones((2, 2)), np.ones((2, 2))))
    eager = vector.LSTMStep()
    for o, e in zip(out, eager.forward(*inputs), strict=True):
        np.testing.assert_allclose(o, e, rtol=1e-14)
    for g, e in zip(grads, eager.backward((np.ones((2, 2)), np.ones((2, 2)))), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-15)


def test_check_passes_a_users_lstm_of_two_outputs(capsys):
    """handlayers check takes a user's LSTM class, forward returning (h, c), backward((dh, dc))."""
    assert main(["check", f"{LABS / 'sequence.py'}:LSTMStep", "--against", "vector.lstm_step", "--examples", "20"]) == 0
    assert capsys.readouterr().out.startswith("ok: LSTMStep matches vector.lstm_step on 20 examples")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("LSTMStepIFGO", ["h: WRONG", "c: WRONG"]),
        ("LSTMStepCellIgnoresH", ["h: ok", "c: ok", "dc_prev: WRONG"]),
    ],
)
def test_check_reports_a_users_wrong_lstm(name, words, capsys):
    """A user's LSTM with torch's gate order, or without h's share of dc, fails with a report
    naming the outputs and gradients that are wrong."""
    assert main(["check", f"{LABS / 'sequence.py'}:{name}", "--against", "vector.lstm_step", "--examples", "20"]) == 1
    out = capsys.readouterr().out
    for w in words:
        assert w in out
