"""The benchmarks compare like with like: every way of taking a step or checking a layer computes
the same thing (timing itself is never tested)."""

import jax
import numpy as np
import pytest

from benchmarks import checkers, step

SHAPE = {"batch": 5, "d_in": 4, "hidden": 3, "classes": 2}


@pytest.mark.parametrize("input_grad", [False, True])
def test_handlayers_step_gives_the_reference_gradients(input_grad):
    """The hand-written step's loss and parameter gradients are jax.grad of the reference's."""
    d = step.data(np.float64, **SHAPE)
    value, grads = step.handlayers_step(d["X"], d["W1"], d["b1"], d["W2"], d["b2"], d["labels"], input_grad=input_grad)
    params = (d["W1"], d["b1"], d["W2"], d["b2"])
    autodiff = jax.value_and_grad(step.reference_loss, argnums=(0, 1, 2, 3))
    expected_value, expected = autodiff(*params, d["X"], d["labels"])
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

    from handlayers import vector

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
    seconds = step.stages(d, steps=3)
    assert list(seconds) == [
        "hidden Affine forward",
        "ReLU forward",
        "output Affine forward",
        "SoftmaxCrossEntropy forward",
        "SoftmaxCrossEntropy backward",
        "output Affine backward",
        "ReLU backward",
        "hidden Affine backward",
    ]
    assert all(s > 0 for s in seconds.values())


@pytest.mark.parametrize(("limit", "memory", "verdict"), [(0.0, None, "over time"), (60.0, 1, "over memory")])
def test_a_checker_past_a_limit_is_stopped_and_says_which(limit, memory, verdict, monkeypatch):
    """A measurement that runs past the time limit, or holds more memory than allowed, is stopped
    and reported as over that limit (gradcheck's default mode fills the machine's memory at n = 128)."""
    if memory is not None:
        monkeypatch.setattr(checkers, "memory_limit", lambda: memory)
    assert checkers.measure("layer alone", 8, limit) == verdict
