"""The reference with a tanh or a sigmoid differentiated wrong, for the mistakes made inside a layer."""

import os
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.nn import sigmoid as nn_sigmoid
from jax.numpy import tanh

from handlayers import testing
from handlayers.testing import compare, inner
from handlayers.testing.compare import Found, _inner_variants, _one_site, _Row
from handlayers.testing.oracle import Example, oracle, oracle_variants
from handlayers.testing.report import Hint, explained
from handlayers.testing.specs import SPECS
from reference import scalar
from reference.vector import lstm_step, rnn, rnn_step
from tests.labs import cs231n

A = np.array([-1.5, 0.0, 0.3, 2.0])


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch):
    """Sites show files relative to the working directory: the tests name them from the root."""
    monkeypatch.chdir(Path(__file__).parents[1])


def two_tanhs(a):
    return jnp.sum(jnp.tanh(a) + 3 * jax.nn.tanh(a))


@pytest.mark.parametrize(
    ("selector", "derivative"),
    [
        ([0, 0], lambda a: 4 * (1 - np.tanh(a) ** 2)),
        ([1, 0], lambda a: (1 - np.tanh(np.tanh(a)) ** 2) + 3 * (1 - np.tanh(a) ** 2)),
        ([0, 2], lambda a: (1 - np.tanh(a) ** 2) + 3 * (1 - a**2)),
        ([2, 1], lambda a: (1 - a**2) + 3 * (1 - np.tanh(np.tanh(a)) ** 2)),
    ],
)
def test_each_site_takes_the_derivative_its_selector_chooses_and_the_value_stays(selector, derivative):
    """jnp.tanh and jax.nn.tanh, called from two places, each take the derivative chosen for its
    place (0 right, 1 at the output, 2 from the input); the value is the reference's."""
    places = inner.sites(two_tanhs, (A,), {})
    line = two_tanhs.__code__.co_firstlineno + 1
    assert [site.text for site in places["tanh"]] == [
        f"jnp.tanh(a) (line {line} of tests/test_inner.py)",
        f"jax.nn.tanh(a) (line {line} of tests/test_inner.py)",
    ]
    function = inner.mistaken(two_tanhs, places)
    with jax.enable_x64(True):
        value, grad = jax.value_and_grad(function, argnums=1)(np.array(selector), A)
    assert value == two_tanhs(A)
    np.testing.assert_allclose(grad, derivative(A), rtol=1e-14)


def sigmoids(a):
    return scalar.sigmoid(a) + 2 * nn_sigmoid(a) + 4 * jax.scipy.special.expit(a) + 8 * tanh(a)


def test_every_sigmoid_and_tanh_is_found_where_the_reference_finds_it():
    """reference.scalar.sigmoid, jax.nn.sigmoid imported by name, expit, and tanh imported from
    jax.numpy: each a site; the selector's sites are the sigmoids' then the tanh's."""
    places = inner.sites(sigmoids, (A,), {})
    assert {name: len(found) for name, found in places.items()} == {"sigmoid": 3, "tanh": 1}
    function = inner.mistaken(sigmoids, places)
    s, t = 1 / (1 + np.exp(-A)), np.tanh(A)
    at_output = [(lambda x: x * (1 - x))(1 / (1 + np.exp(-s))), 1 - np.tanh(t) ** 2]
    right = [s * (1 - s), 1 - t**2]
    with jax.enable_x64(True):
        for selector, (d1, d2, d4, d8) in [
            ([1, 0, 0, 0], (at_output[0], right[0], right[0], right[1])),
            ([0, 2, 1, 1], (right[0], A * (1 - A), at_output[0], at_output[1])),
            ([0, 0, 2, 2], (right[0], right[0], A * (1 - A), 1 - A**2)),
        ]:
            grad = jax.vmap(jax.grad(lambda sel, a: jnp.sum(function(sel, a)), argnums=1), (0, None))(
                np.array([selector]), A
            )[0]
            np.testing.assert_allclose(grad, d1 + 2 * d2 + 4 * d4 + 8 * d8, rtol=1e-13)


def test_the_swap_ends_with_the_call_even_when_the_reference_raises():
    """Outside the swapped reference (also after it raised) every function is the real one, in
    its module and in the reference's; a reference that calls none has no sites."""
    originals = jnp.tanh, jax.nn.sigmoid, scalar.sigmoid, nn_sigmoid, tanh

    swapped = []

    def fails(a):
        nn_sigmoid(a)
        swapped.append((jnp.tanh is not originals[0], nn_sigmoid is not originals[3]))
        raise ValueError("mine")

    places = {"sigmoid": inner.sites(sigmoids, (A,), {})["sigmoid"]}
    with pytest.raises(ValueError, match="mine"):
        inner.mistaken(fails, places)(np.ones(3, int), A)
    assert swapped == [(True, True)]  # the swap was made
    assert (jnp.tanh, jax.nn.sigmoid, scalar.sigmoid, nn_sigmoid, tanh) == originals
    assert jax.nn.tanh is jnp.tanh
    assert inner.sites(jnp.exp, (A,), {}) == {}


def test_sites_are_traced_once_per_reference_and_shapes_and_mistaken_once_per_places():
    places = inner.sites(two_tanhs, (A,), {})
    assert inner.sites(two_tanhs, (A + 1,), {}) is places
    assert inner.sites(two_tanhs, (A[:2],), {}) is not places
    assert inner.mistaken(two_tanhs, places) is inner.mistaken(two_tanhs, dict(places))


def rnn_inputs(rng, t=None):
    x = rng.normal(size=(2, 3) if t is None else (2, t, 3))
    return x, *(rng.normal(size=shape) for shape in ((2, 4), (3, 4), (4, 4), (4,)))


def test_an_rnn_step_with_tanh_at_its_output_is_the_mistaken_reference():
    """A vanilla RNN step's backward with 1 - tanh(next_h)**2 gives the reference's gradients
    with its one tanh's derivative taken at the output."""
    rng = np.random.default_rng(0)
    x, h, Wx, Wh, b = inputs = rnn_inputs(rng)
    dout = rng.normal(size=(2, 4))
    da = dout * (1 - np.tanh(np.tanh(x @ Wx + h @ Wh + b)) ** 2)
    places = inner.sites(rnn_step, inputs, {})
    assert [site.text for site in places["tanh"]] == [
        "jnp.tanh(x @ Wx + h_prev @ Wh + b) (line 13 of reference/vector/recurrent.py)"
    ]
    with jax.enable_x64(True):
        _, vjp = jax.vjp(lambda *xs: inner.mistaken(rnn_step, places)(np.array([1]), *xs), *inputs)
        grads = vjp(dout)
    for got, want in zip(grads, (da @ Wx.T, da @ Wh.T, x.T @ da, h.T @ da, da.sum(0)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_the_selector_reaches_inside_a_scan():
    """rnn's lax.scan calls rnn_step's tanh from one site at every step: the mistake is made at each."""
    rng = np.random.default_rng(1)
    x, h0, Wx, Wh, b = inputs = rnn_inputs(rng, t=3)
    dout = rng.normal(size=(2, 3, 4))
    hs, dh = [h0], np.zeros((2, 4))
    for s in range(3):
        hs.append(np.tanh(x[:, s] @ Wx + hs[-1] @ Wh + b))
    dx = np.zeros_like(x)
    for s in reversed(range(3)):
        a = x[:, s] @ Wx + hs[s] @ Wh + b
        da = (dout[:, s] + dh) * (1 - a**2)  # the derivative computed from the input
        dx[:, s], dh = da @ Wx.T, da @ Wh.T
    places = inner.sites(rnn, inputs, {})
    with jax.enable_x64(True):
        _, vjp = jax.vjp(lambda *xs: inner.mistaken(rnn, places)(np.array([2]), *xs), *inputs)
        got_dx, got_dh0, *_ = vjp(dout)
    np.testing.assert_allclose(got_dx, dx, rtol=1e-12)
    np.testing.assert_allclose(got_dh0, dh, rtol=1e-12)


def test_an_lstm_step_has_its_sites_in_the_order_called():
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=s) for s in ((2, 3), (2, 2), (2, 2), (3, 8), (2, 8), (8,))]
    places = inner.sites(lstm_step, inputs, {})
    assert [[site.text.partition(" (")[0] for site in found] for found in places.values()] == [
        ["sigmoid(a_f)", "sigmoid(a_i)", "sigmoid(a_o)"],
        ["jnp.tanh(a_g)", "jnp.tanh(c)"],
    ]
    assert inner.words("sigmoid", "input", places["sigmoid"][1]) == (
        "is computed with sigmoid's derivative written for its output but computed from its input in "
        "sigmoid(a_i) (line 31 of reference/vector/recurrent.py): a * (1 - a), where it is out * (1 - out) with "
        "out = sigmoid(a)"
    )


def test_the_variants_are_each_way_at_every_site_and_at_each_site_alone():
    rng = np.random.default_rng(2)
    inputs = [rng.normal(size=s) for s in ((2, 3), (2, 2), (2, 2), (3, 8), (2, 8), (8,))]
    places = inner.sites(lstm_step, inputs, {})
    variants = _inner_variants(places)
    # sigmoid at f, i, o; tanh at g, c: two ways each, at every site and at each one alone
    assert [selector for selector, _, _ in variants] == [
        [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0],
        [2, 2, 2, 0, 0], [2, 0, 0, 0, 0], [0, 2, 0, 0, 0], [0, 0, 2, 0, 0],
        [0, 0, 0, 1, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1],
        [0, 0, 0, 2, 2], [0, 0, 0, 2, 0], [0, 0, 0, 0, 2],
    ]  # fmt: skip
    assert [way for _, _, way in variants] == [("sigmoid", "output")] * 4 + [("sigmoid", "input")] * 4 + [
        ("tanh", "output")
    ] * 3 + [("tanh", "input")] * 3
    assert len({words for _, words, _ in variants}) == len(variants)
    assert "jnp.tanh(c) (line" in variants[10][1]
    assert "(line" not in variants[8][1]  # at every site: none named, their number said
    assert variants[8][1].startswith(
        "is computed with tanh's derivative taken at its output wherever it is called (2 places): "
    )
    one = inner.sites(rnn_step, [rng.normal(size=s) for s in ((2, 3), (2, 4), (3, 4), (4, 4), (4,))], {})
    assert [selector for selector, _, _ in _inner_variants(one)] == [[1], [2]]  # one site: no "alone"
    assert _inner_variants(one)[0][1].startswith("is computed with tanh's derivative taken at its output: ")


def test_the_site_that_explains_the_most_gradients_is_named_once_every_example_is_in():
    ways = {"every tanh": ("tanh", "input"), "tanh(c)": ("tanh", "input"), "tanh(g)": ("tanh", "input")}
    other = Hint(("dx",), "is transposed")
    everywhere = [Hint((g,), "tanh(c)") for g in ("dx", "dh", "dc")]
    typical = [*everywhere, Hint(("dc",), "every tanh")]  # dc reaches tanh(c) only
    assert _one_site([*typical, other], ways) == [*everywhere, other]
    # an example of zeros (tanh(g) at 0: 1 - g**2 is right there) where every tanh explains more
    zeros = [*everywhere, *[Hint((g,), "every tanh") for g in ("dx", "dh", "dc")], Hint(("dc",), "tanh(g)")]
    assert _one_site(zeros, ways) == zeros[:6]  # a tie: both kept
    # across both, tanh(c) explains every gradient and "every tanh" dc alone
    assert _one_site(explained([({"dx", "dh", "dc"}, typical), ({"dx", "dh", "dc"}, zeros)]), ways) == everywhere
    # chosen per example first, the typical example would drop dc's "every tanh" and the other its
    # tanh(c) hints in a tie-free variant of it: nothing would be left for dc
    skewed = [*zeros[3:6], Hint(("dc",), "tanh(c)")]
    per_example = [({"dx", "dh", "dc"}, _one_site(typical, ways)), ({"dx", "dh", "dc"}, _one_site(skewed, ways))]
    assert explained(per_example) == []
    assert _one_site(explained([({"dx", "dh", "dc"}, typical), ({"dx", "dh", "dc"}, skewed)]), ways) == [
        Hint(("dc",), "tanh(c)"),
        Hint(("dc",), "every tanh"),
    ]


def test_a_value_wrong_by_rounding_alone_says_nothing_against_a_mistake():
    """An example whose dc is off by a few tolerances (the check fails at one; CI's LSTM example
    with dh = 0 where tanh(c) is taken) cannot tell a mistake: it keeps none from the report."""
    tol = 1e-11
    near = _Row("dc", np.array([1.0, 2.0]), np.array([1.0, 2.0 + 3 * tol]), "worst error ...", tol, 3.0, 2)
    far = _Row("dc", np.array([1.0, 2.0]), np.array([1.0, 2.5]), "worst error ...", tol, 5e10, 2)
    right = _Row("dx", np.array([1.0]), np.array([1.0]), None, tol, 0.0, 0)
    typical = Found("step", None, None, "numpy", np.float64, rows=[far, right])
    rounding = Found("step", None, None, "numpy", np.float64, rows=[near, right])
    assert (typical.wrong, rounding.wrong) == ({"dc"}, set())
    hint = Hint(("dc",), "tanh(c)")
    assert explained([(typical.wrong, [hint]), (rounding.wrong, [])]) == [hint]
    # a value no number, or of another shape, is wrong beyond rounding
    for got in ("text", np.array([1.0])):
        odd = Found("step", None, None, "numpy", np.float64, rows=[_Row("dc", np.array([1.0, 2.0]), got, "x", tol)])
        assert odd.wrong == {"dc"}


def greek(a):
    σ, τ = jax.nn.sigmoid(a), jax.vmap(jnp.tanh)(a)
    return σ + τ


def test_a_site_is_the_call_as_written_and_where_jax_was_called():
    """Columns count bytes (a Greek name before the call); a function handed to jax
    (``jax.vmap(jnp.tanh)``) is placed at the call of jax, and its mistake made there."""
    places = inner.sites(greek, (A,), {})
    line = greek.__code__.co_firstlineno + 1
    assert [site.text for found in places.values() for site in found] == [
        f"jax.nn.sigmoid(a) (line {line} of tests/test_inner.py)",
        f"jax.vmap(jnp.tanh)(a) (line {line} of tests/test_inner.py)",
    ]
    with jax.enable_x64(True):
        grad = jax.grad(lambda a: jnp.sum(inner.mistaken(greek, places)(np.array([0, 2]), a)))(A)
    s = 1 / (1 + np.exp(-A))
    np.testing.assert_allclose(grad, s * (1 - s) + 1 - A**2, rtol=1e-14)


def test_a_file_is_shown_from_the_working_directory_or_as_its_module(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    inputs = rnn_inputs(rng)
    monkeypatch.chdir(tmp_path)  # the package's file is outside: shown as its module's path
    inner._SITES.clear()
    assert inner.sites(rnn_step, inputs, {})["tanh"][0].text.endswith("(line 13 of reference/vector/recurrent.py)")
    path = str(tmp_path.parent / "mine.py")
    assert inner._shown(path, {"__name__": "mine"}) == path  # neither: in full
    assert inner._shown(path, {"__name__": "elsewhere.mine"}) == path
    init = str(tmp_path.parent / "pkg" / "__init__.py")
    assert inner._shown(init, {"__name__": "pkg"}) == init
    assert inner._shown(str(tmp_path / "x" / "y.py"), {}) == os.path.join("x", "y.py")
    inner._SITES.clear()


def test_two_calls_on_one_line_are_told_apart_where_python_has_no_columns():
    code = greek.__code__
    same = [inner.Site(code, i, "jnp.tanh(a) (line 7 of f.py)") for i in (4, 8)]
    other = inner.Site(code, 12, "g(a) (line 9 of f.py)")
    assert [site.text for site in inner._numbered([*same, other])] == [
        "jnp.tanh(a) (call 1 of 2 on line 7 of f.py)",
        "jnp.tanh(a) (call 2 of 2 on line 7 of f.py)",
        "g(a) (line 9 of f.py)",
    ]
    assert inner._numbered([*same[:1], other]) == [*same[:1], other]


jitted = jax.jit(two_tanhs)


def test_a_jitted_reference_is_traced_anew_and_left_as_it_was():
    """jax's cache of a jitted reference neither hides its sites (a trace before) nor keeps the
    mistaken trace (a trace after gives the right gradient)."""
    with jax.enable_x64(True):
        right = jax.grad(jitted)(A)
        places = inner.sites(jitted, (A,), {})
        assert len(places["tanh"]) == 2
        wrong = jax.grad(lambda a: inner.mistaken(jitted, places)(np.array([0, 2]), a))(A)
        np.testing.assert_allclose(wrong, (1 - np.tanh(A) ** 2) + 3 * (1 - A**2), rtol=1e-14)
        np.testing.assert_allclose(jax.grad(jitted)(A), right, rtol=0)


def test_another_thread_sees_the_real_functions_while_the_swap_holds():
    seen = {}

    def elsewhere():
        seen["tanh"] = float(jnp.tanh(1.0))

    with inner._swapping(two_tanhs, lambda name, original: lambda *args: "swapped"):
        assert jnp.tanh(1.0) == "swapped"
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()
    assert seen == {"tanh": pytest.approx(np.tanh(1.0))}


def test_hints_that_cannot_be_worked_out_leave_the_report_without_them(monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("no trace")

    monkeypatch.setattr(compare, "mistakes", fails)
    with pytest.raises(testing.Mismatch) as raised:
        testing.check(
            (cs231n.rnn_step_at_output_forward, cs231n.rnn_step_at_output_backward),
            "vector.rnn_step",
            max_examples=5,
        )
    assert str(raised.value).endswith("(no hint: working them out raised RuntimeError: no trace)")


def test_the_selector_of_no_mistake_is_the_oracle():
    """Every site at 0: the gradients are the reference's own, for an LSTM step's five sites."""
    rng = np.random.default_rng(3)
    spec = SPECS["vector.lstm_step"]
    inputs = tuple(rng.normal(size=s) for s in ((2, 3), (2, 2), (2, 2), (3, 8), (2, 8), (8,)))
    example = Example(inputs, {}, (rng.normal(size=(2, 2)), rng.normal(size=(2, 2))))
    places = inner.sites(spec.reference, inputs, {})
    selectors = np.array([[0] * 5, [1, 0, 0, 0, 0]])
    none, one = oracle_variants(spec, example, inner.mistaken(spec.reference, places), selectors)
    rights = oracle(spec, example)[1]
    for got, right in zip(none, rights, strict=True):
        np.testing.assert_allclose(got, right, rtol=1e-14, atol=1e-15)
    assert not all(np.allclose(wrong, right, rtol=1e-6) for wrong, right in zip(one, rights, strict=True))


def _tanh_step(c, x_s):
    return jnp.tanh(c + x_s), None


def scans_the_rest(x, h):
    """tanh(h), then a tanh step for each row of x after the first: no step where x has one row."""
    c, _ = jax.lax.scan(_tanh_step, jnp.tanh(h), x[1:])
    return c


class FlipsDh:
    def forward(self, x, h):
        self.x, self.outs = x, [np.tanh(h)]
        for x_s in x[1:]:
            self.outs.append(np.tanh(self.outs[-1] + x_s))
        return self.outs[-1]

    def backward(self, dout):
        dx, dc = np.zeros_like(self.x), dout
        for k in range(len(self.outs) - 1, 0, -1):
            dx[k] = dc = dc * (1 - self.outs[k] ** 2)
        return dx, -dc * (1 - self.outs[0] ** 2)


def test_a_reference_that_cannot_be_traced_for_its_sites_keeps_the_other_hints():
    """A scan of no steps (x of one row) is refused under jax.disable_jit: that example tells
    nothing of the mistakes inside, and the sign flip is still named."""
    with pytest.raises(ValueError, match="zero-length scan"):
        inner.sites(scans_the_rest, (np.ones((1, 2)), np.ones(2)), {})
    spec = testing.spec(scans_the_rest, shapes={"x": "t d", "h": "d"})
    with pytest.raises(testing.Mismatch, match="Likely mistake: dh has the wrong sign"):
        testing.check(FlipsDh, spec, max_examples=20)
