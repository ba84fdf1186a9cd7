"""Error messages, word for word: the layer's name, the shapes it expects, every shape it got."""

import re

import numpy as np
import pytest

from handlayers import scalar, vector
from tests.helpers import backend_array

# (layer, input shapes, the whole message); label inputs are the integer ones
MESSAGES = [
    (scalar.Plus, [(2,), (3,)], "Plus: input shapes (2,), (3,) do not broadcast together"),
    (scalar.Affine, [(2,), (2,), (3,)], "Affine: input shapes (2,), (2,), (3,) do not broadcast together"),
    (
        vector.Affine,
        [(2, 3), (4, 5), (5,)],
        "Affine: expected X (n, d_in), W (d_in, d_out), b (d_out,); got X (2, 3), W (4, 5), b (5,)",
    ),
    (
        vector.SquaredLoss,
        [(2, 3), (2, 4)],
        "SquaredLoss: expected Y_hat and Y of one shape (n, k), n >= 1; got Y_hat (2, 3), Y (2, 4)",
    ),
    (
        vector.HingeLoss,
        [(2, 3), (3,)],
        "HingeLoss: expected scores (n, k) and labels (n,), n, k >= 1; got scores (2, 3), labels (3,)",
    ),
    (
        vector.SoftmaxCrossEntropy,
        [(2, 3), (2, 1)],
        "SoftmaxCrossEntropy: expected scores (n, k) and labels (n,), n, k >= 1; got scores (2, 3), labels (2, 1)",
    ),
    (
        vector.MLP,
        [(2, 3), (3, 4), (4,), (4, 5), (5,), (2, 4)],
        "MLP: expected X (n, d_in), W1 (d_in, h), b1 (h,), W2 (h, k), b2 (k,), Y (n, k); "
        "got X (2, 3), W1 (3, 4), b1 (4,), W2 (4, 5), b2 (5,), Y (2, 4)",
    ),
    # every dimension fits but b1 is not a vector: the MLP says so, not the Affine inside it
    (
        vector.MLP,
        [(2, 3), (3, 4), (4, 1), (4, 5), (5,), (2, 5)],
        "MLP: expected X (n, d_in), W1 (d_in, h), b1 (h,), W2 (h, k), b2 (k,), Y (n, k); "
        "got X (2, 3), W1 (3, 4), b1 (4, 1), W2 (4, 5), b2 (5,), Y (2, 5)",
    ),
]


@pytest.mark.parametrize(("layer", "shapes", "message"), MESSAGES)
def test_a_shape_error_names_the_layer_and_every_shape(layer, shapes, message, backend):
    """Inputs that do not fit raise ValueError with exactly this message, on every backend."""
    labels = getattr(layer, "labels", ())
    inputs = [np.zeros(s, np.int64 if i in labels else np.float64) for i, s in enumerate(shapes)]
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        layer().forward(*(backend_array(backend, x) for x in inputs))


@pytest.mark.parametrize("axis", [2, -3])
def test_softmax_names_the_axis_it_lacks(axis, backend):
    """Softmax along an axis the input does not have raises ValueError naming that axis and the shape."""
    message = f"Softmax: expected an array with an axis {axis}; got Z (2, 3)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        vector.Softmax(axis=axis).forward(backend_array(backend, np.zeros((2, 3))))


@pytest.mark.parametrize(
    ("layer", "count", "message"),
    [
        (scalar.Affine, 4, "Affine.forward takes (x, w, b); got 4 inputs"),
        (scalar.ReLU, 2, "ReLU.forward takes (a); got 2 inputs"),
        (vector.HingeLoss, 1, "HingeLoss.forward takes (S, labels); got 1 inputs"),
    ],
)
def test_the_wrong_number_of_inputs_names_forwards_arguments(layer, count, message):
    """forward with too many or too few inputs raises TypeError naming every argument it takes."""
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        layer().forward(*([1.0] * count))


def test_a_dout_of_the_wrong_shape_names_the_layer_and_both_shapes(backend):
    """backward with a dout that is not the output's shape raises ValueError saying both shapes."""
    square = scalar.Square()
    square.forward(backend_array(backend, np.ones(2)))
    message = "Square.backward: dout has shape (2, 2), but the output has shape (2,)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        square.backward(backend_array(backend, np.ones((2, 2))))
