"""The scalar layers beyond the oracle test: kinks pinned exactly, huge inputs, the lab's worked numbers."""

import numpy as np
import pytest

from handlayers import scalar
from handlayers.testing import SPECS, Example, check_example, oracle
from tests.helpers import as_numpy, backend_array

# The kinks, drawn often by the strategies, are also pinned here so that every run checks them.
KINKS = [
    # (reference, inputs, the gradients the contract's convention gives for dout = 1)
    ("scalar.relu", (0.0,), (0.0,)),
    ("scalar.hinge_loss", (1.0, 1.0), (0.0, 0.0)),
    ("scalar.hinge_loss", (-1.0, -1.0), (0.0, 0.0)),
    ("scalar.sigmoid", (1000.0,), (0.0,)),
    ("scalar.sigmoid", (-1000.0,), (0.0,)),
    # hidden unit exactly at 0: w1*x + b1 = 1*1 - 1; no gradient reaches x, w1, b1
    ("scalar.mlp", (1.0, 1.0, -1.0, 2.0, 0.5, 1.0), (0.0, 0.0, 0.0, 0.0, -1.0, 1.0)),
]


@pytest.mark.parametrize(("name", "inputs", "grads"), KINKS)
def test_kink_follows_the_convention_exactly(name, inputs, grads, backend, dtype):
    """At a kink, backward returns exactly the contract's gradient, and so does the oracle."""
    spec = SPECS[name]
    example = Example(tuple(np.asarray(x, dtype) for x in inputs), {}, np.asarray(1.0, dtype))
    layer = spec.layer()
    layer.forward(*(backend_array(backend, x) for x in example.inputs))
    got = layer.backward(backend_array(backend, example.dout))
    got = got if isinstance(got, tuple) else (got,)
    assert tuple(float(g) for g in got) == grads
    assert tuple(float(g) for g in oracle(spec, example)[1]) == grads
    check_example(spec.layer, spec, example, backend=backend, dtype=dtype)


@pytest.mark.parametrize("a", [1000.0, -1000.0, 1e4, -3.0e38])
def test_sigmoid_is_finite_for_huge_inputs(a, backend, dtype):
    """Sigmoid gives 0 or 1, finite, with no overflow warning, for inputs far beyond exp's range."""
    a = backend_array(backend, np.asarray(a, dtype))
    layer = scalar.Sigmoid()
    s = as_numpy(layer.forward(a))
    da = as_numpy(layer.backward(backend_array(backend, np.ones((), dtype))))
    assert s == (1.0 if a > 0 else 0.0)
    assert da == 0.0


# The lab's worked numbers, on plain Python numbers as the lab writes them.


def test_lab_plus_square_chain():
    """c = a + b, e = c**2 at (a, b) = (3, 2): (da, db, dc) = (10, 10, 10)."""
    plus, square = scalar.Plus(), scalar.Square()
    c = plus.forward(3, 2)
    assert square.forward(c) == 25
    dc = square.backward(1.0)
    da, db = plus.backward(dc)
    assert (da, db, dc) == (10, 10, 10)


def test_lab_affine():
    """Affine(x=1, w=2, b=5) = 7 with (dx, dw, db) = (2, 1, 1)."""
    affine = scalar.Affine()
    assert affine.forward(1, 2, 5) == 7
    assert affine.backward(1.0) == (2, 1, 1)


def test_lab_squared_loss():
    """SquaredLoss(1, 2) = 1 with (dy_hat, dy) = (-2, 2)."""
    loss = scalar.SquaredLoss()
    assert loss.forward(1, 2) == 1
    assert loss.backward(1.0) == (-2, 2)


def test_lab_mlp():
    """MLP(x=2, w1=-1, b1=1, w2=-2, b2=1.5, y=1) = 0.25 with gradients (0, 0, 0, 0, 1, -1)."""
    mlp = scalar.MLP()
    assert mlp.forward(2, -1, 1, -2, 1.5, 1) == 0.25
    assert mlp.backward(1.0) == (0, 0, 0, 0, 1, -1)


def test_lab_sigmoid():
    """Sigmoid(2) = 0.8807970779778823, and its gradient s(1 - s) (to the last bits: the layer
    computes it as e / (1 + e)**2)."""
    sigmoid = scalar.Sigmoid()
    s = sigmoid.forward(2)
    assert s == 0.8807970779778823
    assert sigmoid.backward(1.0) == pytest.approx(s * (1 - s), rel=4 * np.finfo(float).eps)


def test_python_numbers_compute_as_numpy_float64():
    """Python numbers and integer numpy arrays compute as numpy float64, gradients too."""
    affine = scalar.Affine()
    out = affine.forward(1, np.array([2, 3]), 5.0)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    dx, dw, db = affine.backward(np.ones(2))
    assert all(isinstance(g, np.float64 | np.ndarray) and g.dtype == np.float64 for g in (dx, dw, db))
    assert dw.shape == (2,)
