"""The mistakes a report can name, each from a synthetic wrong answer, and the names it must not give."""

from types import SimpleNamespace

import numpy as np
import pytest

from handlayers import testing
from handlayers.testing.report import diagnose, show

TOL = 1e-12


def row(name, expected, got):
    return SimpleNamespace(name=name, expected=np.asarray(expected, float), got=got, problem="wrong", tol=TOL)


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
    """A gradient of the transposed shape and values is transposed."""
    assert hints([row("dW", E[:, :1], E[:, :1].T)]) == ["dW is transposed"]


def test_a_gradient_not_summed_back_is_named():
    """A gradient left at the output's shape, whose sum is right, misses the sum."""
    assert hints([row("db", [4.0, 6.0], E)], batch=2) == ["db is missing the sum over the batch"]
    assert hints([row("db", [4.0, 6.0], E)]) == ["db is missing the sum over the axes that broadcasting stretched"]


def test_shapes_that_explain_nothing_name_nothing():
    """A gradient of an unrelated shape, or a wrong sum, gets no guess."""
    assert hints([row("db", [4.0, 6.0], np.ones(3))]) == []
    assert hints([row("db", [4.0, 6.0], np.ones((2, 2)))]) == []


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
    rows = [row("dx", 1.0, np.float32(1.0)), row("output", [1.0], [-1.0]), row("dw", [1.0], None)]
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
