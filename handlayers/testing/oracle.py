"""The oracle: ``jax.vjp`` of a reference function, in float64, on the values a layer saw."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

if TYPE_CHECKING:
    from handlayers.testing.specs import Spec

__all__ = ["Example", "oracle", "oracle_variants", "output_shape", "quick_jit", "release_compiled"]

#: how XLA:CPU generates code, not what it computes: its older (non-MLIR) emitters for fused
#: loops, which compile in about half the time (in probes, float64 results the same bit for bit)
SAME_RESULTS = {"xla_cpu_use_fusion_emitters": False}
#: and XLA's cheapest settings, no backend optimization and no expensive LLVM passes: a float64
#: gradient a few ulps from the defaults' (4 eps of its largest entry in a probe), for programs
#: whose last bits do not matter (the measured tolerance, the training audit's oracle)
CHEAPEST = {**SAME_RESULTS, "xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclass(frozen=True)
class Example:
    """One case, drawn or given: the forward inputs, the layer's constructor keywords, and ``dout``
    (a tuple of one array per output for a layer of several outputs).

    Defined here, beside the oracle that evaluates it, rather than with the strategies that draw
    it: code that only compares (the training audit) need not import Hypothesis.
    """

    inputs: tuple[Any, ...]
    kwargs: dict[str, Any]
    dout: Any


#: where Linux lists a process's memory maps, and the most it allows (``vm.max_map_count``)
MAPS, MAX_MAPS = "/proc/self/maps", "/proc/sys/vm/max_map_count"


def release_compiled(fraction: float = 0.5) -> bool:
    """Drop every program jax has compiled in this process (``jax.clear_caches()``) when the
    process holds more than ``fraction`` of the memory maps Linux allows it; ``True`` if it did.

    XLA:CPU maps each compiled program into memory, about three maps a program: a process that
    compiles twenty thousand shapes (the suite's workers, a long ``verify``) reaches Linux's
    ``vm.max_map_count`` (65530 by default), and the next compilation segfaults. Dropped programs
    are compiled again when next called. Where the counts cannot be read (not Linux), nothing.
    """
    try:
        with open(MAPS) as maps, open(MAX_MAPS) as limit:
            crowded = sum(1 for _ in maps) > fraction * int(limit.read())
    except OSError:
        return False
    if crowded:
        jax.clear_caches()
    return crowded


def quick_jit(function: Callable[..., Any], *, cheapest: bool = False) -> Callable[..., Any]:
    """``jax.jit(function)`` compiled with :data:`SAME_RESULTS` (``cheapest``: :data:`CHEAPEST`),
    less any option this jax's XLA does not know, for the programs this package compiles for
    itself: the oracle (the same results, sooner: an MLP's in 133 ms against 259 ms), and,
    cheapest, the measured tolerance's program and the training audit's oracle (docs/testing.md).
    """
    options = _known_options(tuple((CHEAPEST if cheapest else SAME_RESULTS).items()))
    return jax.jit(function, compiler_options=dict(options)) if options else jax.jit(function)


@functools.cache
def _known_options(options: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    """Those of ``options`` that this XLA accepts: it refuses an unknown one when compiling (the
    emitters' option is recent), and an old jax takes no compiler options at all."""

    def known(some: tuple[tuple[str, Any], ...]) -> bool:
        try:
            jax.jit(lambda x: x + 1, compiler_options=dict(some)).lower(0.0).compile()
        except TypeError:  # a jax.jit without compiler_options
            return False
        except RuntimeError as error:  # jax's JaxRuntimeError: "No such compile option"
            if "compile option" not in str(error):
                raise
            return False
        return True

    if known(options):  # one probe where every option is known
        return options
    return tuple(option for option in options if known((option,)))


def output_shape(spec: Spec, inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The shape of the reference's output for these inputs (a tuple of shapes for a reference of
    several outputs), found without computing it."""
    key = (spec.name, spec.reference, tuple(sorted(kwargs.items())))
    key += tuple((np.shape(x), np.asarray(x).dtype.name) for x in inputs)
    if key not in _OUTPUT_SHAPES:  # tracing the reference takes milliseconds: once per shape
        structs = [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in inputs]
        out = jax.eval_shape(lambda *xs: spec.reference(*xs, **kwargs), *structs)
        # a reference of several outputs returns a tuple: then a tuple of their shapes
        _OUTPUT_SHAPES[key] = tuple(tuple(o.shape) for o in out) if isinstance(out, tuple) else tuple(out.shape)
    return _OUTPUT_SHAPES[key]


_OUTPUT_SHAPES: dict[tuple[Any, ...], tuple[Any, ...]] = {}


_ORACLES: dict[tuple[Any, ...], Callable[..., Any]] = {}


def oracle(spec: Spec, example: Example) -> tuple[np.ndarray, tuple[np.ndarray | None, ...]]:
    """``(output, gradients)`` of ``spec.reference`` by ``jax.vjp``, in float64 on jax's default device
    (for a reference of several outputs, ``output`` is a tuple and ``example.dout`` one too).

    The jitted vjp (:func:`quick_jit`) is cached per reference and keywords, so each new shape
    compiles once.
    """
    # user references may share a name: the function itself is in the key
    key = (spec.name, spec.reference, spec.labels, tuple(sorted(example.kwargs.items())))
    if key not in _ORACLES:
        _ORACLES[key] = quick_jit(_vjp_function(spec, example.kwargs, spec.reference))
    with jax.enable_x64(True):
        out, grads = _ORACLES[key](*_arguments(spec, example))
    return jax.tree.map(np.asarray, out), _gradients(spec, grads)


def oracle_variants(
    spec: Spec, example: Example, function: Callable[..., Any], selectors: np.ndarray
) -> list[tuple[np.ndarray | None, ...]]:
    """The gradients of ``function(selector, *inputs)`` (a variant of ``spec.reference``, chosen by
    ``selector``) by ``jax.vjp``, for each row of ``selectors``: one jitted program for them all
    (``jax.vmap``), cached as :func:`oracle`'s is."""
    key = (spec.name, function, spec.labels, tuple(sorted(example.kwargs.items())))
    if key not in _ORACLES:

        def run(selector: Any, *arguments: Any) -> Any:
            return _vjp_function(spec, example.kwargs, functools.partial(function, selector))(*arguments)[1]

        _ORACLES[key] = quick_jit(jax.vmap(run, in_axes=(0, None, None, None)))
    with jax.enable_x64(True):
        grads = jax.tree.map(np.asarray, _ORACLES[key](selectors, *_arguments(spec, example)))
    return [_gradients(spec, [g[row] for g in grads]) for row in range(len(selectors))]


def _arguments(spec: Spec, example: Example) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
    """The example as the jitted vjp takes it: its float inputs in float64, its labels, ``dout``."""
    floats_ = [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]
    labels = [np.asarray(example.inputs[i]) for i in spec.labels]
    # several outputs: dout is a tuple, the cotangent of the reference's tuple of outputs
    return floats_, labels, jax.tree.map(lambda d: np.asarray(d, np.float64), example.dout)


def _gradients(spec: Spec, grads: Any) -> tuple[np.ndarray | None, ...]:
    """One gradient per input, ``None`` for a label's."""
    grads_iter = iter(grads)
    return tuple(None if i in spec.labels else np.asarray(next(grads_iter)) for i in range(len(spec.args)))


def _vjp_function(spec: Spec, kwargs: dict[str, Any], reference: Callable[..., Any]) -> Callable[..., Any]:
    def run(floats_: list[Any], labels: list[Any], dout: Any) -> Any:
        def f(*xs: Any) -> Any:
            it, lab = iter(xs), iter(labels)
            args = [next(lab) if i in spec.labels else next(it) for i in range(len(spec.args))]
            return reference(*args, **kwargs)

        out, vjp = jax.vjp(f, *floats_)
        return out, vjp(dout)

    return run
