"""One training step of a 784-256-10 network (Affine, ReLU, Affine, softmax cross-entropy).

A step is the forward pass, the loss, and the gradients of the four parameters; the data needs no
gradient. The ways to take it, timed side by side:

- ``gemm floor``: only the five matrix products a step cannot do without (two forward, ``dW2``,
  ``dH``, ``dW1``) on arrays of the right shapes; no layer can beat it in numpy.
- ``handlayers numpy``: the layers, the first one told ``input_grad=False``.
- ``handlayers numpy + dX``: the same with the contract's default, which also computes ``dX``.
- ``handlayers jax.jit``: the same layer code traced by ``jax.jit``.
- ``jax.jit(value_and_grad)``: autodiff of the reference functions, jitted.
- ``torch autograd``: the same network in torch on the CPU, when torch is installed.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._timing import compare, median, ratio
from handlayers import vector

SHAPE = {"batch": 1024, "d_in": 784, "hidden": 256, "classes": 10}


def data(dtype: Any, *, batch: int, d_in: int, hidden: int, classes: int, seed: int = 0) -> dict[str, Any]:
    """Inputs, labels and parameters of the network (He-scaled weights), as numpy arrays."""
    rng = np.random.default_rng(seed)
    return {
        "X": rng.standard_normal((batch, d_in)).astype(dtype),
        "W1": (rng.standard_normal((d_in, hidden)) * np.sqrt(2 / d_in)).astype(dtype),
        "b1": np.zeros(hidden, dtype),
        "W2": (rng.standard_normal((hidden, classes)) * np.sqrt(2 / hidden)).astype(dtype),
        "b2": np.zeros(classes, dtype),
        "labels": rng.integers(0, classes, batch),
    }


def step_args(d: dict[str, Any]) -> tuple[Any, ...]:
    """The arrays of :func:`data` (or their device copies) in the order :func:`handlayers_step` takes them."""
    return d["X"], d["W1"], d["b1"], d["W2"], d["b2"], d["labels"]


def _call(stage: str, f: Callable[..., Any], *args: Any) -> Any:
    return f(*args)


def handlayers_step(
    X: Any,
    W1: Any,
    b1: Any,
    W2: Any,
    b2: Any,
    labels: Any,
    *,
    input_grad: bool = False,
    call: Any = _call,
    loss: type = vector.SoftmaxCrossEntropy,
) -> Any:
    """Loss and ``(dW1, db1, dW2, db2)`` from the vector layers (numpy or jax arrays).

    Each layer call goes through ``call(stage, method, *args)``: :func:`stages` times them.
    ``loss`` is the loss layer's class (:mod:`benchmarks.jit_start` swaps in another backward)."""
    hidden, relu, output, cross_entropy = vector.Affine(input_grad=input_grad), vector.ReLU(), vector.Affine(), loss()
    # nested calls: an activation no layer keeps (A1, Z) is freed once the next layer has used it;
    # the output Affine keeps H for its backward
    H = call("ReLU forward", relu.forward, call("hidden Affine forward", hidden.forward, X, W1, b1))
    value = call(
        "SoftmaxCrossEntropy forward",
        cross_entropy.forward,
        call("output Affine forward", output.forward, H, W2, b2),
        labels,
    )
    dZ, _ = call("SoftmaxCrossEntropy backward", cross_entropy.backward, 1.0)
    dH, dW2, db2 = call("output Affine backward", output.backward, dZ)
    _, dW1, db1 = call("hidden Affine backward", hidden.backward, call("ReLU backward", relu.backward, dH))
    return value, (dW1, db1, dW2, db2)


def stages(d: dict[str, Any], *, steps: int = 200) -> dict[str, float]:
    """Median seconds of each layer call in the numpy step (``handlayers numpy``): where the time
    over the GEMM floor goes. The Affine stages hold the floor's products; the rest is extra."""
    seconds: dict[str, list[float]] = {}

    def timed(stage: str, f: Callable[..., Any], *args: Any) -> Any:
        start = time.perf_counter()
        out = f(*args)
        seconds.setdefault(stage, []).append(time.perf_counter() - start)
        return out

    for _ in range(steps):
        handlayers_step(*step_args(d), call=timed)
    return {stage: median(s) for stage, s in seconds.items()}


def gemm_floor(d: dict[str, Any]) -> Callable[[], Any]:
    """The step's five matrix products alone, on arrays of the shapes they have in a step."""
    X, W1, W2 = d["X"], d["W1"], d["W2"]
    H = np.maximum(X @ W1, 0)
    dA2 = np.ones((X.shape[0], W2.shape[1]), X.dtype)
    dA1 = np.ones_like(H)

    def products() -> Any:
        return X @ W1, H @ W2, H.T @ dA2, dA2 @ W2.T, X.T @ dA1

    return products


def reference_loss(W1: Any, b1: Any, W2: Any, b2: Any, X: Any, labels: Any) -> Any:
    import reference.vector as ref

    return ref.softmax_cross_entropy(ref.affine(ref.relu(ref.affine(X, W1, b1)), W2, b2), labels)


def jitted_autodiff(a: dict[str, Any]) -> tuple[Any, tuple[Any, ...]]:
    """``jax.jit(value_and_grad)`` of :func:`reference_loss`, which gives the loss and
    ``(dW1, db1, dW2, db2)``, and its arguments from the arrays ``a`` of :func:`data`."""
    import jax

    autodiff = jax.jit(jax.value_and_grad(reference_loss, argnums=(0, 1, 2, 3)))
    return autodiff, (a["W1"], a["b1"], a["W2"], a["b2"], a["X"], a["labels"])


def _jax_cases(d: dict[str, Any]) -> tuple[dict[str, Callable[[], Any]], dict[str, int]]:
    import jax

    a = {k: jax.device_put(v) for k, v in d.items()}
    ours, args = jax.jit(handlayers_step), step_args(a)
    autodiff, autodiff_args = jitted_autodiff(a)
    temp = {
        "handlayers jax.jit": _temp_bytes(ours, *args),
        "jax.jit(value_and_grad)": _temp_bytes(autodiff, *autodiff_args),
    }
    cases = {
        "handlayers jax.jit": lambda: ours(*args),
        "jax.jit(value_and_grad)": lambda: autodiff(*autodiff_args),
    }
    return cases, temp


def _temp_bytes(jitted: Any, *args: Any) -> int:
    """The temporary buffers XLA allocates for one call, beside its inputs and outputs."""
    return jitted.lower(*args).compile().memory_analysis().temp_size_in_bytes


def _torch_case(d: dict[str, Any]) -> Callable[[], Any] | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    X, labels = torch.from_numpy(d["X"]), torch.from_numpy(d["labels"])
    params = [torch.from_numpy(d[k].copy()).requires_grad_() for k in ("W1", "b1", "W2", "b2")]

    def step() -> Any:
        W1, b1, W2, b2 = params
        for p in params:
            p.grad = None
        value = F.cross_entropy(torch.relu(X @ W1 + b1) @ W2 + b2, labels)
        value.backward()
        return value

    return step


def peak_bytes(f: Callable[[], Any]) -> int:
    """The most memory numpy held at once during ``f()``, beyond what was held before."""
    f()
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


#: the ratios the project promises, each ``(numerator, denominator, at most)``
TARGETS = {
    "numpy step / gemm floor": ("handlayers numpy", "gemm floor", 1.10),
    "numpy step / torch autograd": ("handlayers numpy", "torch autograd", 1.00),
    "jit step / jit autodiff": ("handlayers jax.jit", "jax.jit(value_and_grad)", 1.00),
}


def run(dtype: Any, *, rounds: int = 9, shape: dict[str, int] | None = None, cpu: bool = True) -> dict[str, Any]:
    """Seconds per step of every way, the ratios in :data:`TARGETS`, and memory: numpy's peak
    during a step, XLA's temporary buffers. ``cpu=False`` (on a GPU) times only the jax ways."""
    shape = shape or SHAPE
    d = data(dtype, **shape)
    # one group per library, timed apart: a library's threads spin for a while after a call and
    # would slow the next library's case (the cases of one group interleave, round by round)
    groups: list[dict[str, Callable[[], Any]]] = []
    memory: dict[str, int] = {}
    if cpu:
        args = step_args(d)
        numpy_cases = {
            "gemm floor": gemm_floor(d),
            "handlayers numpy": lambda: handlayers_step(*args),
            "handlayers numpy + dX": lambda: handlayers_step(*args, input_grad=True),
        }
        memory = {name: peak_bytes(f) for name, f in numpy_cases.items()}
        groups.append(numpy_cases)
    jax_cases, temp = _jax_cases(d)
    groups.append(jax_cases)
    memory.update(temp)
    torch_step = _torch_case(d) if cpu else None
    if torch_step is not None:
        groups.append({"torch autograd": torch_step})
    samples = {name: s for group in groups for name, s in compare(group, rounds=rounds).items()}
    ratios = {
        target: {**ratio(samples[a], samples[b]), "at_most": bound}
        for target, (a, b, bound) in TARGETS.items()
        if a in samples and b in samples
    }
    return {
        "dtype": np.dtype(dtype).name,
        "shape": shape,
        "seconds": {name: median(s) for name, s in samples.items()},
        "ratios": ratios,
        "bytes": memory,
        "stages": {"steps": 20 * rounds, "seconds": stages(d, steps=20 * rounds)} if cpu else None,
    }
