"""The checker's own parts: how it hands inputs to a layer, how it names libraries, its defaults,
and a backward whose second answer differs in a way a value comparison alone would miss."""

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import reference.vector
from handlayers import scalar, testing, vector
from handlayers.testing import (
    SPECS,
    Example,
    Mismatch,
    Spec,
    check,
    check_backends,
    check_example,
    library,
    to_backend,
)
from handlayers.testing.tolerance import rounding_sensitivity

ROOT = Path(__file__).resolve().parent.parent


def test_to_backend_casts_floats_and_keeps_integer_labels(backend):
    """Float arrays become fresh arrays of the backend's library in the asked dtype; integer
    labels become arrays of the backend's library that keep their integer dtype."""
    x = np.array([0.5, 2.0])
    for dtype in (np.float64, np.float32):
        got = to_backend(x, backend, dtype)
        assert library(got) == backend
        assert got.dtype == dtype
        assert got is not x
    labels = to_backend(np.array([0, 2]), backend, np.float32)
    assert library(labels) == backend
    assert labels.dtype == np.int64


def test_python_floats_stay_python_floats(backend):
    """A Python float reaches the layer as a Python float on every backend (the lab's layers take them)."""
    assert type(to_backend(1.5, backend, np.float32)) is float


@pytest.mark.parametrize("x", [np.float32(1.5), np.array(1.5), np.array([1.5])[0]])
def test_the_python_backend_gives_python_floats(x):
    """For backend "python", numpy numbers and 0-d arrays become Python floats."""
    assert type(to_backend(x, "python", np.float64)) is float


def test_library_names_where_a_value_comes_from():
    """numpy arrays and scalars are numpy, ints and floats are Python, anything else its type (a
    bool is no number for the checker)."""
    assert [library(x) for x in (np.ones(2), np.float32(1), 1.5, 2)] == ["numpy", "numpy", "python", "python"]
    assert [library(x) for x in (True, [1.0], None)] == ["bool", "list", "NoneType"]


def test_check_draws_100_float64_numpy_examples_the_same_every_run():
    """By default check draws 100 examples of float64 numpy arrays (or Python floats), and the
    same examples each time it runs."""
    runs = []

    class Recording(scalar.Plus):
        def forward(self, a, b):
            runs[-1].append(tuple((library(x), np.asarray(x).dtype.name, np.asarray(x).tobytes()) for x in (a, b)))
            return super().forward(a, b)

    for _ in range(2):
        runs.append([])
        assert check(Recording, "scalar.plus").examples == 100
    assert runs[0] == runs[1]
    assert {(lib, dtype) for example in runs[0] for lib, dtype, _ in example} <= {
        ("numpy", "float64"),
        ("python", "float64"),
    }


def test_a_gradient_that_becomes_none_on_a_second_backward_is_reported():
    """A second backward that returns None where the first returned an array has changed its answer,
    and the report names the gradient that changed."""
    spec = SPECS["scalar.affine"]

    class Forgets(spec.layer):
        calls = 0

        def backward(self, da):
            grads = super().backward(da)
            self.calls += 1
            return grads if self.calls == 1 else (None, *grads[1:])

    example = Example((np.ones(2), np.ones(2), np.ones(2)), {}, np.ones(2))
    with pytest.raises(Mismatch, match="backward called a second time gave other values for dx:"):
        check_example(Forgets, spec, example)


def test_a_nan_gradient_is_wrong_but_not_a_changed_answer():
    """A gradient that is NaN on every call fails as a wrong value; NaN equals NaN from one call to the next."""
    spec = SPECS["scalar.square"]

    class NaN(spec.layer):
        def backward(self, dy):
            return super().backward(dy) * np.nan

    with pytest.raises(Mismatch, match="dx: WRONG: worst error nan") as failure:
        check_example(NaN, spec, Example((np.ones(2),), {}, np.ones(2)))
    assert "second time" not in str(failure.value)


def test_a_nan_output_is_wrong_but_not_written_into():
    """An output that is NaN where the reference's is a number fails as a wrong value; backward
    leaves it as forward returned it (NaN equals NaN there), so no write into it is told."""
    spec = SPECS["scalar.square"]

    class NaN(spec.layer):
        def forward(self, x):
            return super().forward(x) * np.nan

    with pytest.raises(Mismatch, match="output: WRONG: worst error nan") as failure:
        check_example(NaN, spec, Example((np.ones(2),), {}, np.ones(2)))
    assert "wrote into" not in str(failure.value)


def test_nan_in_an_input_or_dout_is_not_taken_for_a_write():
    """NaN equals NaN when the checker looks for writes into the inputs and into ``dout``: a
    right layer given NaN fails on its NaN results alone (the oracle's are NaN too)."""
    spec = SPECS["scalar.square"]
    with pytest.raises(Mismatch) as failure:
        check_example(spec.layer, spec, Example((np.array([np.nan, 1.0]),), {}, np.array([1.0, np.nan])))
    assert "worst error nan" in str(failure.value)
    assert "wrote into" not in str(failure.value)


def test_a_spec_names_the_gradients_and_defaults_the_output_degree():
    """Gradients are named d + the input's name; the output's degree is one more than the
    gradients' unless given (0 for a bounded output)."""
    reference = SPECS["scalar.affine"].reference
    spec = Spec("x.y", reference, scalar.Affine, ("x", "W"), SPECS["scalar.affine"].draw, degree=3)
    assert spec.grads == ("dx", "dW")
    assert spec.out_degree == 4
    bounded = Spec("x.y", reference, scalar.Affine, ("x",), SPECS["scalar.affine"].draw, degree=0, out_degree=0)
    assert bounded.out_degree == 0


def test_a_spec_needs_a_float_input():
    """A spec whose every input is a label has no gradient to check: refused when it is made,
    not deep in a check; one float input beside labels is enough."""
    draw = SPECS["vector.embedding"].draw
    with pytest.raises(ValueError, match=r"^x\.y: no float input, so no gradient to check$"):
        Spec("x.y", lambda i, j: i + j, None, ("i", "j"), draw, labels=(0, 1), degree=1)
    with pytest.raises(ValueError, match=r"^x\.y: no float input, so no gradient to check$"):  # nor with no input
        Spec("x.y", lambda: 1.0, None, (), draw, degree=1)
    assert Spec("x.y", lambda i, W: W[i], None, ("i", "W"), draw, labels=(0,), degree=1).grads == ("di", "dW")


def test_a_spec_names_its_output_gradients():
    """One output's gradient is ``dout`` whatever the output's name; several outputs' are d + each
    name (the names the reports use: ``dout: backward wrote into it``)."""
    reference, draw = SPECS["scalar.affine"].reference, SPECS["scalar.affine"].draw
    assert Spec("x.y", reference, scalar.Affine, ("x",), draw, degree=1).douts == ("dout",)
    assert Spec("x.y", reference, scalar.Affine, ("x",), draw, degree=1, outputs=("y",)).douts == ("dout",)
    two = Spec("x.y", reference, scalar.Affine, ("x",), draw, degree=1, outputs=("h", "c"))
    assert two.douts == ("dh", "dc")
    three = Spec("x.y", reference, scalar.Affine, ("x",), draw, degree=1, outputs=("h", "c", "y"))
    assert three.douts == ("dh", "dc", "dy")


@pytest.mark.jax
@pytest.mark.parametrize("wrong_on", ["numpy", "jax"])
def test_check_backends_checks_every_backend(wrong_on):
    """A layer that is wrong on one backend only fails check_backends, which names that backend."""
    spec = SPECS["scalar.plus"]

    class WrongOn(spec.layer):
        def forward(self, a, b):
            c = super().forward(a, b)
            return c + 1 if library(a) == wrong_on else c

    example = Example((np.ones(2), np.ones(2)), {}, np.ones(2))
    with pytest.raises(Mismatch, match=rf"\({wrong_on}, float64\)"):
        check_backends(WrongOn, spec, example)


def test_check_backends_checks_the_dtype_asked_for():
    """A layer that computes in float64 whatever it is given fails check_backends in float32."""
    spec = SPECS["scalar.plus"]

    class AlwaysFloat64(spec.layer):
        def forward(self, a, b):
            return super().forward(np.asarray(a, np.float64), np.asarray(b, np.float64))

    example = Example((np.ones(2), np.ones(2)), {}, np.ones(2))
    with pytest.raises(Mismatch, match="output: WRONG: has dtype float64, expected float32"):
        check_backends(AlwaysFloat64, spec, example, backends=("numpy",), dtype=np.float32)


def test_a_gradient_for_labels_names_what_came_instead():
    """Where integer labels are due None, the report names the type the layer returned instead."""
    spec = SPECS["vector.hinge_loss"]

    class GradientForLabels(spec.layer):
        def backward(self, dl):
            return super().backward(dl)[0], np.zeros(1)

    example = Example((np.zeros((1, 2)), np.array([0])), {}, np.array(1.0))
    problem = "dlabels: WRONG: expected None for an input that is not floating, got ndarray"
    with pytest.raises(Mismatch, match=re.escape(problem)):
        check_example(GradientForLabels, spec, example)


def test_from_python_floats_either_library_is_named():
    """From Python floats a layer may return Python or numpy numbers: a wrong type names both."""
    spec = SPECS["scalar.relu"]

    class ReturnsAList(spec.layer):
        def backward(self, dr):
            return [super().backward(dr)]

    with pytest.raises(Mismatch, match=re.escape("da: WRONG: is a list value, expected numpy or python")):
        check_example(ReturnsAList, spec, Example((1.0,), {}, 1.0), backend="python")


def test_from_numpy_arrays_a_python_number_is_told():
    """From numpy arrays a layer returns numpy: a loss that returns ``float(loss)`` is told so,
    though the value is right (a Python float is neither an array nor the input's dtype)."""
    spec = SPECS["vector.squared_loss"]

    class ReturnsAFloat(spec.layer):
        def forward(self, *inputs):
            return float(super().forward(*inputs))

    example = Example((np.ones((2, 3)), np.zeros((2, 3))), {}, np.array(1.0))
    with pytest.raises(Mismatch, match=re.escape("output: WRONG: is a python value, expected numpy")):
        check_example(ReturnsAFloat, spec, example)


def test_empty_arrays_are_checked_like_any_other():
    """An elementwise layer on empty arrays (numpy broadcasts them) matches its reference: nothing to compare."""
    spec = SPECS["scalar.relu"]
    assert check_example(spec.layer, spec, Example((np.zeros(0),), {}, np.zeros(0))) == 0


def test_empty_arrays_get_a_measured_tolerance_too():
    """A reference of unknown degree (a declared spec: its tolerance is measured) on empty arrays:
    nothing to compare, and no largest ``|dout|`` to take."""
    spec = testing.spec(reference.vector.tanh, shapes="X: n d")
    assert check_example(vector.Tanh, spec, Example((np.zeros((0, 2)),), {}, np.zeros((0, 2)))) == 0


def test_a_python_int_passes_for_a_python_float():
    """A layer for Python numbers may return an int where the value is whole (``max(a, 0)`` gives
    the int 0 for a negative ``a``): on Python floats the checker takes it as the float."""

    class LabReLU:
        def forward(self, a):
            self.a = a
            return max(a, 0)

        def backward(self, dr):
            return dr if self.a > 0 else 0

    assert check_example(LabReLU, SPECS["scalar.relu"], Example((-1.0,), {}, 1.0), backend="python") == 0


def test_every_problem_of_a_value_is_listed():
    """A gradient both of the wrong dtype and wrong names both problems, in that order."""
    spec = SPECS["scalar.square"]

    class Float32AndDouble(spec.layer):
        def backward(self, dy):
            return np.float32(2) * super().backward(dy).astype(np.float32)

    problem = "dx: WRONG: has dtype float32, expected float64; worst error"
    with pytest.raises(Mismatch, match=re.escape(problem)):
        check_example(Float32AndDouble, spec, Example((np.ones(2),), {}, np.ones(2)))


def test_a_layer_that_writes_into_an_input_is_told_so():
    """A forward that scales its input in place fails, naming the input."""
    spec = SPECS["vector.relu"]

    class HalvesA(spec.layer):
        def forward(self, A):
            A *= 0.5
            return super().forward(A * 2)

    with pytest.raises(Mismatch, match="A: forward or backward wrote into this input"):
        check_example(HalvesA, spec, Example((np.ones((1, 2)),), {}, np.ones((1, 2))))


def test_a_plain_backward_returning_the_wrong_count_is_told_how_many():
    """A class in the contract's convention returning two gradients where three are due is told so."""
    spec = SPECS["vector.affine"]

    class TwoOfThree(spec.layer):
        def backward(self, dA):
            return super().backward(dA)[:2]

    example = Example((np.ones((1, 1)), np.ones((1, 1)), np.ones(1)), {}, np.ones((1, 1)))
    with pytest.raises(Mismatch, match=re.escape("backward returned 2 gradients, expected 3 (dX, dW, db)")):
        check_example(TwoOfThree, spec, example)


def test_a_second_backward_with_fewer_gradients_has_changed_them():
    """A second backward that returns fewer values than the first changed the ones it left out."""
    spec = SPECS["vector.affine"]

    class Shrinks(spec.layer):
        calls = 0

        def backward(self, dA):
            self.calls += 1
            grads = super().backward(dA)
            return grads if self.calls == 1 else grads[:2]

    example = Example((np.ones((1, 1)), np.ones((1, 1)), np.ones(1)), {}, np.ones((1, 1)))
    with pytest.raises(Mismatch, match="backward called a second time gave other values for db:"):
        check_example(Shrinks, spec, example)


def test_a_second_backward_that_changes_two_gradients_names_both_and_says_why():
    """The report names every gradient the second backward changed, and what such a layer does
    wrong: it changes what forward stored, or what it read, in place."""
    spec = SPECS["vector.affine"]

    class Accumulates(spec.layer):
        def backward(self, dA):
            dX, dW, db = super().backward(dA)
            self.X, self.W = self.X + 1.0, self.W + 1.0  # the next backward reads other values
            return dX, dW, db

    example = Example((np.ones((2, 2)), np.ones((2, 2)), np.ones(2)), {}, np.ones((2, 2)))
    said = (
        "backward called a second time gave other values for dX, dW: "
        "it changes what forward stored (or what it read) in place"
    )
    with pytest.raises(Mismatch) as failure:
        check_example(Accumulates, spec, example)
    assert said in [line.strip() for line in str(failure.value).splitlines()]


def test_each_example_computes_its_oracle_once_on_every_backend(monkeypatch):
    """check_backends computes the oracle of an example once, for its output, its gradients and
    their tolerances on every backend: the oracle is most of a check's time."""
    from handlayers.testing import compare

    oracle = importlib.import_module("handlayers.testing.oracle")  # the module, not the function
    calls, computed = [], oracle.oracle

    def counted(*args):
        calls.append(args)
        return computed(*args)

    monkeypatch.setattr(compare, "oracle", counted)
    monkeypatch.setattr(oracle, "oracle", counted)
    spec = SPECS["vector.affine"]
    example = Example((np.ones((2, 3)), np.ones((3, 2)), np.ones(2)), {}, np.ones((2, 2)))
    check_backends(spec.layer, spec, example, backends=("numpy", "jax"))
    assert len(calls) == 1


def test_the_worst_error_is_returned_as_a_fraction_of_its_tolerance(backend, dtype):
    """``check_example`` returns the worst error over its tolerance: a layer whose ``dW`` is off by
    half its tolerance, and right elsewhere, returns about 0.5 (the rest of its error is rounding,
    a small part of the tolerance)."""
    spec = SPECS["vector.affine"]
    example = Example(
        (np.array([[0.5, -1.25], [2.0, 0.75]]), np.array([[1.5, -0.5], [0.25, 1.0]]), np.array([0.5, -2.0])),
        {},
        np.array([[1.0, -0.5], [0.25, 2.0]]),
    )
    off = 0.5 * testing.tolerance(spec, example, dtype, "dW")

    class HalfATolerance(spec.layer):
        def backward(self, dA):
            dX, dW, db = super().backward(dA)
            return dX, dW + np.asarray(off, dW.dtype), db

    assert check_example(HalfATolerance, spec, example, backend=backend, dtype=dtype) == pytest.approx(0.5, abs=0.05)


def test_a_gradient_off_by_exactly_its_tolerance_passes(backend, dtype):
    """The tolerance is the largest error allowed: a ``dA`` of ``tol`` where it is 0 (``A < 0``)
    passes, with a ratio of exactly 1."""
    spec = SPECS["vector.relu"]
    example = Example((np.array([[-1.0, -2.0]]),), {}, np.array([[1.0, -0.5]]))
    tol = testing.tolerance(spec, example, dtype, "dA")

    class OffByItsTolerance(spec.layer):
        def backward(self, dA):
            return super().backward(dA) + np.asarray(tol, dtype)

    assert float(np.asarray(tol, dtype)) == tol  # so that the error is exactly tol
    assert check_example(OffByItsTolerance, spec, example, backend=backend, dtype=dtype) == 1.0


def test_a_layer_made_by_an_object_is_named_by_its_type():
    """A layer made by a callable object, which has no ``__name__``, is named by its type."""
    spec = SPECS["vector.relu"]

    class Doubles(spec.layer):
        def backward(self, dA):
            return 2 * super().backward(dA)

    class Factory:
        def __call__(self, **kwargs):
            return Doubles(**kwargs)

    with pytest.raises(Mismatch, match=r"^Factory does not match vector.relu \(numpy, float64\) on:"):
        check_example(Factory(), spec, Example((np.ones((1, 2)),), {}, np.ones((1, 2))))


def test_the_layer_gets_its_inputs_and_dout_in_the_dtype_checked(backend, dtype):
    """``check_example`` hands the layer its inputs and ``dout`` in the dtype it checks, whatever
    the example's own (here float64 arrays)."""
    spec = SPECS["vector.relu"]
    seen = []

    class Records(spec.layer):
        def forward(self, A):
            seen.append(A.dtype)
            return super().forward(A)

        def backward(self, dA):
            seen.append(dA.dtype)
            return super().backward(dA)

    example = Example((np.array([[1.0, -2.0]]),), {}, np.array([[0.5, 3.0]]))
    check_example(Records, spec, example, backend=backend, dtype=dtype)
    assert seen == [np.dtype(dtype)] * 3  # forward, and backward twice


def test_a_backward_that_writes_into_the_output_is_told():
    """A backward that scales the output forward returned (and kept) in place is told so; the
    output is compared as forward gave it."""
    spec = SPECS["vector.relu"]

    class ScalesItsOutput(spec.layer):
        def forward(self, A):
            self.out = super().forward(A)
            return self.out

        def backward(self, dA):
            self.out *= 2
            return super().backward(dA)

    with pytest.raises(Mismatch) as failure:
        check_example(ScalesItsOutput, spec, Example((np.array([[1.0, -2.0]]),), {}, np.ones((1, 2))))
    lines = [line.strip() for line in str(failure.value).splitlines()]
    assert "output: backward wrote into forward's output (it changes what forward stored in place)" in lines
    assert "output: ok" in str(failure.value)


def test_python_floats_come_in_float64_only():
    """Python floats are float64: checking them in float32 is refused, not reported as a layer
    whose every result has the wrong dtype."""
    message = re.escape("Python floats are float64: dtype float32 needs arrays")
    spec, example = SPECS["scalar.relu"], Example((1.0,), {}, 1.0)
    with pytest.raises(ValueError, match=message):
        check(scalar.ReLU, "scalar.relu", backend="python", dtype="float32")
    with pytest.raises(ValueError, match=message):
        check_example(scalar.ReLU, spec, example, backend="python", dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        check_backends(scalar.ReLU, spec, example, backends=["python"], dtype=np.float32)


def test_an_example_of_python_numbers_is_refused_in_float32(backend):
    """On arrays too: a Python float (or an int, taken as one) would reach the layer as a float64
    number, and every right layer would be told its results have the wrong dtype."""
    if backend == "python":
        pytest.skip("the python backend is refused whatever the example holds")
    message = re.escape("the example holds Python numbers, which are float64: dtype float32 needs arrays")
    spec = SPECS["scalar.square"]
    for example in (Example((1.5,), {}, np.array(2.0)), Example((np.array(1.5),), {}, 2)):
        check_example(scalar.Square, spec, example, backend=backend)  # float64: they are welcome
        with pytest.raises(ValueError, match=message):
            check_example(scalar.Square, spec, example, backend=backend, dtype=np.float32)
        with pytest.raises(ValueError, match=message):
            check_backends(scalar.Square, spec, example, backends=[backend], dtype=np.float32)


class SeenAffine(vector.Affine):
    """A right affine layer that keeps the dtypes its inputs and ``dout`` came in."""

    seen: ClassVar[list] = []

    def forward(self, *inputs):
        SeenAffine.seen += [x.dtype for x in inputs]
        return super().forward(*inputs)

    def backward(self, dout):
        SeenAffine.seen.append(dout.dtype)
        return super().backward(dout)


def test_integers_for_a_float_input_are_taken_as_numbers(backend, dtype):
    """A hand-written ``np.array([[1, 2]])`` for ``X`` means the numbers: the layer gets them in the
    dtype checked and a right layer passes; integer labels stay integers."""
    if backend == "python":
        pytest.skip("arrays")
    example = Example((np.array([[1, 2]]), np.array([[1], [-1]]), np.array([3])), {}, np.array([[2]]))
    SeenAffine.seen = []
    check_backends(SeenAffine, SPECS["vector.affine"], example, backends=[backend], dtype=dtype)
    assert SeenAffine.seen == [dtype] * 5  # X, W and b, then dout for each of the two backwards
    labelled = Example((np.array([[0.5, -1.0, 2]]), np.array([2])), {}, np.array(1))
    spec = SPECS["vector.softmax_cross_entropy"]
    check_example(vector.SoftmaxCrossEntropy, spec, labelled, backend=backend, dtype=dtype)


def test_the_package_loads_the_rest_of_the_checker_on_first_use():
    """``import handlayers.testing`` loads the oracle and the tolerance, not Hypothesis (the
    training audit needs no more); every public name is there all the same."""
    probe = (
        "import sys, handlayers.testing as t; loaded = 'hypothesis' in sys.modules; "
        "report, strategies = t.report.__name__, t.strategies.__name__; "
        "missing = [n for n in t.__all__ if not hasattr(t, n)]; "
        "print(loaded, report, strategies, 'hypothesis' in sys.modules, missing)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    modules = ["handlayers.testing.report", "handlayers.testing.strategies"]
    assert done.stdout.split() == ["False", *modules, "True", "[]"]
    assert set(testing.__all__) <= set(dir(testing))
    assert testing.__getattr__("report") is sys.modules["handlayers.testing.report"]  # here loaded already
    with pytest.raises(AttributeError, match="has no attribute 'chek'"):
        testing.chek  # noqa: B018 (the attribute access is the test)


def test_a_gradient_in_a_tuple_of_one_is_wrong_and_said_so():
    """The contract: a layer of one input returns its gradient itself. ``return dx,`` fails, with
    that hint (no shape hint: the extra axis is the tuple's)."""
    spec = SPECS["vector.relu"]
    example = Example((np.array([[1.0, -2.0], [3.0, 0.5]]),), {}, np.array([[0.5, 0.25], [2.0, -1.0]]))

    class Comma(spec.layer):
        def backward(self, dout):
            return (super().backward(dout),)

    with pytest.raises(Mismatch, match="dA: WRONG: is a tuple value") as failure:
        check_example(Comma, spec, example)
    assert str(failure.value).endswith(
        "Likely mistake: dA is the right value in a tuple of one (a trailing comma?): a gradient is the array itself."
    )


@pytest.mark.parametrize("returned", [("dA",), ("a", "b"), "dA", {"dA": 1.0}], ids=repr)
def test_a_gradient_that_is_no_number_is_wrong_without_a_hint(returned):
    """Text or a dict for a gradient fails as a value of the wrong kind, shown as Python writes
    it, with no guess at the mistake, and without crashing the checker."""
    spec = SPECS["vector.relu"]
    example = Example((np.array([[1.0, -2.0]]),), {}, np.array([[0.5, 0.25]]))

    class Text(spec.layer):
        def backward(self, dout):
            return returned

    with pytest.raises(Mismatch, match=f"dA: WRONG: is a {type(returned).__name__} value") as failure:
        check_example(Text, spec, example)
    assert f"got      {returned!r}" in str(failure.value)
    assert "Likely mistake" not in str(failure.value)
    assert "a second time" not in str(failure.value)  # the same text both times
    assert failure.value.found.hints == []  # none, and working them out raised nothing


@pytest.mark.slow
def test_a_forward_that_cannot_take_the_inputs_is_the_layers_error():
    """A class in the contract's convention whose forward takes too few inputs fails on the
    layer's own TypeError, as any exception a layer raises (no options were asked for)."""

    class OneInput:
        def forward(self, X):
            return X

        def backward(self, dout):
            return dout

    with pytest.raises(Mismatch, match=r"OneInput raised TypeError"):
        check(OneInput, "vector.affine", max_examples=1)


def test_a_backward_that_leaves_out_the_labels_none_is_miscounted():
    """A loss layer must return ``None`` for its integer labels: ``(dZ, None)``, not ``dZ``."""
    spec = SPECS["vector.softmax_cross_entropy"]

    class NoNone(spec.layer):
        def backward(self, dout):
            return super().backward(dout)[0]

    example = Example((np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 0.3]]), np.array([0, 2])), {}, 0.7)
    with pytest.raises(Mismatch, match=re.escape("backward returned 1 gradients, expected 2 (dZ, dlabels)")):
        check_example(NoNone, spec, example)


def test_a_spec_naming_too_few_outputs_is_an_error():
    """A spec whose ``outputs`` do not match what its reference returns is the spec's mistake."""

    def three(x):
        return x, 2 * x, 3 * x

    class Two:
        def forward(self, x):
            return x, 2 * x

        def backward(self, douts):
            return douts[0] + 2 * douts[1]

    spec = Spec("three", three, Two, ("x",), None, degree=1, outputs=("a", "b"))
    example = Example((np.array([1.0, 2.0]),), {}, (np.ones(2), np.ones(2), np.ones(2)))
    with pytest.raises(ValueError, match=re.escape("three names 2 outputs (a, b); its reference returns 3")):
        check_example(Two, spec, example)


def test_a_small_dout_gets_a_small_measured_tolerance():
    """The measured tolerance scales with ``max |dout|`` however small (it is no floor of 1): with
    ``dout`` at 1e-3 a gradient off by 1e-15 fails, ten times the bound of the docs' formula
    ``k * (eps * max(B, max |dout|) + tiny)`` (with ``max |dout|`` floored at 1 it would pass)."""
    spec = testing.spec(reference.vector.tanh, shapes="X: n d")
    example = Example((np.linspace(-2.0, 2.0, 6).reshape(2, 3),), {}, np.full((2, 3), 1e-3))
    _, (b,) = rounding_sensitivity(spec.reference, example, np.float64)
    info = np.finfo(np.float64)
    bound = (testing.OPS + 6 + 6) * (info.eps * max(b, 1e-3) + info.smallest_normal)
    assert 10 * bound < 1e-15 < (testing.OPS + 6 + 6) * info.eps * max(b, 1.0)

    class Off(vector.Tanh):
        def backward(self, dout):
            return super().backward(dout) + 1e-15

    with pytest.raises(Mismatch, match="dX: WRONG"):
        check_example(Off, spec, example)


def test_check_of_a_layer_that_raises_keeps_its_exception_as_the_cause():
    """A layer's own exception is the report (its lines, no search for a typical example) and stays
    the Mismatch's ``__cause__``, for a debugger or a traceback."""

    class Boom(vector.Affine):
        def backward(self, dout):
            raise RuntimeError("boom")

    with pytest.raises(Mismatch, match=re.escape("Boom raised RuntimeError against vector.affine")) as failure:
        check(Boom, "vector.affine", max_examples=5)
    assert isinstance(failure.value.__cause__, RuntimeError)
    assert "typical" not in str(failure.value)


def test_on_example_counts_every_example_run_passed_or_failed():
    """``on_example`` is called after each example with the count so far: once per example of a
    passing check, and on past ``max_examples`` while a failing example is shrunk."""
    counts = []
    result = check(scalar.Plus, "scalar.plus", max_examples=7, on_example=counts.append)
    assert counts == list(range(1, result.examples + 1))
    assert result.examples == 7

    class Wrong(scalar.Square):
        def backward(self, dout):
            return -super().backward(dout)

    counts.clear()
    with pytest.raises(Mismatch):
        check(Wrong, "scalar.square", max_examples=7, on_example=counts.append)
    assert counts == list(range(1, len(counts) + 1))
    assert len(counts) > 1


def test_the_report_of_a_layer_that_raises_names_the_backend_and_dtype_it_ran_on():
    """A layer that raises only on one backend or in one dtype is told which (mutants that lost
    them from the report survived)."""

    class Boom(vector.ReLU):
        def forward(self, X):
            raise TypeError("boom")

    example = Example((np.ones(2),), {}, np.ones(2))
    with pytest.raises(Mismatch, match=re.escape("Boom raised TypeError against vector.relu (numpy, float32) on:")):
        check_example(Boom, SPECS["vector.relu"], example, dtype=np.float32)


def test_the_report_of_a_wrong_layer_names_the_backend_and_dtype_it_ran_on():
    """A layer wrong in float32 is told so: the report's first line names the dtype checked."""

    class Doubles(vector.ReLU):
        def forward(self, X):
            return 2 * super().forward(X)

    example = Example((np.ones(2),), {}, np.ones(2))
    with pytest.raises(Mismatch, match=re.escape("Doubles does not match vector.relu (numpy, float32) on:")):
        check_example(Doubles, SPECS["vector.relu"], example, dtype=np.float32)


PER_ROW = (
    ": one value per row, whose mean is the reference's (a loss that takes the mean in another method, as the "
    "nnfs book's Loss.calculate: check that method, --forward calculate)"
)


@pytest.mark.parametrize(
    ("got", "expected", "position", "said"),
    [
        ([1.0, 3.0], 2.0, None, PER_ROW),
        (np.array([1, 3]), 2.0, None, PER_ROW),  # integers are numbers
        ([1.0, 3.0 + 2.0], 2.0, None, PER_ROW),  # off by exactly 4 tolerances (tol = 0.25)
        ([1.0, 3.0 + 2.5], 2.0, None, ""),
        ([-1.0, -3.0], 2.0, None, ""),
        ([1.0, 3.0], 2.0, 0, ""),  # a gradient's row
        ([[1.0, 3.0]], 2.0, None, ""),
        ([1.0, 3.0], [2.0, 2.0], None, ""),
        (np.array(["1", "3"]), 2.0, None, ""),  # text is no loss
    ],
)
def test_an_output_of_one_value_per_row_whose_mean_is_the_loss_is_said(got, expected, position, said):
    """A loss's output of one value per row where the reference gives one value is said to be the
    per-row losses when their mean is the reference's within 4 tolerances (here 0.25)."""
    from handlayers.testing.compare import _per_row, _Row

    row = _Row("output", np.asarray(expected, np.float64), got, position=position)
    assert _per_row(row, np.asarray(got), 0.25) == said
