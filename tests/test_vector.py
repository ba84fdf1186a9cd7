"""The batched layers beyond the oracle test: kinks, huge logits, properties that need no oracle, jit, errors."""

import re

import jax
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from handlayers import vector
from handlayers.testing import SPECS, Example, check_example, douts, examples, oracle, tolerance
from tests.helpers import as_numpy, backend_array

VECTOR = [name for name in SPECS if name.startswith("vector.")]
LOSSES = ["vector.squared_loss", "vector.hinge_loss", "vector.softmax_cross_entropy", "vector.mlp"]


def forward_backward(spec, example, backend, dout=None):
    """Output and gradients (as numpy, None kept) of ``spec.layer`` on ``example``."""
    layer = spec.layer(**example.kwargs)
    out = layer.forward(*(backend_array(backend, x) for x in example.inputs))
    grads = layer.backward(backend_array(backend, example.dout if dout is None else dout))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return as_numpy(out), tuple(None if g is None else as_numpy(g) for g in grads)


KINKS = [
    # (reference, inputs, kwargs, the gradient of the first input for dout = 1)
    # S_0 - S_1 + 1 = 0: the one hinge term is exactly 0 and sends no gradient
    ("vector.hinge_loss", ([[0.0, 1.0]], [1]), {}, [[0.0, 0.0]]),
    # one term at 0, one active: only the active one counts
    ("vector.hinge_loss", ([[0.0, 1.0, 0.5]], [1]), {}, [[0.0, -1.0, 1.0]]),
    # tied logits: uniform probabilities
    ("vector.softmax_cross_entropy", ([[2.0, 2.0]], [0]), {}, [[-0.5, 0.5]]),
    # logits of ±1e4: the label's probability is 1 up to exp(-2e4) = 0
    ("vector.softmax_cross_entropy", ([[1e4, -1e4]], [0]), {}, [[0.0, 0.0]]),
    ("vector.softmax_cross_entropy", ([[-1e4, 1e4]], [0]), {}, [[-1.0, 1.0]]),
    # a hidden unit at exactly 0 (X W1 + b1 = 1 - 1) passes no gradient back to X
    ("vector.mlp", ([[1.0]], [[1.0]], [-1.0], [[2.0]], [0.5], [[1.0]]), {}, [[0.0]]),
]


@pytest.mark.parametrize(("name", "inputs", "kwargs", "grad"), KINKS)
def test_kink_follows_the_convention_exactly(name, inputs, kwargs, grad, backend, dtype):
    """At a kink, tie or ±1e4 logit, backward returns exactly the contract's gradient, and so does
    the oracle; everything stays finite."""
    spec = SPECS[name]
    inputs = tuple(np.asarray(x, np.int64 if i in spec.labels else dtype) for i, x in enumerate(inputs))
    example = Example(inputs, kwargs, np.asarray(1.0, dtype))
    out, grads = forward_backward(spec, example, backend)
    assert np.isfinite(out)
    np.testing.assert_array_equal(grads[0], np.asarray(grad, dtype))
    np.testing.assert_array_equal(oracle(spec, example)[1][0], grad)
    check_example(spec.layer, spec, example, backend=backend, dtype=dtype)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_of_huge_logits_is_finite(axis, backend, dtype):
    """Softmax of logits of ±1e4 is finite, sums to 1, and warns of nothing."""
    Z = np.array([[1e4, -1e4, 1e4], [0.0, 1e4, -1e4]], dtype)
    layer = vector.Softmax(axis=axis)
    S = as_numpy(layer.forward(backend_array(backend, Z)))
    dZ = as_numpy(layer.backward(backend_array(backend, np.ones_like(Z))))
    assert np.all(np.isfinite(S))
    assert np.all(np.isfinite(dZ))
    np.testing.assert_allclose(S.sum(axis=axis), 1.0, rtol=4 * np.finfo(dtype).eps)


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_backward_is_linear_in_dout(name, backend, data):
    """backward(a*d1 + b*d2) = a*backward(d1) + b*backward(d2), within float64 rounding."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    d2 = jax.tree.map(lambda d: data.draw(douts(np.shape(d))), example.dout)  # one per output
    a, b = data.draw(st.sampled_from([0.5, -2.0, 3.0])), data.draw(st.sampled_from([1.0, -0.25]))
    combined = jax.tree.map(lambda d1, d2: a * d1 + b * d2, example.dout, d2)
    _, g1 = forward_backward(spec, example, backend)
    _, g2 = forward_backward(spec, example, backend, dout=d2)
    _, g = forward_backward(spec, example, backend, dout=combined)
    bound = Example(
        example.inputs, example.kwargs, jax.tree.map(lambda d1, d2: abs(a * d1) + abs(b * d2), example.dout, d2)
    )
    for gi, g1i, g2i, name in zip(g, g1, g2, spec.grads, strict=True):
        if gi is not None:
            error = np.max(np.abs(gi - (a * g1i + b * g2i)), initial=0.0)
            assert error <= 3 * tolerance(spec, bound, np.float64, name)


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_zero_dout_gives_zero_gradients(name, backend, dtype, data):
    """A zero dout gives gradients that are exactly zero."""
    spec = SPECS[name]
    example = data.draw(examples(spec, dtype))
    _, grads = forward_backward(spec, example, backend, dout=jax.tree.map(np.zeros_like, example.dout))
    for g in grads:
        assert g is None or not np.any(g)


# Per-example inputs are the ones with the batch axis first: X, Y, S, Z (the rest are shared).
BATCHED = {
    "vector.squared_loss": (0, 1),
    "vector.hinge_loss": (0,),
    "vector.softmax_cross_entropy": (0,),
    "vector.mlp": (0, 5),
}


@pytest.mark.parametrize("name", LOSSES)
@given(data=st.data())
def test_batch_gradient_is_the_mean_of_example_gradients(name, backend, data):
    """For a mean-reduced loss, the gradient of the batch equals the mean of the gradients of its
    examples one by one: shared inputs get the mean, per-example inputs 1/n of their own."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    n = np.shape(example.inputs[0])[0]
    assume(n > 1)
    batch = forward_backward(spec, example, backend)[1]
    singles = []
    for i in range(n):
        inputs = tuple(
            x[i : i + 1] if j in BATCHED[name] or j in spec.labels else x for j, x in enumerate(example.inputs)
        )
        singles.append(forward_backward(spec, Example(inputs, {}, example.dout), backend)[1])
    for j, (g, grad_name) in enumerate(zip(batch, spec.grads, strict=True)):
        if g is None:
            continue
        if j in BATCHED[name]:
            mean = np.concatenate([single[j] for single in singles]) / n
        else:
            mean = sum(single[j] for single in singles) / n
        assert np.max(np.abs(g - mean), initial=0.0) <= tolerance(spec, example, np.float64, grad_name)


@pytest.mark.jax
@pytest.mark.parametrize("name", VECTOR)
@settings(max_examples=max(5, settings().max_examples // 4))  # each example compiles: keep them few
@given(data=st.data())
def test_layer_runs_inside_jit(name, dtype, data):
    """forward and backward traced by jax.jit (no Python branching on values) give the eager answer."""
    spec = SPECS[name]
    example = data.draw(examples(spec, dtype))

    @jax.jit
    def step(inputs, dout):
        layer = spec.layer(**example.kwargs)
        return layer.forward(*inputs), layer.backward(dout)

    inputs = tuple(backend_array("jax", x) for x in example.inputs)
    out, grads = step(inputs, backend_array("jax", example.dout))
    eager_out, eager_grads = forward_backward(spec, example, "jax")
    grads = grads if isinstance(grads, tuple) else (grads,)
    for o, eager in zip(jax.tree.leaves(as_numpy(out)), jax.tree.leaves(eager_out), strict=True):
        assert np.max(np.abs(o - eager)) <= tolerance(spec, example, dtype)
    for g, eager, name in zip(grads, eager_grads, spec.grads, strict=True):
        if eager is None:
            assert g is None
        else:
            error = np.max(np.abs(as_numpy(g) - eager), initial=0.0)
            assert error <= tolerance(spec, example, dtype, name)


BAD_SHAPES = [
    ("vector.affine", [(2, 3), (4, 5), (5,)], "X (2, 3), W (4, 5), b (5,)"),
    ("vector.affine", [(2, 3), (3, 5), (4,)], "X (2, 3), W (3, 5), b (4,)"),
    ("vector.affine", [(3,), (3, 5), (5,)], "X (3,), W (3, 5), b (5,)"),
    ("vector.squared_loss", [(2, 3), (2, 4)], "Y_hat (2, 3), Y (2, 4)"),
    ("vector.squared_loss", [(3,), (3,)], "Y_hat (3,), Y (3,)"),
    ("vector.hinge_loss", [(2, 3), (3,)], "scores (2, 3), labels (3,)"),
    ("vector.softmax_cross_entropy", [(2, 3), (2, 1)], "scores (2, 3), labels (2, 1)"),
    ("vector.mlp", [(2, 3), (3, 4), (4,), (4, 5), (5,), (2, 4)], "Y (2, 4)"),
    ("vector.mlp", [(2, 3), (2, 4), (4,), (4, 5), (5,), (2, 5)], "W1 (2, 4)"),
    ("vector.softmax", [(2, 3)], "Z (2, 3)"),
    # an empty batch would divide 0 by 0
    ("vector.squared_loss", [(0, 2), (0, 2)], "Y_hat (0, 2), Y (0, 2)"),
    ("vector.softmax_cross_entropy", [(0, 2), (0,)], "scores (0, 2), labels (0,)"),
]


@pytest.mark.parametrize(("name", "shapes", "named"), BAD_SHAPES)
def test_shapes_that_do_not_fit_raise(name, shapes, named, backend):
    """Inputs whose shapes do not fit raise ValueError naming the shapes."""
    spec = SPECS[name]
    inputs = [np.zeros(s, np.int64 if i in spec.labels else np.float64) for i, s in enumerate(shapes)]
    layer = spec.layer(axis=2) if name == "vector.softmax" else spec.layer()
    with pytest.raises(ValueError, match=re.escape(named)):
        layer.forward(*(backend_array(backend, x) for x in inputs))


@pytest.mark.parametrize("name", ["vector.hinge_loss", "vector.softmax_cross_entropy"])
@pytest.mark.parametrize("labels", [[0, 3], [-1, 0]])
def test_labels_outside_the_classes_raise(name, labels, backend):
    """Labels outside [0, k) raise ValueError saying the range, on eager inputs."""
    layer = SPECS[name].layer()
    with pytest.raises(ValueError, match=re.escape("labels must lie in [0, 3)")):
        layer.forward(backend_array(backend, np.zeros((2, 3))), backend_array(backend, np.array(labels)))


@pytest.mark.parametrize("name", ["vector.hinge_loss", "vector.softmax_cross_entropy"])
def test_float_labels_raise(name, backend):
    """Labels that are not integers raise TypeError."""
    layer = SPECS[name].layer()
    with pytest.raises(TypeError, match="labels must be integers"):
        layer.forward(backend_array(backend, np.zeros((2, 3))), backend_array(backend, np.array([0.0, 1.0])))


@pytest.mark.parametrize("name", ["vector.hinge_loss", "vector.softmax_cross_entropy"])
def test_labels_may_be_a_list(name, backend):
    """Labels given as a Python list of ints work like an integer array."""
    Z = backend_array(backend, np.array([[0.0, 1.0], [2.0, 0.5]]))
    from_list, from_array = SPECS[name].layer(), SPECS[name].layer()
    assert as_numpy(from_list.forward(Z, [1, 0])) == as_numpy(from_array.forward(Z, np.array([1, 0])))
    np.testing.assert_array_equal(as_numpy(from_list.backward(1.0)[0]), as_numpy(from_array.backward(1.0)[0]))


@pytest.mark.parametrize("name", ["vector.hinge_loss", "vector.softmax_cross_entropy"])
def test_labels_changed_after_forward_do_not_change_backward(name):
    """backward answers for the labels forward saw, though the caller reuses its label array."""
    Z, labels = np.array([[0.0, 1.0, 3.0], [2.0, 0.5, 1.0]]), np.array([1, 0])
    fresh, reused = SPECS[name].layer(), SPECS[name].layer()
    fresh.forward(Z, labels.copy())
    reused.forward(Z, labels)
    labels[:] = [2, 2]
    np.testing.assert_array_equal(reused.backward(1.0)[0], fresh.backward(1.0)[0])


@pytest.mark.parametrize("name", ["vector.affine", "vector.mlp"])
@given(data=st.data())
def test_input_grad_false_skips_dX_and_changes_nothing_else(name, backend, dtype, data):
    """``input_grad=False`` gives ``None`` for dX and, bit for bit, the default's output and other
    gradients (the contract's default still returns dX)."""
    spec = SPECS[name]
    example = data.draw(examples(spec, dtype))
    inputs = [backend_array(backend, x) for x in example.inputs]
    full, lean = spec.layer(), spec.layer(input_grad=False)
    out, grads = full.forward(*inputs), full.backward(backend_array(backend, example.dout))
    lean_out, lean_grads = lean.forward(*inputs), lean.backward(backend_array(backend, example.dout))
    assert grads[0] is not None
    assert lean_grads[0] is None
    np.testing.assert_array_equal(as_numpy(lean_out), as_numpy(out))
    for g, h in zip(grads[1:], lean_grads[1:], strict=True):
        np.testing.assert_array_equal(as_numpy(h), as_numpy(g))


@given(data=st.data())
def test_softmax_cross_entropy_backward_is_the_one_hot_formula_bit_for_bit(backend, dtype, data):
    """SoftmaxCrossEntropy subtracts at each label instead of building a one-hot array (faster in
    jax.jit on the CPU): ``dZ`` is still ``(dl / n) * (softmax(Z) - onehot)``, bit for bit."""
    spec = SPECS["vector.softmax_cross_entropy"]
    example = data.draw(examples(spec, dtype))
    Z, labels = (backend_array(backend, x) for x in example.inputs)
    layer = spec.layer()
    layer.forward(Z, labels)
    dl = backend_array(backend, example.dout)
    dZ, _ = layer.backward(dl)
    p, labels = as_numpy(layer.p), np.asarray(labels)
    one_hot = np.arange(p.shape[1]) == labels[:, None]
    expected = (as_numpy(dl).astype(p.dtype) / p.shape[0]) * (p - one_hot)
    # XLA on CPU flushes a subnormal result to 0 (p = exp(-708) times dl / n): so may a jax layer
    subnormal = np.abs(expected) < np.finfo(p.dtype).smallest_normal
    expected = np.where(subnormal & (backend == "jax") & (as_numpy(dZ) == 0), 0.0, expected)
    assert as_numpy(dZ).dtype == expected.dtype
    np.testing.assert_array_equal(as_numpy(dZ), expected)
