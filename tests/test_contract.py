"""The contract every layer keeps: state, errors, and a checker strict enough to matter."""

import re

import jax
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from handlayers._layer import keep_where, sum_to_shape
from handlayers.testing import SPECS, Example, arrays, check_example, examples, floats, grid, oracle, tolerance
from handlayers.testing.strategies import smallest_drawn
from tests.helpers import as_numpy, backend_array

NAMES = list(SPECS)


def run(spec, example, backend, layer=None):
    """Forward then backward of ``example`` on ``backend``; returns (layer, output, gradients)."""
    layer = layer or spec.layer(**example.kwargs)
    out = layer.forward(*(backend_array(backend, x) for x in example.inputs))
    grads = layer.backward(backend_array(backend, example.dout))
    return layer, out, grads if isinstance(grads, tuple) else (grads,)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_second_forward_replaces_the_first(name, backend, data):
    """After two forwards, backward answers for the second, as a fresh layer does."""
    spec = SPECS[name]
    first, second = data.draw(examples(spec)), data.draw(examples(spec))
    if first.kwargs != second.kwargs:  # a keyword (Softmax's axis, Dropout's p): the first forward takes new floats
        first = Example(
            tuple(
                x if i in spec.labels else data.draw(arrays(np.float64, np.shape(x), floats(np.float64, 100)))
                for i, x in enumerate(second.inputs)
            ),
            {},
            None,
        )
    used = spec.layer(**second.kwargs)
    used.forward(*(backend_array(backend, x) for x in first.inputs))
    check_example(lambda **kwargs: used, spec, second, backend=backend)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_backward_twice_gives_the_same_answer(name, backend, data):
    """backward may be called again and returns the same gradients."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    layer, _, grads = run(spec, example, backend)
    again = layer.backward(backend_array(backend, example.dout))
    again = again if isinstance(again, tuple) else (again,)
    for g, h in zip(grads, again, strict=True):
        assert (g is None and h is None) or np.array_equal(as_numpy(g), as_numpy(h))


@pytest.mark.parametrize("name", NAMES)
def test_backward_before_forward_raises(name):
    """backward before any forward raises RuntimeError naming the layer."""
    spec = SPECS[name]
    with pytest.raises(RuntimeError, match=f"{spec.layer.__name__}.backward called before"):
        spec.layer().backward(1.0)


def mismatched_inputs(spec):
    """Inputs for ``spec`` whose shapes do not fit together: the last float input is too long."""
    inputs = [np.ones(2) for _ in spec.args]
    inputs[len(spec.args) - 1] = np.ones(3)
    return inputs


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("scalar.") and len(SPECS[n].args) > 1])
def test_shapes_that_do_not_broadcast_raise(name, backend):
    """Inputs whose shapes do not broadcast raise ValueError naming the shapes."""
    spec = SPECS[name]
    layer = spec.layer()
    with pytest.raises(ValueError, match=re.escape("(2,)") + ".*" + re.escape("(3,)")):
        layer.forward(*(backend_array(backend, x) for x in mismatched_inputs(spec)))
    with pytest.raises(RuntimeError):  # the failed forward left nothing to differentiate
        layer.backward(1.0)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_dout_of_the_wrong_shape_raises(name, backend, data):
    """A dout whose shape is not the output's raises ValueError naming both shapes."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    layer = spec.layer(**example.kwargs)
    layer.forward(*(backend_array(backend, x) for x in example.inputs))
    wrong = np.zeros((*np.shape(example.dout), 2))
    with pytest.raises(ValueError, match=re.escape(f"shape {wrong.shape}")):
        layer.backward(backend_array(backend, wrong))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_a_gradient_wrong_by_one_part_in_a_million_fails(name, data):
    """In float64, scaling any one gradient by 1 + 1e-6 fails the check (unless that gradient is
    so small beside its terms that the tolerance's floor exceeds a tenth of that error)."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    expected = oracle(spec, example)[1]
    index = data.draw(st.sampled_from([i for i, g in enumerate(expected) if g is not None]))
    size = float(np.max(np.abs(expected[index]), initial=0.0))
    assume(size > 0 and 1e-6 * size > 10 * tolerance(spec, example, np.float64, spec.grads[index]))
    wrong = with_grads(spec, lambda grads: tuple(g * (1 + 1e-6) if i == index else g for i, g in enumerate(grads)))
    with pytest.raises(AssertionError, match=spec.grads[index]):
        check_example(wrong, spec, example)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_an_output_wrong_by_one_part_in_a_million_fails(name, data):
    """In float64, scaling the output (the first, of several) by 1 + 1e-6 fails the check, as for
    the gradients."""
    spec = SPECS[name]
    several = len(spec.outputs) > 1
    example = data.draw(examples(spec))
    expected = oracle(spec, example)[0]
    expected = expected[0] if several else expected
    size = float(np.max(np.abs(expected), initial=0.0))
    tol = tolerance(spec, example, np.float64)
    assume(1e-6 * size > 10 * tol)

    class Wrong(spec.layer):
        def forward(self, *inputs):
            out = super().forward(*inputs)
            return (out[0] * (1 + 1e-6), *out[1:]) if several else out * (1 + 1e-6)

    with pytest.raises(AssertionError, match=f"{spec.outputs[0]}: WRONG"):
        check_example(Wrong, spec, example)


def with_grads(spec, change):
    """The built-in layer of ``spec`` with ``change`` applied to backward's tuple of gradients."""

    class Changed(spec.layer):
        def backward(self, dout):
            grads = super().backward(dout)
            changed = change(grads if isinstance(grads, tuple) else (grads,))
            return changed[0] if len(changed) == 1 else changed

    return Changed


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_a_gradient_of_the_wrong_dtype_is_reported(name, data):
    """A float64 layer that returns float32 gradients fails the check, naming the dtype."""
    spec = SPECS[name]
    layer = with_grads(spec, lambda grads: tuple(None if g is None else np.float32(g) for g in grads))
    with pytest.raises(AssertionError, match="dtype float32, expected float64"):
        check_example(layer, spec, data.draw(examples(spec)))


@pytest.mark.parametrize("name", [n for n in NAMES if len(SPECS[n].args) > 1])
@given(data=st.data())
def test_a_missing_gradient_is_reported(name, data):
    """A backward that returns one gradient too few fails the check, naming the count."""
    spec = SPECS[name]
    layer = with_grads(spec, lambda grads: grads[:-1])
    with pytest.raises(AssertionError, match=f"returned {len(spec.args) - 1} gradients, expected {len(spec.args)}"):
        check_example(layer, spec, data.draw(examples(spec)))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_a_gradient_in_the_wrong_library_is_reported(name, data):
    """A jax layer that returns numpy gradients fails the check, naming the library."""
    spec = SPECS[name]
    layer = with_grads(spec, lambda grads: tuple(None if g is None else np.asarray(g) for g in grads))
    example = data.draw(examples(spec).filter(lambda e: any(isinstance(x, np.ndarray) for x in e.inputs)))
    with pytest.raises(AssertionError, match="is a numpy value, expected jax"):
        check_example(layer, spec, example, backend="jax")


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_a_gradient_of_the_wrong_shape_is_reported(name, data):
    """A gradient with an extra axis (say, not summed back over the batch) fails the check."""
    spec = SPECS[name]
    layer = with_grads(spec, lambda grads: tuple(None if g is None else np.asarray(g)[None] for g in grads))
    with pytest.raises(AssertionError, match=r"has shape \(1,"):
        check_example(layer, spec, data.draw(examples(spec)))


@pytest.mark.parametrize("name", [n for n in NAMES if SPECS[n].labels])
@given(data=st.data())
def test_a_gradient_for_labels_is_reported(name, data):
    """Inputs that are not floating (integer labels or indices, a boolean mask) must get None: an
    array in its place fails the check."""
    spec = SPECS[name]
    layer = with_grads(spec, lambda grads: tuple(np.zeros(1) if g is None else g for g in grads))
    with pytest.raises(AssertionError, match="expected None for an input that is not floating"):
        check_example(layer, spec, data.draw(examples(spec)))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_an_input_modified_in_place_is_reported(name, data):
    """A layer that writes into its (numpy) input fails the check, naming the input."""
    spec = SPECS[name]

    class Writes(spec.layer):
        def forward(self, *inputs):
            out = super().forward(*inputs)
            inputs[0][...] = np.asarray(inputs[0]) + 1
            return out

    example = data.draw(examples(spec).filter(lambda e: isinstance(e.inputs[0], np.ndarray)))
    with pytest.raises(AssertionError, match=f"{spec.args[0]}: forward or backward wrote into this input"):
        check_example(Writes, spec, example)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_a_backward_that_writes_into_dout_is_reported(name, data):
    """A backward that edits dout in place (the classic `dout[a <= 0] = 0`) fails the check."""
    spec = SPECS[name]

    class Writes(spec.layer):
        def backward(self, dout):
            grads = super().backward(dout)
            first = dout[0] if isinstance(dout, tuple) else dout  # of several outputs, the first's
            first[...] = np.asarray(first) + 1
            return grads

    example = data.draw(examples(spec))
    with pytest.raises(AssertionError, match=f"{spec.douts[0]}: backward wrote into it"):
        check_example(Writes, spec, example)


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_a_backward_that_changes_on_a_second_call_is_reported(name, data):
    """backward must give the same answer when called again: a layer that drifts fails."""
    spec = SPECS[name]
    calls = []

    def drifting(grads):
        calls.append(1)
        return tuple(None if g is None else g * len(calls) for g in grads)

    example = data.draw(examples(spec))
    assume(any(g is not None and np.max(np.abs(g), initial=0) > 1e-6 for g in oracle(spec, example)[1]))
    with pytest.raises(AssertionError, match="backward called a second time gave other values for"):
        check_example(with_grads(spec, drifting), spec, example)


@pytest.mark.parametrize("name", NAMES)
def test_the_wrong_number_of_inputs_raises_type_error(name):
    """forward with too few inputs raises TypeError naming forward's arguments."""
    spec = SPECS[name]
    with pytest.raises(TypeError, match=rf"{spec.layer.__name__}\.forward takes \("):
        spec.layer().forward(*([1.0] * (len(spec.args) + 1)))


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_numpy_gradients_are_writable_and_do_not_alias_dout(name, data):
    """Each numpy gradient is the caller's own: writable, sharing no memory with dout."""
    spec = SPECS[name]
    example = data.draw(examples(spec))
    dout = jax.tree.map(np.array, example.dout)
    _, _, grads = run(spec, Example(example.inputs, example.kwargs, dout), "numpy")
    for g in grads:
        if isinstance(g, np.ndarray):
            assert g.flags.writeable
            assert not any(np.shares_memory(g, d) for d in jax.tree.leaves(dout))


@pytest.mark.parametrize("name", ["scalar.affine", "vector.affine"])
@given(data=st.data())
def test_a_gradient_that_is_no_array_is_reported(name, data):
    """A gradient returned as a list (not an array or number) fails the check, naming its type."""
    spec = SPECS[name]
    layer = with_grads(spec, lambda grads: tuple(np.asarray(g).tolist() for g in grads))
    example = data.draw(examples(spec).filter(lambda e: np.ndim(e.inputs[0]) > 0))
    with pytest.raises(AssertionError, match="is a list value"):
        check_example(layer, spec, example)


@given(
    data=st.data(),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
)
def test_keep_where_is_where_bit_for_bit(data, dtype, shape):
    """The branch-free ``keep_where`` gives ``np.where(keep, x, 0)`` bit for bit, signed zeros,
    infinities and NaN included, on contiguous and strided arrays alike."""
    special = st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan])
    x = data.draw(hnp.arrays(dtype, shape, elements=st.one_of(special, st.floats(width=np.finfo(dtype).bits))))
    keep = data.draw(hnp.arrays(bool, shape))
    if x.ndim and data.draw(st.booleans()):
        x, keep = x[::-1], keep[::-1]  # a strided view
    got = keep_where(np, keep, x)
    assert got.dtype == x.dtype
    assert got.shape == x.shape
    np.testing.assert_array_equal(got.view(f"u{x.itemsize}"), np.where(keep, x, 0).view(f"u{x.itemsize}"))


@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=4, max_side=3), data=st.data())
def test_sum_to_shape_is_the_backward_of_broadcasting(shapes, data):
    """Summing a gradient back to an input's shape is what jax.vjp of broadcast_to gives, for
    shapes of up to four axes (the layers' own tests draw two)."""
    shape, out = shapes.input_shapes[0], shapes.result_shape
    g = data.draw(arrays(np.float64, out, grid(8.0)))  # exact sums: no rounding to compare
    _, vjp = jax.vjp(lambda x: jax.numpy.broadcast_to(x, out), np.zeros(shape))
    np.testing.assert_array_equal(sum_to_shape(np, g, shape), vjp(g)[0])


@given(data=st.data())
def test_floats_draw_no_magnitude_below_the_smallest_drawn_but_zero(dtype, data):
    """floats() draws 0 for a magnitude below 2**-21 (float32) or 2**-170 (float64): a product of
    two drawn values (an affine map's 2.2e-308 * 0.5) or a mean of them (a normalization's) would
    be subnormal, which the oracle flushes to 0 and a numpy layer keeps."""
    tiny = {np.dtype(np.float32): 2.0**-21, np.dtype(np.float64): 2.0**-170}[np.dtype(dtype)]
    assert smallest_drawn(dtype) == tiny
    assert tiny**6 >= np.finfo(dtype).smallest_normal  # six of them multiply to a normal number
    values = data.draw(arrays(dtype, (64,), floats(dtype, data.draw(st.sampled_from([2.0**-10, 4.0, 1e4])))))
    assert np.all((values == 0) | (np.abs(values) >= tiny)), values[(values != 0) & (np.abs(values) < tiny)]
