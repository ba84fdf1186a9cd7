"""Hypothesis strategies: the values, arrays, shapes and output gradients the checks draw.

Use them in your own Hypothesis tests: ``examples(SPECS["vector.affine"])`` draws inputs, keywords
and a ``dout`` for that reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import numpy as np
from hypothesis.extra import numpy as hnp

from handlayers.testing.oracle import Example, output_shape

if TYPE_CHECKING:
    from handlayers.testing.specs import Spec

__all__ = ["MAX_SIDE", "Example", "ShapesError", "arrays", "broadcast_inputs", "douts", "examples", "floats", "grid"]

#: the longest side of a drawn array: a side of 1 (broadcasting, a batch of one) and two unequal
#: sides above 1 (a missing transpose) are all a bug needs to show, and under jax every further
#: shape compiles anew
MAX_SIDE = 3


class ShapesError(ValueError):
    """The reference raised on inputs drawn for it: the shapes declared for it (``--shapes``,
    ``testing.spec``) do not fit it, at least for some sizes (the command line exits 2)."""


def refused(name: str, shapes: str, error: Exception) -> str:
    """:class:`ShapesError`'s message: the reference, the shapes it refused and the first line of
    its error."""
    first = str(error).strip().partition("\n")[0]
    raised = f"{type(error).__name__}: {first}"
    return f"{name} cannot take inputs of the shapes declared for it: on {shapes} it raises {raised}"


# ---------------------------------------------------------------------------------------------
# Strategies


def floats(dtype: Any, bound: float, specials: Sequence[float] = (0.0, 1.0, -1.0)) -> st.SearchStrategy[float]:
    """Finite floats of ``dtype`` in ``[-bound, bound]``, with ``specials`` (the kinks) drawn often.

    No magnitude below :func:`smallest_drawn` but 0 (a smaller one is drawn as a zero of its
    sign): XLA on CPU flushes subnormals to zero, computed ones too, and numpy does not. From the
    smallest normal, ``0.5 * 2.2e-308`` is an affine map's output that a ReLU after it sees as its
    kink in the oracle only, and a normalization's mean of ``[2.2e-308, 0, 0]`` is 0 for the oracle
    and not for a numpy layer: a right layer would fail for the platform's reason, not its own.
    """
    width, tiny = np.finfo(dtype).bits, smallest_drawn(dtype)
    return st.one_of(
        st.sampled_from(list(specials)),
        st.floats(-bound, bound, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=False).map(
            lambda v: math.copysign(0.0, v) if abs(v) < tiny else v
        ),
    )


def smallest_drawn(dtype: Any) -> float:
    """The smallest magnitude but 0 that :func:`floats` draws in ``dtype``: ``2**-21`` in float32,
    ``2**-170`` in float64, so that a product of up to six drawn values, and a sum or difference
    of two, is 0 or a normal number."""
    return 2.0 ** math.ceil(np.finfo(dtype).minexp / 6)


def grid(bound: float, step: float = 0.125) -> st.SearchStrategy[float]:
    """Multiples of ``step`` in ``[-bound, bound]``: their products and short sums are exact in
    float32, so a kink inside a composite layer (a hidden unit at exactly 0) stays where it is."""
    n = int(bound / step)
    return st.integers(-n, n).map(lambda i: i * step)


def arrays(dtype: Any, shape: tuple[int, ...], elements: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    """Arrays of ``dtype`` and ``shape``; each element drawn from ``elements``."""
    return hnp.arrays(dtype, shape, elements=elements)


def broadcast_inputs(
    dtype: Any,
    elements: Sequence[st.SearchStrategy[float]],
    *,
    max_dims: int = 3,
    max_side: int = 3,
    broadcast: bool = True,
) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Inputs of mutually broadcastable shapes, one per strategy in ``elements`` (with
    ``broadcast=False``, all of one shape).

    A 0-d input is sometimes a Python float (only for float64, the dtype Python floats have).
    """

    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if broadcast:
            shapes = hnp.mutually_broadcastable_shapes(num_shapes=len(elements), max_dims=max_dims, max_side=max_side)
            input_shapes = data(shapes).input_shapes
        else:
            input_shapes = [data(hnp.array_shapes(min_dims=0, max_dims=max_dims, max_side=max_side))] * len(elements)
        inputs = []
        for shape, element in zip(input_shapes, elements, strict=True):
            if shape == () and np.dtype(dtype) == np.float64 and data(st.booleans()):
                inputs.append(float(data(element)))
            else:
                inputs.append(data(arrays(dtype, shape, element)))
        return tuple(inputs), {}

    return draw()


def douts(shape: tuple[int, ...], dtype: Any = np.float64) -> st.SearchStrategy[Any]:
    """Output gradients of ``shape``: random values in [-10, 10], zeros and ones among them (as
    :func:`floats`, none of a magnitude below :func:`smallest_drawn` but 0: a ``dout`` of float32's
    smallest normal times a gradient below 1 would be subnormal)."""
    values = floats(dtype, 10.0, specials=(0.0, 1.0, -1.0, 0.5))
    return arrays(dtype, shape, values)


def examples(spec: Spec, dtype: Any = np.float64, *, python_floats: bool = False) -> st.SearchStrategy[Example]:
    """Examples for ``spec``: inputs, constructor keywords and a random ``dout`` of the output's shape
    (for a reference of several outputs, a tuple of one ``dout`` per output).

    With ``python_floats`` (elementwise references only), every input and ``dout`` is a plain
    Python float, as the lab's layers expect.
    """
    if python_floats:
        if not spec.elements:
            raise ValueError(f"{spec.name} takes arrays, not Python floats")
        inputs = st.tuples(*(e(np.float64) for e in spec.elements))
        dout = floats(np.float64, 10.0, specials=(0.0, 1.0, -1.0, 0.5))
        return st.builds(lambda xs, d: Example(tuple(map(float, xs)), {}, float(d)), inputs, dout)

    @st.composite
    def draw(data: st.DrawFn) -> Example:
        inputs, kwargs = data(spec.draw(dtype))
        try:
            shape = output_shape(spec, inputs, kwargs)
        except Exception as error:  # a spec whose draw its reference cannot take: no raw traceback
            shapes = ", ".join(f"{arg} {np.shape(x)}" for arg, x in zip(spec.args, inputs, strict=True))
            raise ShapesError(refused(spec.name, shapes, error)) from error
        if len(spec.outputs) > 1:  # one dout per output
            return Example(inputs, kwargs, tuple(data(douts(s, dtype)) for s in shape))
        return Example(inputs, kwargs, data(douts(shape, dtype)))

    return draw()
