"""How far a layer's result may lie from the oracle's: the derivation, and :func:`tolerances`.

The oracle runs in float64 on the very values the layer saw (a float32 input is exact in
float64), so what separates a right layer from the oracle is rounding: the layer's, in its dtype,
and the oracle's own, in float64. How much rounding can move a result is a property of the
problem and of its values, not of the layer: a layer norm divides by ``sqrt(var + eps)``, which
can be ``sqrt(eps)``; ``1 - tanh(a)**2`` cancels for a large ``a``; a sum of terms that cancel
keeps the rounding of its terms. So the tolerance is measured, for each example, on the
reference itself; no degree, bound or scale is asked of anyone.

**What is measured.** Take the computation of the oracle: the reference's forward and its
``jax.vjp``, as jax traces it (a list of primitive operations). A layer computes the same values
in some order, each rounded: to first order, a computed value ``v`` is ``v * (1 + delta)`` with
``|delta| <= eps`` of the dtype (the unit roundoff doubled). Give every value the oracle computes,
and every float input and ``dout`` (a layer's first operation on them rounds), a relative
perturbation ``delta_k`` of its own; the first-order change of a result ``r`` (the output or a
gradient) is ``sum_k (dr/d delta_k) * delta_k``, and its worst case over all ``|delta_k| <= eps`` is
``eps * B``, with::

    B = max over the entries of r of  sum_k  w_k * |dr / d delta_k|

(the componentwise condition number of ``r`` in all the values of its computation, Higham,
*Accuracy and Stability of Numerical Algorithms*, §3.1 and §2.6 on the first-order model).
``dr/d delta_k`` is ``(dr / dv_k) * v_k``: one reverse-mode Jacobian (``jax.jacrev``) of the
oracle, interpreted with a ``delta`` on every value, gives all of them at once. This sees:

- the conditioning of the problem in its inputs (``X - mean`` where the variance is 0, ``eps``
  then all that is left: the inputs are among the values);
- cancellation inside the computation: ``1 - t**2`` for ``t = tanh(a)`` near 1 moves by
  ``2 * eps`` when ``t`` is rounded, a large relative error that no perturbation of ``a`` shows
  (``t`` is among the values);
- a sum of terms that cancel (each term is a value: ``sum |terms|`` counts, not the sum).

Operations that round nothing (copies, reshapes, selections, negation, max) get no ``delta``;
XLA's transcendental functions (``exp``, ``log``, ``tanh``, ``logistic``, ``erf``, ...) are
accurate to a few ulps, not half of one (jax's float64 ``tanh`` was measured 28 ulps off at
``a = 7.25``, and GELU's derivative multiplies that error by about 47), so their results count
``w = ULPS = 4`` times, every other value once.

**Points near the example.** A first-order bound can vanish where the problem is stationary:
at ``a * b + c == y``, exact in float64, ``(a * b + c - y)**2`` and its first-order change are
both 0, yet a float32 layer rounds ``a * b`` and leaves a residual whose square is a
second-order error. So ``B`` is also measured at ``POINTS - 1`` points next to the example,
each input and ``dout`` multiplied by ``1 + eps * u`` (``u`` drawn uniformly in ``[-1, 1]`` by a
fixed seed), and the largest ``B`` counts: there the first-order change is of the size of the
second-order one at the example, and the layer's rounding moves it there. All points are one
call: ``jax.vmap`` of the Jacobian, jitted once per reference, keywords and shapes.

**The tolerance.** For the output::

    tolerance = (OPS + K) * (eps(dtype) * B + smallest_normal(dtype))

and for a gradient the same with ``max(B, max |dout|)`` for ``B``. That floor is for the layer's
own algorithm, which need not be the reference's: a layer may form, from its stored output,
values of the size of ``dout`` that the reference never forms. The textbook sigmoid returns
``dout * s * (1 - s)``; near ``s = 1`` the rounding of ``s`` is an error of ``eps * |dout|`` in the
gradient, while a reference written in the stable form ``e / (1 + e)**2`` (``e = exp(-|a|)``)
has a ``B`` far smaller. Such a layer is right, and ``eps * |dout|`` is its error.

- ``K``, the total size of the float inputs and of ``dout``, bounds the number of terms of any
  sum the layer computes, and a sum of ``K`` terms may lose ``K - 1`` roundings where the
  oracle's graph shows one (Higham §4.2);
- ``OPS = 16`` allows for a layer that orders its operations differently from the reference,
  and for transcendental errors beyond ``ULPS``;
- each rounding may also lose up to the smallest normal number: XLA on CPU flushes results
  below it to zero, which is no error of the layer.

For a float64 layer, ``eps * B`` also covers the oracle's own rounding, which is the same
first-order quantity in float64: a layer norm of a constant row, whose true ``dX`` is 0 where
``dout * gamma`` is constant, gets ``dout - mean(dout)`` from the oracle, an ulp of ``dout``
divided by ``sqrt(eps)``; the ``delta`` of that mean carries the same ``1 / sqrt(eps)`` into ``B``.

In float64 the result is some 1e-13 of the size of the terms: a gradient wrong by one part in a
million fails (``tests/test_contract.py`` shows it for every reference). The old per-reference
polynomial degree is not used; ``B`` replaces its guess ``max |dout| * M**degree`` of the size of
the terms by their actual size, and adds what the degree could not know (division by a small
standard deviation, cancellation inside the oracle).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from handlayers.testing.oracle import quick_jit

if TYPE_CHECKING:
    from handlayers.testing.oracle import Example
    from handlayers.testing.specs import Spec

__all__ = [
    "OPS",
    "POINTS",
    "ULPS",
    "normwise_bounds",
    "normwise_tolerance",
    "rounding_sensitivity",
    "spec_tolerances",
    "tolerance",
    "tolerances",
]

#: a multiplier for layers that order their operations differently (see the module docstring)
OPS = 16
#: the weight of a transcendental function's result: XLA's are accurate to a few ulps
ULPS = 4
#: where ``B`` is measured: the example and ``POINTS - 1`` points a rounding away from it
POINTS = 4


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


# primitives whose result is one of their inputs' values, or made of them: they round nothing
_EXACT = _names(
    "neg abs max min select_n reshape broadcast_in_dim transpose squeeze expand_dims slice dynamic_slice "
    "dynamic_update_slice gather concatenate pad rev copy copy_p reduce_max reduce_min sign floor ceil "
    "round clamp sort stop_gradient convert_element_type real imag iota"
)
_TRANSCENDENTAL = _names(
    "exp exp2 log log1p expm1 tanh logistic sin cos tan asin acos atan atan2 sinh cosh asinh acosh atanh "
    "erf erfc erf_inv lgamma digamma pow rsqrt cbrt"
)
# primitives that call a jaxpr of their own: the interpreter enters it
_CALLS = _names("jit pjit closed_call core_call custom_jvp_call custom_vjp_call remat2 checkpoint")


def tolerances(reference: Callable[..., Any], example: Example, dtype: Any) -> tuple[float, tuple[float | None, ...]]:
    """The largest error allowed in the output and in the gradient of each input of ``example``,
    for a layer computing in ``dtype``; see the module docstring for the derivation.

    Works for any ``jax.numpy`` function ``reference(*example.inputs, **example.kwargs)`` and
    needs nothing else: inputs that are not floating (integer labels or indices, boolean masks)
    are held fixed and get ``None``.
    """
    if isinstance(example.dout, tuple | list):  # several outputs: one flat output and one flat dout
        reference, example = _flattened(reference), dataclasses.replace(example, dout=_flat(example.dout))
    output, grads = rounding_sensitivity(reference, example, dtype)
    info = np.finfo(dtype)
    floats = [np.asarray(x) for x in example.inputs if _is_float(x)]
    k = OPS + sum(x.size for x in floats) + int(np.size(example.dout))
    dout = float(np.max(np.abs(example.dout), initial=0.0))

    def bound(b: float) -> float:
        return k * (float(info.eps) * b + float(info.smallest_normal))

    return bound(output), tuple(None if b is None else bound(max(b, dout)) for b in grads)


def _flattened(reference: Callable[..., Any]) -> Callable[..., Any]:
    """``reference`` of several outputs as a function of one: their entries in one flat array (its
    vjp at the douts' entries, flattened the same way, is the reference's vjp at the douts)."""
    if reference not in _FLATTENED:  # one function per reference: the compiled sensitivity is cached by it

        def flat(*args: Any, **kwargs: Any) -> Any:
            return jnp.concatenate([jnp.ravel(out) for out in reference(*args, **kwargs)])

        _FLATTENED[reference] = flat
    return _FLATTENED[reference]


def _flat(douts: Sequence[Any]) -> np.ndarray:
    """Every entry of several douts in one flat array."""
    return np.concatenate([np.ravel(np.asarray(d, np.float64)) for d in douts])


_FLATTENED: dict[Callable[..., Any], Callable[..., Any]] = {}


def spec_tolerances(
    spec: Spec, example: Example, dtype: Any, expected: Any = None
) -> tuple[float, tuple[float | None, ...]]:
    """The largest error allowed in the output and in each gradient when checking ``spec``: measured
    on the reference (:func:`tolerances`) where ``spec.degree`` is ``None``, else the a-priori
    :func:`normwise_tolerance` of the spec's degrees, which costs no compilation.

    ``expected`` is ``oracle(spec, example)`` when the caller has it already.
    """
    if spec.degree is None:
        return tolerances(spec.reference, example, dtype)
    from handlayers.testing.oracle import oracle

    output, grads = expected or oracle(spec, example)
    bound = normwise_bounds(example, dtype)
    out_tol = bound(output, spec.out_degree, output=True)
    return out_tol, tuple(None if g is None else bound(g, spec.degree) for g in grads)


def tolerance(spec: Spec, example: Example, dtype: Any, name: str = "output") -> float:
    """The largest error allowed in ``name``: ``"output"`` or one of ``spec.grads`` (``"dX"``)."""
    output, grads = spec_tolerances(spec, example, dtype)
    tol = output if name == "output" else grads[spec.grads.index(name)]
    if tol is None:
        raise ValueError(f"{spec.name}: {name} is the gradient of an input that is not floating")
    return tol


def normwise_tolerance(example: Example, dtype: Any, expected: Any, degree: int, *, output: bool = False) -> float:
    """The a-priori bound: ``(OPS + K) * (eps * (max |expected| + max |dout| * M**degree) + tiny)``.

    ``M`` is the largest float input's magnitude (at least 1) and ``degree`` the degree of the
    gradient in the inputs' magnitude, so ``max |dout| * M**degree`` is the size of the terms a
    sum of the gradient may cancel; for the ``output``, ``M**degree`` alone (no ``dout``). Unlike
    :func:`tolerances` it assumes a well-conditioned problem (no division by a small difference),
    and it costs nothing beyond the example: the built-in specs of known degree and the training
    audit (a whole network at once) use it, through :func:`normwise_bounds`, which gives it for
    several results of one example.
    """
    return normwise_bounds(example, dtype)(expected, degree, output=output)


def normwise_bounds(example: Example, dtype: Any) -> Callable[..., float]:
    """:func:`normwise_tolerance` at ``example``, as ``bound(expected, degree, *, output=False)``:
    what it takes from the example (its inputs' size and magnitude, its ``dout``'s) read once, for
    an example with several results to judge (a layer's output and gradients, a network's)."""
    floats = [np.asarray(x, np.float64) for x in example.inputs if _is_float(x)]
    dout = _flat(example.dout) if isinstance(example.dout, tuple | list) else np.asarray(example.dout)
    k = OPS + sum(x.size for x in floats) + int(dout.size)
    m = max([1.0] + [float(np.max(np.abs(x), initial=0.0)) for x in floats])
    info = np.finfo(dtype)
    eps, tiny = float(info.eps), float(info.smallest_normal)

    def bound(expected: Any, degree: int, *, output: bool = False) -> float:
        # several outputs: the largest of them
        largest = max(float(np.max(np.abs(e), initial=0.0)) for e in jax.tree.leaves(expected))
        terms = 1.0 if output else float(np.max(np.abs(dout), initial=0.0))  # the output's reads no dout
        return k * (eps * (largest + terms * m**degree) + tiny)

    return bound


def rounding_sensitivity(
    reference: Callable[..., Any], example: Example, dtype: Any
) -> tuple[float, tuple[float | None, ...]]:
    """``B`` of the output and of each gradient (``None`` for an input that is not floating):
    the largest first-order change of the oracle's result per unit of relative rounding of every
    value in its computation, at the example and at ``POINTS - 1`` points a rounding of ``dtype``
    away (see the module docstring). Cached for the last few examples."""
    key = _example_key(reference, example, dtype)
    if key in _RECENT:
        _RECENT.move_to_end(key)
        return _RECENT[key]
    is_float = tuple(_is_float(x) for x in example.inputs)
    floats = [np.asarray(x, np.float64) for x, f in zip(example.inputs, is_float, strict=True) if f]
    others = [np.asarray(x) for x, f in zip(example.inputs, is_float, strict=True) if not f]
    dout = np.asarray(example.dout, np.float64)
    eps = float(np.finfo(dtype).eps)
    rng = np.random.default_rng(0)  # fixed: the same example always gets the same tolerance

    def points(x: np.ndarray) -> np.ndarray:
        u = rng.uniform(-1.0, 1.0, (POINTS - 1, *x.shape))
        return np.concatenate([x[None], x * (1 + eps * u)])

    function = _sensitivity_function(reference, example.kwargs, is_float, floats, others, dout)
    with jax.enable_x64(True):
        output, grads = function([points(x) for x in floats], others, points(dout))
    it = iter(np.asarray(grads).tolist())
    result = float(output), tuple(next(it) if f else None for f in is_float)
    _RECENT[key] = result
    if len(_RECENT) > 16:
        _RECENT.popitem(last=False)
    return result


#: the most Jacobian entries held at once (a block of rows times every perturbed value): 32 MB
_JACOBIAN_ENTRIES = 2**22
_RECENT: OrderedDict[Any, tuple[float, tuple[float | None, ...]]] = OrderedDict()
_FUNCTIONS: dict[Any, Callable[..., Any]] = {}


def _is_float(x: Any) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _example_key(reference: Callable[..., Any], example: Example, dtype: Any) -> Any:
    arrays = [np.asarray(x) for x in (*example.inputs, example.dout)]
    values = tuple((a.shape, a.dtype.str, a.tobytes()) for a in arrays)
    return reference, tuple(sorted(example.kwargs.items())), np.dtype(dtype).str, values


def _sensitivity_function(
    reference: Callable[..., Any],
    kwargs: dict[str, Any],
    is_float: tuple[bool, ...],
    floats: list[np.ndarray],
    others: list[np.ndarray],
    dout: np.ndarray,
) -> Callable[..., Any]:
    """The jitted ``(points of floats, others, points of dout) -> (B of output, B of each
    float input's gradient)``, made once per reference, keywords and shapes."""
    shapes = tuple((x.shape, x.dtype.str) for x in (*floats, *others, dout))
    key = (reference, tuple(sorted(kwargs.items())), is_float, shapes)
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]

    def oracle(floats_: list[Any], others_: list[Any], dout_: Any) -> list[Any]:
        def f(*xs: Any) -> Any:
            it, other = iter(xs), iter(others_)
            return reference(*(next(it) if f else next(other) for f in is_float), **kwargs)

        out, vjp = jax.vjp(f, *floats_)
        return [out, *vjp(dout_)]

    with jax.enable_x64(True):
        closed = jax.make_jaxpr(oracle)(floats, others, dout)
        slots: list[tuple[tuple[int, ...], int]] = []  # (shape, weight) of every perturbed value, in order

        def record(x: Any, weight: int) -> Any:
            slots.append((x.shape, weight))
            return x

        results = jax.eval_shape(lambda *args: _evaluate(closed, args, len(floats), record), *floats, *others, dout)
    # one flat vector of deltas and one of results: one Jacobian matrix, which compiles fast
    sizes = [int(np.prod(shape)) for shape, _ in slots]
    starts = np.cumsum([0, *sizes])
    weights = np.repeat([float(w) for _, w in slots], sizes)
    ends = np.cumsum([int(np.prod(r.shape)) for r in results])
    n_results = int(ends[-1])
    block = max(1, min(n_results, _JACOBIAN_ENTRIES // max(1, len(weights))))
    n_blocks = -(-n_results // block)

    def at_point(floats_: list[Any], others_: list[Any], dout_: Any) -> tuple[Any, Any]:
        def perturbed(deltas: Any) -> Any:
            it = iter(range(len(slots)))

            def perturb(x: Any, weight: int) -> Any:
                k = next(it)
                delta = jnp.reshape(deltas[starts[k] : starts[k + 1]], slots[k][0])
                # an infinite value (a -inf mask) has no rounding to perturb, and inf * delta's
                # derivative would be NaN: it passes unperturbed, and its derivative is 0
                finite = jnp.isfinite(x)
                return jnp.where(finite, jnp.where(finite, x, 0) * (1 + delta), x)

            values = _evaluate(closed, (*floats_, *others_, dout_), len(floats_), perturb)
            return jnp.concatenate([jnp.ravel(v) for v in values])

        # one B per result entry: |Jacobian| @ weights, the Jacobian's rows pulled back a block at a
        # time, so that a large example (a layer at its real size) never holds the whole matrix
        _, pullback = jax.vjp(perturbed, jnp.zeros(len(weights)))
        rows = np.arange(n_blocks * block).reshape(n_blocks, block) % n_results

        def bound_of(block_rows: Any) -> Any:
            basis = jax.nn.one_hot(block_rows, n_results, dtype=jnp.float64)  # the oracle runs in float64
            return jnp.abs(jax.vmap(pullback)(basis)[0]) @ weights

        # one block (every example of the suite): no loop, which XLA compiles slower
        bound = bound_of(rows[0]) if n_blocks == 1 else jnp.ravel(jax.lax.map(bound_of, rows))[:n_results]
        per_result = [jnp.max(b, initial=0.0) for b in jnp.split(bound, ends[:-1])]
        return per_result[0], jnp.stack(per_result[1:])

    def at_points(floats_: list[Any], others_: list[Any], dout_: Any) -> tuple[Any, Any]:
        output, grads = jax.vmap(at_point, in_axes=(0, None, 0))(floats_, others_, dout_)
        return jnp.max(output), jnp.max(grads, axis=0)

    # Little to optimize in a graph of a few hundred tiny operations: XLA's cheapest settings and
    # the CPU's older emitters compile it in half the time or less, the time that counts here (one
    # compilation per shape); a bound needs no last bit.
    _FUNCTIONS[key] = quick_jit(at_points, cheapest=True)
    return _FUNCTIONS[key]


def _evaluate(closed: Any, args: tuple[Any, ...], n_floats: int, perturb: Callable[[Any, int], Any]) -> list[Any]:
    """Run the oracle's jaxpr on ``args`` (the float inputs, the other inputs, ``dout``), passing
    the float inputs, ``dout`` and every value that an operation rounds through ``perturb``."""
    args = (*(perturb(x, 1) for x in args[:n_floats]), *args[n_floats:-1], perturb(args[-1], 1))
    return _run(closed.jaxpr, closed.consts, args, perturb)


def _run(jaxpr: Any, consts: Any, args: Any, perturb: Callable[[Any, int], Any]) -> list[Any]:
    import jax.extend.core as jex  # here, not on import: it loads Pallas (0.05 s), which the audit never needs

    env: dict[Any, Any] = dict(zip(jaxpr.constvars, consts, strict=True))
    env.update(zip(jaxpr.invars, args, strict=True))

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jex.Literal) else env[v]

    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        inner = eqn.params.get("jaxpr", eqn.params.get("call_jaxpr")) if name in _CALLS else None
        if name == "stop_gradient":  # a value, not a derivative: the perturbation passes through
            outs = invals
        elif inner is not None:  # enter the call: its own operations are perturbed one by one
            closed = inner if isinstance(inner, jex.ClosedJaxpr) else jex.ClosedJaxpr(inner, ())
            outs = _run(closed.jaxpr, closed.consts, invals, perturb)
        else:
            outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            outs = list(outs) if eqn.primitive.multiple_results else [outs]
            if name not in _EXACT:
                weight = ULPS if name in _TRANSCENDENTAL else 1
                outs = [perturb(o, weight) if jnp.issubdtype(o.dtype, jnp.floating) else o for o in outs]
        env.update(zip(eqn.outvars, outs, strict=True))
    return [read(v) for v in jaxpr.outvars]
