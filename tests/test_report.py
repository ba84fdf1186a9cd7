"""The mistakes a report can name, each from a synthetic wrong answer, and the names it must not give."""

import importlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from handlayers import testing
from handlayers.testing.oracle import Example
from handlayers.testing.report import Hint, diagnose, explained, mistakes, phrase, show, typical_lines

TOL = 1e-12


def row(name, expected, got):
    return SimpleNamespace(
        name=name, expected=np.asarray(expected, float), got=got, problem="wrong", tol=TOL, position=0
    )


def hints(rows, *, batch=None, dout_is_ones=False, cases=None):
    return diagnose(rows, batch=batch, dout_is_ones=dout_is_ones, expected_for=lambda case: (cases or {}).get(case, []))


E = np.array([[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize(
    ("got", "batch", "words"),
    [
        (-E, None, "dW has the wrong sign"),
        (2 * E, None, "dW has a factor of 2 too many"),
        (E / 2, None, "dW has a factor of 2 too few"),
        (3 * E, 3, "dW is missing the 1/n of the mean"),
        (E / 3, 3, "dW is averaged, not summed, over the batch"),
        (2 * E, 2, "dW is missing the 1/n of the mean, or has a factor of 2 too many"),
        (E.T, None, "dW is transposed"),
    ],
)
def test_a_wrong_factor_or_transpose_is_named(got, batch, words):
    """Sign, factors of 2, a missing or extra 1/n, and a transposed square gradient."""
    assert hints([row("dW", E, got)], batch=batch) == [words]


def test_a_transposed_rectangular_gradient_is_named():
    """A gradient of the transposed shape and values is transposed; of that shape alone, it is not."""
    assert hints([row("dW", E[:, :1], E[:, :1].T)]) == ["dW is transposed"]
    assert hints([row("dW", E[:, :1], -E[:, :1].T)]) == []


def test_a_gradient_with_every_axis_reversed_is_transposed():
    """``.T`` of a 3-d gradient reverses its axes: (n, t, d) returned as (d, t, n) is transposed."""
    dx = np.arange(24.0).reshape(2, 3, 4)
    assert hints([row("dx", dx, dx.T)], batch=2) == ["dx is transposed"]
    dx = np.arange(12.0).reshape(2, 3, 2)  # a shape that is its own reverse: the values tell
    assert hints([row("dx", dx, dx.T)], batch=2) == ["dx is transposed"]


def test_a_kernel_gradient_with_its_window_flipped_is_named():
    """A conv kernel's gradient (f, c, *window) with the window reversed: a textbook convolution's
    derivation for a cross-correlation. Only the window's axes: other flips name nothing."""

    def kernel(expected, got):  # a parameter's gradient (W is conv2d's second input)
        return SimpleNamespace(**{**vars(row("dW", expected, got)), "position": 1})

    flipped = "dW has its window flipped (every axis after the first two reversed)"
    dW = np.arange(2 * 3 * 2 * 4, dtype=float).reshape(2, 3, 2, 4)
    assert [h.partition(":")[0] for h in hints([kernel(dW, dW[:, :, ::-1, ::-1])])] == [flipped]
    dW1 = dW[:, :, 0]  # a 1-d convolution's kernel (f, c, k)
    assert [h.partition(":")[0] for h in hints([kernel(dW1, dW1[:, :, ::-1])])] == [flipped]
    assert hints([kernel(dW, dW[:, :, ::-1])]) == []  # one axis of two
    assert hints([kernel(dW, dW[::-1, ::-1])]) == []  # the channels
    assert hints([kernel(E, E[:, ::-1])]) == []  # no window
    assert hints([kernel(E, E[::-1, ::-1])]) == []
    # the first input's gradient (a batch: an RNN's dx (n, t, d), a conv's dX) has no kernel
    assert hints([row("dx", dW1, dW1[:, :, ::-1])]) == ["dx has every axis after the first two reversed"]


def test_gradients_explained_alike_share_a_line_in_order():
    """Gradients that each "is" explained alike share one line, "are", in the order given; other
    verbs, other explanations and a subject of several stay lines of their own."""
    alike = "is computed with tanh's derivative taken at its output"
    hints = [Hint(("db",), alike), Hint(("dW",), alike), Hint(("dX",), alike), Hint(("dX",), "ignores dout")]
    assert phrase(hints, ("dX", "dW", "db")) == [
        "dW and db are computed with tanh's derivative taken at its output",
        "dX is computed with tanh's derivative taken at its output, or ignores dout",
    ]
    assert phrase([Hint(("dx",), "ignores dout"), Hint(("dy",), "ignores dout")]) == [
        "dx ignores dout",
        "dy ignores dout",
    ]
    assert phrase([Hint(("dW",), "is transposed"), Hint(("dX",), "is transposed")]) == ["dW and dX are transposed"]
    both = Hint(("dY_hat", "dY"), "all have the wrong sign")
    assert phrase([both, Hint(("db",), "is transposed")]) == [
        "dY_hat and dY all have the wrong sign",
        "db is transposed",
    ]


def test_a_gradient_not_summed_back_is_named():
    """A gradient left at the output's shape, whose sum is right, misses the sum."""
    assert hints([row("db", [4.0, 6.0], E)], batch=2) == ["db is missing the sum over the batch"]
    assert hints([row("db", [4.0, 6.0], E)]) == ["db is missing the sum over the axes that broadcasting stretched"]


def test_a_gradient_summed_over_every_axis_is_named():
    """A scalar where a vector was due, equal to the vector's sum: `dout.sum()` without `axis=0`."""
    assert hints([row("db", [4.0, 6.0], 10.0)], batch=2) == [
        "db sums over every axis, where it should sum over the batch axis only (axis=0)"
    ]
    assert hints([row("db", [4.0, 6.0], 10.0)]) == [
        "db sums over every axis, where it should sum over the axes that broadcasting stretched"
    ]
    assert hints([row("db", [4.0, 6.0], 9.0)]) == []  # not the sum: no guess
    # each of the n entries may be off by its tolerance, and so their sum by n of them
    assert hints([row("db", [4.0, 6.0], 10.0 + 6 * TOL)]) == [
        "db sums over every axis, where it should sum over the axes that broadcasting stretched"
    ]


def test_shapes_that_explain_nothing_name_nothing():
    """A gradient of an unrelated shape, or a wrong sum, gets no guess."""
    assert hints([row("db", [4.0, 6.0], np.ones(3))]) == []
    assert hints([row("db", [4.0, 6.0], np.ones((2, 2)))]) == []


def test_a_mean_over_rows_of_one_entry_is_the_mean_over_every_entry():
    """With k = 1 entry a row, a missing 1/n is a missing 1/(n*k): the 1/n alone is said."""
    rows = [row("dY", E, 2 * E)]
    found = diagnose(rows, batch=2, dout_is_ones=False, expected_for=lambda case: [], width=1)
    assert found == ["dY is missing the 1/n of the mean, or has a factor of 2 too many"]
    found = diagnose(rows, batch=2, dout_is_ones=False, expected_for=lambda case: [], width=2)
    assert "dY is missing the 1/(n*k) of the mean over every entry" not in found[0]
    assert "k times too large" in found[0]


W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # n = 2 rows of k = 3 entries
LARGE = "is k times too large (k entries a row): a mean over the n rows, not over every entry"


@pytest.mark.parametrize(
    ("factor", "n", "words"),
    [
        (3, 2, [LARGE]),
        (1 / 3, 2, ["is k times too small (k entries a row): a mean over every entry, not over the n rows"]),
        (6, 2, ["is missing the 1/(n*k) of the mean over every entry"]),
        (1 / 6, 2, ["is averaged over every entry (1/(n*k)) where it is summed"]),
        (2, 2, ["is missing the 1/n of the mean", "has a factor of 2 too many"]),
        (3, 1, [LARGE]),  # one row: 1/(n*k) is 1/k, said once
    ],
)
def test_a_mean_over_rows_or_entries_is_named_by_k(factor, n, words):
    """A loss over n rows of k entries: a gradient k, n*k or n times off, or 1/k or 1/(n*k), names which."""
    rows = [row("dY", W[:n], factor * W[:n])]
    found = mistakes(rows, batch=n, dout_is_ones=False, expected_for=lambda c: [], width=3)
    assert [h.words for h in found] == words


@pytest.mark.parametrize("x", [np.linspace(-3.0, 3.0, 24, dtype=np.float32).reshape(2, 3, 4), np.zeros(5), 2.5])
def test_a_nudge_moves_each_entry_a_billionth_more_than_the_one_before(x):
    """The kink hints' nudge: up or down by 1e-9 to 2e-9 of each entry's size (at least 1), each
    entry by a larger fraction than the one before, in float64; labels stay as they are."""
    from handlayers.testing.compare import _nudge

    size = np.maximum(1.0, np.abs(np.asarray(x, np.float64)))
    for sign in (1.0, -1.0):
        moved = _nudge(x, sign, is_label=False)
        assert moved.dtype == np.float64
        assert np.shape(moved) == np.shape(x)
        fraction = np.ravel(sign * (moved - np.asarray(x, np.float64)) / size)
        assert np.all((fraction >= 0.99e-9) & (fraction < 2e-9))
        assert np.all(np.diff(fraction) > 0)
    labels = np.array([2, 0, 1])
    assert _nudge(labels, 1.0, is_label=True) is labels


def test_a_zero_gradient_gets_no_factor_guess():
    """Every factor of 0 is 0: a wrong answer where 0 was due says nothing about factors."""
    assert hints([row("da", [0.0, 0.0], [1.0, 1.0])]) == []


def test_ignoring_dout_and_the_kink_come_from_the_other_cases():
    """Matching the oracle with dout = 1, or on the other side of a kink, names those mistakes;
    with dout all ones, ignoring it cannot be told."""
    cases = {"ones": [("da", np.array([0.7]))], "above": [("da", np.array([5.0]))]}
    assert hints([row("da", [2.0], [0.7])], cases=cases) == ["da ignores dout (it is the gradient for dout = 1)"]
    assert hints([row("da", [2.0], [0.7])], dout_is_ones=True, cases=cases) == []
    below = {"below": [("da", np.array([5.0]))]}
    assert hints([row("da", [2.0], [5.0])], cases=below) == [
        "da passes the gradient through at the kink, where the contract takes 0"
    ]


def test_swapped_gradients_are_named_once():
    """Two gradients each equal to the other's expected value are swapped."""
    rows = [row("dx", [1.0], [2.0]), row("dw", [2.0], [1.0]), row("db", [3.0], [3.5])]
    assert hints(rows) == ["dx and dw are swapped"]


def test_rows_that_are_right_or_missing_are_not_diagnosed():
    """Right values (a dtype problem), None, and the output get no guess."""
    rows = [
        row("dx", 1.0, np.float32(1.0)),
        SimpleNamespace(**{**vars(row("output", [1.0], [-1.0])), "position": None}),
        row("dw", [1.0], None),
    ]
    assert hints(rows) == []


def test_show_reads_well():
    """Numbers print as floats, arrays by numpy with continuation lines indented."""
    assert show(None) == "None"
    assert show(2) == "2.0"
    assert show(np.float64(0.5)) == "0.5"
    assert show(np.zeros((2, 1))) == "[[0.],\n" + " " * 13 + " [0.]]"


def test_check_refuses_python_floats_for_vector_references():
    """A vector reference takes arrays: asking for Python floats is an error."""
    with pytest.raises(ValueError, match=r"vector\.affine takes arrays"):
        testing.check(testing.SPECS["vector.affine"].layer, "vector.affine", backend="python")


def test_check_accepts_a_spec_and_counts_its_examples():
    """check takes a Spec as well as a name, and returns how many examples passed."""
    spec = testing.SPECS["scalar.plus"]
    result = testing.check(spec.layer, spec, max_examples=7)
    assert result.examples == 7
    assert 0 <= result.worst <= 1


def test_a_nan_output_is_infinitely_wrong():
    """A layer that returns NaN fails, with the error ratio infinite."""
    spec = testing.SPECS["scalar.square"]

    class NaN(spec.layer):
        def forward(self, x):
            return super().forward(x) * np.nan

    with pytest.raises(testing.Mismatch, match="output: WRONG: worst error nan"):
        testing.check_example(NaN, spec, testing.Example((np.ones(2),), {}, np.ones(2)))


# ---------------------------------------------------------------------------------------------
# The bugs the issue saw mis-reported, each reported right now

LABS = Path(__file__).parent / "labs"


def lab(module, name):
    """A class or function from a lab file, imported as the command line imports it."""
    sys.path.insert(0, str(LABS))
    try:
        return getattr(importlib.import_module(module), name)
    finally:
        sys.path.remove(str(LABS))


def failure(layer, reference, **options):
    with pytest.raises(testing.Mismatch) as failed:
        testing.check(layer, reference, **options)
    return str(failed.value)


def test_a_relu_masking_on_dout_is_not_told_it_passes_through_at_the_kink():
    """ReLU masking on dout, whose smallest failing input is exactly 0, is told the mask comes
    from the wrong array, not that it passes the gradient through at the kink."""
    pair = (lab("cs231n", "relu_dout_mask_forward"), lab("cs231n", "relu_dout_mask_backward"))
    text = failure(pair, "vector.relu")
    mistake = "dA is computed from dout where it should be from A (a mask or derivative taken from the wrong array)"
    assert f"Likely mistake: {mistake}" in text
    assert "passes the gradient through" not in text


def test_a_transposed_gradient_of_zeros_is_not_told_it_misses_a_sum():
    """On an all-zero example a transposed dW names nothing; beside a typical example it is transposed."""
    zero = row("dW", np.zeros((2, 3)), np.zeros((3, 2)))
    assert hints([zero]) == []
    typical = row("dW", E[:, :1], E[:, :1].T)
    found = [({"dW"}, mistakes([r], batch=2, dout_is_ones=False, expected_for=lambda c: [])) for r in (zero, typical)]
    assert phrase(explained(found)) == ["dW is transposed"]


@pytest.mark.slow
def test_a_mean_over_rows_is_not_told_a_factor_of_2():
    """A squared error divided by the rows, not the entries, is k times too large: never "a
    factor of 2", though the smallest example has k = 2."""
    spec = testing.spec(lab("refs", "mean_squared_error"), shapes="Y_hat: n k; Y: n k")
    options = {
        "no_grad": ["Y"],
        "backward_args": ["Y_hat", "Y"],
        "grads": {"dY_hat": "dinputs"},
        "forward": "calculate",
    }
    text = failure(lab("scratch", "Loss_MeanSquaredError_rows"), spec, **options)
    assert "k = 2" not in text
    assert "dY_hat is k times too large (k entries a row): a mean over the n rows" in text
    assert "factor of 2" not in text


DENSE = {"init": ["W", "b"], "grads": {"dW": "dW", "db": "db"}}


@pytest.mark.slow
def test_a_gradient_wrong_by_a_factor_shows_in_the_typical_example():
    """dW divided by n (right wherever X is 0) is wrong on the typical example, and named."""
    typical = failure(lab("attributes", "Dense_dW_over_n"), "vector.affine", **DENSE).split("A typical failing")[1]
    assert "dW: WRONG" in typical
    assert "Likely mistake: dW is averaged, not summed, over the batch." in typical


@pytest.mark.slow
def test_an_all_zero_forward_shows_in_the_typical_example():
    """A forward that forgets X @ W shows wrong on a typical example, where X and W are not zero."""
    text = failure(lab("attributes", "Dense_zero_forward"), "vector.affine", **DENSE)
    assert "output: WRONG" in text.split("A typical failing example")[1]


def test_the_typical_example_has_sides_of_2_values_not_0_and_dout_not_0_or_1():
    """Typicality ranks sides of 2 or more, varied values and a dout of neither 0 nor 1 above the
    smallest example's zeros and ones."""
    spec = testing.SPECS["vector.affine"]
    smallest = testing.Example((np.zeros((1, 1)), np.zeros((1, 1)), np.zeros(1)), {}, np.zeros((1, 1)))
    ones = testing.Example((np.ones((2, 3)), np.ones((3, 2)), np.ones(2)), {}, np.ones((2, 2)))
    typical = testing.Example(
        (np.array([[1.5, -2.0, 3.0], [0.5, 4.0, -1.25]]), np.arange(1.0, 7.0).reshape(3, 2), np.array([0.5, -3.0])),
        {},
        np.array([[2.5, -0.5], [3.0, 7.0]]),
    )
    scores = [testing.typicality(spec, e) for e in (smallest, ones, typical)]
    assert scores == sorted(scores)
    assert scores[0] < scores[1] < scores[2]


@pytest.mark.slow
def test_every_sign_flipped_is_not_called_a_swap():
    """A squared loss with both gradients negated has every sign flipped (its dY is -dY_hat, so a
    swap fits too, and is not said)."""
    text = failure(lab("scratch", "SquaredLoss_flipped"), "vector.squared_loss")
    assert "Likely mistake: dY_hat and dY all have the wrong sign (every sign is flipped: not a swap)." in text
    assert "swapped" not in text


def test_a_hint_one_failing_example_contradicts_is_not_said():
    """A hint stays only where every example in which its gradient is wrong has it too, and one tells it."""
    two, sign = Hint(("dW",), "has a factor of 2 too many"), Hint(("dW",), "has the wrong sign")
    assert explained([({"dW"}, [two]), ({"dW"}, [two, sign])]) == [two]
    assert explained([({"dW"}, [two]), ({"dW"}, [sign])]) == []
    assert explained([({"dW"}, [two._replace(telling=False)])]) == []
    bias = Hint(("db",), "has the wrong sign")
    assert explained([({"dW"}, [two]), ({"db"}, [bias])]) == [two, bias]


def test_a_second_backward_that_differs_names_the_gradient():
    """A backward that scales stored state in place is told which gradient changed the second time."""
    options = {"grads": {"dA": "dinputs"}, "output": "output"}
    text = failure(lab("scratch", "Activation_Sigmoid_scales_state"), "vector.sigmoid", **options)
    assert "backward called a second time gave other values for dA" in text


@pytest.mark.slow
def test_numpy_and_jax_frames_are_left_out_of_the_users_traceback():
    """An error raised inside numpy or jax shows the user's line and none of numpy's or jax's frames."""

    class Inverts:
        def forward(self, A):
            return np.linalg.inv(np.zeros((2, 2))) @ A  # singular: numpy raises in its own code

        def backward(self, dA):
            return dA

    class Reshapes:
        def forward(self, A):
            return jnp.reshape(jnp.asarray(A), (-1, 7, 5))  # jax raises in its own code

        def backward(self, dA):
            return dA

    for layer, error in ((Inverts, "LinAlgError"), (Reshapes, "TypeError")):
        text = failure(layer, "vector.relu", max_examples=3)
        assert error in text
        assert "test_report.py" in text
        for package in (np, jax):
            assert os.path.dirname(package.__file__) not in text


KINK = "dS passes the gradient through at the kink, where the contract takes 0"


def test_the_kink_may_be_crossed_up_in_one_row_and_down_in_another():
    """A hinge's kinks in two rows, crossed by the nudge up in one and down in the other: a layer
    taking the passing side of both (`>=` for `>`) is named, as is one taking it at one of them
    (the nudge up's gradient); one also wrong away from the kinks, or with half the passing
    value, is not."""
    want = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    above = np.array([[-1.0, 1.0], [0.0, 0.0], [1.0, -1.0]])  # row 0's kink crossed going up
    below = np.array([[0.0, 0.0], [1.0, -1.0], [1.0, -1.0]])  # row 1's going down
    cases = {"above": [("dS", above)], "below": [("dS", below)]}
    passing = np.array([[-1.0, 1.0], [1.0, -1.0], [1.0, -1.0]])
    assert hints([row("dS", want, passing)], cases=cases) == [KINK]
    assert hints([row("dS", want, np.where([[1], [0], [1]], passing, want))], cases=cases) == [KINK]
    assert hints([row("dS", want, passing + np.array([[0, 0], [0, 0], [0, 0.5]]))], cases=cases) == []
    assert hints([row("dS", want, np.where([[1], [1], [0]], 0.5 * passing, want))], cases=cases) == []


def test_two_kinks_either_side_of_the_label_are_the_kink():
    """One hinge row, S = [0, 1, 0] with label 1: both margins at 0, one crossed by each nudge.
    The `>=` layer's [1, -2, 1] is the two changes together."""
    cases = {"above": [("dS", np.array([0.0, -1.0, 1.0]))], "below": [("dS", np.array([1.0, -1.0, 0.0]))]}
    assert hints([row("dS", np.zeros(3), [1.0, -2.0, 1.0])], cases=cases) == [KINK]
    assert hints([row("dS", np.zeros(3), [1.0, -1.0, 1.0])], cases=cases) == []


def test_a_mix_of_sides_no_layer_takes_is_not_the_kink():
    """Against a reference that splits the gradient at the kink (jnp.maximum's 0.5, a max's tie):
    a ReLU masked on dout, or a max giving both tied entries all of it, is no side of the kink
    where the contract takes 0. Entry by entry each takes one side where the reference takes the
    mean: on this one example that is all that can be said (a mask on dout fails away from the kink
    too, and the check's other examples then drop it: test_conventions)."""
    dout = np.array([2.0, -3.0])
    relu = {"above": [("dS", dout)], "below": [("dS", np.zeros(2))]}
    assert hints([row("dS", 0.5 * dout, np.where(dout > 0, dout, 0))], cases=relu) == [SPLIT]
    tie = {"above": [("dS", np.array([0.0, 1.0]))], "below": [("dS", np.array([1.0, 0.0]))]}
    assert hints([row("dS", [0.5, 0.5], [1.0, 1.0])], cases=tie) == ["dS has a factor of 2 too many, or " + SPLIT[3:]]


SPLIT = (
    "dS differs only at a kink, where it takes one side's gradient and the reference the mean of both sides' "
    "(jax's gradient of max, min or clip at a tie); if that side is your convention, write it into the "
    "reference with jnp.where"
)


def test_one_side_where_the_reference_takes_the_mean_is_named():
    """A hard tanh against jnp.clip, an entry at each kink (-1 and 1) and one smooth: a layer that
    takes one side at each kink, and the reference's values elsewhere, is named; one also wrong
    elsewhere, one with another value at a kink, one against a reference that does not take the
    mean there, or with no other side to compare, is not."""
    # dout [2, -3, 5]; entry 0 at -1 (up is inside), entry 1 at 1 (up is outside), entry 2 smooth
    above = np.array([2.0, 0.0, 5.0 * (1 + 1e-9)])
    below = np.array([0.0, -3.0, 5.0])
    cases = {"above": [("dS", above)], "below": [("dS", below)]}
    want = np.array([1.0, -1.5, 5.0])
    closed = np.array([2.0, -3.0, 5.0])  # inside at both kinks
    assert hints([row("dS", want, closed)], cases=cases) == [SPLIT]
    assert hints([row("dS", want, np.array([0.0, 0.0, 5.0]))], cases=cases) == [SPLIT]  # outside at both
    assert hints([row("dS", want, closed + np.array([0.0, 0.0, 1.0]))], cases=cases) == []
    assert hints([row("dS", want, np.array([2.0, -1.0, 5.0]))], cases=cases) == []
    assert SPLIT not in hints([row("dS", [2.0, 0.0, 5.0], [0.0, 0.0, 5.0])], cases=cases)  # the contract's side
    assert hints([row("dS", want, closed)], cases={"above": [("dS", above)]}) == []  # no other side: no kink
    assert hints([row("dS", want, closed)], cases={"above": [("dS", above)], "below": [("dS", below[:2])]}) == []
    assert hints([row("dS", want, closed[:2])], cases=cases) == []
    assert hints([row("dS", want, closed.astype(str))], cases=cases) == [SPLIT]  # numeric text is numbers


def test_one_side_needs_the_rest_right_within_a_few_tolerances():
    """Away from the kinks the layer must give the reference's values up to 4 tolerances and a
    ten-millionth of them: 4.5 tolerances off at a zero, or a millionth off, is not the kink."""
    above, below = np.array([2.0, 0.0, 5.0]), np.array([0.0, -3.0, 5.0])
    cases = {"above": [("dS", np.append(above, 0.0))], "below": [("dS", np.append(below, 0.0))]}
    want = np.array([1.0, -1.5, 5.0, 0.0])
    assert hints([row("dS", want, [2.0, -3.0, 5.0, 3.5 * TOL])], cases=cases) == [SPLIT]
    assert hints([row("dS", want, [2.0, -3.0, 5.0, 4.5 * TOL])], cases=cases) == []
    assert hints([row("dS", want, [2.0, -3.0, 5.0 * (1 + 1e-6), 0.0])], cases=cases) == []


def test_a_mask_on_dout_at_a_kink_is_not_the_kink():
    """A ReLU masked on dout where its input is 0 (the nudge up gives dout, down 0): passing dout
    where it is positive and 0 where it is negative is no side of the kink."""
    dout = np.array([2.0, -3.0])
    cases = {"above": [("dS", dout)], "below": [("dS", np.zeros(2))]}
    assert hints([row("dS", np.zeros(2), np.where(dout > 0, dout, 0))], cases=cases) == []
    assert hints([row("dS", np.zeros(2), dout)], cases=cases) == [KINK]


def test_a_nudged_oracle_of_another_shape_explains_nothing():
    cases = {"above": [("dS", np.array([[5.0, 1.0]]))]}
    assert hints([row("dS", [2.0, 1.0], [5.0, 1.0])], cases=cases) == []


def test_a_nudge_that_moves_a_smooth_gradient_is_no_other_case():
    """The nudged oracle moves a smooth gradient by about a billionth of itself: within 1e-7 of
    it, the nudge changed nothing and explains nothing (not even a gradient that far off), though
    its change is more than the tolerance."""
    moved = E * (1 + 5e-8)
    assert hints([row("dS", E, moved)], cases={"above": [("dS", E)]}) == []
    assert hints([row("dS", E, moved)], cases={"above": [("dS", moved)]}) == []


def test_the_other_side_of_a_kink_is_named_beside_its_smooth_parts_moved_by_the_nudge():
    """A layer that takes the other side at the kink, compared with the nudged oracle, whose
    smooth entries also moved by about a billionth of themselves: it is still the kink."""
    expected = np.array([0.0, 3.0])  # the contract's 0 at the kink, then a smooth entry
    got = np.array([2.0, 3.0])
    above = np.array([2.0, 3.0 * (1 + 1e-9)])
    assert hints([row("dS", expected, got)], cases={"above": [("dS", above)]}) == [KINK]


@pytest.mark.parametrize(
    ("got", "words"),
    [
        (2 * E + 3.5 * TOL, ["dW has a factor of 2 too many"]),  # within 4 tolerances: the layer's rounding
        (2 * E + 4.5 * TOL, []),
        (2 * E + 1e-9, []),
        (2 * E * (1 + 1e-6), []),  # no relative slack: a millionth off is not the factor
    ],
)
def test_a_factor_is_named_only_within_a_few_tolerances_of_it(got, words):
    """A hint's value must be the gradient times its factor up to 4 tolerances, absolutely."""
    assert hints([row("dW", E, got)]) == words


def test_a_layer_ignoring_dout_is_told_so():
    """A backward that returns the local derivatives without dout is named, through check."""
    text = failure(lab("lab_wrong", "AffineIgnoresDout"), "scalar.affine", backend="python")
    assert "ignores dout (it is the gradient for dout = 1)" in text


class LSTMStepOneOutputThreeGradients:
    """forward returns h alone (not (h, c)) and backward three gradients of six: no value to compare."""

    def forward(self, x, h_prev, c_prev, Wx, Wh, b):
        return np.zeros_like(h_prev)

    def backward(self, douts):
        return np.zeros(1), np.zeros(1), np.zeros(1)


@pytest.mark.slow
def test_a_layer_with_no_value_to_compare_is_reported_without_hints():
    """No output and no gradient to compare (both counts wrong): the report says so, and names no mistake."""
    text = failure(LSTMStepOneOutputThreeGradients, "vector.lstm_step", max_examples=5)
    assert "forward returned one array, expected a tuple of 2 outputs (h, c)" in text
    assert "backward returned 3 gradients, expected 6" in text
    assert "Likely mistake" not in text


def test_a_right_value_flagged_for_another_reason_does_not_end_the_hints():
    """A gradient whose values are right (wrong only in its dtype, say) explains nothing, and the
    next gradient's mistake is still named."""
    assert hints([row("dX", E, E.astype(np.float32)), row("dW", E, 2 * E)]) == ["dW has a factor of 2 too many"]


def test_a_gradient_no_larger_than_its_tolerance_tells_no_factor():
    """Where every expected entry is within the tolerance of 0 (here exactly at it), ten times it
    is wrong but tells nothing: values that close to 0 tell no factor from another, so no hint."""
    assert hints([row("db", [TOL, 0.0], [10 * TOL, 0.0])], batch=10) == []
    assert hints([row("db", [2 * TOL, 0.0], [20 * TOL, 0.0])], batch=10) == ["db is missing the 1/n of the mean"]


def test_every_wrong_gradient_gets_its_hint_whatever_comes_before_or_after_it():
    """A gradient of the wrong shape between two of the wrong value: each is named."""
    rows = [row("dX", E, -E), row("db", [4.0, 6.0], E), row("dW", E, 2 * E)]
    # batch 3, not E's 2 rows: with n = 2, "missing the 1/n" would join dW's factor of 2
    assert hints(rows, batch=3) == [
        "dX has the wrong sign",
        "db is missing the sum over the batch",
        "dW has a factor of 2 too many",
    ]


def test_a_sign_flip_of_all_needs_two_gradients_beyond_their_tolerance():
    """dy's expected values are within its tolerance of 0 (exactly at it): its negative is no
    evidence, so dx alone has the wrong sign, not "all"."""
    assert hints([row("dx", E, -E), row("dy", [TOL, 0.0], [-TOL, 0.0])]) == ["dx has the wrong sign"]
    # at twice its tolerance dy counts, though its values are within _close's 4 tol of right
    flips = "dx and dy all have the wrong sign (every sign is flipped: not a swap)"
    assert hints([row("dx", E, -E), row("dy", [2 * TOL, 0.0], [-2 * TOL, 0.0])]) == [flips]


def test_a_swap_needs_both_ways():
    """dx is dy's value, but dy is not dx's: no swap, and dx's own mistake is named."""
    assert hints([row("dx", E, 2 * E), row("dy", 2 * E, 5 * E)]) == ["dx has a factor of 2 too many"]


class SquareThreeTimes:
    """The lab's Square with a backward three times too large."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dout):
        return 3 * 2 * self.x * dout


class MeanWithoutOneOverN:
    """The mean of a vector whose backward forgets the 1/n."""

    def forward(self, x):
        self.x = x
        return np.mean(x)

    def backward(self, dout):
        return np.full_like(self.x, dout)


def test_a_scalar_layer_has_no_batch_and_a_vector_of_one_axis_has_one():
    """A scalar layer computes elementwise: three rows of three are no batch of three and no mean
    over rows of three entries, so a factor of 3 is no missing 1/n and no k. A declared reference
    of a vector ``x: n`` is a vector layer: its n is the batch of a mean."""
    x = np.arange(1.0, 10.0).reshape(3, 3)
    example = testing.Example((x,), {}, np.full((3, 3), 0.5))
    with pytest.raises(testing.Mismatch) as failure:
        testing.check_example(SquareThreeTimes, testing.SPECS["scalar.square"], example)
    assert "Likely mistake" not in str(failure.value)
    spec = testing.spec(lambda x: jnp.mean(x), shapes="x: n", name="mean")
    example = testing.Example((np.array([1.0, 2.0, 3.0]),), {}, np.array(1.5))
    with pytest.raises(testing.Mismatch) as failure:
        testing.check_example(MeanWithoutOneOverN, spec, example)
    assert str(failure.value).endswith("Likely mistake: dx is missing the 1/n of the mean.")


class ReLUIgnoringDout:
    """ReLU whose backward returns its mask: the gradient for dout = 1, whatever dout is."""

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0.0)

    def backward(self, dout):
        return (self.x > 0).astype(float)


def test_a_dout_of_twos_tells_a_layer_that_ignores_dout():
    """With every dout entry 2 (not 1), ignoring dout shows, beside the factor of 2 it makes."""
    example = testing.Example((np.array([[1.0, -2.0, 3.0]]),), {}, np.full((1, 3), 2.0))
    with pytest.raises(testing.Mismatch) as failure:
        testing.check_example(ReLUIgnoringDout, testing.SPECS["vector.relu"], example)
    assert str(failure.value).endswith(
        "Likely mistake: dA has a factor of 2 too few, or ignores dout (it is the gradient for dout = 1)."
    )


def test_a_ragged_gradient_gets_no_hint_and_no_error():
    """Arrays of different lengths for a gradient, alone or in a tuple of one: no shape to read,
    no hint, and working the hints out raises nothing."""
    ragged = [np.ones(2), np.ones(3)]
    assert hints([row("dW", E, ragged)]) == []
    assert hints([row("dW", E, (ragged,))]) == []


def test_a_gradient_of_numeric_text_is_compared_as_numbers():
    """A backward returning numbers as text (``"4.0"``) is read as the numbers it spells, as
    ``_numbers`` admits it: twice the gradient is named so."""
    assert hints([row("dW", E, (2 * E).astype(str))]) == ["dW has a factor of 2 too many"]
    # and of the wrong shape: summed as numbers too (text cannot be summed)
    assert hints([row("db", [4.0, 6.0], E.astype(str))], batch=2) == ["db is missing the sum over the batch"]


class ReLUPassingAboveMinusTwoBillionths:
    """ReLU whose backward passes dout where ``x > -2e-9``: wrong a little below the kink, not at it."""

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0.0)

    def backward(self, dout):
        return dout * (self.x > -2e-9)


def test_an_input_a_nudge_away_from_the_kink_is_not_at_the_kink():
    """At ``x = -1.5e-9`` the nudges (about 1e-9 up and down) stay below 0: the oracle's gradient
    is 0 on both sides, and a layer passing dout there is not told it takes the other side at the
    kink (a nudge up twice as large would cross it and say so)."""
    spec = testing.SPECS["scalar.relu"]
    example = testing.Example((np.array([-1.5e-9, 2.0]),), {}, np.array([3.0, 5.0]))
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(ReLUPassingAboveMinusTwoBillionths, spec, example)
    assert "da: WRONG" in str(failed.value)
    assert "at the kink" not in str(failed.value)


def test_a_case_with_no_value_at_some_entries_is_judged_on_the_others():
    """A case the oracle has no value for at an entry (NaN: an input no input maps to) is judged
    on the other entries: it is said where they agree, and the example tells it only where every
    entry was judged; one entry that disagrees rules it out."""
    words = "is the derivative written for the output but computed from x"

    def found(case, got):
        return mistakes(
            [row("dx", [0.42, 8e-11], got)],
            batch=None,
            dout_is_ones=False,
            expected_for=lambda c: [("dx", np.array(case))] if c == "at:preimage:0" else [],
            cases=[("at:preimage:0", words)],
        )

    assert found([0.75, 1e-3], [0.75, 1e-3]) == [Hint(("dx",), words, True)]
    assert found([0.75, np.nan], [0.75, 816.0]) == [Hint(("dx",), words, False)]
    assert found([np.nan, np.nan], [0.75, 816.0]) == [Hint(("dx",), words, False)]
    assert found([0.75, np.nan], [0.7, 816.0]) == []
    assert found([0.75, np.nan, 1.0], [0.75, 816.0]) == []  # another shape: not this case
    # judged entries where the case's gradient is the right one tell nothing
    assert found([0.42, np.nan], [0.42, 816.0]) == [Hint(("dx",), words, False)]
    assert found([0.42, 8e-11], [0.42, 8e-11 + 1e-9]) == []  # the values are right
    # the case's gradient within 1e-7 of itself (a nudge's), beyond four tolerances
    assert found([0.75, np.nan], [0.75 * (1 + 5e-8), 816.0]) == [Hint(("dx",), words, False)]
    almost = [0.42 * (1 + 2e-8), 8e-11]  # as near the right gradient: it tells nothing
    assert found(almost, almost) == [Hint(("dx",), words, False)]


def test_a_hint_told_by_one_example_and_judged_nowhere_else_is_said():
    """A hint that one failing example tells, and that the others (judged on no entry) do not
    contradict, is said; one that none tells is not."""
    hint = Hint(("dx",), "is the derivative written for the output but computed from x")
    assert explained([({"dx"}, [hint]), ({"dx"}, [hint._replace(telling=False)])]) == [hint]
    assert explained([({"dx"}, [hint._replace(telling=False)])] * 2) == []


@pytest.mark.parametrize(
    ("reference", "x", "preimage"),
    [
        # tanh(atanh(0.5)) = 0.5; no input gives 2; tanh of a large input is 1 in float64
        ("vector.tanh", [0.5, 2.0, 0.0, -0.25], [np.arctanh(0.5), np.nan, 0.0, np.arctanh(-0.25)]),
        ("vector.sigmoid", [0.25, -1.0, 0.5], [np.log(1 / 3), np.nan, 0.0]),
    ],
)
def test_the_preimage_is_where_the_reference_gives_the_input_itself(reference, x, preimage):
    """``_preimage`` finds, entry by entry, the input at which the reference's output is the
    input, to about 1e-12, and NaN where the output never is."""
    from handlayers.testing.compare import _preimage

    x = np.array([x])
    found = _preimage(testing.SPECS[reference], testing.Example((x,), {}, np.ones_like(x)), 0)
    np.testing.assert_allclose(found, [preimage], rtol=1e-12, atol=1e-12)


def test_the_preimage_of_an_output_the_reference_reaches_only_far_out_is_found_far_out():
    """tanh is 1.0 in float64 from about 19.1 on: the preimage of 1 is there, where the
    derivative is 0 (not NaN: a layer computing 1 - x**2 at x = 1 gets 0 too)."""
    from handlayers.testing.compare import _preimage

    x = np.array([1.0, -1.0])
    found = _preimage(testing.SPECS["vector.tanh"], testing.Example((x,), {}, np.ones_like(x)), 0)
    assert np.all(np.abs(found) > 18)
    assert np.all(np.sign(found) == x)
    assert np.all(np.tanh(found) == x)


def test_a_reference_that_is_not_elementwise_has_no_preimage():
    """softmax maps equal entries to equal outputs: moving every entry together, no input makes
    a row's output the input itself, and the case is judged nowhere."""
    from handlayers.testing.compare import _preimage

    x = np.array([[0.2, 0.7]])
    found = _preimage(testing.SPECS["vector.softmax"], testing.Example((x,), {"axis": -1}, np.ones_like(x)), 0)
    assert np.all(np.isnan(found))


@pytest.mark.parametrize(
    ("layer", "reference", "options", "mistake"),
    [
        (
            ("cs231n", "tanh_at_input"),
            "vector.tanh",
            {},
            "dA is the derivative written for the output but computed from A (e.g. 1 - A**2 for tanh's 1 - out**2)",
        ),
        (
            ("scratch", "Activation_Sigmoid_at_input"),
            "vector.sigmoid",
            {"grads": {"dA": "dinputs"}, "output": "output"},
            "dA is the derivative written for the output but computed from A",
        ),
    ],
)
@pytest.mark.slow
def test_a_derivative_written_for_the_output_but_computed_from_the_input_is_named(layer, reference, options, mistake):
    """tanh's backward as ``1 - x**2``, sigmoid's as ``x * (1 - x)``: the derivative in terms of
    the output, computed from the input. Most typical examples have entries no input maps to
    (tanh is never 2); the hint is said from those it can judge."""
    module, name = layer
    if module == "cs231n":
        code = (lab(module, f"{name}_forward"), lab(module, f"{name}_backward"))
    else:
        code = lab(module, name)
    text = failure(code, reference, **options)
    assert f"Likely mistake: {mistake}" in text
    assert text.count("Likely mistake") == 1


def test_a_failing_examples_report_and_hints_are_made_when_first_asked_for(monkeypatch):
    """A shrink tries hundreds of failing examples and reports one: check_example's Mismatch
    finds the hints (which run the oracle in other cases) and writes its report only when asked."""
    from handlayers.testing import compare

    calls = []
    real = compare._mistakes
    monkeypatch.setattr(compare, "_mistakes", lambda *args: calls.append(args) or real(*args))
    pair = (lab("cs231n", "tanh_at_input_forward"), lab("cs231n", "tanh_at_input_backward"))
    x = np.array([[0.5, -0.25]])
    spec = testing.SPECS["vector.tanh"]
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(testing.adapt(pair, spec), spec, testing.Example((x,), {}, x + 1))
    assert calls == []
    assert failed.value.args == (None,)
    text = str(failed.value)
    assert len(calls) == 1
    assert text.startswith("tanh_at_input does not match vector.tanh (numpy, float64) on:")
    assert "Likely mistake: dA is the derivative written for the output but computed from A" in text
    assert str(failed.value) == text
    assert len(calls) == 1
    assert failed.value.args == (text,)


def test_a_relu_masking_on_nonzero_inputs_is_not_told_it_computes_from_the_input():
    """ReLU passes the gradient at NaN: where no input maps to a negative input, the case has no
    value, not ReLU's gradient at NaN. ReLU's derivative written for its output is its own, so a
    mask on ``x != 0`` gets no such hint."""
    pair = (lab("cs231n", "relu_nonzero_forward"), lab("cs231n", "relu_nonzero_backward"))
    text = failure(pair, "vector.relu")
    assert "dA: WRONG" in text
    assert "written for the output" not in text


class TanhTwice:
    """tanh with a factor of 2 too many in its gradient."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return 2 * dout * (1 - self.out**2)


def test_one_examples_report_says_only_the_hints_it_tells():
    """On one example with every input out of tanh's range, the derivative written for the output
    is judged nowhere: it says nothing against that mistake, but nothing for it either, and one
    example's report names only the factor."""
    x = np.array([[1.5, -2.0, 3.0], [1.2, -1.1, 2.5], [-4.0, 1.7, -1.3]])  # n = k = 3: 2 is no n or k
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(TanhTwice, testing.SPECS["vector.tanh"], testing.Example((x,), {}, x + 0.5))
    assert str(failed.value).endswith("Likely mistake: dA has a factor of 2 too many.")
    assert Hint(("dA",), "has a factor of 2 too many") in failed.value.found.hints


def test_a_report_whose_hints_fail_is_shown_without_them(monkeypatch):
    """Should working out the hints raise, the report is still shown, naming the error."""
    from handlayers.testing import compare

    def boom(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(compare, "_mistakes", boom)
    x = np.array([[0.5]])
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(TanhTwice, testing.SPECS["vector.tanh"], testing.Example((x,), {}, x))
    text = str(failed.value)
    assert text.startswith("TanhTwice does not match vector.tanh (numpy, float64) on:")
    assert "dA: WRONG" in text
    assert text.endswith("\n(no hint: working them out raised RuntimeError: boom)")
    assert repr(failed.value) == f"Mismatch({text!r})"


def test_a_mismatch_given_its_text_keeps_it():
    """``Mismatch(text, found=...)`` says the text it was given; the failing example's own report
    is written only where no text was given."""
    x = np.array([[0.5]])
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(TanhTwice, testing.SPECS["vector.tanh"], testing.Example((x,), {}, x))
    assert str(testing.Mismatch("the given report", found=failed.value.found)) == "the given report"
    assert str(testing.Mismatch(found=failed.value.found)) == str(failed.value)


def scaled_tanh(scale, x, shift):
    """Integer inputs either side of the float one, one of them an index."""
    return jnp.array([1.0, 2.0, 3.0, 4.0])[scale] * jnp.tanh(x) + shift


def parabola_nan_far_left(x):
    """Even about 0.5 (equal at 0 and 1), NaN at -1000."""
    return jnp.where(x < -999, jnp.nan, (x - 0.5) ** 2)


@pytest.mark.parametrize(
    ("reference", "shapes", "labels", "inputs", "kwargs", "preimage"),
    [
        (scaled_tanh, "x: n", "scale: n < 4; shift: n < 4", ([1], [0.5], [1]), {}, [np.arctanh(-0.25)]),
        # a float32 input is searched in float64
        ("vector.tanh", None, None, (np.array([[0.5, -0.1]], np.float32),), {}, [np.arctanh([0.5, np.float32(-0.1)])]),
        (jnp.sqrt, "x: n", None, ([2.0, 0.5],), {}, [4.0, 0.25]),  # NaN at -1000
        (jnp.log, "x: n", None, ([-2.0, 1.0],), {}, [np.exp(-2.0), np.e]),
        (jnp.exp, "x: n", None, ([1e5, 0.5, -1.0],), {}, [np.log(1e5), np.log(0.5), np.nan]),
        (jnp.square, "x: n", None, ([4.0],), {}, [2.0]),  # the ends tie: the rising side
        (parabola_nan_far_left, "x: n", None, ([4.0],), {}, [2.5]),  # 0 and 1 tie: the rising side
        ("vector.leaky_relu", None, None, ([[-0.05, 3.0]],), {"alpha": 0.1}, [[-0.5, 3.0]]),
    ],
)
def test_the_preimage_takes_the_references_other_inputs_and_keywords(
    reference, shapes, labels, inputs, kwargs, preimage
):
    """The preimage of the float input with the integer inputs around it and the keywords as
    given; found where a reference is NaN at an end of the search (sqrt, log), to within 1e-13 of
    the input even where the output is 1e5 (exp), and on the rising side where the ends tie."""
    from handlayers.testing.compare import _preimage

    declared = not isinstance(reference, str)
    spec = testing.spec(reference, shapes=shapes, labels=labels) if declared else testing.SPECS[reference]
    i = spec.args.index("x" if declared else "A")
    inputs = tuple(
        np.asarray(v) if k in spec.labels or isinstance(v, np.ndarray) else np.asarray(v, float)
        for k, v in enumerate(inputs)
    )
    found = _preimage(spec, testing.Example(inputs, kwargs, np.ones_like(inputs[i])), i)
    np.testing.assert_allclose(found, preimage, rtol=1e-13, atol=1e-13)


def test_relus_preimage_of_0_is_where_its_gradient_is_0():
    """ReLU gives 0 for every input up to 0: the search takes the lowest, where the gradient is
    the contract's 0 (from above, it would be 1 just past the kink)."""
    from handlayers.testing.compare import _preimage

    x = np.array([0.0, 2.0])
    found = _preimage(testing.SPECS["vector.relu"], testing.Example((x,), {}, np.ones_like(x)), 0)
    assert found[0] < -1
    assert found[1] == pytest.approx(2.0, abs=1e-13)


class ReLUBlockingBelowTwoBillionths:
    """ReLU whose backward passes dout only where ``x > 2e-9``: wrong a little above the kink."""

    def forward(self, x):
        self.x = x
        return np.maximum(x, 0.0)

    def backward(self, dout):
        return dout * (self.x > 2e-9)


def test_an_input_a_nudge_above_the_kink_is_not_at_the_kink():
    """At ``x = 1.5e-9`` the nudge down (about 1e-9) stays above 0: a layer blocking dout there
    is not told it takes the other side at the kink (a nudge down twice as large would say so)."""
    spec = testing.SPECS["scalar.relu"]
    example = testing.Example((np.array([1.5e-9, 2.0]),), {}, np.array([3.0, 5.0]))
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(ReLUBlockingBelowTwoBillionths, spec, example)
    assert "da: WRONG" in str(failed.value)
    assert "at the kink" not in str(failed.value)


class HingeThroughTheKink:
    """The hinge loss with ``margins >= 0``: a term exactly at its kink sends its gradient."""

    def forward(self, S, labels):
        self.S, self.labels = S, labels
        correct = np.take_along_axis(S, labels[:, None], axis=1)
        self.active = (S - correct + 1 >= 0) & (np.arange(S.shape[1]) != labels[:, None])
        return np.sum(np.where(self.active, S - correct + 1, 0)) / S.shape[0]

    def backward(self, dl):
        dS = self.active.astype(float)
        dS[np.arange(len(self.labels)), self.labels] = -self.active.sum(axis=1)
        return dS * dl / self.S.shape[0], None


@pytest.mark.parametrize(
    "S",
    [
        [[1.0, 0.0]],  # S_1 - S_0 + 1 = 0, the kink, crossed up by nudging every score up
        [[0.0, 1.0]],  # ... with the label's column last: crossed up by nudging them down
    ],
)
def test_a_kink_crossed_either_way_by_the_nudges_is_named(S):
    """The nudges move each entry a little more than the one before: a margin ``S_j - S_y + 1`` at
    0 goes up with the nudge up when j comes after the label, with the nudge down when it comes
    before. Either way, a hinge loss sending the gradient of a term at its kink is told so."""
    S = np.array(S)
    labels = np.array([int(np.argmax(S))])
    example = testing.Example((S, labels), {}, np.array(2.0))
    with pytest.raises(testing.Mismatch) as failed:
        testing.check_example(HingeThroughTheKink, testing.SPECS["vector.hinge_loss"], example)
    assert str(failed.value).endswith(
        "Likely mistake: dS passes the gradient through at the kink, where the contract takes 0."
    )


def test_a_derivative_taken_at_the_output_is_named():
    """tanh's backward applying tanh again to the output it cached: the derivative at the output."""
    pair = (lab("cs231n", "tanh_at_output_forward"), lab("cs231n", "tanh_at_output_backward"))
    text = failure(pair, "vector.tanh")
    assert "Likely mistake: dA is the derivative taken at the output where it should be at A" in text


class Running:
    """Running sums that start() or reset() sets, that add() adds to, and that scale(by) sets too
    (a method with an argument, which a check cannot call)."""

    def start(self):
        self.total = 0

    def reset(self):
        self.total = self.count = 0

    def scale(self, by):
        self.total = by

    @classmethod
    def rescale(cls, by):  # a class method that takes an argument: not one to call first either
        cls.total = by

    def add(self, x):
        self.total += x


def _missing(obj, call):
    try:
        call(obj)
    except AttributeError as error:
        return error
    raise AssertionError("no AttributeError")


def test_an_attribute_a_method_sets_names_that_method():
    """An AttributeError on the user's object, for an attribute that methods of its class taking no
    arguments assign (``self.NAME = ...``), names them and the flag that calls one first."""
    from handlayers.testing.report import _set_by_a_method

    error = _missing(Running(), lambda r: r.add(1))
    assert _set_by_a_method(error, "Running") == (
        "total is set by reset() or start(), which the check calls only when told: --setup reset"
    )
    assert _set_by_a_method(_missing(Running(), lambda r: r.count), "Running") == (
        "count is set by reset(), which the check calls only when told: --setup reset"
    )


def test_the_method_hint_goes_before_the_methods_given_or_first_among_them():
    """With --setup methods given, the method that sets the attribute comes first in the flag (a
    given one may be what read it): added before them, or moved first where it was given after
    one; none is named when a given one sets it first (something else is wrong)."""
    from handlayers.testing.report import _set_by_a_method

    count = _missing(Running(), lambda r: r.count)
    assert _set_by_a_method(count, "Running", ("start",)) == (
        "count is set by reset(), which the check calls only when told: --setup reset,start"
    )
    assert _set_by_a_method(count, "Running", ("start", "add", "reset")) == (
        "count is set by reset(), which the check calls after start(), add(): --setup reset,start,add"
    )
    assert _set_by_a_method(_missing(Running(), lambda r: r.add(1)), "Running", ("start",)) == ""
    assert _set_by_a_method(_missing(Running(), lambda r: r.add(1)), "Running", ("reset", "start")) == ""
    assert _set_by_a_method(count, "Running", ("reset",)) == ""


def test_no_method_hint_where_none_sets_the_attribute_or_none_can_be_read():
    """No hint for another error, an AttributeError that names no attribute or no object, an
    attribute no method assigns, methods with no source, or a class whose attributes raise."""
    from handlayers.testing.report import _set_by_a_method

    assert _set_by_a_method(ValueError("total"), "Running") == ""
    assert _set_by_a_method(AttributeError("total"), "Running") == ""
    assert _set_by_a_method(AttributeError("total", name="total"), "Running") == ""

    class Lookalike(Exception):  # an error with an AttributeError's name and obj, not one
        name, obj = "total", Running()

    assert _set_by_a_method(Lookalike(), "Running") == ""
    assert _set_by_a_method(_missing(Running(), lambda r: r.mean), "Running") == ""
    namespace = {}
    exec("class Typed:\n    def start(self):\n        self.total = 0\n", namespace)  # no source kept
    assert _set_by_a_method(_missing(namespace["Typed"](), lambda t: t.total), "Typed") == ""

    class Raising:
        def __get__(self, obj, cls):
            raise RuntimeError("not on the class")

    class Guarded(Running):
        odd = Raising()

    assert _set_by_a_method(_missing(Guarded(), lambda g: g.add(1)), "Guarded") == ""
    # another object's attribute: a --setup of the checked class could not set it
    assert _set_by_a_method(_missing(Running(), lambda r: r.add(1)), "Outer") == ""


class Written:
    """Assignments as people write them, and look-alikes that assign nothing."""

    def __init__(self, flag=False):
        if flag:
            self.late = 0

    def annotated(self):
        self.n: int = 0

    def pair(this):
        this.a, (this.b, other) = 0, (0, 1)
        return other

    def looks(self):
        """It sets self.c = 0, says this docstring."""
        return self.c == 0  # self.c = 0 in a comment

    def grow(self):
        self.k += 1
        self.d_other = 0

    def star(*args):  # no first parameter to assign to
        return args

    def indexed(self):
        self.e[0] = 1  # e must be there already
        self.g.h = 1  # g too
        self.f: int  # an annotation alone assigns nothing

    lam = lambda self: None  # noqa: E731 (a lambda: its source is the class's line)


def test_the_assignments_are_read_from_the_code_not_its_text():
    """The methods that assign the attribute are found by parsing them: annotated and tuple
    assignments count, to any name of the first parameter; comparisons, docstrings, comments,
    augmented assignments and longer names do not; __init__ is not offered (a second
    construction would undo --param)."""
    from handlayers.testing.report import _set_by_a_method

    def hint(attribute):
        return _set_by_a_method(_missing(Written(), lambda w: getattr(w, attribute)), "Written")

    assert hint("n") == "n is set by annotated(), which the check calls only when told: --setup annotated"
    assert (
        hint("a")
        == hint("b").replace("b is", "a is")
        == ("a is set by pair(), which the check calls only when told: --setup pair")
    )
    assert hint("c") == hint("k") == hint("d") == hint("late") == ""
    assert hint("e") == hint("f") == hint("g") == hint("h") == ""
    # a CLASS.METHOD, which --setup does not fit: no hint
    assert _set_by_a_method(_missing(Written(), lambda w: w.n), "Written.annotated") == ""


def test_a_typical_example_names_each_outputs_gradient():
    """Of a layer of several outputs, the typical example shows dh and dc, as the smallest does."""
    spec = testing.SPECS["vector.lstm_step"]
    inputs = tuple(np.full(s, 0.5) for s in ((1, 1), (1, 1), (1, 1), (1, 4), (1, 4), (4,)))
    lines = typical_lines(spec, Example(inputs, {}, (np.full((1, 1), 2.0), np.full((1, 1), 3.0))), [], [])
    assert lines[-2:] == ["  dh        = [[2.]]", "  dc        = [[3.]]"]
