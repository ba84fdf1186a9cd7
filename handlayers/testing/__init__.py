"""Check a layer's hand-written backward against ``jax.vjp`` of a reference function.

This package is public: its strategies draw inputs for every reference function (use them in
your own Hypothesis tests), and :func:`check_example` compares a layer class against the oracle
on one drawn example, raising :class:`AssertionError` with a readable report. It needs ``jax``
(the oracle) and ``hypothesis`` (the strategies). Importing it loads only the oracle and the
tolerance; each other name loads its module on first use.

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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The oracle and the tolerance load at once (numpy and jax only): their modules share a name with
# a function they export, and a submodule imported after the package has bound the function would
# replace it. Everything else loads on first use: the training audit compares with the oracle and
# the tolerance alone, and need not import Hypothesis, the specs and the report.
from handlayers.testing.oracle import Example, oracle, output_shape, release_compiled
from handlayers.testing.tolerance import OPS, spec_tolerances, tolerance, tolerances

#: the modules of the public names not loaded above
_MODULES = {
    "compare": "Found Mismatch Result check check_backends check_example library to_backend typicality",
    "conventions": "PARAM_KEYS Adapted ConventionError Method adapt",
    "declared": "spec",
    "specs": "SPECS Spec",
    "strategies": "MAX_SIDE ShapesError arrays broadcast_inputs douts examples floats grid",
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names.split()}
#: the submodules that load on first use (``handlayers.testing.strategies`` after ``import handlayers.testing``)
_SUBMODULES = {*_MODULES, "report"}

if TYPE_CHECKING:
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
    from handlayers.testing.specs import SPECS, Spec
    from handlayers.testing.strategies import (
        MAX_SIDE,
        ShapesError,
        arrays,
        broadcast_inputs,
        douts,
        examples,
        floats,
        grid,
    )


def __getattr__(name: str) -> Any:
    """Load a public name's module, or a submodule, on first use (PEP 562), and keep the name."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # which binds it here
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
    "ShapesError",
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
