"""Attention beyond the oracle test: the causal mask, huge scores, the shapes drawn on purpose,
one part in a million, and errors."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlayers import vector
from handlayers.testing import SPECS, Example, check_backends, check_example, examples, oracle, tolerance
from tests.helpers import as_numpy, backend_array, seeded_example

SPEC = SPECS["vector.attention"]


@given(data=st.data())
def test_causal_attention_at_query_i_is_attention_over_keys_up_to_i(backend, data):
    """With the mask, query i's output is plain attention of query i over keys 0..i alone: the
    later keys and values have no weight at all."""
    example = data.draw(examples(SPEC).filter(lambda e: e.kwargs["causal"]))
    Q, K, V = (backend_array(backend, x) for x in example.inputs)
    Y = as_numpy(vector.Attention(causal=True).forward(Q, K, V))
    tol = tolerance(SPEC, example, np.float64)
    for i in range(Q.shape[1]):
        alone = as_numpy(vector.Attention().forward(Q[:, i : i + 1], K[:, : i + 1], V[:, : i + 1]))
        np.testing.assert_allclose(Y[:, i : i + 1], alone, rtol=0, atol=tol)


@given(data=st.data())
def test_causal_gradients_do_not_reach_later_keys_from_earlier_queries(backend, data):
    """With the mask, a dout on query i alone gives no gradient to keys and values after i."""
    example = data.draw(examples(SPEC).filter(lambda e: e.kwargs["causal"]))
    t = np.shape(example.inputs[0])[1]
    i = data.draw(st.integers(0, t - 1))
    dY = np.zeros_like(example.dout)
    dY[:, i] = example.dout[:, i]
    layer = vector.Attention(causal=True)
    layer.forward(*(backend_array(backend, x) for x in example.inputs))
    _, dK, dV = (as_numpy(g) for g in layer.backward(backend_array(backend, dY)))
    assert not np.any(dK[:, i + 1 :])
    assert not np.any(dV[:, i + 1 :])


@pytest.mark.parametrize("causal", [False, True])
def test_huge_scores_give_the_winning_value_exactly_and_finite_gradients(causal, backend, dtype):
    """Scores of about 1e6 saturate the softmax: each query's output is exactly the value of its
    highest-scoring key, the gradients are finite, and nothing warns (warnings are errors here)."""
    rng = np.random.default_rng(0)
    Q, K, V = (rng.standard_normal((2, 4, 3)).astype(dtype) for _ in range(3))
    Q, K = 1e3 * Q, 1e3 * K
    layer = vector.Attention(causal=causal)
    Y = as_numpy(layer.forward(*(backend_array(backend, x) for x in (Q, K, V))))
    grads = layer.backward(backend_array(backend, np.ones_like(Y)))
    S = np.einsum("nqd,nkd->nqk", Q.astype(np.float64), K.astype(np.float64))
    if causal:
        S = np.where(np.triu(np.ones((4, 4), bool), 1), -np.inf, S)
    winner = np.argmax(S, axis=2)
    np.testing.assert_array_equal(Y, np.take_along_axis(V, winner[:, :, None], axis=1))
    assert all(np.all(np.isfinite(as_numpy(g))) for g in grads)


# the shapes the issue asks for on purpose, checked every run whatever Hypothesis draws:
# (Q, K, V) shapes and causal; one query, one key, tq != tk both ways, a batch of one
ON_PURPOSE = [
    ([(1, 1, 2), (1, 1, 2), (1, 1, 3)], False),
    ([(1, 1, 2), (1, 1, 2), (1, 1, 3)], True),
    ([(2, 1, 3), (2, 4, 3), (2, 4, 2)], False),
    ([(2, 4, 3), (2, 2, 3), (2, 2, 1)], False),
    ([(1, 4, 2), (1, 4, 2), (1, 4, 3)], True),
]


@pytest.mark.parametrize(("shapes", "causal"), ON_PURPOSE)
def test_drawn_on_purpose_shapes_match_the_oracle(shapes, causal, backends, dtype):
    """One query, one key, more or fewer queries than keys, causal masks and a batch of one
    match the oracle on every backend."""
    example = seeded_example(SPEC, shapes, {"causal": causal}, scale=2.0)
    check_backends(SPEC.layer, SPEC, example, backends=backends, dtype=dtype)


@pytest.mark.parametrize("causal", [False, True])
def test_every_gradient_wrong_by_one_part_in_a_million_fails(causal):
    """In float64, each of dQ, dK, dV in turn, scaled by 1 + 1e-6, fails the check, naming it."""
    example = seeded_example(SPEC, [(2, 3, 2), (2, 3, 2), (2, 3, 4)], {"causal": causal})
    assert all(np.max(np.abs(g)) > 1e-3 for g in oracle(SPEC, example)[1])  # large enough to show
    for index, grad in enumerate(SPEC.grads):

        class Wrong(vector.Attention):
            def backward(self, dout, index=index):
                return tuple(g * (1 + 1e-6) if i == index else g for i, g in enumerate(super().backward(dout)))

        with pytest.raises(AssertionError, match=f"{grad}: WRONG"):
            check_example(Wrong, SPEC, example)


def test_a_mask_the_reference_lacks_fails_the_check():
    """A causal example checked against the plain reference fails: the mask is what the check
    compares, not something both sides leave out."""
    example = seeded_example(SPEC, [(1, 3, 2), (1, 3, 2), (1, 3, 2)], {"causal": True})
    unmasked = Example(example.inputs, {"causal": False}, example.dout)
    with pytest.raises(AssertionError, match="output: WRONG"):
        check_example(lambda causal: vector.Attention(causal=True), SPEC, unmasked)


BAD = [
    (
        [(2, 3, 4), (2, 5, 3), (2, 5, 6)],
        False,
        "Attention: expected Q (n, tq, d), K (n, tk, d), V (n, tk, dv), tk >= 1, d >= 1; "
        "got Q (2, 3, 4), K (2, 5, 3), V (2, 5, 6)",
    ),
    ([(2, 3, 4), (2, 5, 4), (2, 4, 6)], False, "got Q (2, 3, 4), K (2, 5, 4), V (2, 4, 6)"),
    ([(2, 3, 4), (1, 5, 4), (1, 5, 6)], False, "got Q (2, 3, 4), K (1, 5, 4)"),
    ([(3, 4), (3, 4), (3, 6)], False, "got Q (3, 4), K (3, 4), V (3, 6)"),
    ([(2, 3, 4), (2, 0, 4), (2, 0, 6)], False, "got Q (2, 3, 4), K (2, 0, 4), V (2, 0, 6)"),
    ([(2, 3, 0), (2, 5, 0), (2, 5, 6)], False, "got Q (2, 3, 0), K (2, 5, 0), V (2, 5, 6)"),
    (
        [(2, 3, 4), (2, 5, 4), (2, 5, 6)],
        True,
        "Attention(causal=True): expected as many queries as keys, tq == tk; got Q (2, 3, 4), K (2, 5, 4), V (2, 5, 6)",
    ),
]


@pytest.mark.parametrize(("shapes", "causal", "message"), BAD)
def test_shapes_that_do_not_fit_raise_naming_them(shapes, causal, message, backend):
    """Shapes that do not fit, and a causal mask over tq != tk, raise ValueError naming every shape."""
    with pytest.raises(ValueError, match=re.escape(message)):
        vector.Attention(causal=causal).forward(*(backend_array(backend, np.zeros(s)) for s in shapes))


@pytest.mark.parametrize("causal", [False, True])
def test_a_nan_key_reaches_the_queries_that_see_it(causal, backend):
    """A NaN in key j makes NaN every output row that weighs key j (all of them, or with the mask
    the rows i >= j) and leaves the rows the mask hides it from finite, without a warning."""
    Q, K, V = seeded_example(SPEC, [(1, 4, 2), (1, 4, 2), (1, 4, 3)], {"causal": causal}).inputs
    K = K.copy()
    K[0, 2, 1] = np.nan
    Y = as_numpy(vector.Attention(causal=causal).forward(*(backend_array(backend, v) for v in (Q, K, V))))
    seen = slice(2, None) if causal else slice(None)
    assert np.all(np.isnan(Y[0, seen]))
    if causal:
        assert np.all(np.isfinite(Y[0, :2]))
