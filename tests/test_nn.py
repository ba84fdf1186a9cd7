"""The network container: its gradients against jax.grad of the reference network, its initialization, Flatten."""

import itertools

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import nn, testing, vector
from handlayers.testing import Example, arrays, check_example, floats
from handlayers.train import Audit
from tests.helpers import as_numpy, backend_array


def mlp(widths):
    """Dense layers of these widths with a ReLU between each two."""
    pieces = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(widths)):
        pieces += [nn.relu()] * (i > 0) + [nn.dense(d_in, d_out)]
    return nn.Sequential(*pieces)


# one network object each, so that each audit's oracle compiles once per backend, dtype and batch size
NETWORKS = [mlp((3, 4, 2)), mlp((2, 3, 3, 2))]
_AUDITS = {}


def audited(net, backend, dtype, *args):
    """The audit's ratio for ``args`` (step, params, grads, X, labels), by one Audit (and one oracle
    process) per network, backend and dtype."""
    key = (id(net), backend, np.dtype(dtype).name)
    if key not in _AUDITS:
        _AUDITS[key] = Audit(net, backend, dtype)
    _AUDITS[key](*args)
    (ratio,) = _AUDITS[key].finish(300)
    return ratio


@pytest.fixture(autouse=True, scope="module")
def _close_audits():
    """The oracles' processes end with the module's tests."""
    yield
    for audit in _AUDITS.values():
        audit.close()
    _AUDITS.clear()


@st.composite
def networks(draw, dtype):
    """A small MLP of one or two hidden layers, its parameters, a batch and its labels."""
    n, net = draw(st.integers(1, 3)), draw(st.sampled_from(NETWORKS))
    widths = [piece.shapes[0][0] for piece in net.pieces if piece.shapes] + [net.pieces[-1].shapes[1][0]]
    # floats() draws no magnitude under 2**-21 (float32) or 2**-170 (float64) but 0: every product,
    # sum and difference in these two-layer networks is then 0 or a normal float (XLA on CPU flushes
    # subnormals to zero: a hidden unit of 0.5 * 2.2e-308 would be a ReLU's kink for the oracle only)
    values = floats(dtype, 4.0)
    params = [tuple(draw(arrays(dtype, s, values)) for s in piece.shapes) for piece in net.pieces]
    X = draw(arrays(dtype, (n, widths[0]), values))
    labels = draw(arrays(np.int64, (n,), st.integers(0, widths[-1] - 1)))
    return net, params, X, labels


@given(data=st.data())
def test_gradients_match_jax_grad_of_the_reference_network(backend, dtype, data):
    """Every parameter's hand-written gradient is jax.grad's of the reference network within the checker's tolerance."""
    net, params, X, labels = data.draw(networks(dtype))
    params = [tuple(backend_array(backend, a) for a in p) for p in params]
    loss, grads = net.loss_and_gradients(params, backend_array(backend, X), backend_array(backend, labels))
    assert [len(g) for g in grads] == [len(p) for p in params]
    for g, p in zip(grads, params, strict=True):
        for dp, a in zip(g, p, strict=True):
            assert type(dp) is type(a)
            assert dp.shape == a.shape
            assert dp.dtype == a.dtype
    assert audited(net, backend, dtype, 0, params, grads, X, labels) <= 1
    # the loss too: the reference network's, to the rounding of its float64 value in the dtype
    expected = float(net.reference_loss([tuple(np.asarray(a, np.float64) for a in p) for p in params], X, labels))
    assert abs(float(loss) - expected) <= 64 * np.finfo(dtype).eps * max(1.0, abs(expected)) * X.size


def test_logits_are_the_last_layers_output(backend):
    """logits runs the layers forward: an MLP's output for a batch is (n, k), the reference network's."""
    net = nn.Sequential(nn.dense(3, 4), nn.relu(), nn.dense(4, 2))
    params = net.init(seed=1)
    X = np.arange(6.0).reshape(2, 3) / 6
    out = net.logits([tuple(backend_array(backend, a) for a in p) for p in params], backend_array(backend, X))
    W1, b1 = params[0]
    W2, b2 = params[2]
    np.testing.assert_allclose(as_numpy(out), np.maximum(X @ W1 + b1, 0) @ W2 + b2, rtol=1e-12)


def test_init_draws_he_and_glorot_weights_and_zero_biases():
    """He weights have variance 2 / fan_in; Glorot's lie in ±sqrt(6 / (fan_in + fan_out)); biases are 0."""
    he = nn.Sequential(nn.dense(400, 300)).init(seed=0)[0]
    assert abs(np.var(he[0]) / (2 / 400) - 1) < 0.02  # 120000 draws: the sample variance is within 1%
    assert np.all(he[1] == 0)
    glorot = nn.Sequential(nn.dense(400, 300), init="glorot").init(seed=0)[0]
    a = np.sqrt(6 / 700)
    assert np.all(np.abs(glorot[0]) <= a)
    assert np.max(np.abs(glorot[0])) > 0.99 * a
    assert abs(np.var(glorot[0]) / (a * a / 3) - 1) < 0.02
    assert nn.Sequential(nn.relu()).init(seed=0) == [()]


@pytest.mark.jax
def test_init_is_the_seeds_alone():
    """The same seed gives the same parameters (numpy or jax, bit for bit); another seed, others."""
    net = nn.Sequential(nn.dense(3, 4), nn.relu(), nn.dense(4, 2))
    first, again, other = net.init(7), net.init(7), net.init(8)
    on_jax = net.init(7, xp=jax.numpy)
    assert all(np.array_equal(a, b) for p, q in zip(first, again, strict=True) for a, b in zip(p, q, strict=True))
    assert all(
        np.array_equal(a, np.asarray(b)) for p, q in zip(first, on_jax, strict=True) for a, b in zip(p, q, strict=True)
    )
    assert isinstance(on_jax[0][0], jax.Array)
    assert not np.array_equal(first[0][0], other[0][0])
    assert net.init(7, dtype=np.float32)[0][0].dtype == np.float32


def test_unknown_init_is_refused():
    """An initialization that is not a known scheme raises ValueError naming the schemes."""
    with pytest.raises(ValueError, match="unknown initialization 'xavier'; the schemes are: he, glorot"):
        nn.Sequential(nn.dense(2, 2), init="xavier")


FLATTEN = testing.Spec("flatten", lambda X: X.reshape(X.shape[0], -1), nn.Flatten, ("X",), None)


@given(
    X=st.sampled_from([(2, 3), (1, 2, 2), (2, 1, 2, 3)]).flatmap(
        lambda s: arrays(np.float64, s, floats(np.float64, 10.0))
    )
)
def test_flatten_passes_the_checker(backend, X):
    """Flatten's forward and backward match jax.vjp of a reshape, whatever the example's shape."""
    dout = np.arange(X.size, dtype=np.float64).reshape(X.shape[0], -1)
    assert check_example(nn.Flatten, FLATTEN, Example((X,), {}, dout), backend=backend) == 0


def test_flatten_refuses_a_scalar():
    """Flatten needs a batch axis: a 0-d input raises ValueError naming its shape."""
    with pytest.raises(ValueError, match=r"Flatten: expected X \(n, \.\.\.\); got X \(\)"):
        nn.Flatten().forward(1.0)


def test_first_layer_computes_no_input_gradient():
    """The first layer of a network is told input_grad=False (its input is data); the others are not."""
    piece = nn.dense(2, 3)
    assert piece.make(first=True).input_grad is False
    assert piece.make().input_grad is True
    assert isinstance(nn.relu().make(first=True), vector.ReLU)


def test_cnn_gradients_match_jax_grad_of_the_reference_network(backend):
    """The CNN's hand-written gradients (Conv2d, ReLU, MaxPool2d, Flatten, Affine) pass the audit."""
    from handlayers.train import MODELS

    net, shape = MODELS["cnn"]()
    rng = np.random.default_rng(0)
    X, labels = rng.uniform(0, 1, (4, *shape)), rng.integers(0, 10, 4)
    params = [tuple(backend_array(backend, a) for a in p) for p in net.init(seed=0)]
    _, grads = net.loss_and_gradients(params, backend_array(backend, X), backend_array(backend, labels))
    assert audited(net, backend, np.float64, 0, params, grads, X, labels) <= 1


def test_flatten_joins_convolution_shaped_inputs_to_dense_layers(backend):
    """A network of Flatten then Affine takes (n, c, h, w) inputs, and its gradients pass the audit."""
    net = nn.Sequential(nn.flatten(), nn.dense(4, 3))
    X, labels = np.arange(8.0).reshape(2, 1, 2, 2) / 8, np.array([0, 2])
    params = [tuple(backend_array(backend, a) for a in p) for p in net.init(seed=2)]
    _, grads = net.loss_and_gradients(params, backend_array(backend, X), backend_array(backend, labels))
    assert grads[0] == ()
    assert audited(net, backend, np.float64, 0, params, grads, X, labels) <= 1
    # the reference network's loss, here (the audit's runs in its own process): the same
    loss, _ = net.loss_and_gradients(params, backend_array(backend, X), backend_array(backend, labels))
    expected = net.reference_loss([tuple(np.asarray(a) for a in p) for p in params], X, labels)
    assert float(loss) == pytest.approx(float(expected), rel=1e-12)


def test_convolution_pieces_make_the_contracts_layers():
    """conv2d and max_pool2d hold the contract's shapes and keywords, and make vector.Conv2d and MaxPool2d."""
    conv = nn.conv2d(3, 8, 5, pad=2)
    assert conv.shapes == ((8, 3, 5, 5), (8,))
    assert conv.fans == (75, 200)
    layer = conv.make(first=True)  # Conv2d takes no input_grad
    assert isinstance(layer, vector.Conv2d)
    assert (layer.stride, layer.pad) == (1, 2)
    pool = nn.max_pool2d().make()
    assert isinstance(pool, vector.MaxPool2d)
    assert (pool.size, pool.stride) == (2, 2)
    assert nn.max_pool2d().shapes == ()
