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

__all__ = ["Example", "oracle", "output_shape", "quick_compile", "release_compiled"]

#: XLA's cheapest compile settings, each a plain float64 program's arithmetic unchanged, only less
#: fused and less tuned: no backend optimization, no expensive LLVM passes, and on the CPU the older
#: (non-MLIR) fusion emitters
QUICK_OPTIONS = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


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


@functools.cache
def quick_compile() -> dict[str, Any]:
    """The compiler options (``jax.jit(..., compiler_options=...)``) of the programs this package
    compiles for itself and runs a few times each: the oracle, the measured tolerance, the training
    audit's oracle. They are :data:`QUICK_OPTIONS` less those this jax's XLA does not know (it
    refuses an unknown option when compiling; the emitters' option is recent). An oracle of an
    MLP compiles in 72 ms with them against 259 ms without (docs/testing.md).
    """

    def known(options: dict[str, Any]) -> bool:
        try:
            jax.jit(lambda x: x + 1, compiler_options=options).lower(0.0).compile()
        except RuntimeError as error:  # jax's JaxRuntimeError: "No such compile option"
            if "compile option" not in str(error):
                raise
            return False
        return True

    if known(QUICK_OPTIONS):  # one probe where every option is known
        return dict(QUICK_OPTIONS)
    return {name: value for name, value in QUICK_OPTIONS.items() if known({name: value})}


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

    The jitted vjp is cached per reference and keywords, so each new shape compiles once (with
    :func:`quick_compile`'s options).
    """
    # user references may share a name: the function itself is in the key
    key = (spec.name, spec.reference, spec.labels, tuple(sorted(example.kwargs.items())))
    if key not in _ORACLES:
        _ORACLES[key] = jax.jit(_vjp_function(spec, example.kwargs), compiler_options=quick_compile())
    floats_ = [np.asarray(x, np.float64) for i, x in enumerate(example.inputs) if i not in spec.labels]
    labels = [np.asarray(example.inputs[i]) for i in spec.labels]
    # several outputs: dout is a tuple, the cotangent of the reference's tuple of outputs
    dout = jax.tree.map(lambda d: np.asarray(d, np.float64), example.dout)
    with jax.enable_x64(True):
        out, grads = _ORACLES[key](floats_, labels, dout)
    grads_iter = iter(grads)
    full = tuple(None if i in spec.labels else np.asarray(next(grads_iter)) for i in range(len(spec.args)))
    return jax.tree.map(np.asarray, out), full


def _vjp_function(spec: Spec, kwargs: dict[str, Any]) -> Callable[..., Any]:
    def run(floats_: list[Any], labels: list[Any], dout: Any) -> Any:
        def f(*xs: Any) -> Any:
            it, lab = iter(xs), iter(labels)
            args = [next(lab) if i in spec.labels else next(it) for i in range(len(spec.args))]
            return spec.reference(*args, **kwargs)

        out, vjp = jax.vjp(f, *floats_)
        return out, vjp(dout)

    return run
