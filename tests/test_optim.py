"""The hand-written optimizers against optax: the same parameters after any number of steps.

The tolerance is a running error bound (Higham, *Accuracy and Stability*, §3.3), derived for the
values of each drawn case: every rounding ``fl(x op y) = (x op y)(1 + d)``, ``|d| <= u`` (``u`` the
dtype's epsilon, twice the unit roundoff: a factor 2 of slack), plus the smallest normal number
per operation (XLA on CPU flushes subnormal results to zero), and every error already in an operand
carried through the operation to first order. Both implementations lie within the bound of the
exact result, so they lie within twice the bound of each other; any other difference (a missing
bias correction, a decay on the wrong term, a step in the wrong direction) fails.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import optim
from handlayers.testing import arrays, floats
from tests.helpers import backend_array

# a few shapes (each compiles anew under jax) in a nesting like a network's parameters
SHAPES = [[((3,), (2, 3))], [((2, 2),), (), ((1,),)]]


def _hyper(low, high, specials=()):
    return st.one_of(st.sampled_from(list(specials)), st.floats(low, high)) if specials else st.floats(low, high)


OPTIMIZERS = {
    "sgd": (
        st.builds(optim.SGD, lr=_hyper(1e-4, 1.0, (0.01, 1.0))),
        lambda o: optax.sgd(o.lr),
    ),
    "momentum": (
        st.builds(optim.Momentum, lr=_hyper(1e-4, 1.0, (0.01,)), momentum=_hyper(0.0, 0.99, (0.0, 0.9))),
        lambda o: optax.sgd(o.lr, momentum=o.momentum),
    ),
    "adam": (
        st.builds(
            optim.Adam,
            lr=_hyper(1e-4, 1.0, (1e-3,)),
            b1=_hyper(0.0, 0.999, (0.0, 0.9)),
            b2=_hyper(0.0, 0.9999, (0.0, 0.999)),
            eps=_hyper(1e-8, 0.1, (1e-8,)),
        ),
        lambda o: optax.adam(o.lr, o.b1, o.b2, o.eps),
    ),
    "adamw": (
        st.builds(
            optim.Adam,
            lr=_hyper(1e-4, 1.0, (1e-3,)),
            b1=_hyper(0.0, 0.999, (0.9,)),
            b2=_hyper(0.0, 0.9999, (0.999,)),
            eps=_hyper(1e-8, 0.1, (1e-8,)),
            weight_decay=_hyper(0.0, 0.5, (0.0, 1e-4)),
        ),
        lambda o: optax.adamw(o.lr, o.b1, o.b2, o.eps, weight_decay=o.weight_decay),
    ),
}


@st.composite
def cases(draw, dtype):
    """Parameters in a network's nesting, and the gradients of 1 to 6 steps."""
    shapes = draw(st.sampled_from(SHAPES))
    params = [tuple(draw(arrays(dtype, s, floats(dtype, 10.0))) for s in layer) for layer in shapes]
    steps = draw(st.integers(1, 6))
    # gradients of very different sizes, and exact zeros, step after step
    grads = [
        [
            tuple(draw(arrays(dtype, s, floats(dtype, 1e3, specials=(0.0, 1.0, -1e-3)))) for s in layer)
            for layer in shapes
        ]
        for _ in range(steps)
    ]
    return params, grads


def leaves(tree):
    """The arrays of a nesting of lists and tuples, in order, as float64 numpy arrays."""
    out = []
    optim.tree_map(lambda a: out.append(np.asarray(a, np.float64)), tree)
    return out


def run_ours(optimizer, params, grads, backend):
    params = optim.tree_map(lambda a: backend_array(backend, a), params)
    state = optimizer.init(params)
    for g in grads:
        params, state = optimizer.step(params, optim.tree_map(lambda a: backend_array(backend, a), g), state)
    return params


def run_optax(transform, params, grads):
    params = optim.tree_map(jnp.asarray, params)
    state = transform.init(params)
    for g in grads:
        g = optim.tree_map(jnp.asarray, g)
        updates, state = transform.update(g, state, params)
        params = optax.apply_updates(params, updates)
    return params


def error_bound(optimizer, params, grads, dtype):
    """The running error bound of the final parameters, one array per parameter (float64)."""
    info = np.finfo(dtype)
    u, tiny = float(info.eps), float(info.smallest_normal)
    u64 = float(np.finfo(np.float64).eps)

    def rnd(x):  # the error of rounding one result of size |x|
        return u * np.abs(x) + tiny

    bounds = []
    for i, p in enumerate(leaves(params)):
        gs = [leaves(g)[i] for g in grads]
        e_p = np.zeros_like(p)
        if isinstance(optimizer, optim.SGD):
            for g in gs:  # p - fl(lr) * g: lr rounded to the dtype, the product, the difference
                step = optimizer.lr * g
                p = p - step
                e_p = e_p + 2 * rnd(step) + rnd(p)
        elif isinstance(optimizer, optim.Momentum):
            v, e_v, mu = np.zeros_like(p), np.zeros_like(p), optimizer.momentum
            for g in gs:  # v = fl(mu) * v + g; p = p - fl(lr) * v
                v_old, v = v, mu * v + g
                e_v = mu * e_v + 2 * rnd(mu * v_old) + rnd(v)
                step = optimizer.lr * v
                p = p - step
                e_p = e_p + optimizer.lr * e_v + 2 * rnd(step) + rnd(p)
        else:
            o = optimizer
            m, v, e_m, e_v = (np.zeros_like(p) for _ in range(4))
            for t, g in enumerate(gs, start=1):
                m_old, v_old = m, v
                m = o.b1 * m + (1 - o.b1) * g
                e_m = o.b1 * e_m + 2 * rnd(o.b1 * m_old) + 2 * rnd((1 - o.b1) * g) + rnd(m)
                v = o.b2 * v + (1 - o.b2) * g * g
                e_v = o.b2 * e_v + 2 * rnd(o.b2 * v_old) + 3 * rnd((1 - o.b2) * g * g) + rnd(v)
                # 1 - b**t: b**t computed in float64 (a few ulps, t multiplications at most), then
                # the subtraction, which cancels when b**t is near 1, then the cast to the dtype
                c1, c2 = 1 - o.b1**t, 1 - o.b2**t
                d1 = u + (t + 4) * u64 * o.b1**t / c1
                d2 = u + (t + 4) * u64 * o.b2**t / c2
                m_hat, v_hat = m / c1, v / c2
                e_mh = e_m / c1 + (d1 + u) * np.abs(m_hat) + tiny
                e_vh = e_v / c2 + (d2 + u) * np.abs(v_hat) + tiny
                s = np.sqrt(v_hat)
                # |sqrt(a + d) - sqrt(a)| <= min(d / (2 sqrt(a)), sqrt(d))
                with np.errstate(divide="ignore", invalid="ignore"):
                    e_s = np.minimum(np.where(s > 0, e_vh / (2 * s), np.inf), np.sqrt(e_vh)) + rnd(s)
                den = s + o.eps
                e_den = e_s + rnd(o.eps) + rnd(den)
                step_u = m_hat / den
                # |a/b - a'/b'| with |a - a'| <= ea, |b - b'| <= eb (b > eb): ea/(b - eb) + |a| eb/(b (b - eb))
                low = np.maximum(den - e_den, o.eps / 2)
                e_u = e_mh / low + np.abs(m_hat) * e_den / (den * low) + rnd(step_u)
                w = step_u + o.weight_decay * p
                e_w = e_u + o.weight_decay * e_p + 2 * rnd(o.weight_decay * p) + rnd(w)
                step = o.lr * w
                p = p - step
                e_p = e_p + o.lr * e_w + 2 * rnd(step) + rnd(p)
        bounds.append(e_p)
    return bounds


@pytest.mark.parametrize("name", OPTIMIZERS)
@given(data=st.data())
def test_optimizer_matches_optax_after_any_steps(name, backend, dtype, data):
    """After any number of steps of any gradients, the parameters are optax's within the running error bound."""
    draw_optimizer, to_optax = OPTIMIZERS[name]
    optimizer = data.draw(draw_optimizer)
    params, grads = data.draw(cases(dtype))
    ours = run_ours(optimizer, params, grads, backend)
    theirs = run_optax(to_optax(optimizer), params, grads)
    # the library and dtype of the inputs, the nesting of the parameters
    assert jax.tree.structure(ours) == jax.tree.structure(theirs)
    optim.tree_map(lambda a: _same_kind(a, backend, dtype), ours)
    for got, want, bound in zip(
        leaves(ours), leaves(theirs), error_bound(optimizer, params, grads, dtype), strict=True
    ):
        assert np.all(np.abs(got - want) <= 2 * bound), (got, want, 2 * bound)


def _same_kind(a, backend, dtype):
    assert isinstance(a, jax.Array if backend == "jax" else np.ndarray)
    assert a.dtype == np.dtype(dtype)


def test_adam_state_counts_steps():
    """Adam's state holds the steps taken, and the moments of each parameter, in its nesting."""
    params = [(np.ones(2),), ()]
    state = optim.Adam().init(params)
    for _ in range(3):
        params, state = optim.Adam().step(params, [(np.ones(2),), ()], state)
    t, m, v = state
    assert int(t) == 3
    assert [len(layer) for layer in m] == [len(layer) for layer in v] == [1, 0]


def test_optimizers_leave_their_inputs_unchanged():
    """A step returns new arrays: the parameters, gradients and state passed in are not modified."""
    for optimizer in (optim.SGD(), optim.Momentum(), optim.Adam(weight_decay=0.1)):
        params, grads = [(np.ones(3),)], [(np.full(3, 0.5),)]
        state = optimizer.init(params)
        before = [a.copy() for a in leaves((params, grads, state))]
        optimizer.step(params, grads, state)
        assert all(np.array_equal(a, b) for a, b in zip(leaves((params, grads, state)), before, strict=True))


@pytest.mark.jax
def test_optimizers_jit_whole():
    """A jax step with its optimizer traces once under jax.jit and gives the eager step's numbers."""
    params = [(jnp.arange(3.0),)]
    grads = [(jnp.array([1.0, -2.0, 0.5]),)]
    for optimizer in (optim.SGD(), optim.Momentum(), optim.Adam()):
        state = optimizer.init(params)
        eager = optimizer.step(params, grads, state)
        jitted = jax.jit(optimizer.step)(params, grads, state)
        assert all(np.array_equal(a, b) for a, b in zip(leaves(eager), leaves(jitted), strict=True))
