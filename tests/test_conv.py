"""Conv2d and MaxPool2d beyond the oracle test: worked examples, the tie rule, overlapping windows,
strides, NaN, blocks of images, and errors."""

import re

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import vector
from handlayers.testing import SPECS, Example, Mismatch, check_example, examples, oracle
from handlayers.testing.tolerance import normwise_tolerance
from handlayers.vector import conv
from tests.helpers import as_numpy, backend_array


def forward_backward(layer, inputs, dout, backend, dtype=np.float64):
    """Output and gradients (as numpy) of ``layer`` on ``inputs`` and ``dout``, given in ``dtype``."""
    out = layer.forward(*(backend_array(backend, np.asarray(x, dtype)) for x in inputs))
    grads = layer.backward(backend_array(backend, np.asarray(dout, dtype)))
    grads = grads if isinstance(grads, tuple) else (grads,)
    return as_numpy(out), tuple(as_numpy(g) for g in grads)


def image(rows):
    """One example of one channel: rows (h, w) as (1, 1, h, w)."""
    return np.asarray(rows, np.float64)[None, None]


# Worked by hand: (stride, pad, X, W, b, dout, out, dX, dW, db)
CONV_EXAMPLES = [
    # stride 2 and padding 1: the padded 5 x 5 input's last row and column are never read
    pytest.param(
        2, 1, image(np.arange(1.0, 10.0).reshape(3, 3)), image([[1.0, 0.0], [0.0, -1.0]]), [0.5], np.ones((1, 1, 2, 2)),
        image([[-0.5, -2.5], [-6.5, -3.5]]),
        image([[-1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, -1.0]]),
        image([[5.0, 10.0], [10.0, 20.0]]),
        [4.0],
        id="stride 2, pad 1",
    ),
    # a kernel as large as the padded input: one output, the whole padded image times the kernel
    pytest.param(
        1, 1, image([[1.0, 2.0], [3.0, 4.0]]), image(np.arange(16.0).reshape(4, 4)), [-1.0], image([[2.0]]),
        image([[83.0]]),
        image([[10.0, 12.0], [18.0, 20.0]]),
        image([[0.0, 0.0, 0.0, 0.0], [0.0, 2.0, 4.0, 0.0], [0.0, 6.0, 8.0, 0.0], [0.0, 0.0, 0.0, 0.0]]),
        [2.0],
        id="kernel as large as the padded input",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("stride", "pad", "X", "W", "b", "dout", "out", "dX", "dW", "db"), CONV_EXAMPLES)
def test_conv2d_gives_the_worked_example(stride, pad, X, W, b, dout, out, dX, dW, db, backend, dtype):
    """Conv2d gives the output and gradients worked by hand, exactly (small integers), and so
    does the oracle."""
    got_out, got = forward_backward(vector.Conv2d(stride=stride, pad=pad), (X, W, b), dout, backend, dtype)
    np.testing.assert_array_equal(got_out, np.asarray(out, dtype))
    for g, expected in zip(got, (dX, dW, db), strict=True):
        np.testing.assert_array_equal(g, np.asarray(expected, dtype))
    example = Example((X, W, np.asarray(b)), {"stride": stride, "pad": pad}, dout)
    expected_out, expected_grads = oracle(SPECS["vector.conv2d"], example)
    np.testing.assert_array_equal(expected_out, out)
    for e, expected in zip(expected_grads, (dX, dW, db), strict=True):
        np.testing.assert_array_equal(e, expected)


# (size, stride, X, dout, dX): the first maximum in row-major order takes each window's gradient
POOL_EXAMPLES = [
    pytest.param(
        2, 2,
        image([[1, 3, 3, 0], [3, 2, 1, 1], [0, 0, 2, 2], [2, 2, 2, 1]]),
        image([[1, 2], [3, 4]]),
        image([[0, 1, 2, 0], [0, 0, 0, 0], [0, 0, 4, 0], [3, 0, 0, 0]]),
        id="ties: the first maximum",
    ),
    pytest.param(2, 2, image([[5, 5], [5, 5]]), image([[7]]), image([[7, 0], [0, 0]]), id="all tied"),
    pytest.param(
        2, 1,
        image([[0, 0, 0], [0, 9, 0], [0, 0, 0]]),
        image([[1, 2], [3, 4]]),
        image([[0, 0, 0], [0, 10, 0], [0, 0, 0]]),
        id="overlapping windows add up",
    ),
    pytest.param(
        2, 1,
        np.zeros((1, 1, 3, 3)),
        image([[1, 2], [3, 4]]),
        image([[1, 2, 0], [3, 4, 0], [0, 0, 0]]),
        id="overlapping and tied: each window's own first entry",
    ),
    pytest.param(
        3, 2,
        image([[1, 2, 2, 0, 0], [0, 2, 1, 0, 2], [0, 0, 0, 2, 2], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]),
        image([[1, 2], [3, 4]]),
        image([[0, 1, 2, 0, 0], [0, 0, 0, 0, 0], [3, 0, 0, 4, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]),
        id="3 x 3 windows sharing an edge",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("size", "stride", "X", "dout", "dX"), POOL_EXAMPLES)
def test_max_pool_sends_each_windows_gradient_to_its_first_maximum(size, stride, X, dout, dX, backend, dtype):
    """At a tie, a window's gradient goes to its first maximum in row-major order (numpy's argmax),
    overlapping windows add up, and the reference follows the same rule."""
    layer = vector.MaxPool2d(size=size, stride=stride)
    _, (got,) = forward_backward(layer, (X,), dout, backend, dtype)
    np.testing.assert_array_equal(got, np.asarray(dX, dtype))
    example = Example((np.asarray(X, np.float64),), {"size": size, "stride": stride}, np.asarray(dout, np.float64))
    np.testing.assert_array_equal(oracle(SPECS["vector.max_pool2d"], example)[1][0], dX)


@pytest.mark.parametrize("at", [(45, 43), (45, 45), (0, 1)])
def test_max_pool_routes_the_gradient_in_a_window_of_thousands_of_entries(at, dtype):
    """In a 46 x 46 window (2116 offsets, past float16's exact integers: 2113 is not one) the
    gradient reaches the maximum's own entry, wherever it lies: the offsets are counted exactly.
    numpy only: jax unrolls a window's offsets, 2116 of them here, and takes minutes to compile."""
    X = np.zeros((1, 1, 46, 46))
    X[(0, 0, *at)] = 1.0
    dX = np.zeros_like(X)
    dX[(0, 0, *at)] = 3.0
    _, (got,) = forward_backward(vector.MaxPool2d(size=46), (X,), np.full((1, 1, 1, 1), 3.0), "numpy", dtype)
    np.testing.assert_array_equal(got, dX.astype(dtype))


@pytest.mark.jax
def test_numpy_max_pool_does_not_go_through_jax():
    """numpy MaxPool2d's backward runs on numpy alone: jax's float64 switch changes none of its bits."""
    rng = np.random.default_rng(0)
    X, dout = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 2, 2, 2))
    layer = vector.MaxPool2d(size=3, stride=2)  # overlapping windows: dX adds up
    layer.forward(X)
    with jax.enable_x64(False):
        without = layer.backward(dout)
    np.testing.assert_array_equal(without, layer.backward(dout))


def test_conv2d_has_stride_1_and_no_padding_by_default():
    """Conv2d() is Conv2d(stride=1, pad=0): a 3 x 3 kernel over a 4 x 4 image gives 2 x 2."""
    X, W = np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 3, 3))
    np.testing.assert_array_equal(vector.Conv2d().forward(X, W, np.zeros(1)), [[[[45.0, 54.0], [81.0, 90.0]]]])


def test_max_pool_takes_2_x_2_windows_2_apart_by_default():
    """MaxPool2d() is MaxPool2d(size=2, stride=2): a 4 x 4 image gives 2 x 2 maxima."""
    X = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(vector.MaxPool2d().forward(X), [[[[5.0, 7.0], [13.0, 15.0]]]])


def test_pooling_indices_take_the_smallest_integer_dtype_that_holds_every_offset():
    """The first maximum's offset in a k x k window, 0 to k*k - 1, in the smallest unsigned dtype."""
    assert [conv._index_dtype(k) for k in (1, 2, 16, 17, 256, 257)] == [np.uint8] * 3 + [np.uint16] * 2 + [np.uint32]


@pytest.mark.parametrize("name", ["vector.conv2d", "vector.max_pool2d"])
@given(data=st.data())
def test_a_gradient_wrong_by_one_part_in_a_million_fails(name, data):
    """In float64, each gradient of Conv2d and MaxPool2d scaled by 1 + 1e-6 fails the check."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    for index, name_ in enumerate(spec.grads):

        class Wrong(spec.layer):
            def backward(self, dout, index=index):
                grads = super().backward(dout)
                grads = grads if isinstance(grads, tuple) else (grads,)
                wrong = tuple(g * (1 + 1e-6) if i == index else g for i, g in enumerate(grads))
                return wrong if len(wrong) > 1 else wrong[0]

        expected = oracle(spec, example)[1][index]
        if np.max(np.abs(expected)) * 1e-6 > normwise_tolerance(example, np.float64, expected, spec.degree):
            with pytest.raises(Mismatch, match=f"{name_}: WRONG"):
                check_example(Wrong, spec, example)


@given(data=st.data())
def test_a_strided_convolution_is_the_stride_1_one_subsampled(backend, data):
    """Conv2d(stride=s) is Conv2d(stride=1) at every s-th position, and its gradients are those of
    stride 1 with dout spread out by zeros (no oracle; in numpy the two share no polyphase plane)."""
    spec = SPECS["vector.conv2d"]
    example = data.draw(examples(spec).filter(lambda e: e.kwargs["stride"] > 1))
    s, pad = example.kwargs["stride"], example.kwargs["pad"]
    out, grads = forward_backward(vector.Conv2d(stride=s, pad=pad), example.inputs, example.dout, backend)
    oh, ow = out.shape[2:]
    dense = vector.Conv2d(pad=pad)
    dense_out = as_numpy(dense.forward(*(backend_array(backend, x) for x in example.inputs)))
    sampled = dense_out[:, :, : s * oh : s, : s * ow : s]
    spread = np.zeros(dense_out.shape)
    spread[:, :, : s * oh : s, : s * ow : s] = example.dout
    dense_grads = dense.backward(backend_array(backend, spread))
    # each side lies within the tolerance of the exact value
    assert np.max(np.abs(out - sampled)) <= 2 * normwise_tolerance(example, np.float64, sampled, 2, output=True)
    for g, expected in zip(grads, dense_grads, strict=True):
        error = np.max(np.abs(g - as_numpy(expected)))
        assert error <= 2 * normwise_tolerance(example, np.float64, as_numpy(expected), 1)


def test_conv2d_where_autodiff_of_lax_conv_aborts_xla(backend, dtype):
    """X (1, 3, 6, 4), W (3, 3, 7, 2), stride 2, pad 1: autodiff of lax.conv_general_dilated
    aborts the process in XLA's algebraic simplifier here (jax 0.10.2); the layer and the
    oracle compute it."""
    rng = np.random.default_rng(0)
    X, W, b = rng.standard_normal((1, 3, 6, 4)), rng.standard_normal((3, 3, 7, 2)), rng.standard_normal(3)
    example = Example((X, W, b), {"stride": 2, "pad": 1}, rng.standard_normal((1, 3, 1, 3)))
    check_example(vector.Conv2d, SPECS["vector.conv2d"], example, backend=backend, dtype=dtype)


@pytest.mark.parametrize("block_bytes", [1, 4, 20, 50, 2000])
def test_numpy_conv_gives_the_same_answer_in_blocks_of_any_size(block_bytes, monkeypatch):
    """The numpy convolution takes the images a few at a time: one at a time (a block smaller
    than an image's rows), or in blocks of three then two (forward) and two, two, one (backward),
    it still matches the oracle."""
    rng = np.random.default_rng(0)
    X, W, b = rng.standard_normal((5, 2, 4, 3)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal(3)
    example = Example((X, W, b), {"stride": 1, "pad": 1}, rng.standard_normal((5, 3, 5, 4)))
    # an image's rows are 25 long (5 output rows of 5 padded columns): 3 * 25 * 8 = 600 bytes in
    # forward (f channels), (3 + 2) * 25 * 8 = 1000 in backward (f + c)
    monkeypatch.setattr(conv, "_BLOCK_BYTES", block_bytes)
    check_example(vector.Conv2d, SPECS["vector.conv2d"], example)


def test_numpy_conv_in_blocks_of_one_image_with_more_channels_than_columns(monkeypatch):
    """Blocks of one image where each image has a single output position (rows of 2 columns) and
    four output channels, 64 bytes a row against 50 a block: the same answer as the oracle."""
    rng = np.random.default_rng(1)
    X, W, b = rng.standard_normal((5, 2, 2, 2)), rng.standard_normal((4, 2, 2, 2)), rng.standard_normal(4)
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 50)
    check_example(vector.Conv2d, SPECS["vector.conv2d"], Example((X, W, b), {}, rng.standard_normal((5, 4, 1, 1))))


def conv_depends(X_shape, W_shape, stride, pad, where):
    """Which outputs of a convolution read input position ``where`` (a boolean array)."""
    X = np.zeros(X_shape)
    X[where] = 1.0
    indicator = vector.Conv2d(stride=stride, pad=pad).forward(X, np.ones(W_shape), np.zeros(W_shape[0]))
    return indicator > 0


@pytest.mark.parametrize("name", ["vector.conv2d", "vector.max_pool2d"])
@given(data=st.data())
def test_nan_reaches_every_output_that_depends_on_it(name, backend, data):
    """A NaN in X makes NaN every output entry whose window holds it, and no other."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    X = np.array(example.inputs[0])
    where = tuple(data.draw(st.integers(0, size - 1)) for size in X.shape)
    X[where] = np.nan
    inputs = (X, *example.inputs[1:])
    out = as_numpy(spec.layer(**example.kwargs).forward(*(backend_array(backend, x) for x in inputs)))
    if name == "vector.conv2d":
        depends = conv_depends(X.shape, example.inputs[1].shape, example.kwargs["stride"], example.kwargs["pad"], where)
    else:
        k, s = example.kwargs["size"], example.kwargs["stride"]
        rows = np.arange(out.shape[2])[:, None] * s + np.arange(k) == where[2]
        cols = np.arange(out.shape[3])[:, None] * s + np.arange(k) == where[3]
        depends = np.zeros(out.shape, bool)
        depends[where[0], where[1]] = rows.any(axis=1)[:, None] & cols.any(axis=1)
    np.testing.assert_array_equal(np.isnan(out), depends)


CONV_ERRORS = [
    # (X, W, b, stride, pad, the message's middle)
    ((2, 3, 4, 4), (5, 2, 3, 3), (5,), 1, 0, "expected X and W with the same channels c"),
    ((2, 3, 4, 4), (5, 3, 7, 3), (5,), 1, 1, "no larger than the padded input (h + 2*pad, w + 2*pad) = (6, 6)"),
    ((2, 3, 4, 4), (5, 3, 3, 5), (5,), 1, 0, "no larger than the padded input (h + 2*pad, w + 2*pad) = (4, 4)"),
    ((2, 3, 4, 4), (5, 3, 0, 3), (5,), 1, 0, "a kernel (hh, ww) no larger"),
    ((2, 3, 4, 4), (5, 3, 3, 3), (4,), 1, 0, "expected X (n, c, h, w), W (f, c, hh, ww), b (f,)"),
    ((3, 4, 4), (5, 3, 3, 3), (5,), 1, 0, "expected X (n, c, h, w), W (f, c, hh, ww), b (f,)"),
]


@pytest.mark.parametrize(("X", "W", "b", "stride", "pad", "message"), CONV_ERRORS)
def test_conv2d_shapes_that_do_not_fit_raise(X, W, b, stride, pad, message, backend):
    """Channels that do not match, a kernel larger than the padded input (or empty), or inputs of
    the wrong rank raise ValueError naming the reason and every shape."""
    inputs = [backend_array(backend, np.zeros(s)) for s in (X, W, b)]
    shapes = f"got X {X}, W {W}, b {b}"
    with pytest.raises(ValueError, match="^Conv2d: .*" + re.escape(message) + ".*" + re.escape(shapes)):
        vector.Conv2d(stride=stride, pad=pad).forward(*inputs)


@pytest.mark.parametrize(
    ("layer", "kwargs", "error", "message"),
    [
        (vector.Conv2d, {"stride": 0}, ValueError, "Conv2d: stride must be at least 1, got 0"),
        (vector.Conv2d, {"pad": -1}, ValueError, "Conv2d: pad must be at least 0, got -1"),
        (vector.Conv2d, {"stride": 1.5}, TypeError, "Conv2d: stride must be an integer, got 1.5"),
        (vector.MaxPool2d, {"size": 0}, ValueError, "MaxPool2d: size must be at least 1, got 0"),
        (vector.MaxPool2d, {"stride": 0}, ValueError, "MaxPool2d: stride must be at least 1, got 0"),
    ],
)
def test_hyperparameters_out_of_range_raise(layer, kwargs, error, message):
    """A stride below 1, a negative padding, an empty window or a non-integer raises at once."""
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        layer(**kwargs)


def test_hyperparameters_may_be_numpy_integers():
    """Integer hyperparameters of any integer type become Python ints."""
    layer = vector.Conv2d(stride=np.int64(2), pad=np.int32(1))
    assert (type(layer.stride), type(layer.pad)) == (int, int)


@pytest.mark.parametrize(
    ("shape", "size"), [((1, 1, 2, 4), 3), ((1, 1, 4, 2), 3), ((1, 4, 4), 2)], ids=["short", "narrow", "3-d"]
)
def test_max_pool_of_an_image_smaller_than_its_window_raises(shape, size, backend):
    """An image smaller than the window, or not (n, c, h, w), raises ValueError naming it."""
    message = f"MaxPool2d: expected X (n, c, h, w) with h, w >= size {size}; got X {shape}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        vector.MaxPool2d(size=size).forward(backend_array(backend, np.zeros(shape)))
