"""The benchmarks compare like with like: every way of taking a step or checking a layer computes
the same thing (timing itself is never tested)."""

import os
import re
from functools import partial

import jax
import numpy as np
import pytest

from benchmarks import __main__ as bench
from benchmarks import checkers, conv, jit_start, sequence, step
from benchmarks.jit_start import OneHotSoftmaxCrossEntropy
from handlayers import vector

SHAPE = {"batch": 5, "d_in": 4, "hidden": 3, "classes": 2}


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize(
    ("input_grad", "loss"),
    [(False, vector.SoftmaxCrossEntropy), (True, vector.SoftmaxCrossEntropy), (False, OneHotSoftmaxCrossEntropy)],
)
def test_handlayers_step_gives_the_reference_gradients(input_grad, loss, jit):
    """The hand-written step's loss and parameter gradients are jax.grad of the reference's, on
    numpy and in jax.jit, with the loss's backward as it is and as it was (benchmarks.jit_start)."""
    d = step.data(np.float64, **SHAPE)
    take_step = partial(step.handlayers_step, input_grad=input_grad, loss=loss)
    if jit:
        take_step = jax.jit(take_step)
    value, grads = take_step(*step.step_args(d))
    autodiff, args = step.jitted_autodiff(d)
    expected_value, expected = autodiff(*args)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-15)


def test_gemm_floor_takes_the_five_products_of_a_step():
    """The floor computes products of the shapes a step needs: its two forward ones, dW2, dH, dW1."""
    d = step.data(np.float32, **SHAPE)
    shapes = [p.shape for p in step.gemm_floor(d)()]
    assert shapes == [(5, 3), (5, 2), (3, 2), (5, 3), (4, 3)]


@pytest.mark.parametrize("method", [m for m in checkers.METHODS if checkers.available(m)])
def test_every_checker_passes_the_right_layer(method):
    """Each way of checking, the hand-written backward wrapped for jax and torch included, accepts
    vector.Affine (check_grads and gradcheck raise on a mismatch; check_example too)."""
    checkers._check(method, 3)()


def test_the_jax_wrapper_uses_the_hand_written_backward():
    """check_grads of the wrapped layer fails when the layer's backward is wrong: it checks the
    layer, not jax's own autodiff."""
    from jax.test_util import check_grads

    class Wrong(vector.Affine):
        def _backward(self, dA):
            dX, dW, db = super()._backward(dA)
            return dX, 2 * dW, db

    X, W, b = checkers._inputs(3)
    with pytest.raises(AssertionError):
        check_grads(checkers._as_jax_function(Wrong), (X, W, b), order=1, modes=("rev",))


def test_stages_time_every_layer_call_of_the_step():
    """The per-call breakdown covers the step's eight layer calls, in order, each once per step."""
    d = step.data(np.float64, **SHAPE)
    called = []
    step.handlayers_step(*step.step_args(d), call=lambda s, f, *a: called.append(s) or f(*a))
    seconds = step.stages(d, steps=3)
    assert (
        called
        == list(seconds)
        == [
            "hidden Affine forward",
            "ReLU forward",
            "output Affine forward",
            "SoftmaxCrossEntropy forward",
            "SoftmaxCrossEntropy backward",
            "output Affine backward",
            "ReLU backward",
            "hidden Affine backward",
        ]
    )
    assert all(s > 0 for s in seconds.values())


@pytest.mark.parametrize(("limit", "memory", "verdict"), [(0.0, None, "over time"), (60.0, 1, "over memory")])
def test_a_checker_past_a_limit_is_stopped_and_says_which(limit, memory, verdict, monkeypatch):
    """A measurement that runs past the time limit, or holds more memory than allowed, is stopped
    and reported as over that limit (gradcheck's default mode fills the machine's memory at n = 128)."""
    if memory is not None:
        monkeypatch.setattr(checkers, "memory_limit", lambda: memory)
    assert checkers.measure("layer alone", 8, limit) == verdict


def test_resident_bytes_counts_what_a_process_holds():
    """The memory the limit is checked against grows by what the process allocates, in bytes."""
    before = checkers._resident_bytes(os.getpid())
    held = np.ones(2**27 // 8)  # 128 MiB, every page written
    grown = checkers._resident_bytes(os.getpid()) - before
    assert 0.9 * held.nbytes < grown < 1.1 * held.nbytes


def test_a_method_over_a_limit_is_not_measured_at_larger_n(monkeypatch):
    """Over a limit at one n is over it at every larger n, without running it there; the table
    says which limit."""
    measured = []

    def measure(method, n, limit):
        measured.append((method, n))
        return "over memory" if method == "torch gradcheck" and n >= 32 else 0.001

    monkeypatch.setattr(checkers, "measure", measure)
    monkeypatch.setattr(checkers, "available", lambda method: True)
    result = checkers.run(limit=1.0, sizes=(8, 32, 128))
    assert result["seconds"]["torch gradcheck"] == {8: 0.001, 32: "over memory", 128: "over memory"}
    assert ("torch gradcheck", 128) not in measured
    assert "| torch gradcheck | 1 | over memory | over memory |" in bench.checker_table(result)


def test_the_old_backward_has_one_starting_operation_fewer_than_with_a_labels_output():
    """The starting operations counted in the optimized HLO: an output computed from the labels
    alone adds one to the step with the one-hot backward; autodiff's program has more than one."""
    d = step.data(np.float32, **SHAPE)

    def starts(jitted, *args):
        return jit_start.starting_operations(jitted.lower(*args).compile().as_text())

    one_hot = starts(jax.jit(jit_start._one_hot_step), *step.step_args(d))
    assert starts(jax.jit(jit_start._one_hot_step_and_labels), *step.step_args(d)) == one_hot + 1
    autodiff, args = step.jitted_autodiff(d)
    assert starts(autodiff, *args) > 1


SEQUENCE_CASES = sequence.cases(np.float64, sequence.QUICK_SIZES)


@pytest.mark.parametrize("name", list(SEQUENCE_CASES))
def test_each_sequence_case_computes_what_autodiff_computes(name):
    """Each sequence case's hand-written step, in jax.jit, gives the output and gradients of
    jax.jit of autodiff of the reference: the two ways time the same work."""
    case = SEQUENCE_CASES[name]
    ours = jax.jit(case["handlayers"])(*case["args"])
    autodiff = jax.jit(case["autodiff"])(*case["args"])
    assert jax.tree.structure(ours) == jax.tree.structure(autodiff)
    for got, expected in zip(jax.tree.leaves(ours), jax.tree.leaves(autodiff), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_the_sequence_table_says_whether_each_target_is_met():
    """A ratio at most 1 is met; above 1 with the middle half reaching 1, within noise; else missed."""

    def case(median, low):
        return {
            "seconds": {"handlayers jax.jit": 1e-3, "jax.jit(vjp)": 1e-3},
            "ratio": {"median": median, "low": low, "high": 2.0, "at_most": 1.0},
        }

    run = {"dtype": "float32", "cases": {"met": case(0.9, 0.8), "noise": case(1.1, 0.95), "missed": case(1.2, 1.1)}}
    rows = sequence.table([run]).splitlines()[4:]
    assert rows[0].startswith("| met | float32 | 1 | 1 | 0.900 (0.800 to 2.000) | at most 1.00 |")
    assert "1.100 (0.950 to 2.000) (within noise)" in rows[1]
    assert "1.200 (1.100 to 2.000) (missed)" in rows[2]


CONV_SHAPE = {"n": 2, "c": 3, "h": 5, "w": 6, "f": 4, "k": 3, "pad": 1, "pool": 2}


@pytest.mark.jax
@pytest.mark.parametrize("jit", [False, True])
def test_the_benchmarks_ways_compute_the_same(jit):
    """The benchmark's hand-written conv and pool steps give the output and gradients of its
    jax.vjp of the reference, in numpy and in jax.jit; the floor's products have the convolution's
    im2col shapes."""
    bench = conv

    d = bench.data(np.float64, **CONV_SHAPE)
    pairs = [  # (step, autodiff, inputs) for each layer
        (partial(bench.conv_step, pad=1), partial(bench.conv_autodiff, pad=1), ("X", "W", "b", "dout")),
        (partial(bench.conv_step, pad=1), partial(bench.lax_conv_autodiff, pad=1), ("X", "W", "b", "dout")),
        (partial(bench.pool_step, size=2), partial(bench.pool_autodiff, size=2), ("A", "dpool")),
    ]
    for ours, autodiff, names in pairs:
        args = [d[name] for name in names]
        got_out, got = (jax.jit(ours) if jit else ours)(*args)
        out, expected = autodiff(*args)
        np.testing.assert_allclose(got_out, out, rtol=1e-12, atol=1e-12)
        for g, e in zip(got if isinstance(got, tuple) else (got,), expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)
    assert [p.shape for p in bench.gemm_floor(d)()] == [(60, 4), (27, 4), (60, 27)]


@pytest.mark.jax
def test_jitted_conv2d_compiles_to_the_convolutions_of_jitted_autodiff():
    """Inside jax.jit, Conv2d's forward and backward compile to the very convolutions XLA compiles
    for autodiff of lax.conv_general_dilated (so that timed ratio is 1 but for noise)."""
    bench = conv

    d = bench.data(np.float32, **CONV_SHAPE)
    args = (d["X"], d["W"], d["b"], d["dout"])

    def convolutions(f):
        hlo = jax.jit(f).lower(*args).compile().as_text()
        lines = [re.sub(r"%\S+|, metadata=\{.*\}", "", line) for line in hlo.splitlines() if " convolution(" in line]
        return sorted(lines)

    ours = convolutions(partial(bench.conv_step, pad=1))
    assert len(ours) == 3
    assert ours == convolutions(partial(bench.lax_conv_autodiff, pad=1))


def test_the_median_interval_holds_the_median_and_narrows_with_more_rounds():
    """The bootstrap interval of a median (what the training's audit target is judged on) holds
    the median, is the same for the same samples, is a point for samples all alike, and narrows
    as the rounds grow."""
    from benchmarks._timing import median_interval

    rng = np.random.default_rng(1)
    few, many = rng.normal(0.05, 0.1, 10).tolist(), rng.normal(0.05, 0.1, 160).tolist()
    for samples in (few, many):
        interval = median_interval(samples)
        assert interval["low"] <= interval["median"] == np.median(samples) <= interval["high"]
        assert median_interval(samples) == interval
    assert median_interval([0.2] * 5) == {"median": 0.2, "low": 0.2, "high": 0.2}
    width = {n: median_interval(s)["high"] - median_interval(s)["low"] for n, s in (("few", few), ("many", many))}
    assert width["many"] < width["few"] / 2
