"""NaN in, NaN out: no layer turns a NaN into a number, and none raises or warns on one.

The test is generic over ``SPECS``, so a layer added there is covered without a line here: which
output entries depend on an input entry is found by giving that entry other finite values and
seeing which output entries change.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference.scalar
import reference.vector
from handlayers import scalar, vector
from handlayers.testing import SPECS, examples
from tests.helpers import as_numpy, backend_array


def _outputs(out):
    """A layer's output as a tuple of numpy arrays (a layer may return several outputs)."""
    return tuple(as_numpy(o) for o in (out if isinstance(out, tuple) else (out,)))


def _forward(spec, kwargs, inputs, backend):
    return _outputs(spec.layer(**kwargs).forward(*(backend_array(backend, x) for x in inputs)))


def _with(inputs, i, index, value):
    """``inputs`` with entry ``index`` of input ``i`` set to ``value`` (a copy; the rest shared)."""
    x = np.array(inputs[i])
    x[index] = value
    return (*inputs[:i], x, *inputs[i + 1 :])


def _float_inputs(spec, inputs):
    """The positions of the floating inputs: not labels, not booleans (a dropout mask)."""
    return [i for i, x in enumerate(inputs) if i not in spec.labels and np.asarray(x).dtype.kind == "f"]


def _depends(spec, kwargs, inputs, i, index):
    """Which output entries change when entry ``index`` of input ``i`` takes other finite values
    (numpy, float64: exact enough to see any change, and no compilation)."""
    inputs = tuple(np.asarray(x, np.float64) if np.asarray(x).dtype.kind == "f" else x for x in inputs)
    value = float(np.asarray(inputs[i])[index])
    base = _forward(spec, kwargs, inputs, "numpy")
    changed = [np.zeros(np.shape(b), bool) for b in base]
    for probe in sorted({value + 1, value - 1, -value, 0.5, -0.5, 2.0, -2.0} - {value}):
        try:
            probed = _forward(spec, kwargs, _with(inputs, i, index, probe), "numpy")
        except ValueError:  # a value outside the input's domain, refused (a target outside [0, 1])
            continue
        for c, b, o in zip(changed, base, probed, strict=True):
            c |= b != o
    return changed


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_a_nan_input_reaches_every_output_entry_that_depends_on_it(name, backend, dtype, data):
    """A NaN in any entry of any floating input makes NaN every output entry that changes with that
    entry, and forward and backward neither raise nor warn."""
    spec = SPECS[name]
    example = data.draw(examples(spec, dtype))
    inputs = tuple(np.asarray(x) for x in example.inputs)
    i = data.draw(st.sampled_from(_float_inputs(spec, inputs)), label="input")
    index = data.draw(st.sampled_from(list(np.ndindex(inputs[i].shape))), label="index")
    depends = _depends(spec, example.kwargs, inputs, i, index)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pytest's filterwarnings says so too; this test is about it
        layer = spec.layer(**example.kwargs)
        out = _outputs(layer.forward(*(backend_array(backend, x) for x in _with(inputs, i, index, np.nan))))
        dout = example.dout  # a tuple, one per output, for a layer with several outputs
        layer.backward(tuple(backend_array(backend, d) for d in dout) if isinstance(dout, tuple) else dout)
    for o, d in zip(out, depends, strict=True):
        assert np.isnan(o[d]).all(), f"{spec.args[i]}{list(index)} = NaN left {o[d]} where the output depends on it"


def test_the_dependence_probe_sees_relu_and_hinge_entries():
    """The probe finds that ReLU's output at a negative input depends on it (a larger value passes
    through), and that a loss depends on every score: the NaN test above is not vacuous."""
    spec = SPECS["vector.relu"]
    inputs = (np.array([[-1.0, 2.0]]),)
    assert [d.tolist() for d in _depends(spec, {}, inputs, 0, (0, 0))] == [[[True, False]]]
    spec = SPECS["vector.hinge_loss"]
    inputs = (np.array([[-50.0, 0.0, 3.0]]), np.array([2]))
    assert [d.tolist() for d in _depends(spec, {}, inputs, 0, (0, 0))] == [True]


NAN = float("nan")

# (layer, its reference, inputs with a NaN, the output, the first input's gradient for dout = 1)
NAN_CASES = [
    (scalar.ReLU, reference.scalar.relu, ([NAN, -1.0, 0.0, 2.0],), [NAN, 0.0, 0.0, 2.0], [1.0, 0.0, 0.0, 1.0]),
    (vector.ReLU, reference.vector.relu, ([[NAN, -1.0], [0.0, 2.0]],), [[NAN, 0.0], [0.0, 2.0]], [[1.0, 0], [0, 1]]),
    # dy_hat = -y where the margin 1 - y*y_hat is positive or NaN
    (
        scalar.HingeLoss,
        reference.scalar.hinge_loss,
        ([NAN, 0.5, 2.0], [1.0, 1.0, -1.0]),
        [NAN, 0.5, 3.0],
        [-1.0, -1.0, 1.0],
    ),
    # a NaN score that is not the label's: its term is NaN, so is the loss; it counts as active
    (vector.HingeLoss, reference.vector.hinge_loss, ([[NAN, 0.0, 0.5]], [1]), NAN, [[1.0, -2.0, 1.0]]),
    # the label's own score NaN: every other term of the row is NaN and active
    (vector.HingeLoss, reference.vector.hinge_loss, ([[0.0, NAN, -5.0]], [1]), NAN, [[1.0, -2.0, 1.0]]),
]


@pytest.mark.parametrize(("layer", "function", "inputs", "out", "grad"), NAN_CASES)
def test_relu_and_the_hinges_keep_nan_and_pass_the_gradient_through_it(
    layer, function, inputs, out, grad, backend, dtype
):
    """ReLU and both hinge losses give NaN for NaN, as np.maximum and jax.nn.relu do, and pass the
    gradient through at NaN, as torch.relu does (0 only where the input is <= 0); the reference
    agrees on both."""
    inputs = tuple(np.asarray(x, dtype if np.asarray(x).dtype.kind == "f" else np.int64) for x in inputs)
    instance = layer()
    got = instance.forward(*(backend_array(backend, x) for x in inputs))
    dx = instance.backward(backend_array(backend, np.ones(np.shape(out), dtype)))
    dx = dx[0] if isinstance(dx, tuple) else dx
    expected, vjp = jax.vjp(lambda x: function(x, *inputs[1:]), jnp.asarray(inputs[0]))
    np.testing.assert_array_equal(as_numpy(got), np.asarray(out, dtype))
    np.testing.assert_array_equal(as_numpy(dx), np.asarray(grad, dtype))
    np.testing.assert_array_equal(np.asarray(expected), np.asarray(out, dtype))
    np.testing.assert_array_equal(np.asarray(vjp(jnp.ones(np.shape(out), dtype))[0]), np.asarray(grad, dtype))


@pytest.mark.jax
def test_relu_agrees_with_jax_nn_relu_in_value_everywhere_and_in_gradient_off_nan():
    """reference.scalar.relu is jax.nn.relu in value (NaN and -0.0 included) and, except at NaN
    (where it passes the gradient, as torch does), in gradient, the kink at 0 included."""
    a = jnp.array([NAN, -1.0, -0.0, 0.0, 1e-300, 1.0])
    np.testing.assert_array_equal(reference.scalar.relu(a), jax.nn.relu(a))
    grad = jax.vmap(jax.grad(reference.scalar.relu))(a)
    np.testing.assert_array_equal(grad[1:], jax.vmap(jax.grad(jax.nn.relu))(a)[1:])
    assert grad[0] == 1.0
