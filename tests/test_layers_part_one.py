"""Tanh, LeakyReLU, Dropout, Embedding, Linear, MeanSquaredError, BinaryCrossEntropyWithLogits
beyond the oracle test: their kinks and edges pinned exactly, NaN, huge inputs, errors word for
word, and a gradient wrong by one part in a million failing for every one of their gradients."""

import re

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from handlayers import vector
from handlayers.testing import SPECS, Example, arrays, check_example, examples, grid, library, oracle, to_backend
from tests.helpers import as_numpy, backend_array

PART_ONE = [
    "vector.tanh",
    "vector.leaky_relu",
    "vector.dropout",
    "vector.embedding",
    "vector.linear",
    "vector.mean_squared_error",
    "vector.binary_cross_entropy_with_logits",
]


def as_inputs(spec, inputs, dtype):
    """``inputs`` as numpy arrays: the floating ones in ``dtype``, the others as they are."""
    return tuple(np.asarray(x) if i in spec.labels else np.asarray(x, dtype) for i, x in enumerate(inputs))


def forward_backward(spec, example, backend):
    """Output and gradients (as numpy, None kept) of ``spec.layer`` on ``example``."""
    layer = spec.layer(**example.kwargs)
    out = layer.forward(*(backend_array(backend, x) for x in example.inputs))
    grads = layer.backward(backend_array(backend, example.dout))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return as_numpy(out), tuple(None if g is None else as_numpy(g) for g in grads)


# (reference, inputs, kwargs, dout, output, gradients): each value rounds correctly to either dtype
EDGES = [
    # LeakyReLU at exactly 0 takes the slope alpha, as on the negative side
    ("vector.leaky_relu", ([[0.0, -2.0, 3.0]],), {}, [[1.0, 2.0, 4.0]], [[0.0, -0.02, 3.0]], ([[0.01, 0.02, 4.0]],)),
    ("vector.leaky_relu", ([[0.0, -2.0]],), {"alpha": 0.25}, [[2.0, 4.0]], [[0.0, -0.5]], ([[0.5, 1.0]],)),
    # p = 0: kept units pass unchanged, dropped ones are still dropped
    ("vector.dropout", ([[1.5, -2.0]], [[True, True]]), {"p": 0.0}, [[3.0, 5.0]], [[1.5, -2.0]], ([[3.0, 5.0]], None)),
    ("vector.dropout", ([[1.5, -2.0]], [[True, False]]), {"p": 0.0}, [[3.0, 5.0]], [[1.5, 0.0]], ([[3.0, 0.0]], None)),
    # every unit dropped: nothing passes, either way
    ("vector.dropout", ([[1.5, -2.0]], [[False, False]]), {}, [[3.0, 5.0]], [[0.0, 0.0]], ([[0.0, 0.0]], None)),
    # the default p = 0.5 doubles the kept units
    ("vector.dropout", ([[1.5, -2.0]], [[False, True]]), {}, [[3.0, 5.0]], [[0.0, -4.0]], ([[0.0, 10.0]], None)),
    # every index the same: that row gets the sum of every dout row, the others nothing
    (
        "vector.embedding",
        ([1, 1, 1], [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
        {},
        [[1.0, 2.0], [3.0, 4.0], [0.5, 0.25]],
        [[3.0, 4.0], [3.0, 4.0], [3.0, 4.0]],
        (None, [[0.0, 0.0], [4.5, 6.25], [0.0, 0.0]]),
    ),
    # an (n, t) batch of indices, repeats across examples
    (
        "vector.embedding",
        ([[0, 2], [2, 2]], [[1.0], [3.0], [5.0]]),
        {},
        [[[1.0], [2.0]], [[4.0], [8.0]]],
        [[[1.0], [5.0]], [[5.0], [5.0]]],
        (None, [[1.0], [0.0], [14.0]]),
    ),
    # logits of +-1e4 with targets of exactly 0 and 1: right (loss 0, dZ 0) or wrong by 1e4 (dZ +-1/size)
    (
        "vector.binary_cross_entropy_with_logits",
        ([[1e4, -1e4], [1e4, -1e4]], [[1.0, 0.0], [0.0, 1.0]]),
        {},
        1.0,
        5000.0,
        ([[0.0, 0.0], [0.25, -0.25]], [[-2500.0, 2500.0], [-2500.0, 2500.0]]),
    ),
    # Z == 0: dZ = (sigmoid(0) - Y) / size, not the -Y / size of autodiff of the formula as written
    ("vector.binary_cross_entropy_with_logits", ([0.0, 0.0], [0.0, 1.0]), {}, 2.0, None, ([0.5, -0.5], [0.0, 0.0])),
    # tanh(0) = 0 with slope 1
    ("vector.tanh", ([[0.0, 0.0]],), {}, [[3.0, -0.5]], [[0.0, 0.0]], ([[3.0, -0.5]],)),
]


@pytest.mark.parametrize(("name", "inputs", "kwargs", "dout", "output", "grads"), EDGES)
def test_edge_follows_the_contract_exactly(name, inputs, kwargs, dout, output, grads, backend, dtype):
    """At a kink or an edge, forward and backward give exactly the contract's values (rounded to the
    dtype), and so does the oracle (in float64); the check passes."""
    spec = SPECS[name]
    example = Example(as_inputs(spec, inputs, dtype), kwargs, np.asarray(dout, dtype))
    out, got = forward_backward(spec, example, backend)
    expected_out, expected_grads = oracle(spec, example)
    if output is not None:  # log(2) is no exact number
        np.testing.assert_array_equal(out, np.asarray(output, dtype))
        np.testing.assert_array_equal(expected_out, output)
    for g, oracle_g, want in zip(got, expected_grads, grads, strict=True):
        if want is None:
            assert g is None
            assert oracle_g is None
        else:
            np.testing.assert_array_equal(g, np.asarray(want, dtype))
            np.testing.assert_array_equal(oracle_g, want)
    check_example(spec.layer, spec, example, backend=backend, dtype=dtype)


# (reference, inputs, kwargs, where the output is NaN): one NaN input entry each
NAN = [
    ("vector.tanh", ([[np.nan, 1.0]],), {}, [[True, False]]),
    ("vector.leaky_relu", ([[np.nan, -1.0]],), {}, [[True, False]]),
    # a dropped NaN stays NaN: dropout multiplies by keep
    ("vector.dropout", ([[np.nan, np.nan, 1.0]], [[False, True, False]]), {}, [[True, True, False]]),
    ("vector.embedding", ([2, 0, 2], [[1.0], [2.0], [np.nan]]), {}, [[True], [False], [True]]),
    ("vector.linear", ([[np.nan, 1.0], [1.0, 1.0]], [[1.0, 2.0]], [0.5]), {}, [[True], [False]]),
    ("vector.mean_squared_error", ([[np.nan, 1.0]], [[0.0, 0.0]]), {}, True),
    ("vector.binary_cross_entropy_with_logits", ([[1.0, 2.0]], [[np.nan, 0.5]]), {}, True),
    ("vector.binary_cross_entropy_with_logits", ([[np.nan, 2.0]], [[1.0, 0.5]]), {}, True),
]


@pytest.mark.parametrize(("name", "inputs", "kwargs", "nan"), NAN)
def test_nan_reaches_every_output_entry_that_depends_on_it(name, inputs, kwargs, nan, backend):
    """A NaN input makes exactly the output entries that depend on it NaN (no layer turns NaN into a number)."""
    spec = SPECS[name]
    layer = spec.layer(**kwargs)
    out = layer.forward(*(backend_array(backend, x) for x in as_inputs(spec, inputs, np.float64)))
    np.testing.assert_array_equal(np.isnan(as_numpy(out)), nan)


@pytest.mark.jax
@pytest.mark.parametrize(("name", "inputs", "kwargs", "nan"), NAN)
def test_nan_reaches_every_output_entry_that_depends_on_it_inside_jit(name, inputs, kwargs, nan):
    """Inside jax.jit too, where XLA may rewrite a product with a mask as a select, NaN reaches
    exactly the output entries that depend on it; and so it does in the reference."""
    spec = SPECS[name]
    inputs = tuple(jax.numpy.asarray(x) for x in as_inputs(spec, inputs, np.float64))
    out = jax.jit(lambda *xs: spec.layer(**kwargs).forward(*xs))(*inputs)
    np.testing.assert_array_equal(np.isnan(as_numpy(out)), nan)
    out = jax.jit(lambda *xs: spec.reference(*xs, **kwargs))(*inputs)
    np.testing.assert_array_equal(np.isnan(as_numpy(out)), nan)


@pytest.mark.parametrize(
    ("name", "inputs", "kwargs"),
    [
        ("vector.tanh", ([[1e308, -1e308, 20.0]],), {}),
        ("vector.leaky_relu", ([[1e308, -1e308]],), {}),
        # each term divided by size before the sum: 1.7e308 / 2 twice, not 1.7e308 twice
        ("vector.binary_cross_entropy_with_logits", ([1.7e308, -1.7e308], [0.0, 1.0]), {}),
        ("vector.binary_cross_entropy_with_logits", ([1e308, -1e308, 0.0], [0.5, 0.5, 0.5]), {}),
    ],
)
def test_huge_finite_inputs_give_finite_results_and_no_warning(name, inputs, kwargs, backend):
    """For finite inputs of any size (here near float64's largest), output and gradients are finite,
    with no floating-point warning (pytest turns warnings into errors)."""
    spec = SPECS[name]
    example = Example(as_inputs(spec, inputs, np.float64), kwargs, None)
    layer = spec.layer(**kwargs)
    out = layer.forward(*(backend_array(backend, x) for x in example.inputs))
    grads = layer.backward(backend_array(backend, np.ones(np.shape(out))))
    assert np.all(np.isfinite(as_numpy(out)))
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert np.all(np.isfinite(as_numpy(g)))


def test_huge_float32_logits_give_a_finite_loss(backend):
    """BCE of float32 logits near float32's largest is finite in float32 (their mean is)."""
    Z, Y = np.array([3e38, -3e38], np.float32), np.array([0.0, 1.0], np.float32)
    layer = vector.BinaryCrossEntropyWithLogits()
    loss = as_numpy(layer.forward(backend_array(backend, Z), backend_array(backend, Y)))
    assert loss.dtype == np.float32
    assert np.isfinite(loss)


# One ordinary example per layer, away from every kink, every gradient entry nonzero (or None):
# (reference, inputs, kwargs, dout)
ORDINARY = [
    ("vector.tanh", ([[0.5, -1.25]],), {}, [[1.0, -2.0]]),
    ("vector.leaky_relu", ([[0.5, -1.25]],), {"alpha": 0.2}, [[1.0, -2.0]]),
    ("vector.dropout", ([[0.5, -1.25]], [[True, True]]), {"p": 0.25}, [[1.0, -2.0]]),
    ("vector.embedding", ([[0, 1], [1, 1]], [[0.5, -1.0], [2.0, 3.0]]), {}, [[[1.0, 2.0], [3.0, 4.0]]] * 2),
    (
        "vector.linear",
        ([[1.0, 2.0], [3.0, -1.0]], [[0.5, -1.5], [2.0, 1.0], [1.0, 1.0]], [1.0, -2.0, 0.5]),
        {},
        [[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]],
    ),
    ("vector.mean_squared_error", ([[1.0, 2.0], [3.0, -1.0]], [[0.5, 4.0], [1.0, 1.0]]), {}, 1.5),
    ("vector.binary_cross_entropy_with_logits", ([[1.0, -2.0], [3.0, 0.5]], [[1.0, 0.0], [0.25, 0.5]]), {}, 1.5),
]


def ordinary(name):
    """The spec and ordinary example for ``name``, in float64."""
    _, inputs, kwargs, dout = next(case for case in ORDINARY if case[0] == name)
    spec = SPECS[name]
    return spec, Example(as_inputs(spec, inputs, np.float64), kwargs, np.asarray(dout, np.float64))


def with_change(spec, change):
    """``spec.layer`` whose output and gradients pass through ``change(index, value)`` (output: -1)."""

    class Changed(spec.layer):
        def forward(self, *inputs):
            return change(-1, super().forward(*inputs))

        def backward(self, dout):
            grads = super().backward(dout)
            grads = grads if isinstance(grads, tuple) else (grads,)
            changed = tuple(change(i, g) for i, g in enumerate(grads))
            return changed[0] if len(changed) == 1 else changed

    return Changed


@pytest.mark.parametrize(
    ("name", "index"),
    [(name, i) for name in PART_ONE for i in range(-1, len(SPECS[name].args)) if i not in SPECS[name].labels],
)
def test_a_value_wrong_by_one_part_in_a_million_fails(name, index):
    """In float64, the output (index -1) or any one gradient scaled by 1 + 1e-6 fails the check,
    naming that value, while the layer itself passes on the same example."""
    spec, example = ordinary(name)
    assert check_example(spec.layer, spec, example) < 1
    wrong = with_change(spec, lambda i, g: g * (1 + 1e-6) if i == index else g)
    named = "output" if index == -1 else spec.grads[index]
    with pytest.raises(AssertionError, match=f"{named}: WRONG: worst error"):
        check_example(wrong, spec, example)


# Errors, word for word: (layer, keywords, inputs, exception, the whole message)
ERRORS = [
    (vector.Dropout, {}, (np.ones((2, 3)), np.ones((3, 2), bool)), ValueError,
     "Dropout: expected keep of A's shape; got A (2, 3), keep (3, 2)"),
    (vector.Dropout, {}, (np.ones((2, 3)), np.ones((2, 3))), TypeError,
     "Dropout: keep must be boolean, got dtype float64"),
    (vector.Dropout, {}, (np.ones(2), np.array([1, 0])), TypeError, "Dropout: keep must be boolean, got dtype int64"),
    (vector.Embedding, {}, (np.array([0, 3]), np.ones((3, 2))), ValueError,
     "Embedding: idx must lie in [0, 3), got values from 0 to 3"),
    (vector.Embedding, {}, (np.array([[-1], [2]]), np.ones((3, 2))), ValueError,
     "Embedding: idx must lie in [0, 3), got values from -1 to 2"),
    (vector.Embedding, {}, (np.array([0.0, 1.0]), np.ones((3, 2))), TypeError,
     "Embedding: idx must be integers, got dtype float64"),
    (vector.Embedding, {}, (np.array([True]), np.ones((3, 2))), TypeError,
     "Embedding: idx must be integers, got dtype bool"),
    (vector.Embedding, {}, (np.array([0]), np.ones(3)), ValueError,
     "Embedding: expected idx of any shape and W (V, d); got idx (1,), W (3,)"),
    # Affine's layout (d_in, d_out) where Linear wants torch's (d_out, d_in)
    (vector.Linear, {}, (np.ones((2, 3)), np.ones((3, 4)), np.ones(4)), ValueError,
     "Linear: expected X (n, d_in), W (d_out, d_in), b (d_out,); got X (2, 3), W (3, 4), b (4,)"),
    (vector.Linear, {}, (np.ones((2, 3)), np.ones((4, 3)), np.ones(3)), ValueError,
     "Linear: expected X (n, d_in), W (d_out, d_in), b (d_out,); got X (2, 3), W (4, 3), b (3,)"),
    (vector.MeanSquaredError, {}, (np.ones((2, 3)), np.ones(3)), ValueError,
     "MeanSquaredError: expected Y_hat and Y of one shape with at least one entry; got Y_hat (2, 3), Y (3,)"),
    # an empty mean would be 0/0
    (vector.MeanSquaredError, {}, (np.ones((0, 3)), np.ones((0, 3))), ValueError,
     "MeanSquaredError: expected Y_hat and Y of one shape with at least one entry; got Y_hat (0, 3), Y (0, 3)"),
    (vector.BinaryCrossEntropyWithLogits, {}, (np.ones(2), np.ones((2, 1))), ValueError,
     "BinaryCrossEntropyWithLogits: expected Z and Y of one shape with at least one entry; got Z (2,), Y (2, 1)"),
    (vector.BinaryCrossEntropyWithLogits, {}, (np.ones(0), np.ones(0)), ValueError,
     "BinaryCrossEntropyWithLogits: expected Z and Y of one shape with at least one entry; got Z (0,), Y (0,)"),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "kwargs", "inputs", "error", "message"), ERRORS)
def test_bad_input_raises_a_clear_error(layer, kwargs, inputs, error, message, backend):
    """Inputs of the wrong shape, dtype or range raise this exception with exactly this message,
    on every backend, and leave nothing for backward."""
    instance = layer(**kwargs)
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        instance.forward(*(backend_array(backend, x) for x in inputs))
    with pytest.raises(RuntimeError):
        instance.backward(1.0)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_dropout_refuses_p_outside_zero_to_one(p):
    """Dropout's p must lie in [0, 1): anything else, NaN included, raises ValueError at construction."""
    with pytest.raises(ValueError, match=re.escape(f"Dropout: p must lie in [0, 1), got {p!r}")):
        vector.Dropout(p=p)


@pytest.mark.jax
def test_indices_out_of_range_are_not_checked_inside_jit():
    """Inside jax.jit the indices are unknown values: forward and backward trace without checking them."""

    @jax.jit
    def step(idx, W):
        layer = vector.Embedding()
        return layer.forward(idx, W), layer.backward(jax.numpy.ones((2, 1)))[1]

    out, dW = step(jax.numpy.array([0, 5]), jax.numpy.arange(3.0)[:, None])
    assert out.shape == (2, 1)
    assert dW.shape == (3, 1)


@pytest.mark.parametrize("name", ["vector.dropout", "vector.embedding"])
def test_a_mask_or_indices_changed_after_forward_do_not_change_backward(name):
    """backward answers for the mask or indices forward saw, though the caller reuses its array."""
    spec, example = ordinary(name)
    position = spec.labels[0]
    fresh, reused = spec.layer(**example.kwargs), spec.layer(**example.kwargs)
    fresh.forward(*(np.array(x) for x in example.inputs))
    inputs = [np.array(x) for x in example.inputs]
    reused.forward(*inputs)
    inputs[position][...] = 0  # the caller reuses its array: every unit dropped, every index 0
    for g, h in zip(fresh.backward(example.dout), reused.backward(example.dout), strict=True):
        assert (g is None and h is None) or np.array_equal(g, h)


@given(data=st.data())
def test_embedding_dW_is_the_sum_in_order_of_the_rows_each_index_reads(backend, data):
    """Each row v of dW is the sum of the dout rows whose index is v (0 if none), exactly (dout on a
    grid: no rounding, in any order): repeated indices add up, none is lost as a buffered
    assignment (``dW[idx] += dout``) loses them."""
    drawn = data.draw(examples(SPECS["vector.embedding"]))
    idx, W = drawn.inputs
    example = Example(drawn.inputs, {}, data.draw(arrays(np.float64, np.shape(drawn.dout), grid(8.0))))
    _, (dI, dW) = forward_backward(SPECS["vector.embedding"], example, backend)
    rows = np.reshape(example.dout, (-1, W.shape[1]))
    expected = np.zeros_like(W)
    for i, v in enumerate(idx.ravel()):
        expected[v] += rows[i]
    assert dI is None
    np.testing.assert_array_equal(dW, expected)


@pytest.mark.parametrize("index_dtype", ["int8", "uint8", "int32", "uint64"])
def test_embedding_takes_indices_of_any_integer_dtype(index_dtype, backend):
    """Indices of any integer dtype give what int64 indices give."""
    spec, example = ordinary("vector.embedding")
    idx, W = example.inputs
    narrow = Example((idx.astype(index_dtype), W), {}, example.dout)
    out, grads = forward_backward(spec, narrow, backend)
    wide_out, wide_grads = forward_backward(spec, example, backend)
    np.testing.assert_array_equal(out, wide_out)
    np.testing.assert_array_equal(grads[1], wide_grads[1])


@given(data=st.data(), shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=3))
def test_dropout_backward_is_the_forward_map_applied_to_dout(data, shape, backend):
    """Dropout is linear in A: backward(d) is forward applied to d with the same mask, bit for bit."""
    A = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, 10, allow_subnormal=False)))
    d = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-10, 10, allow_subnormal=False)))
    keep = data.draw(hnp.arrays(bool, shape))
    p = data.draw(st.sampled_from([0.0, 0.25, 0.5, 0.9]))
    layer = vector.Dropout(p=p)
    layer.forward(backend_array(backend, A), backend_array(backend, keep))
    dA, dkeep = layer.backward(backend_array(backend, d))
    assert dkeep is None
    again = vector.Dropout(p=p).forward(backend_array(backend, d), backend_array(backend, keep))
    np.testing.assert_array_equal(as_numpy(dA), as_numpy(again))


@given(data=st.data())
def test_leaky_relu_numpy_form_is_where(data):
    """LeakyReLU's branch-free numpy form gives ``where(A > 0, A, alpha * A)`` value for value (the
    sign of a zero aside), NaN included, forward and backward, in float64 and float32."""
    dtype = data.draw(st.sampled_from([np.float64, np.float32]))
    width = np.finfo(dtype).bits
    finite = st.floats(-(2.0**100), 2.0**100, width=width, allow_subnormal=False)  # alpha * A cannot overflow
    values = st.one_of(st.sampled_from([np.nan, 0.0, -0.0]), finite)
    A = data.draw(hnp.arrays(dtype, hnp.array_shapes(max_dims=2), elements=values))
    alpha = data.draw(st.sampled_from([0.01, 0.2, 0.0, 1.5, -0.5]))
    layer = vector.LeakyReLU(alpha=alpha)
    expected = np.where(A > 0, A, np.asarray(alpha, dtype) * A)
    np.testing.assert_array_equal(layer.forward(A), expected)
    np.testing.assert_array_equal(layer.backward(A), expected)


def test_leaky_relu_alpha_from_numpy_keeps_float32(backend):
    """A numpy float64 alpha does not turn a float32 LeakyReLU into a float64 one."""
    layer = vector.LeakyReLU(alpha=np.float64(0.2))
    out = layer.forward(backend_array(backend, np.array([-1.0, 2.0], np.float32)))
    assert as_numpy(out).dtype == np.float32


def test_embedding_of_no_indices_is_empty_and_sends_no_gradient(backend):
    """An empty batch of indices looks up nothing: the output is (0, d) and dW is all zeros."""
    layer = vector.Embedding()
    out = layer.forward(backend_array(backend, np.zeros(0, np.int64)), backend_array(backend, np.ones((3, 2))))
    dI, dW = layer.backward(backend_array(backend, np.zeros((0, 2))))
    assert as_numpy(out).shape == (0, 2)
    assert dI is None
    np.testing.assert_array_equal(as_numpy(dW), np.zeros((3, 2)))


@pytest.mark.parametrize("dtype_asked", [np.float64, np.float32])
def test_the_checker_hands_masks_and_indices_over_in_their_own_dtype(dtype_asked, backend):
    """A boolean mask stays boolean and indices keep their integer dtype on their way to the layer,
    in the backend's library, whatever float dtype the check runs in."""
    for x in (np.array([True, False]), np.array([2, 0], np.int32), np.array([1], np.uint8)):
        got = to_backend(x, backend, dtype_asked)
        assert library(got) == backend
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(as_numpy(got), x)
