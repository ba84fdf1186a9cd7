"""The conventions from Python: testing.check and testing.adapt take user code as it is written,
testing.spec takes any reference; options that do not fit the code are errors."""

import dataclasses
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from handlayers import testing, vector
from handlayers.__main__ import main
from handlayers.testing.conventions import Miscount, _param_dict
from handlayers.testing.declared import parse_keywords, parse_labels, parse_shapes

LABS = Path(__file__).parent / "labs"
sys.path.insert(0, str(LABS))

import attributes  # noqa: E402 (the labs folder is on the path only from here)
import cs231n  # noqa: E402
import kernels  # noqa: E402
import refs  # noqa: E402
import scratch  # noqa: E402


def test_a_function_pair_from_python_passes():
    """A (forward, backward) pair of functions is checked as it is, with no adapter."""
    result = testing.check((cs231n.affine_forward, cs231n.affine_backward), "vector.affine", max_examples=20)
    assert result.examples == 20
    adapted = testing.adapt((cs231n.affine_forward, cs231n.affine_backward), testing.SPECS["vector.affine"])
    assert [v.__name__ for v in adapted.variants()] == ["affine"]  # run once per example: no jax.jit variant


def test_a_loss_returning_its_gradient_from_python_is_compared_at_dout_one():
    """A loss function returning (loss, dx) is compared on its first input's gradient at dout = 1."""
    adapted = testing.adapt(cs231n.softmax_loss, testing.SPECS["vector.softmax_cross_entropy"])
    assert (adapted.kind, adapted.compared, adapted.unit_dout) == ("loss", (0,), True)
    assert testing.check(cs231n.softmax_loss, "vector.softmax_cross_entropy", max_examples=20).examples == 20


def _row_losses(x, y):
    return 0.5 * jax.numpy.sum((x - y) ** 2, axis=1)


def test_a_loss_of_one_value_per_row_is_compared_at_a_dout_of_ones():
    """A loss returning (one loss per row, dx) is compared at ``dout = 1`` for every row: dx is
    then the gradient of their sum (mutants that compared it at one scalar 1 survived)."""
    spec = testing.spec(_row_losses, shapes="x: n d; y: n d")

    def row_losses(x, y):
        return 0.5 * np.sum((x - y) ** 2, axis=1), x - y

    def summed_twice(x, y):
        return 0.5 * np.sum((x - y) ** 2, axis=1), 2 * (x - y)

    assert testing.check(row_losses, spec, max_examples=10).examples == 10
    with pytest.raises(testing.Mismatch, match="dx"):
        testing.check(summed_twice, spec, max_examples=10)


def test_a_size_may_be_read_from_a_negative_axis():
    """``--init W.-2,W.-1`` counts axes from the end, as Python does."""
    options = {"init": ["W.-2", "W.-1"], "params": {"W": "weights", "b": "biases:row"}, "output": "output"}
    options["grads"] = {"dX": "dinputs", "dW": "dweights", "db": "dbiases"}
    assert testing.check(scratch.Layer_Dense, "vector.affine", max_examples=5, **options).examples == 5


def test_integer_labels_may_go_without_their_none():
    """A backward that returns nothing, its float gradient in an attribute, gives None for each of
    two integer inputs (a class in the from-scratch style, backward returning nothing)."""
    adapted = testing.Adapted(None, "class", "Loss", ("Z", "labels", "keep"), labels=(1, 2), grads={"Z": "dinputs"})
    assert adapted.gradients(None, {"dinputs": 1.5}.get) == (1.5, None, None)
    assert adapted.gradients((None, None), {"dinputs": 1.5}.get) == (1.5, None, None)
    assert adapted.gradients((None, None, None), {"dinputs": 1.5}.get) == Miscount(3, ("dlabels", "dkeep"))


def test_attribute_options_from_python_match_the_flags():
    """params, init, grads and output are the Python names of --param, --init, --grad, --output."""
    options = {
        "init": ["W.0", "W.1"],
        "params": {"W": "weights", "b": "biases:row"},
        "grads": {"dX": "dinputs", "dW": "dweights", "db": "dbiases"},
        "output": "output",
    }
    assert testing.check(scratch.Layer_Dense, "vector.affine", max_examples=20, **options).examples == 20


@pytest.mark.jax
def test_a_jax_function_given_numpy_inputs_returns_jax_arrays_and_passes():
    """A jax function computes in jax whatever it is given: on the numpy backend its jax arrays
    are what is expected, not 'a jax value, expected numpy'."""
    assert testing.check(kernels.relu, "vector.relu", backend="numpy", max_examples=5).examples == 5


@pytest.mark.jax
@pytest.mark.slow
def test_a_custom_vjp_function_is_checked_eagerly_and_under_jit():
    """A jax.custom_vjp function is checked twice per example: eagerly and under jax.jit."""
    spec = testing.spec(jax.nn.gelu, shapes={"x": "n d"})
    adapted = testing.adapt(kernels.gelu, spec)
    assert [v.__name__ for v in adapted.variants()] == ["gelu", "jax.jit(gelu)"]
    assert testing.check(kernels.gelu, spec, backend="jax", max_examples=10).examples == 10


@pytest.mark.jax
@pytest.mark.slow
@pytest.mark.parametrize("name", ["relu_numpy_backward", "relu_numpy_forward"])
def test_code_that_fails_only_under_jit_is_reported_under_that_name(name):
    """A custom VJP whose backward, or whose function (not its forward rule, which jax.vjp calls),
    computes with numpy passes eagerly and fails under jax.jit, named so: the forward runs under
    jax.jit too, and only there."""
    with pytest.raises(testing.Mismatch, match=rf"^jax\.jit\({name}\) raised TracerArrayConversionError"):
        testing.check(getattr(kernels, name), "vector.relu", backend="jax", max_examples=5)


def test_code_without_a_name_is_named_by_its_type():
    """A callable object (a loss function as an instance) has no __name__: reports name its type."""

    class SoftmaxLoss:
        def __call__(self, x, y):
            return cs231n.softmax_loss(x, y)

    assert testing.adapt(SoftmaxLoss(), testing.SPECS["vector.softmax_cross_entropy"]).name == "SoftmaxLoss"


def test_an_input_with_a_default_is_passed_by_position_only():
    """A declared reference whose input has a default (``b=0.0``) is no keyword: code that requires
    ``b`` gets it by position, not by name too (``got multiple values for argument 'b'``), and a
    constructor taking it by ``--init W,b`` is not refused."""

    def dense(X, W, b=0.0):
        return X @ W + b

    spec = testing.spec(dense, shapes="X: n d; W: d k; b: k")
    assert testing.check((cs231n.affine_forward, cs231n.affine_backward), spec, max_examples=5).examples == 5
    options = {"init": ["W", "b"], "grads": {"dW": "dW", "db": "db"}}
    assert testing.check(attributes.Dense, spec, max_examples=5, **options).examples == 5


def test_an_input_with_a_default_is_never_given_to_a_constructor():
    """The reference's inputs go to ``forward``, one with a default too: a class checked as it is
    whose constructor requires ``b`` does not get the default ``b=0.0``, and raises."""

    def dense(X, W, b=0.0):
        return X @ W + b

    class NeedsB(vector.Affine):
        def __init__(self, b):
            super().__init__()

    spec = testing.spec(dense, shapes="X: n d; W: d k; b: k")
    example = testing.Example((np.ones((1, 2)), np.ones((2, 1)), np.ones(1)), {}, np.ones((1, 1)))
    with pytest.raises(
        testing.Mismatch, match=r"(?s)^NeedsB raised TypeError against .*missing 1 required positional argument: 'b'$"
    ):
        testing.check_example(NeedsB, spec, example)
    assert testing.check_example(vector.Affine, spec, example) <= 1


def test_a_forward_that_requires_a_keyword_is_refused():
    """The checker passes a reference's keywords to the constructor, never to forward: a forward
    that requires one (leaky ReLU's alpha) cannot be run, and is told so before it is, and why."""

    class ForwardTakesAlpha:
        def forward(self, A, alpha):
            self.A, self.alpha = A, alpha
            return np.where(A > 0, A, alpha * A)

        def backward(self, dout):
            return np.where(self.A > 0, dout, self.alpha * dout)

    message = r"forward \(self, A, alpha\) cannot take A; alpha: a keyword of the reference, given to the constructor"
    with pytest.raises(testing.ConventionError, match=message):
        testing.adapt(ForwardTakesAlpha, testing.SPECS["vector.leaky_relu"])

    class ForwardTakesTwo(ForwardTakesAlpha):
        def forward(self, A, alpha, scale):
            return scale * super().forward(A, alpha)

    def scaled_leaky(A, alpha, scale=1.0):
        return scale * jax.numpy.where(A > 0, A, alpha * A)

    spec = testing.spec(scaled_leaky, shapes="A: n k", kwargs={"alpha": 0.1})
    message = r"cannot take A; alpha, scale: keywords of the reference, given to the constructor, not to forward$"
    with pytest.raises(testing.ConventionError, match=message):
        testing.adapt(ForwardTakesTwo, spec)


@pytest.mark.parametrize("array", [np.asarray, jax.numpy.asarray])
def test_a_row_parameter_is_set_as_a_row_of_one(array):
    """`--param b=biases:row` sets the 1-d input as the (1, d) row a from-scratch layer keeps."""
    options = {"init": ["W.0", "W.1"], "params": {"W": "weights", "b": "biases:row"}, "output": "output"}
    layer = testing.adapt(scratch.Layer_Dense, testing.SPECS["vector.affine"], **options)()
    layer.forward(array(np.ones((2, 4))), array(np.ones((4, 3))), array(np.arange(3.0)))
    assert layer.obj.biases.shape == (1, 3)
    assert (np.asarray(layer.obj.biases) == [[0.0, 1.0, 2.0]]).all()


class LeakyReLU:
    """The contract's convention, its slope required by the constructor."""

    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, A):
        self.A = A
        return np.where(A > 0, A, self.alpha * A)

    def backward(self, dout):
        return np.where(self.A > 0, dout, self.alpha * dout)


REQUIRED_ALPHA = {
    "class": (LeakyReLU, {}, "numpy"),
    "attributes": (scratch.Activation_LeakyReLU, {"grads": {"dA": "dinputs"}, "output": "output"}, "numpy"),
    "pair": ((cs231n.leaky_relu_alpha_forward, cs231n.leaky_relu_backward), {}, "numpy"),
    "jax": (kernels.leaky_relu, {}, "jax"),
}


@pytest.mark.parametrize("alpha", [None, 0.2])
@pytest.mark.parametrize(
    "convention", [pytest.param(c, marks=[pytest.mark.jax] if c == "jax" else []) for c in REQUIRED_ALPHA]
)
def test_code_that_requires_a_keyword_of_the_reference_gets_it(convention, alpha):
    """A constructor or function that requires the reference's keyword (leaky ReLU's alpha) gets the
    example's value, or the reference's default where the example draws none: a class in the
    contract's convention or with attributes, a pair, a jax function (before, a right layer was
    told it raised TypeError). The slope shows in the output and dA."""
    code, options, backend = REQUIRED_ALPHA[convention]
    spec = testing.SPECS["vector.leaky_relu"]
    kwargs = {} if alpha is None else {"alpha": alpha}
    example = testing.Example((np.array([[-2.0, 3.0]]),), kwargs, np.array([[1.5, -1.0]]))
    layers = [code] if convention == "class" else testing.adapt(code, spec, **options).variants()
    for layer in layers:
        assert testing.check_example(layer, spec, example, backend=backend) == 0


def _leaky(x, alpha):
    """A declared reference whose keyword has no default: `--kw` gives it to every example."""
    return jax.numpy.where(x > 0, x, alpha * x)


@pytest.mark.parametrize(
    ("code", "options"),
    [(LeakyReLU, {}), (scratch.Activation_LeakyReLU, {"output": "output", "grads": {"dx": "dinputs"}})],
    ids=["class", "attributes"],
)
def test_a_constructor_may_require_a_keyword_the_reference_requires(code, options):
    """A constructor requiring `alpha` fits a declared reference `leaky(x, alpha)` with `--kw
    alpha=0.1` (before, only keywords with a default were offered to it: 'cannot take no arguments')."""
    spec = testing.spec(_leaky, shapes="x: n k", kwargs={"alpha": 0.1})
    result = testing.check(testing.adapt(code, spec, **options), spec, max_examples=10)
    assert result.examples == 10


@pytest.mark.jax
@pytest.mark.slow
def test_a_jax_function_of_integer_labels_is_differentiated_in_the_floats_alone():
    """Labels go to the function as they are, and get no gradient (None), eagerly and under jax.jit."""
    result = testing.check(kernels.softmax_cross_entropy, "vector.softmax_cross_entropy", backend="jax", max_examples=5)
    assert result.examples == 5


def test_spec_orders_inputs_by_the_reference_signature():
    """Declared inputs go in the reference's parameter order, whatever order they are declared in."""
    spec = testing.spec(refs.dense, shapes="b: d_out; X: n d_in; W: d_in d_out")
    assert spec.args == ("X", "W", "b")
    assert spec.name == "refs.dense"


class Doubled:
    """A reference that is a callable object, not a function."""

    def __call__(self, X):
        return 2 * X


def test_a_declared_reference_is_named_by_its_module_and_qualified_name():
    """Unnamed, a spec is called by where its reference lives: module and qualified name for a
    function, else its name, else its type's name."""

    def local(X):
        return X

    assert testing.spec(local, shapes="X: n").name == f"{__name__}.{local.__qualname__}"
    assert local.__qualname__.endswith("<locals>.local")
    assert testing.spec(Doubled(), shapes="X: n").name == f"{__name__}.Doubled"
    named = Doubled()
    named.__name__ = "twice"  # a name, but no qualified name
    assert testing.spec(named, shapes="X: n").name == f"{__name__}.twice"


def test_a_reference_in_no_module_is_named_by_its_qualified_name_alone():
    """A method of a built-in type has no __module__, a function made by exec() has None: each is
    named by its qualified name alone, whole (no '.' before it, and none of its own letters lost)."""
    # numpy's, which jax cannot trace: refused at once, by that name
    with pytest.raises(testing.ShapesError, match=r"^ndarray\.sum raised TypeError on inputs of the smallest shapes"):
        testing.spec(np.ndarray.sum, shapes="x: n")
    namespace = {}
    exec("class X:\n    @staticmethod\n    def double(x):\n        return 2 * x\n", namespace)
    assert namespace["X"].double.__module__ is None
    assert testing.spec(namespace["X"].double, shapes="x: n").name == "X.double"


def test_spec_keeps_the_declared_order_where_the_reference_has_other_names():
    """Where the declared names are not the reference's parameters, the order declared is kept."""
    spec = testing.spec(refs.multiply, shapes={"b": "n", "a": "n"}, name="product")
    assert (spec.args, spec.name) == (("b", "a"), "product")


def _by_row(x, y):
    """Each row of x times its label."""
    return x * y[:, None]


class _Unsigned:
    """A reference whose signature Python cannot read (as max's), which jax traces: the sum of its
    inputs' sums."""

    @property
    def __signature__(self):
        raise ValueError("no signature")

    def __call__(self, *args, **kwargs):
        return sum(jnp.sum(x) for x in args)


def test_spec_draws_named_dimensions_alike_labels_in_range_and_the_kinks():
    """The same name is the same size, labels lie in [0, k), and the kinks come up exactly (0.3, a
    value Hypothesis does not draw by itself, as it does 0.25)."""
    spec = testing.spec(refs.dense, shapes={"X": "n d_in", "W": "d_in d_out", "b": "d_out"}, kinks=(0.3,))
    seen, labelled = set(), testing.spec(_by_row, shapes="x: n k", labels="y: n < k")
    assert labelled.labels == (1,)

    @testing.strategies.st.composite
    def both(draw):
        return draw(spec.draw(np.float64)), draw(labelled.draw(np.float32))

    from hypothesis import given, settings

    @settings(max_examples=60, derandomize=True)
    @given(both())
    def run(drawn):
        ((X, W, b), kwargs), ((x, y), _) = drawn
        assert (X.shape[1], W.shape[1], kwargs) == (W.shape[0], b.shape[0], {})
        assert (x.dtype, y.dtype, y.shape) == (np.float32, np.int64, x.shape[:1])
        assert np.all((y >= 0) & (y < x.shape[1]))
        seen.update(np.concatenate([X.ravel(), W.ravel(), b.ravel()]).tolist())
        seen.add(("n", X.shape[0]))
        seen.add(("equal", X.shape[1] == W.shape[1]))

    run()
    assert {0.3, 0.0, 1.0, -1.0, ("n", 1), ("equal", True), ("equal", False)} <= seen


def test_spec_draws_zero_one_minus_one_and_the_kinks_often(monkeypatch):
    """0, 1, -1 and the user's kinks, once each, are the values the elements draw often (the
    specials of strategies.floats). Hypothesis draws 0 by itself too, but seldom: of 200 arrays
    drawn with the specials 1, -1 and 0.3, 6% held a 0; with 0 among them, 56%."""
    from handlayers.testing import declared, strategies

    asked = []

    def recording(*args, **kwargs):
        asked.append(kwargs.get("specials"))
        return strategies.floats(*args, **kwargs)

    monkeypatch.setattr(declared, "floats", recording)
    testing.spec(refs.multiply, shapes="x: n; y: n", kinks=(0.3, 1.0)).draw(np.float64)
    assert asked == [(0.0, 1.0, -1.0, 0.3)]


def test_spec_keeps_literal_sizes():
    """A literal size in a shape or in a label's shape is drawn as it is, beside the named ones."""
    spec = testing.spec(_Unsigned(), shapes="x: n 3", labels="y: 2 < 4")
    from hypothesis import given, settings

    @settings(max_examples=10, derandomize=True)
    @given(spec.draw(np.float64))
    def run(drawn):
        (x, y), _ = drawn
        assert (x.shape[1:], y.shape) == ((3,), (2,))
        assert np.all((y >= 0) & (y < 4))

    run()


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("X: n d_in; W: d_in d_out; b: d_out", {"X": ("n", "d_in"), "W": ("d_in", "d_out"), "b": ("d_out",)}),
        ({"x": "n 3", "s": ()}, {"x": ("n", 3), "s": ()}),
        ("y:", {"y": ()}),
    ],
)
def test_shapes_parse_names_and_sizes(text, parsed):
    """Dimensions are names or literal sizes; an input with none is 0-d."""
    assert parse_shapes(text) == parsed


@pytest.mark.parametrize("text", ["X n d", "1X: n", "X: n-1"])
def test_shapes_that_do_not_parse_are_refused(text):
    """A shape without a colon, a name that is no identifier, or a dimension of neither kind raises."""
    with pytest.raises(ValueError, match=r"expected|dimension"):
        parse_shapes(text)


def test_labels_and_keywords_parse():
    """'labels: n < k' gives the shape and the bound; --kw values are Python literals, else text."""
    assert parse_labels("labels: n < k") == {"labels": (("n",), "k")}
    assert parse_labels({"y": "n < 4"}) == {"y": (("n",), 4)}
    assert parse_keywords(["axis=1", "mode=train", "eps=1e-3", "pair=(1, 2)"]) == {
        "axis": 1,
        "mode": "train",
        "eps": 1e-3,
        "pair": (1, 2),
    }
    with pytest.raises(ValueError, match="DIMS < BOUND"):
        parse_labels("labels: n")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_keywords(["axis"])


def test_a_keyword_value_may_hold_an_equals_sign():
    """The name ends at the first '=': the rest is the value, a literal ('=') or else text ('1=2')."""
    assert parse_keywords(["sep='='", "p=1=2"]) == {"sep": "=", "p": "1=2"}


def test_a_blank_part_declares_nothing():
    """A trailing ';', with spaces after it as a shell line may have, or an empty part, is skipped."""
    assert parse_shapes("x: n;  ") == {"x": ("n",)}
    assert parse_labels("y: n < k; ;") == {"y": (("n",), "k")}


@pytest.mark.parametrize("text", ["y: n <", "y: n <  ", "y: n < k < m"])
def test_a_label_takes_one_bound(text):
    """Nothing after the '<', or a second '<', is refused with the form a label takes (not as a
    dimension that is no name)."""
    with pytest.raises(ValueError, match=r"labels 'y': expected 'DIMS < BOUND'"):
        parse_labels(text)


@pytest.mark.parametrize("parse", [parse_shapes, parse_labels])
def test_two_inputs_without_a_separator_are_refused(parse):
    """Two colons in one part (a ';' missing between two inputs) say so, the part quoted."""
    text = "X: n d W: d m" if parse is parse_shapes else "y: n < k z: n < k"
    with pytest.raises(ValueError, match=f"one colon per input, inputs separated by ';', got '{text}'"):
        parse(text)


def test_an_input_declared_twice_is_refused():
    """A name among both shapes and labels is an error."""
    with pytest.raises(ValueError, match=r"an input is declared twice: x, y, x$"):
        testing.spec(refs.multiply, shapes="x: n; y: n", labels="x: n < k")


def test_spec_draws_masks_as_booleans_of_their_shape():
    """A mask is boolean, of its declared shape, True and False both drawn; no gradient is asked
    for it; a name among shapes and masks is declared twice."""
    spec = testing.spec(refs.temporal_softmax_loss, shapes="x: n t v", labels="y: n t < v", masks="mask: n t")
    assert spec.labels == (1, 2)
    seen = set()
    from hypothesis import given, settings

    @settings(max_examples=40, derandomize=True)
    @given(spec.draw(np.float64))
    def run(drawn):
        (x, y, mask), _ = drawn
        assert (mask.dtype, mask.shape, y.shape) == (np.bool_, x.shape[:2], x.shape[:2])
        seen.update(mask.ravel().tolist())

    run()
    assert seen == {True, False}
    with pytest.raises(ValueError, match=r"an input is declared twice: x, y, x$"):
        testing.spec(refs.multiply, shapes="x: n; y: n", masks="x: n")


def test_a_reference_of_labels_alone_is_refused():
    """No float input: nothing to differentiate, said at once (not as an error deep in the check)."""
    with pytest.raises(ValueError, match=r"^double: no float input, so no gradient to check$"):
        testing.spec(lambda i: 2.0 * i, shapes={}, labels="i: n < k", name="double")


def test_a_parameter_dict_gets_the_styles_names():
    """size becomes pool_height and pool_width; stride, pad, eps, p keep their names; mode is train."""
    got = _param_dict({"size": 2, "stride": 1, "pad": 0, "eps": 1e-5, "p": 0.5, "other": 3})
    assert got == {
        "mode": "train",
        "pool_height": 2,
        "pool_width": 2,
        "stride": 1,
        "pad": 0,
        "eps": 1e-5,
        "p": 0.5,
        "other": 3,
    }


def test_a_parameter_dict_gets_the_references_defaults():
    """A pair with a trailing bn_param gets the reference's eps even when no keyword is drawn."""
    seen = []

    def batchnorm_forward(x, gamma, beta, bn_param):
        seen.append(dict(bn_param))
        return cs231n.batchnorm_forward(x, gamma, beta, bn_param)

    spec = testing.spec(refs.batch_norm, shapes="X: n d; gamma: d; beta: d")
    testing.check((batchnorm_forward, cs231n.batchnorm_backward), spec, max_examples=3)
    assert seen[0] == {"mode": "train", "eps": 1e-5}


@pytest.mark.parametrize("name", ["affine", "affine_forward", "affine_backward"])
def test_a_pair_is_found_by_its_name_or_by_either_half(name, capsys):
    """`FILE.py:affine`, `:affine_forward` and `:affine_backward` all name the pair
    (affine_forward, affine_backward): a student types the function's own name."""
    assert main(["check", f"{LABS / 'cs231n.py'}:{name}", "--against", "vector.affine", "--examples", "5"]) == 0
    assert capsys.readouterr().out.startswith("ok: affine matches vector.affine on 5 examples")


@pytest.mark.parametrize("name", ["conv", "conv_forward_naive", "conv_backward_naive", "conv_naive"])
def test_a_pair_with_a_suffix_is_found_by_its_name_or_by_either_half(name, capsys):
    """CS231n's assignment 2 names its pairs conv_forward_naive and conv_backward_naive: `:conv`,
    either half, and conv_naive (the name reports give it) name that pair."""
    assert main(["check", f"{LABS / 'cs231n.py'}:{name}", "--against", "vector.conv2d", "--examples", "3"]) == 0
    assert capsys.readouterr().out.startswith("ok: conv_naive matches vector.conv2d on 3 examples")


def test_a_pair_is_named_by_its_halves():
    """A pair's name in reports: the forward's less _forward, with the suffix of either half; the
    forward's own name where it has no _forward."""
    from handlayers.testing.conventions import _pair_name

    assert _pair_name(cs231n.affine_forward, cs231n.affine_backward) == "affine"
    assert _pair_name(cs231n.conv_forward_naive, cs231n.conv_backward_naive) == "conv_naive"
    assert _pair_name(cs231n.batchnorm_forward, cs231n.batchnorm_backward_alt) == "batchnorm_alt"
    assert _pair_name(cs231n.affine_forward, cs231n.relu_backward) == "affine"

    def run(x):
        return x, None

    assert _pair_name(run, cs231n.relu_backward) == "run"


def test_a_second_backward_with_a_suffix_pairs_with_the_forward(capsys):
    """batchnorm_backward_alt, the assignment's second backward, has no batchnorm_forward_alt: it
    pairs with batchnorm_forward, reported as batchnorm_alt."""
    flags = ["--shapes", "X: n d; gamma: d; beta: d", "--kw", "eps=0.5", "--examples", "5"]
    assert (
        main(
            [
                "check",
                f"{LABS / 'cs231n.py'}:batchnorm_backward_alt",
                "--against",
                f"{LABS / 'refs.py'}:batch_norm",
                *flags,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("ok: batchnorm_alt matches")


def test_a_name_of_several_suffixed_pairs_asks_for_one(tmp_path, capsys):
    """A name with several suffixed pairs (naive and fast) is not guessed: exit 2, naming each
    pair's forward; a half without its other half, or a name that only starts alike, is no pair."""
    code = tmp_path / "layers.py"
    code.write_text(
        "def relu_forward_naive(x):\n    return x * (x > 0), x\n"
        "def relu_backward_naive(dout, x):\n    return dout * (x > 0)\n"
        "relu_forward_fast, relu_backward_fast = relu_forward_naive, relu_backward_naive\n"
        "relu_forward_lonely = relu_forwarded = relu_backwarded = relu_forward_naive\n"
    )
    assert main(["check", f"{code}:relu", "--against", "vector.relu"]) == 2
    assert "has 2 pairs relu_forward_* and relu_backward_*: name one of relu_forward_fast, relu_forward_naive" in (
        capsys.readouterr().err
    )
    assert main(["check", f"{code}:relu_backward_fast", "--against", "vector.relu", "--examples", "3"]) == 0
    assert capsys.readouterr().out.startswith("ok: relu_naive matches vector.relu")


NOT_FITTING = [
    (["cs231n.py:affine", "--param", "W=weights"], "--param fits a class, not the function pair affine"),
    (
        ["cs231n.py:softmax_loss", "--init", "X"],
        "--init fits a class or CLASS.METHOD, not the loss function softmax_loss",
    ),
    (["cs231n.py:softmax_loss", "--param", "W=weights"], "--param fits a class, not the loss function softmax_loss"),
    (["kernels.py:relu", "--grad", "dX=dx"], "--grad fits a class, not the jax function relu"),
    (
        ["attributes.py:Dense", "--init", "W,b", "--param", "V=v"],
        "no input named 'V'; the reference's inputs are X, W, b\n",
    ),
    (
        ["attributes.py:Dense", "--init", "W,b", "--grad", "dV=v"],
        "--grad dV: no such gradient; the reference's are dX, dW, db\n",
    ),
    (["attributes.py:Dense", "--init", "W.x"], "--init W.x: expected INPUT or INPUT.AXIS with AXIS a number\n"),
    (["attributes.py:Dense", "--init", "W.--1"], "--init W.--1: expected INPUT or INPUT.AXIS with AXIS a number\n"),
    (["attributes.py:Dense", "--init", "W.X0"], "--init W.X0: expected INPUT or INPUT.AXIS"),
    (["attributes.py:Dense", "--init", "W.\u00b2"], "--init W.\u00b2: expected INPUT or INPUT.AXIS"),
    (["cs231n.py:affine", "--backward-args", "dout,X"], "--backward-args fits a class, not the function pair affine"),
    (
        ["cs231n.py:affine", "--param", "W=weights", "--grad", "dW=dweights"],
        "--param and --grad fit a class, not the function pair affine",
    ),
    (
        ["attributes.py:Dense"],
        "Dense's constructor (self, W, b) cannot take no arguments; "
        "pass them with --init (an input, or INPUT.AXIS for a size: --init W.0,W.1)\n",
    ),
    (["attributes.py:Dense", "--init", "W"], "cannot take W"),
    (
        ["scratch.py:Layer_Dense", "--init", "W.0,W.1"],
        "Layer_Dense's forward (self, inputs) cannot take X, W, b; pass some inputs another way (--param, --init)\n",
    ),
    (["cs231n.py:affine", "--backward-args", "dout,Z"], "no input named 'Z'"),
    (["cs231n.py:affine", "--output", "out"], "--output fits a class, not the function pair affine"),
    (["attributes.py:Dense", "--init", "W,b", "--param", "b=bias", "--no-grad", "Q"], "no input named 'Q'"),
    (["attributes.py:Dense", "--init", "W,b", "--kw", "axis"], "expected NAME=VALUE"),
    (["attributes.py:Dense", "--init", "W,b", "--param", "X"], "--param 'X': expected NAME=VALUE"),
    (["attributes.py:Dense", "--labels", "labels: n < k"], "--labels need --shapes with a built-in reference"),
    (["attributes.py:Dense", "--kinks", "0.5"], "--kinks need --shapes with a built-in reference"),
    (["attributes.py:Dense", "--masks", "m: n"], "--masks need --shapes with a built-in reference"),
    (["scratch.py:SquaredLoss", "--param", "Y=y"], "SquaredLoss's forward (self, y_hat, y) cannot take Y_hat"),
    (["cs231n.py:affine", "--forward", "calculate"], "--forward fits a class, not the function pair affine"),
    (["scratch.py:SquaredLoss", "--forward", "calculate"], "SquaredLoss has no calculate method"),
    (
        ["scratch.py:Loss_MeanSquaredError", "--forward", "calculate"],
        "Loss_MeanSquaredError's calculate (self, output, y) cannot take X, W, b; pass some inputs another way",
    ),
    (["cs231n.py:affine", "--setup", "new_pass"], "--setup fits a class, not the function pair affine"),
    (
        ["scratch.py:SquaredLoss", "--setup", "new_pass"],
        "--setup new_pass: SquaredLoss has no method new_pass() that takes no arguments",
    ),
    (
        ["scratch.py:SquaredLoss", "--setup", "forward"],
        "--setup forward: SquaredLoss has no method forward() that takes no arguments",
    ),
    (
        ["scratch.py:SquaredLoss", "--setup", "__init__"],
        "--setup __init__: SquaredLoss has no method __init__() that takes no arguments",
    ),
]


def test_setup_takes_static_and_class_methods_and_calls_each_in_order():
    """--setup methods may be static or class methods (called the same on the object); each new
    object gets them in the order given, after --param and before forward; a property, a static
    method that takes an argument and the class's own __init__ are refused."""
    calls = []

    class Dense(vector.Affine):
        def __init__(self):
            super().__init__()

        @staticmethod
        def begin():
            calls.append("begin")

        @classmethod
        def count(cls):
            calls.append("count")

        def forward(self, X, W, b):
            calls.append("forward")
            return super().forward(X, W, b)

        @property
        def size(self):
            return 0

        @staticmethod
        def sized(n):
            calls.append(n)

    layer = testing.adapt(Dense, testing.SPECS["vector.affine"], setup=["count", "begin"])
    layer().forward(np.ones((1, 2)), np.ones((2, 1)), np.ones(1))
    assert calls == ["count", "begin", "forward"]
    with pytest.raises(testing.ConventionError, match="no method size"):
        testing.adapt(Dense, testing.SPECS["vector.affine"], setup=["size"])
    # a static method that takes an argument, and the class's own __init__ (which takes none)
    for name in ("sized", "__init__"):
        with pytest.raises(testing.ConventionError, match=f"--setup {name}: Dense has no method {name}"):
            testing.adapt(Dense, testing.SPECS["vector.affine"], setup=[name])


def test_a_name_alone_is_one_name_not_its_letters():
    """A string where a sequence of names goes is one name: ``setup="new_pass"``, ``init="W"``,
    ``no_grad="b"``, ``backward_args="dout"`` are the lists of that one name."""
    spec = testing.SPECS["vector.affine"]

    class Dense(vector.Affine):
        def __init__(self, W):
            super().__init__()
            self.W0 = W

        def begin(self):
            pass

        def forward(self, X, b):
            return super().forward(X, self.W0, b)

        def backward(self, dout):
            return super().backward(dout)[0]

    alone = testing.adapt(Dense, spec, setup="begin", init="W", no_grad="b", backward_args="dout")
    listed = testing.adapt(Dense, spec, setup=["begin"], init=["W"], no_grad=["b"], backward_args=["dout"])
    assert alone == listed
    assert (alone.setup, alone.init, alone.no_grad, alone.backward_args) == (("begin",), ("W",), {"b"}, ("dout",))


@pytest.mark.parametrize(("arguments", "message"), NOT_FITTING)
def test_a_flag_that_does_not_fit_the_code_exits_2(arguments, message, capsys):
    """A flag for another convention, an unknown input or gradient, or a constructor left without
    its arguments exits 2 and says which."""
    target, *flags = arguments
    file, _, name = target.partition(":")
    reference = "vector.squared_loss" if "SquaredLoss" in name else "vector.affine"
    assert main(["check", f"{LABS / file}:{name}", "--against", reference, *flags]) == 2
    assert message in capsys.readouterr().err


def test_kinks_that_are_no_numbers_exit_2(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["check", f"{LABS / 'attributes.py'}:Dense", "--against", "vector.affine", "--kinks", "-1,x"])
    assert exit.value.code == 2
    assert "argument --kinks: expected numbers separated by commas, got '-1,x'" in capsys.readouterr().err


@pytest.mark.parametrize("kinks", [["--kinks", "-1,1"], ["--kinks=-1,1"], ["--kinks", "-.5"], ["--kinks", "0.5,-2"]])
def test_kinks_may_start_with_a_minus_sign(kinks, monkeypatch):
    """``--kinks -1,1`` is the kinks -1 and 1, not an unknown option ``-1,1``; from sys.argv too."""
    from handlayers import testing

    declared = []
    monkeypatch.setattr(testing, "spec", lambda *args, **kwargs: declared.append(kwargs["kinks"]) or "stop")
    # argv given: it is the one joined, not a sys.argv without the kinks
    monkeypatch.setattr(sys, "argv", ["handlayers", "check", f"{LABS / 'attributes.py'}:Dense"])
    arguments = ["--against", f"{LABS / 'refs.py'}:dense", "--shapes", "X: n d", *kinks]
    assert main(["check", f"{LABS / 'attributes.py'}:Dense", *arguments]) == 2  # the spec "stop" is a message
    monkeypatch.setattr(sys, "argv", ["handlayers", "check", f"{LABS / 'attributes.py'}:Dense", *arguments])
    assert main() == 2
    expected = [float(k) for k in kinks[-1].removeprefix("--kinks=").split(",")]
    assert declared == [expected, expected]


@pytest.mark.parametrize(
    ("against", "flags", "message"),
    [
        (f"{LABS / 'refs.py'}:dense", [], "needs --shapes"),
        (f"{LABS / 'refs.py'}:nothing", ["--shapes", "X: n"], "has no function 'nothing'"),
        (f"{LABS / 'nowhere.py'}:dense", ["--shapes", "X: n"], "no file"),
        ("not_a_module_anywhere:f", ["--shapes", "X: n"], "cannot import 'not_a_module_anywhere'"),
        (f"{LABS / 'refs.py'}:dense", ["--shapes", "X n"], "--shapes: expected 'NAME: DIMS'"),
        (f"{LABS / 'refs.py'}:dense", ["--shapes", "X: n d-1"], "--shapes: a dimension is a name or a size"),
        (f"{LABS / 'refs.py'}:dense", ["--shapes", "X: n d", "--labels", "y: n"], "--labels: labels 'y': expected"),
        (f"{LABS / 'refs.py'}:dense", ["--shapes", "X: n d", "--masks", "m n"], "--masks: expected 'NAME: DIMS'"),
        # a built-in reference narrowed by --shapes: the same
        ("vector.affine", ["--shapes", "X: n d; W d m"], "--shapes: expected 'NAME: DIMS'"),
    ],
)
def test_a_reference_that_cannot_be_had_exits_2(against, flags, message, capsys):
    """A user reference that is missing, unimportable or declared wrong exits 2 with the reason
    (a declaration's syntax, with the flag that has it wrong)."""
    assert main(["check", f"{LABS / 'attributes.py'}:Dense", "--against", against, "--init", "W,b", *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("cs231n.py:nothing", "has no class 'nothing', function 'nothing' or pair nothing_forward"),
        # no pair either at any _ (relu_forward_pass, relu_pass_forward_...): none named so
        ("cs231n.py:relu_pass_naive", "has no class 'relu_pass_naive', function 'relu_pass_naive' or pair"),
        ("methods.py:Svm_loss.nothing", "has no class 'Svm_loss' with a method 'nothing'"),
        ("methods.py:np.nothing", "has no class 'np' with a method 'nothing'"),
    ],
)
def test_code_that_cannot_be_found_exits_2(target, message, capsys):
    """A name that is neither a class, a function nor a pair, or a missing method, exits 2."""
    file, _, name = target.partition(":")
    assert main(["check", f"{LABS / file}:{name}", "--against", "vector.hinge_loss"]) == 2
    assert message in capsys.readouterr().err


def test_shapes_refused_during_the_check_exit_2(monkeypatch, capsys):
    """Shapes beyond those tried before drawing (more than four named dimensions) that the
    reference refuses while the check draws end it with exit 2 and the reason, as before it."""

    def refusing(*args, **kwargs):
        raise testing.ShapesError("six cannot take inputs of the shapes declared for it: on ...")

    monkeypatch.setattr(testing, "check", refusing)
    assert main(["check", f"{LABS / 'cs231n.py'}:affine", "--against", "vector.affine"]) == 2
    assert capsys.readouterr().err == "handlayers: six cannot take inputs of the shapes declared for it: on ...\n"


def test_keywords_reach_a_built_in_reference_and_the_layer(capsys):
    """--kw on a built-in reference goes to every example (inputs it cannot take are not drawn)."""
    # the package's own file, wherever the checkout is and whatever the current directory
    softmax = Path(vector.__file__).parent / "activations.py"
    args = ["check", f"{softmax}:Softmax", "--against", "vector.softmax", "--kw", "axis=1"]
    assert main([*args, "--examples", "15"]) == 0
    seen = []

    class Recording(testing.SPECS["vector.softmax"].layer):
        def __init__(self, **kwargs):
            seen.append(kwargs)
            super().__init__(**kwargs)

    from handlayers.testing.declared import with_keywords

    spec = with_keywords(testing.SPECS["vector.softmax"], {"axis": 1})
    testing.check(Recording, spec, max_examples=10)
    assert seen
    assert all(kw == {"axis": 1} for kw in seen)
    assert with_keywords(spec, {}) is spec


def test_a_keyword_given_draws_no_example_it_leaves_without_output(capsys):
    """vector.conv2d draws its kernels for the padding it draws (up to the input padded by 2):
    with --kw pad=0 or pad=1 given, the examples whose output would be empty are not drawn, and
    CS231n's naive convolution (which refuses a negative size) passes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from handlayers.testing.declared import with_keywords

    conv = testing.SPECS["vector.conv2d"]
    padded = st.sampled_from([0, 1]).flatmap(
        lambda pad: with_keywords(conv, {"pad": pad, "stride": 1}).draw(np.float64)
    )

    @settings(max_examples=60, database=None, deadline=None)
    @given(padded)
    def drawn(example):
        (X, W, _), kwargs = example
        assert kwargs["stride"] == 1
        assert all(x + 2 * kwargs["pad"] >= k for x, k in zip(X.shape[2:], W.shape[2:], strict=True))

    drawn()

    args = ["check", f"{LABS / 'cs231n.py'}:conv", "--against", "vector.conv2d", "--kw", "pad=1", "--kw", "stride=1"]
    assert main([*args, "--examples", "20"]) == 0, capsys.readouterr().out


def _broken(x):
    """A reference with a mistake of its own."""
    return helper(x)  # noqa: F821 (the mistake)


def test_shapes_the_reference_cannot_take_exit_2_naming_them(capsys):
    """Shapes declared for a reference that it cannot take for some sizes (a batch norm's 2-d
    reference on images: gamma of c against the last axis, w) are refused before any example,
    with exit 2 naming the smallest such shapes and the reference's error; from Python,
    testing.spec raises ShapesError (a ValueError). A spec whose own draw its reference cannot
    take fails its check with ShapesError too, not a traceback from inside Hypothesis."""
    images = ["--shapes", "X: n c h w; gamma: c; beta: c"]
    assert main(["check", f"{LABS / 'cs231n.py'}:batchnorm", "--against", "vector.batch_norm", *images]) == 2
    assert capsys.readouterr().err == (
        "handlayers: vector.batch_norm cannot take inputs of the shapes declared for it: on X (1, 2, 1, 3), "
        "gamma (2,), beta (2,) it raises ValueError: Incompatible shapes for broadcasting: "
        "shapes=[(2,), (1, 2, 1, 3)]\n"
    )
    with pytest.raises(testing.ShapesError, match=r"^batch_norm cannot take inputs of the shapes declared for it"):
        testing.spec(refs.batch_norm, shapes="X: n c h w; gamma: c; beta: c", name="batch_norm")
    # six dimensions, 729 sizings: 81 of them tried, and one is refused
    with pytest.raises(testing.ShapesError, match=r"^six cannot take .* it raises ValueError: Incompatible shapes"):
        testing.spec(lambda a, b: a + b, shapes="a: n c h w; b: d e", name="six")
    # refused whatever the sizes: an input not declared, a mistake in the reference (its own line)
    with pytest.raises(testing.ShapesError, match=r"^refs\.multiply raised TypeError on inputs of the smallest"):
        testing.spec(refs.multiply, shapes="x: n")
    with pytest.raises(testing.ShapesError) as raised:
        testing.spec(_broken, shapes="x: n 3")
    carets = re.compile(r"^\s*[\^~]+$")  # Python 3.11's marks under the expression, as it writes them
    assert [line for line in str(raised.value).splitlines() if not carets.match(line)] == [
        "tests.test_adapt._broken raised NameError on inputs of the smallest shapes declared, x (1, 3):",
        f'    File "{__file__}", line {_broken.__code__.co_firstlineno + 2}, in _broken',
        "      return helper(x)  # noqa: F821 (the mistake)",
        "  NameError: name 'helper' is not defined",
    ]
    affine = testing.SPECS["vector.affine"]
    odd = dataclasses.replace(affine, draw=lambda dtype: st.just(((np.ones((2, 3)), np.ones((2, 2)), np.ones(2)), {})))
    with pytest.raises(testing.ShapesError, match=r"on X \(2, 3\), W \(2, 2\), b \(2,\) it raises TypeError"):
        testing.check(vector.Affine, odd, max_examples=2)


def test_a_keyword_the_reference_cannot_take_is_refused(capsys):
    """A keyword the reference has no parameter for, or one its inputs fill, is refused by name
    (the reference would refuse every example), and the command line exits 2 with the reason."""
    from handlayers.testing.declared import with_keywords

    softmax = testing.SPECS["vector.softmax"]
    with pytest.raises(ValueError, match=r"'axes' is no keyword of vector\.softmax; its keywords: axis"):
        with_keywords(softmax, {"axes": 1})
    with pytest.raises(ValueError, match=r"'Z' is an input of vector\.softmax"):
        with_keywords(softmax, {"Z": 1})
    with pytest.raises(ValueError, match="'alpha' is no keyword of relu; its keywords: none"):
        testing.spec(jax.nn.relu, shapes="x: n", kwargs={"alpha": 0.1}, name="relu")

    def scaled(x, alpha=1.0, *, beta=0.0):
        return alpha * x + beta

    with pytest.raises(ValueError, match=r"'gamma' is no keyword of scaled; its keywords: alpha, beta$"):
        testing.spec(scaled, shapes="x: n", kwargs={"gamma": 1.0}, name="scaled")
    with pytest.raises(ValueError, match="'X' is an input of dense"):  # A, B, c fill X, W, b
        testing.spec(refs.dense, shapes="A: n d; B: d e; c: e", kwargs={"X": 1}, name="dense")
    # nothing is said where the reference takes **kwargs, or where Python cannot read its signature
    assert testing.spec(lambda x, **kw: x, shapes="x: n", kwargs={"any": 1}).args == ("x",)
    assert testing.spec(_Unsigned(), shapes="x: n", kwargs={"any": 1}).args == ("x",)
    relu = Path(vector.__file__).parent.parent / "scalar.py"
    assert main(["check", f"{relu}:ReLU", "--against", "scalar.relu", "--kw", "alpha=0.1"]) == 2
    assert "'alpha' is no keyword of scalar.relu" in capsys.readouterr().err


def test_a_spec_with_keywords_is_checked_on_arrays_only():
    """Python floats carry no keywords: a spec with keywords has no elements (an empty tuple, as
    Spec's type says), and asking it for Python floats is an error, not examples without them."""
    from handlayers.testing.declared import with_keywords

    def leaky(a, alpha=0.0):
        return jax.numpy.where(a > 0, a, alpha * a)

    relu = testing.SPECS["scalar.relu"]
    spec = with_keywords(dataclasses.replace(relu, reference=leaky), {"alpha": 0.1})
    assert spec.elements == ()
    with pytest.raises(ValueError, match=r"scalar\.relu takes arrays, not Python floats"):
        testing.check(relu.layer, spec, backend="python", max_examples=5)


def test_a_pair_whose_forward_returns_no_cache_is_reported():
    """A 'pair' whose forward returns only the output raises a clear error in the report."""

    def plain_forward(x):
        return x

    def plain_backward(dout, cache):
        return dout

    with pytest.raises(testing.Mismatch, match=r"plain returned ndarray, not the pair \(out, cache\)"):
        testing.check((plain_forward, plain_backward), "vector.relu", max_examples=3)


def test_a_pair_or_loss_that_returns_no_pair_is_told_what_it_should_return():
    """A pair's forward returning three values, or a loss returning only the loss, raises a clear
    error naming the pair expected: (out, cache), or (loss, dfirst)."""

    def triple_forward(x):
        return x, x, x

    def triple_backward(dout, cache):
        return dout

    def loss_only(x, y):
        return float(np.sum(x))

    with pytest.raises(testing.Mismatch, match=r"triple returned tuple, not the pair \(out, cache\)"):
        testing.check((triple_forward, triple_backward), "vector.relu", max_examples=3)
    with pytest.raises(testing.Mismatch, match=r"loss_only returned float, not the pair \(loss, dfirst\)"):
        testing.check(loss_only, "vector.softmax_cross_entropy", max_examples=3)


def test_a_pair_of_several_outputs_returns_them_each_or_together():
    """For a reference of several outputs (lstm_step's h and c), forward returns each before the
    cache, or all in one tuple, and backward takes their gradients the same way; anything else is
    told what it should return."""

    def reference(*inputs):
        return jax.tree.map(np.asarray, testing.SPECS["vector.lstm_step"].reference(*inputs))

    def together_forward(*inputs):
        return reference(*inputs), inputs

    def together_backward(douts, inputs):
        return jax.tree.map(np.asarray, jax.vjp(testing.SPECS["vector.lstm_step"].reference, *inputs)[1](douts))

    def each_forward(*inputs):
        return *reference(*inputs), inputs

    def each_backward(dh, dc, inputs):
        return together_backward((dh, dc), inputs)

    def too_many_forward(*inputs):
        return *reference(*inputs), inputs, None

    assert testing.check((together_forward, together_backward), "vector.lstm_step", max_examples=5).examples == 5
    assert testing.check((each_forward, each_backward), "vector.lstm_step", max_examples=5).examples == 5

    def no_cache_forward(*inputs):
        return reference(*inputs)

    with pytest.raises(testing.Mismatch, match=r"no_cache returned tuple, not \(h, c, cache\)"):
        testing.check((no_cache_forward, each_backward), "vector.lstm_step", max_examples=3)
    with pytest.raises(testing.Mismatch, match=r"too_many returned tuple, not \(h, c, cache\) or \(\(h, c\), cache\)"):
        testing.check((too_many_forward, each_backward), "vector.lstm_step", max_examples=3)


def test_a_backward_returning_too_few_gradients_is_counted():
    """A class backward returning fewer values than the gradients it owes is told how many."""

    class TwoOfThree(attributes.Dense):
        def backward(self, dout):
            return super().backward(dout), None

    with pytest.raises(testing.Mismatch, match=r"backward returned 2 gradients, expected 3 \(dX, dW, db\)"):
        testing.check(TwoOfThree, "vector.affine", init=["W", "b"], max_examples=3, params={})


def test_labels_need_no_gradient_from_a_class_in_another_convention():
    """A loss layer whose backward returns only dZ passes: the labels' None may be left out."""

    class OnlyDZ:
        def forward(self, Z, labels):
            self.loss, self.dZ = cs231n.softmax_loss(Z, labels)
            return self.loss

        def backward(self):
            return self.dZ

    assert testing.check(OnlyDZ, "vector.softmax_cross_entropy", max_examples=10).examples == 10


def test_cannot_check_what_is_not_code():
    """A number is no layer: adapt says what it expected."""
    with pytest.raises(testing.ConventionError, match="expected a class, functions or a jax function"):
        testing.adapt(3, testing.SPECS["vector.relu"])


def test_code_whose_signature_cannot_be_read_is_run_as_it_is():
    """Where Python cannot read a signature (max), nothing is checked before running: it binds,
    has no parameter dict and no keyword defaults, gets only the keywords the example drew (no
    default it is not known to require), and a backward so written takes dout."""
    from handlayers.testing.conventions import (
        _takes_param_dict,
        binds,
        keyword_defaults,
        keywords_for,
        signature,
        takes_no_dout,
    )

    class BuiltinBackward:
        backward = max

    class BuiltinForward:  # adapted against a reference with a keyword (alpha)
        forward = max
        backward = min

    assert signature(max) is None
    assert binds(max, 1, 2, 3)
    assert not binds(lambda x: x, 1, 2)
    assert not _takes_param_dict(max)
    assert keyword_defaults(max) == {}
    assert keywords_for(max, {"alpha": 0.01}, {}) == {}
    assert keywords_for(max, {"alpha": 0.01}, {"alpha": 0.2}) == {"alpha": 0.2}
    assert not takes_no_dout(BuiltinBackward)
    assert testing.adapt(BuiltinForward, testing.SPECS["vector.leaky_relu"]).kind == "class"
    assert signature(_Unsigned()) is None
    assert testing.spec(_Unsigned(), shapes="b: n; a: n").args == ("b", "a")


def test_a_check_whose_typical_search_finds_nothing_shows_the_smallest_example_alone(monkeypatch):
    """A mistake on one rare example only: with no other failing example found, the report is
    the smallest example, with no typical one and no guess."""
    from handlayers.testing import compare

    class WrongOnOneZero:
        def forward(self, A):
            self.A = A
            return np.maximum(A, 0)

        def backward(self, dA):
            rare = self.A.shape == (1, 1) and self.A[0, 0] == 0 and dA[0, 0] == 0
            return dA * (self.A > 0) + (1.0 if rare else 0.0)

    monkeypatch.setattr(compare, "TYPICAL_TRIES", 1)
    text = failure_text(WrongOnOneZero)
    assert "A typical failing example" not in text
    assert "Likely mistake" not in text


def failure_text(layer):
    with pytest.raises(testing.Mismatch) as failed:
        testing.check(layer, "vector.relu")
    return str(failed.value)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--against", "relu"], "no reference named 'relu'"),
        (["--against", "not_a_module_anywhere.relu"], "no reference named 'not_a_module_anywhere.relu'"),
        (["--against", "vector.affine", "--grad", "dW"], "--grad 'dW': expected NAME=VALUE"),
    ],
)
def test_a_reference_or_flag_that_does_not_parse_exits_2(flags, message, capsys):
    """A reference name with no module, or a NAME=VALUE flag without its value, exits 2."""
    assert main(["check", f"{LABS / 'attributes.py'}:Dense", "--init", "W,b", *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("missing", [("forward",), ("backward",), ("forward", "backward")])
def test_check_of_a_class_without_forward_or_backward_says_which(missing):
    """``testing.check`` of a class that lacks ``forward`` or ``backward`` (not a layer in any
    convention without options) is a ConventionError naming what is missing, not an AttributeError."""
    methods = {"forward": lambda self, x: x, "backward": lambda self, dout: dout}
    for name in missing:
        del methods[name]
    half = type("Half", (), methods)
    with pytest.raises(testing.ConventionError, match=f"^Half has no {' and no '.join(missing)} method$"):
        testing.check(half, "vector.relu", max_examples=1)


@pytest.mark.jax
def test_a_jitted_jax_function_is_a_jax_function():
    """A ``jax.jit``-compiled function (no custom VJP) is adapted as a jax function (checked by its
    ``jax.vjp``, eagerly and under jit), not as a loss function returning its gradient."""
    adapted = testing.adapt(jax.jit(jax.numpy.tanh), testing.spec(jax.numpy.tanh, shapes="x: n d"))
    assert (adapted.kind, [v.__name__ for v in adapted.variants()]) == ("jax", ["tanh", "jax.jit(tanh)"])


def test_check_of_a_layer_instance_asks_for_its_class():
    """An instance (``ReLU()``, not ``ReLU``) is a ConventionError: the checker makes its own
    layers. Also for one whose bound ``backward`` needs more than ``dout``."""

    class TwoArguments:
        def forward(self, x):
            return x

        def backward(self, dout, x):
            return dout

    for instance in (vector.ReLU(), TwoArguments()):
        name = type(instance).__name__
        with pytest.raises(testing.ConventionError, match=f"cannot check a {name}: expected a class"):
            testing.check(instance, "vector.relu", max_examples=1)


def test_check_moves_a_progress_bar_by_examples(monkeypatch, capsys):
    """``handlayers check`` moves its progress (a bar on a terminal) after each example, up to
    ``--examples``, and the verdict comes after the bar is gone."""
    from handlayers import __main__ as cli

    events = []

    class Recorder(cli._Progress):
        def __enter__(self):
            events.append("start")
            return super().__enter__()

        def __exit__(self, *exc):
            events.append(("stop", capsys.readouterr().out))  # nothing printed under the bar
            return super().__exit__(*exc)

        def advance(self, completed, total):
            events.append((completed, total))
            super().advance(completed, total)

    monkeypatch.setattr(cli, "_Progress", Recorder)
    assert main(["check", f"{LABS / 'cs231n.py'}:affine", "--against", "vector.affine", "--examples", "4"]) == 0
    assert events == ["start", (1, 4), (2, 4), (3, 4), (4, 4), ("stop", "")]
    assert capsys.readouterr().out.startswith("ok: ")
    monkeypatch.setattr(testing, "check", _shrinking)
    events.clear()
    assert main(["check", f"{LABS / 'cs231n.py'}:affine", "--against", "vector.affine", "--examples", "2"]) == 1
    assert events == ["start", (1, 2), (2, 2), (2, 2), ("stop", "")]  # past --examples: the bar stays full
    assert capsys.readouterr().out == "wrong\n"


def _shrinking(*args, on_example, **kwargs):
    """A check that runs three examples where two were asked for, the last failing (as Hypothesis
    does while it shrinks a failure)."""
    for n in (1, 2, 3):
        on_example(n)
    raise testing.Mismatch("wrong")
