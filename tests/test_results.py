"""What a layer hands back beyond its values: numpy's scalars for 0-d results, and gradients summed
or broadcast to their inputs' shapes."""

import jax.numpy as jnp
import numpy as np
import pytest

from handlayers import scalar, vector
from handlayers._layer import Layer, sum_to_shape
from tests.helpers import backend_array


def test_zero_d_results_are_numpy_scalars():
    """From numbers, output and gradients are numpy scalars, as numpy's own arithmetic gives, not
    0-d arrays (which ReLU's mask computes them as)."""
    affine, relu = scalar.Affine(), scalar.ReLU()
    assert isinstance(affine.forward(1.0, 2.0, 3.0), np.float64)
    assert all(isinstance(g, np.float64) for g in affine.backward(1.0))
    assert isinstance(relu.forward(2.0), np.float64)
    assert isinstance(relu.backward(1.0), np.float64)


def test_a_gradient_smaller_than_its_input_is_broadcast_to_it():
    """A gradient of any shape that broadcasts to the input's (a layer may return a constant)
    is broadcast up to it, and summed over the axes where the input was stretched."""
    np.testing.assert_array_equal(sum_to_shape(np, np.float64(2.0), (3,)), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(sum_to_shape(np, np.array([[1.0, 2.0]]), (3, 1)), [[3.0], [3.0], [3.0]])


def test_each_gradient_has_its_own_inputs_dtype(backend):
    """Inputs of different float dtypes compute in the wider one; each gradient comes back in its
    own input's dtype."""
    plus = scalar.Plus()
    c = plus.forward(backend_array(backend, np.ones(2, np.float32)), backend_array(backend, np.ones(2)))
    assert c.dtype == np.float64
    da, db = plus.backward(backend_array(backend, np.ones(2)))
    assert (da.dtype, db.dtype) == (np.float32, np.float64)


def test_an_integer_input_gets_a_gradient_of_the_compute_dtype(backend):
    """An integer input beside single-precision floats computes in their dtype (int8: numpy would
    widen a wider integer to float64), and its gradient comes back in it, not in the library's
    default float."""
    plus = scalar.Plus()
    plus.forward(backend_array(backend, np.ones(2, np.float32)), backend_array(backend, np.array([1, 2], np.int8)))
    da, db = plus.backward(backend_array(backend, np.ones(2, np.float32)))
    assert (da.dtype, db.dtype) == (np.float32, np.float32)


def test_dout_is_taken_in_the_layers_dtype(backend):
    """A dout given in another float dtype is taken at its value in the layer's dtype: float32 and
    float64 douts of one value give a float64 layer the same gradients, bit for bit."""
    Z = np.array([[0.3, -1.2, 2.0], [0.1, 0.2, 0.3], [1.0, 0.0, -1.0]])
    labels = np.array([0, 2, 1])
    dl = np.float32(1 / 3)
    grads = []
    for dtype in (np.float32, np.float64):
        layer = vector.SoftmaxCrossEntropy()
        layer.forward(backend_array(backend, Z), backend_array(backend, labels))
        grads.append(np.asarray(layer.backward(backend_array(backend, np.asarray(dl, dtype)))[0]))
    np.testing.assert_array_equal(grads[0], grads[1])


@pytest.mark.jax
def test_bfloat16_inputs_compute_and_return_bfloat16():
    """jax's bfloat16 is a float dtype (though no numpy floating type): output and gradients keep it."""
    x = jnp.ones(2, jnp.bfloat16)
    plus = scalar.Plus()
    assert plus.forward(x, x).dtype == jnp.bfloat16
    assert [g.dtype for g in plus.backward(jnp.ones(2, jnp.bfloat16))] == [jnp.bfloat16, jnp.bfloat16]


def test_summing_back_covers_added_and_stretched_axes_together():
    """An input of shape (1, 1) broadcast to (1, 2, 3) (an added axis, then both of its own
    stretched) gets the total; with two added axes, the same."""
    np.testing.assert_array_equal(sum_to_shape(np, np.ones((1, 2, 3)), (1, 1)), [[6.0]])
    np.testing.assert_array_equal(sum_to_shape(np, np.ones((2, 1, 2, 3)), (1, 1)), [[12.0]])


def test_a_subclass_returning_too_few_gradients_fails_loudly():
    """A Layer whose _backward returns fewer gradients than forward took inputs raises, rather
    than silently dropping a gradient."""

    class TooFew(Layer):
        def _forward(self, a, b):
            return a + b

        def _backward(self, dc):
            return (dc,)

    layer = TooFew()
    layer.forward(np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"zip\(\) argument 2 is longer than argument 1"):
        layer.backward(np.ones(2))


def test_integers_compute_as_float64(backend):
    """Integer inputs alone (Python ints, integer arrays) compute as float64, gradients too."""
    square = scalar.Square()
    y = square.forward(backend_array(backend, np.array([1, 2])))
    assert y.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(y), [1.0, 4.0])
    assert square.backward(backend_array(backend, np.ones(2))).dtype == np.float64
    assert isinstance(scalar.Square().forward(3), np.float64)


class _Twice(Layer):
    """x -> (x, 2x): a layer of two outputs."""

    def _forward(self, x):
        return x, 2 * x

    def _backward(self, dy, dz):
        return dy + 2 * dz


def test_a_layer_of_several_outputs_returns_numpy_scalars_from_numbers():
    """From a number, each of several outputs is a numpy scalar, as a single output is."""
    out = _Twice().forward(1.5)
    assert isinstance(out, tuple)
    assert [(type(o), o) for o in out] == [(np.float64, 1.5), (np.float64, 3.0)]


class _Scaled(Layer):
    """x * y for an integer y, whose _backward also hands back a value for y."""

    labels = (1,)

    def _forward(self, x, y):
        self._x, self._y = x, y
        return x * y

    def _backward(self, dout):
        return dout * self._y, dout * self._x


def test_a_label_gets_no_gradient_whatever_backward_returns(backend):
    """An input listed in ``labels`` gets ``None`` even where ``_backward`` computes something for it."""
    layer = _Scaled()
    layer.forward(backend_array(backend, np.array([1.0, 2.0])), backend_array(backend, np.array([3, 4])))
    dx, dy = layer.backward(backend_array(backend, np.ones(2)))
    np.testing.assert_array_equal(np.asarray(dx), [3.0, 4.0])
    assert dy is None
