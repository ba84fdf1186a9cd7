"""Conv2d and MaxPool2d, forward plus backward, at a CNN layer's size.

A convolution of ``X (64, 16, 32, 32)`` with ``W (32, 16, 3, 3)``, padding 1, then 2 x 2 max
pooling of its output ``(64, 32, 32, 32)``. The ways, timed side by side:

- ``gemm floor``: the three matrix products a convolution by im2col cannot do without, on arrays
  of the right shapes: ``cols (n*oh*ow, c*hh*ww) @ W (c*hh*ww, f)`` forward, ``cols.T @ dout``
  for ``dW`` and ``dout @ W.T`` for ``dcols``; no copy into or out of ``cols`` is timed.
- ``handlayers numpy``: ``Conv2d`` forward then backward, numpy.
- ``handlayers jax.jit`` and ``jax.jit(vjp)``: the layer's forward and backward traced by
  ``jax.jit``, and ``jax.jit`` of ``jax.vjp`` of the reference, each returning the output and
  every gradient; for ``Conv2d`` and for ``MaxPool2d``. The reference convolution gathers
  every window and contracts them in one ``einsum``, so ``jax.jit(vjp) lax conv`` also times
  autodiff of jax's own ``lax.conv_general_dilated``, what a jax user would write.
- ``torch autograd``: torch's CPU convolution forward and backward, when torch is installed.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._timing import compare, median, ratio
from handlayers import vector

SHAPE = {"n": 64, "c": 16, "h": 32, "w": 32, "f": 32, "k": 3, "pad": 1, "pool": 2}


def data(dtype: Any, *, n: int, c: int, h: int, w: int, f: int, k: int, pad: int, pool: int, seed: int = 0) -> dict:
    """Images, He-scaled filters, biases, the convolution's ``dout`` and the pooling's, as numpy."""
    rng = np.random.default_rng(seed)
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    return {
        "X": rng.standard_normal((n, c, h, w)).astype(dtype),
        "W": (rng.standard_normal((f, c, k, k)) * np.sqrt(2 / (c * k * k))).astype(dtype),
        "b": rng.standard_normal(f).astype(dtype),
        "dout": rng.standard_normal((n, f, oh, ow)).astype(dtype),
        "A": rng.standard_normal((n, f, oh, ow)).astype(dtype),  # the pooling's input
        "dpool": rng.standard_normal((n, f, oh // pool, ow // pool)).astype(dtype),
    }


def floor_operands(d: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``cols (n*oh*ow, c*hh*ww)``, ``W (c*hh*ww, f)`` and ``dout (n*oh*ow, f)``: the operands of
    the three products of a convolution by im2col, of the shapes they have there."""
    n, c, f, k = d["X"].shape[0], d["X"].shape[1], d["W"].shape[0], d["W"].shape[2]
    oh, ow = d["dout"].shape[2:]
    cols = np.random.default_rng(1).standard_normal((n * oh * ow, c * k * k)).astype(d["X"].dtype)
    W = np.ascontiguousarray(d["W"].reshape(f, c * k * k).T)
    dout = np.ascontiguousarray(d["dout"].transpose(0, 2, 3, 1).reshape(n * oh * ow, f))
    return cols, W, dout


def gemm_floor(d: dict[str, Any]) -> Callable[[], Any]:
    """The three products of a convolution by im2col: forward, ``dW`` and ``dcols``."""
    cols, W, dout = floor_operands(d)

    def products() -> Any:
        return cols @ W, cols.T @ dout, dout @ W.T

    return products


def conv_step(X: Any, W: Any, b: Any, dout: Any, *, pad: int) -> Any:
    """``Conv2d(pad=pad)`` forward, then backward of ``dout``: the output and ``(dX, dW, db)``."""
    layer = vector.Conv2d(pad=pad)
    return layer.forward(X, W, b), layer.backward(dout)


def pool_step(A: Any, dout: Any, *, size: int) -> Any:
    """``MaxPool2d(size, size)`` forward, then backward of ``dout``: the output and ``dA``."""
    layer = vector.MaxPool2d(size=size, stride=size)
    return layer.forward(A), layer.backward(dout)


def conv_autodiff(X: Any, W: Any, b: Any, dout: Any, *, pad: int) -> Any:
    """The same from ``jax.vjp`` of ``reference.vector.conv2d``."""
    import jax

    import reference.vector as ref

    out, vjp = jax.vjp(functools.partial(ref.conv2d, pad=pad), X, W, b)
    return out, vjp(dout)


def lax_conv_autodiff(X: Any, W: Any, b: Any, dout: Any, *, pad: int) -> Any:
    """The same from ``jax.vjp`` of ``lax.conv_general_dilated``: jax's own convolution."""
    import jax

    def conv(X: Any, W: Any, b: Any) -> Any:
        out = jax.lax.conv_general_dilated(X, W, (1, 1), [(pad, pad)] * 2, dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return out + b[:, None, None]

    out, vjp = jax.vjp(conv, X, W, b)
    return out, vjp(dout)


def pool_autodiff(A: Any, dout: Any, *, size: int) -> Any:
    """The same from ``jax.vjp`` of ``reference.vector.max_pool2d``."""
    import jax

    import reference.vector as ref

    out, vjp = jax.vjp(functools.partial(ref.max_pool2d, size=size, stride=size), A)
    return out, vjp(dout)


def _torch_case(d: dict[str, Any], pad: int) -> Callable[[], Any] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    X, W, b = (torch.from_numpy(d[k].copy()).requires_grad_() for k in ("X", "W", "b"))
    dout = torch.from_numpy(d["dout"])

    def step() -> Any:
        for t in (X, W, b):
            t.grad = None
        out = F.conv2d(X, W, b, padding=pad)
        out.backward(dout)
        return out

    return step


#: the ratios the project promises, each ``(numerator, denominator, at most)``
TARGETS = {
    "numpy conv / gemm floor": ("handlayers numpy", "gemm floor", 1.30),
    "numpy conv / torch autograd": ("handlayers numpy", "torch autograd", 1.00),
    "jit conv / jit autodiff": ("handlayers jax.jit conv", "jax.jit(vjp) conv", 1.00),
    "jit conv / jit autodiff of lax conv": ("handlayers jax.jit conv", "jax.jit(vjp) lax conv", 1.00),
    "jit pool / jit autodiff": ("handlayers jax.jit pool", "jax.jit(vjp) pool", 1.00),
}


def stages(d: dict[str, Any], *, pad: int, calls: int = 20) -> dict[str, float]:
    """Median seconds of each call in ``handlayers numpy`` and of each product of the floor, timed
    alone: where the time over the floor goes."""
    layer = vector.Conv2d(pad=pad)
    cols, W, dout = floor_operands(d)
    parts: dict[str, Callable[[], Any]] = {
        "Conv2d forward": lambda: layer.forward(d["X"], d["W"], d["b"]),
        "Conv2d backward": lambda: layer.backward(d["dout"]),
        "floor: forward product": lambda: cols @ W,
        "floor: dW product": lambda: cols.T @ dout,
        "floor: dcols product": lambda: dout @ W.T,
    }
    seconds: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(calls):
        for name, f in parts.items():
            start = time.perf_counter()
            f()
            seconds[name].append(time.perf_counter() - start)
    return {name: median(s) for name, s in seconds.items()}


def run(dtype: Any, *, rounds: int = 9, shape: dict[str, int] | None = None, cpu: bool = True) -> dict[str, Any]:
    """Seconds per forward plus backward of every way and the ratios in :data:`TARGETS`.
    ``cpu=False`` (on a GPU) times only the jax ways."""
    import jax

    shape = shape or SHAPE
    d = data(dtype, **shape)
    pad, size = shape["pad"], shape["pool"]
    groups: list[dict[str, Callable[[], Any]]] = []
    if cpu:
        groups.append(
            {
                "gemm floor": gemm_floor(d),
                "handlayers numpy": lambda: conv_step(d["X"], d["W"], d["b"], d["dout"], pad=pad),
            }
        )
    a = {k: jax.device_put(v) for k, v in d.items()}
    conv_args, pool_args = (a["X"], a["W"], a["b"], a["dout"]), (a["A"], a["dpool"])
    ours_conv = jax.jit(functools.partial(conv_step, pad=pad))
    autodiff_conv = jax.jit(functools.partial(conv_autodiff, pad=pad))
    autodiff_lax_conv = jax.jit(functools.partial(lax_conv_autodiff, pad=pad))
    ours_pool = jax.jit(functools.partial(pool_step, size=size))
    autodiff_pool = jax.jit(functools.partial(pool_autodiff, size=size))
    groups.append(
        {
            "handlayers jax.jit conv": lambda: ours_conv(*conv_args),
            "jax.jit(vjp) conv": lambda: autodiff_conv(*conv_args),
            "jax.jit(vjp) lax conv": lambda: autodiff_lax_conv(*conv_args),
            "handlayers jax.jit pool": lambda: ours_pool(*pool_args),
            "jax.jit(vjp) pool": lambda: autodiff_pool(*pool_args),
        }
    )
    torch_step = _torch_case(d, pad) if cpu else None
    if torch_step is not None:
        groups.append({"torch autograd": torch_step})
    samples = {name: s for group in groups for name, s in compare(group, rounds=rounds).items()}
    ratios = {
        target: {**ratio(samples[x], samples[y]), "at_most": bound}
        for target, (x, y, bound) in TARGETS.items()
        if x in samples and y in samples
    }
    return {
        "dtype": np.dtype(dtype).name,
        "shape": shape,
        "seconds": {name: median(s) for name, s in samples.items()},
        "ratios": ratios,
        "stages": stages(d, pad=pad, calls=2 * rounds) if cpu else None,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}"


def table(runs: list[dict[str, Any]]) -> str:
    """The runs (one per dtype) as Markdown: times, ratios against their targets, and stages."""
    s = runs[0]["shape"]
    oh, ow = s["h"] + 2 * s["pad"] - s["k"] + 1, s["w"] + 2 * s["pad"] - s["k"] + 1
    lines = [
        f"## Conv2d and MaxPool2d, forward + backward: X ({s['n']}, {s['c']}, {s['h']}, {s['w']}), "
        f"W ({s['f']}, {s['c']}, {s['k']}, {s['k']}), pad {s['pad']}; {s['pool']} x {s['pool']} pooling "
        f"of ({s['n']}, {s['f']}, {oh}, {ow})",
        "",
        "| way | " + " | ".join(f"{r['dtype']} ms" for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for way in runs[0]["seconds"]:
        lines.append(f"| {way} | " + " | ".join(_ms(r["seconds"][way]) for r in runs) + " |")
    dtypes = " | ".join(r["dtype"] for r in runs)
    lines += ["", f"| ratio (median, middle half of the rounds) | target | {dtypes} |"]
    lines.append("|---|---:|" + "---:|" * len(runs))
    for target in runs[0]["ratios"]:
        cells = []
        for r in runs:
            q = r["ratios"][target]
            met = "" if q["median"] <= q["at_most"] else " (within noise)" if q["low"] <= q["at_most"] else " (missed)"
            cells.append(f"{q['median']:.3f} ({q['low']:.3f} to {q['high']:.3f}){met}")
        lines.append(f"| {target} | at most {runs[0]['ratios'][target]['at_most']:.2f} | " + " | ".join(cells) + " |")
    if runs[0]["stages"]:  # None on a GPU: no numpy convolution
        lines += [
            "",
            "Each call of `handlayers numpy` and each product of the floor, timed alone (median):",
            "",
            "| call | " + " | ".join(f"{r['dtype']} ms" for r in runs) + " |",
            "|---|" + "---:|" * len(runs),
        ]
        for stage in runs[0]["stages"]:
            lines.append(f"| {stage} | " + " | ".join(_ms(r["stages"][stage]) for r in runs) + " |")
    return "\n".join(lines) + "\n"
