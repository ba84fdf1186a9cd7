"""The cost of checking one hand-written layer, ``vector.Affine`` on ``n x n`` inputs, four ways.

- ``layer alone``: one forward and backward of the layer: what any check must at least pay.
- ``handlayers``: :func:`handlayers.testing.check_example` on one example (the oracle jitted and
  warm, as it is from the second example of a shape on).
- ``jax check_grads``: the layer wrapped as a ``jax.custom_vjp`` function (its backward is the
  hand-written one), checked by ``jax.test_util.check_grads`` in reverse mode.
- ``torch gradcheck fast`` / ``torch gradcheck``: the layer wrapped as a ``torch.autograd.Function``,
  checked by ``torch.autograd.gradcheck`` with ``fast_mode=True`` and in its default mode, which
  builds the whole Jacobian by finite differences. Only when torch is installed.

All in float64, on the CPU. Each measurement runs in a process of its own, which is stopped at a
time limit and may take at most half the machine's memory (gradcheck's default mode builds whole
Jacobians: at n = 128 it filled this project's 24 GiB machine); a method over a limit at one ``n``
is over it at every larger ``n`` too.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SIZES = (8, 32, 128, 512)
METHODS = ("layer alone", "handlayers", "jax check_grads", "torch gradcheck fast", "torch gradcheck")


def _inputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    return rng.standard_normal((n, n)), rng.standard_normal((n, n)), rng.standard_normal(n)


def _check(method: str, n: int) -> Callable[[], Any]:
    """A function that checks the layer once by ``method`` (imports happen here, in the child)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from handlayers import vector

    X, W, b = _inputs(n)
    if method == "layer alone":

        def alone() -> Any:
            layer = vector.Affine()
            layer.forward(X, W, b)
            return layer.backward(np.ones((n, n)))

        return alone
    if method == "handlayers":
        from handlayers.testing import SPECS, Example, check_example

        example = Example((X, W, b), {}, np.random.default_rng(0).standard_normal((n, n)))
        return lambda: check_example(vector.Affine, SPECS["vector.affine"], example)
    if method == "jax check_grads":
        from jax.test_util import check_grads

        f = _as_jax_function(vector.Affine)
        args = tuple(jax.numpy.asarray(x) for x in (X, W, b))
        return lambda: check_grads(f, args, order=1, modes=("rev",))
    import torch

    f = _as_torch_function(vector.Affine)
    args = tuple(torch.from_numpy(x).requires_grad_() for x in (X, W, b))
    fast = method == "torch gradcheck fast"
    return lambda: torch.autograd.gradcheck(f, args, fast_mode=fast)


def _as_jax_function(layer_class: type) -> Callable[..., Any]:
    import jax

    @jax.custom_vjp
    def f(*xs: Any) -> Any:
        return layer_class().forward(*xs)

    def forward(*xs: Any) -> Any:
        return f(*xs), xs

    def backward(xs: Any, g: Any) -> Any:
        layer = layer_class()
        layer.forward(*xs)
        return tuple(layer.backward(g))

    f.defvjp(forward, backward)
    return f


def _as_torch_function(layer_class: type) -> Callable[..., Any]:
    import torch

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *xs: Any) -> Any:
            ctx.layer = layer_class()
            return torch.from_numpy(np.asarray(ctx.layer.forward(*(x.detach().numpy() for x in xs))))

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return tuple(torch.from_numpy(np.asarray(d)) for d in ctx.layer.backward(g.numpy()))

    return Function.apply


def memory_limit() -> int:
    """Bytes a measurement may hold: half the memory this process may use (the machine's, or its
    cgroup's where that is less)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            allowed = f.read().strip()
    except OSError:
        allowed = "max"
    return (memory if allowed == "max" else min(memory, int(allowed))) // 2


def _measure(method: str, n: int, queue: Any) -> None:
    from benchmarks._timing import compare, median, once

    check = _check(method, n)
    first = once(check)  # compiles the oracle, for handlayers and check_grads
    seconds = first if first > 1.0 else median(compare({method: check}, rounds=3, min_time=0.02)[method])
    queue.put(seconds)


def _resident_bytes(pid: int) -> int:
    """Memory a process holds (Linux); 0 where that cannot be read (elsewhere, the memory limit
    is not enforced), or once it has ended."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def available(method: str) -> bool:
    if not method.startswith("torch"):
        return True
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def measure(method: str, n: int, limit: float) -> float | str:
    """Seconds to check once by ``method`` at ``n``; ``"over time"`` when it ran past ``limit``
    seconds, ``"over memory"`` when it held more than :func:`memory_limit` (it is stopped then:
    a process that runs out of memory is killed, or OpenBLAS ends it, with nothing to tell why)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_measure, args=(method, n, queue))
    child.start()
    deadline, memory = time.monotonic() + limit, memory_limit()
    while child.is_alive():
        over = "over time" if time.monotonic() > deadline else None
        if over is None and _resident_bytes(child.pid) > memory:
            over = "over memory"
        if over:
            child.kill()
            child.join()
            return over
        child.join(0.05)
    if child.exitcode != 0:
        raise RuntimeError(f"measuring {method} at n={n} failed (exit code {child.exitcode})")
    return queue.get()


def run(limit: float = 60.0, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Seconds per check for every method and size, or which limit it ran past (see :func:`measure`)."""
    seconds: dict[str, dict[int, float | str]] = {}
    for method in METHODS:
        if not available(method):
            continue
        seconds[method] = {}
        over: str | None = None
        for n in sizes:
            seconds[method][n] = over or measure(method, n, limit)
            over = seconds[method][n] if isinstance(seconds[method][n], str) else None
    return {"limit_s": limit, "memory_limit_bytes": memory_limit(), "sizes": list(sizes), "seconds": seconds}


def plot(result: dict[str, Any], path: str) -> None:
    """Cost against ``n`` on log-log axes; a method past the limit stops with an arrow up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    for method, by_n in result["seconds"].items():
        points = [(n, s) for n, s in by_n.items() if not isinstance(s, str)]
        line = ax.plot(*zip(*points, strict=True), marker="o", label=method)[0] if points else None
        over = [(n, s) for n, s in by_n.items() if isinstance(s, str)]
        if over:
            (n, why), color = over[0], line.get_color() if line else None
            marker = "^" if why == "over time" else "X"  # both drawn on the time limit's line
            ax.scatter([n], [result["limit_s"]], marker=marker, color=color, s=80, label=f"{method}: {why}")
            ax.annotate(why, (n, result["limit_s"]), textcoords="offset points", xytext=(8, -12), fontsize=8)
    ax.axhline(
        result["limit_s"], color="grey", linestyle=":", linewidth=1, label=f"time limit, {result['limit_s']:g} s"
    )
    ax.set(xscale="log", yscale="log", xlabel="n (X, W: n x n; b: n)", ylabel="seconds per check")
    ax.set_title("Checking vector.Affine once, float64, CPU")
    ax.set_xticks(result["sizes"], [str(n) for n in result["sizes"]])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the plot: it hides no point
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
