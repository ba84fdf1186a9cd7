"""Inputs that are not arrays: lists and tuples work as ``np.asarray`` would, anything else raises a
``TypeError`` naming the input; numpy float64 beside jax arrays with jax's x64 off."""

import inspect
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import Layer, scalar, vector
from handlayers.testing import SPECS, examples


def _names(layer):
    """forward's parameter names, as the layer's error messages give them."""
    return list(inspect.signature(layer._forward).parameters)[1:]


def _nested(x, kind):
    """``x`` as nested Python lists or tuples of Python numbers (a 0-d array as a number)."""
    items = np.asarray(x).tolist()

    def convert(v):
        return kind(convert(e) for e in v) if isinstance(v, list) else v

    return convert(items)


def _grads(layer, dout):
    return _several(layer.backward(dout))


@pytest.mark.parametrize("name", list(SPECS))
@given(data=st.data())
def test_lists_and_tuples_of_numbers_work_as_numpy_arrays_of_them(name, data):
    """Every layer takes nested lists or tuples of numbers (inputs and dout) as np.asarray of them:
    the same output and gradients, bit for bit, as numpy arrays or numpy scalars."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    kind = data.draw(st.sampled_from([list, tuple]))
    arrays = tuple(np.asarray(_nested(x, kind)) for x in example.inputs)
    as_arrays = spec.layer(**example.kwargs)
    want = as_arrays.forward(*arrays)
    as_lists = spec.layer(**example.kwargs)
    got = as_lists.forward(*(_nested(x, kind) for x in example.inputs))
    dout = example.dout  # a tuple, one per output, for a layer with several outputs
    lists_dout = tuple(_nested(d, kind) for d in dout) if isinstance(dout, tuple) else _nested(dout, kind)
    pairs = [*zip(_several(got), _several(want), strict=True)]
    pairs += [*zip(_grads(as_lists, lists_dout), _grads(as_arrays, dout), strict=True)]
    for g, w in pairs:
        assert (g is None) == (w is None)
        if g is not None:
            assert isinstance(g, np.ndarray | np.generic)
            np.testing.assert_array_equal(g, w, strict=True)


def _several(out):
    return out if isinstance(out, tuple) else (out,)


RAGGED = [[1.0, 2.0], [3.0]]
OBJECTS = np.array([1.0, None], dtype=object)

# (a bad input, what the message says the layer got)
BAD = [
    ("abc", "str 'abc'"),
    (None, "None"),
    (OBJECTS, "a numpy array of dtype object"),
    (RAGGED, "list [[1.0, 2.0], [3.0]], which numpy cannot make one array of"),
    ([1.0, "a"], "list [1.0, 'a'] (numpy makes dtype <U32 of it)"),
    ((1.0, None), "tuple (1.0, None) (numpy makes dtype object of it)"),
    (1j, "complex 1j"),
    ({"a": 1.0}, "dict {'a': 1.0}"),
    ("x" * 38, "str '" + "x" * 38 + "'"),  # a repr of 40 characters: whole
    ("x" * 39, "str '" + "x" * 36 + "..."),  # of 41: its first 37, and "..."
]


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize(("bad", "described"), BAD, ids=[type(b).__name__ for b, _ in BAD])
def test_an_input_that_is_no_number_raises_type_error_naming_it(name, bad, described):
    """A string, None, an object or complex array, a ragged list as any input of any layer raises
    TypeError naming the layer, the input by forward's parameter name, and what it got."""
    spec = SPECS[name]
    names = _names(spec.layer)
    for i in range(len(names)):
        inputs = [1.0] * len(names)
        inputs[i] = bad
        message = f"{spec.layer.__name__}.forward: {names[i]} must be a number or an array of numbers; got {described}"
        with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
            spec.layer().forward(*inputs)


class _Total(Layer):
    """The sum of any number of inputs."""

    def _forward(self, *xs):
        self._n = len(xs)
        return sum(xs)

    def _backward(self, dout):
        return (dout,) * self._n


def test_a_layer_of_any_number_of_inputs_names_its_parameter_for_each():
    """A ``_forward(self, *xs)`` takes any number of inputs, and a bad one past the first is named
    by that parameter."""
    assert _Total().forward(1.0, 2.0, 3.0) == 6.0
    message = r"^_Total.forward: xs must be a number or an array of numbers; got str 'three'$"
    with pytest.raises(TypeError, match=message):
        _Total().forward(1.0, 2.0, "three")


def test_a_dout_that_is_no_number_raises_type_error_naming_dout():
    """backward with a string for dout raises TypeError naming dout."""
    square = scalar.Square()
    square.forward([1.0, 2.0])
    message = "Square.backward: dout must be a number or an array of numbers; got str '1'"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        square.backward("1")


def test_python_numbers_keep_numpys_promotion():
    """A Python number stays a number, so it takes the arrays' dtype (float32 stays float32) as in
    numpy's own arithmetic; a list of Python numbers is float64, as np.asarray makes it."""
    x = np.ones(2, np.float32)
    assert scalar.Plus().forward(x, 2.0).dtype == np.float32
    assert scalar.Plus().forward(x, [2.0, 3.0]).dtype == np.float64
    assert scalar.Plus().forward(np.float32(1.0), 2).dtype == np.float32


@pytest.mark.jax
def test_a_list_beside_a_jax_array_computes_in_jax():
    """A list beside a jax array becomes part of the jax computation: the output is a jax array."""
    out = vector.Affine().forward(jnp.ones((1, 2)), [[1.0], [2.0]], (0.5,))
    assert isinstance(out, jax.Array)
    np.testing.assert_array_equal(out, [[3.5]])


@pytest.mark.jax
def test_numpy_float64_beside_jax_with_x64_off_computes_in_float32_without_a_warning():
    """With jax's x64 off (jax's default), numpy float64 inputs beside a jax array compute as jax
    float32, as jax's own arithmetic does: the output and every gradient (the numpy inputs' too)
    are float32 jax arrays, and nothing warns."""
    X, W, b = np.arange(6.0).reshape(2, 3), np.ones((3, 2)), np.array([0.5, -0.5])
    with jax.enable_x64(False), warnings.catch_warnings():
        warnings.simplefilter("error")
        layer = vector.Affine()
        out = layer.forward(jnp.asarray(X), W, b)
        grads = layer.backward(np.ones((2, 2)))
        reference = jnp.asarray(X) @ W + b  # what jax makes of the same mix
    assert isinstance(out, jax.Array)
    assert out.dtype == reference.dtype == jnp.float32
    np.testing.assert_array_equal(out, reference)
    assert [(type(g), g.dtype) for g in grads] == [(type(out), np.dtype(np.float32))] * 3
    np.testing.assert_array_equal(grads[1], X.T @ np.ones((2, 2)))


@pytest.mark.jax
def test_numpy_inputs_stay_float64_numpy_with_jax_x64_off():
    """jax's x64 setting changes nothing for numpy inputs: they compute in numpy float64, and their
    gradients are numpy float64."""
    with jax.enable_x64(False):
        layer = vector.Affine()
        out = layer.forward(np.ones((2, 3)), np.ones((3, 2)), np.zeros(2))
        grads = layer.backward(np.ones((2, 2)))
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    assert [(type(g), g.dtype) for g in grads] == [(np.ndarray, np.dtype(np.float64))] * 3
