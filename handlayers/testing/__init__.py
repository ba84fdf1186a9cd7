"""Check a layer's hand-written backward against ``jax.vjp`` of a reference function.

This package is public: its strategies draw inputs for every reference function (use them in
your own Hypothesis tests), and :func:`check_example` compares a layer class against the oracle
on one drawn example, raising :class:`AssertionError` with a readable report. It needs ``jax``
(the oracle) and ``hypothesis`` (the strategies).

One idea a module:

- :mod:`~handlayers.testing.strategies`: the values, arrays and output gradients drawn;
- :mod:`~handlayers.testing.specs`: each reference's layer, inputs and how to draw them (:data:`SPECS`);
- :mod:`~handlayers.testing.oracle`: ``jax.vjp`` of the reference in float64;
- :mod:`~handlayers.testing.tolerance`: how far a result may lie from the oracle's, and why;
- :mod:`~handlayers.testing.conventions`: user code as it is written (function pairs, losses
  returning their gradient, attributes, jax functions) adapted to forward/backward (:func:`adapt`);
- :mod:`~handlayers.testing.declared`: a spec for any reference from its inputs' declared shapes
  (:func:`spec`);
- :mod:`~handlayers.testing.compare`: running a layer and comparing every value (:func:`check`);
- :mod:`~handlayers.testing.report`: the report of a failed check and the mistake in words.
"""

from handlayers.testing.compare import (
    Found,
    Mismatch,
    Result,
    check,
    check_backends,
    check_example,
    library,
    to_backend,
    typicality,
)
from handlayers.testing.conventions import PARAM_KEYS, Adapted, ConventionError, Method, adapt
from handlayers.testing.declared import spec
from handlayers.testing.oracle import oracle, output_shape, release_compiled
from handlayers.testing.specs import SPECS, Spec
from handlayers.testing.strategies import MAX_SIDE, Example, arrays, broadcast_inputs, douts, examples, floats, grid
from handlayers.testing.tolerance import OPS, spec_tolerances, tolerance, tolerances

__all__ = [
    "MAX_SIDE",
    "OPS",
    "PARAM_KEYS",
    "SPECS",
    "Adapted",
    "ConventionError",
    "Example",
    "Found",
    "Method",
    "Mismatch",
    "Result",
    "Spec",
    "adapt",
    "arrays",
    "broadcast_inputs",
    "check",
    "check_backends",
    "check_example",
    "douts",
    "examples",
    "floats",
    "grid",
    "library",
    "oracle",
    "output_shape",
    "release_compiled",
    "spec",
    "spec_tolerances",
    "to_backend",
    "tolerance",
    "tolerances",
    "typicality",
]
