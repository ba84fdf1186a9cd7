"""Why handlayers' step inside ``jax.jit`` had been slower than jitted autodiff on the CPU.

The two compiled programs do the same large operations, yet the step that subtracted a one-hot
array in softmax cross-entropy's backward ran about 1.2x slower. XLA:CPU's thunk executor runs a
program from its *starting operations*, those that need nothing computed before them. This
module times, side by side in one run, for a few sizes:

- ``autodiff``: ``jax.jit(value_and_grad)`` of the reference, the baseline;
- ``handlayers``: the layers as they are (the backward scatters at the labels);
- ``one-hot backward``: the same step with the old backward, which subtracts a one-hot array;
- ``one-hot + labels output``: that step, also returning ``labels + 1``, an output computed from
  the labels alone: one more starting operation, and no other change;

and counts each program's starting operations in its optimized HLO.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from benchmarks import step
from benchmarks._timing import compare, ratio
from handlayers import vector

#: (batch, d_in, hidden, classes): the step's size, a smaller batch, and wider layers
SHAPES = ((1024, 784, 256, 10), (256, 784, 256, 10), (1024, 512, 512, 100))


class OneHotSoftmaxCrossEntropy(vector.SoftmaxCrossEntropy):
    """The backward handlayers had: ``(dl / n) * (p - onehot)``, with the one-hot array built."""

    def _backward(self, dl: Any) -> tuple[Any, None]:
        p = self.p
        return (dl / p.shape[0]) * (p - (self._xp.arange(p.shape[1]) == self.y[:, None])), None


def _one_hot_step(*args: Any) -> Any:
    return step.handlayers_step(*args, loss=OneHotSoftmaxCrossEntropy)


def _one_hot_step_and_labels(*args: Any) -> Any:
    return _one_hot_step(*args), args[-1] + 1


def starting_operations(hlo: str) -> int:
    """Operations of an optimized HLO module's entry computation whose operands are all parameters
    or constants (or that have none): where XLA:CPU's thunk executor starts."""
    entry = hlo[hlo.index("\nENTRY ") :].split("\n")[1:]
    given: set[str] = set()
    count = 0
    for line in entry:
        match = re.match(r"\s*(?:ROOT )?%(\S+) = \S+ (\w[\w-]*)\((.*)", line)
        if not match:
            continue
        name, op, rest = match.groups()
        if op in ("parameter", "constant"):
            given.add(name)
        elif op not in ("tuple", "bitcast", "get-tuple-element"):
            operands = re.findall(r"%([\w.-]+)", rest.split(")")[0])
            count += all(o in given for o in operands)
    return count


def run(dtype: Any, *, rounds: int = 9, shapes: tuple[tuple[int, int, int, int], ...] = SHAPES) -> list[dict[str, Any]]:
    """For each shape: seconds per step of each way, its ratio to autodiff, its starting operations."""
    import jax

    results = []
    for batch, d_in, hidden, classes in shapes:
        d = step.data(dtype, batch=batch, d_in=d_in, hidden=hidden, classes=classes)
        a = {k: jax.device_put(v) for k, v in d.items()}
        args = step.step_args(a)
        ways = {
            "autodiff": step.jitted_autodiff(a),
            "handlayers": (jax.jit(step.handlayers_step), args),
            "one-hot backward": (jax.jit(_one_hot_step), args),
            "one-hot + labels output": (jax.jit(_one_hot_step_and_labels), args),
        }
        starts = {name: starting_operations(f.lower(*x).compile().as_text()) for name, (f, x) in ways.items()}
        samples = compare({name: (lambda f=f, x=x: f(*x)) for name, (f, x) in ways.items()}, rounds=rounds)
        results.append(
            {
                "dtype": np.dtype(dtype).name,
                "shape": {"batch": batch, "d_in": d_in, "hidden": hidden, "classes": classes},
                "starting_operations": starts,
                "ratio_to_autodiff": {name: ratio(s, samples["autodiff"]) for name, s in samples.items()},
            }
        )
    return results


def table(results: list[dict[str, Any]]) -> str:
    ways = list(results[0]["ratio_to_autodiff"])
    lines = [
        "## The jitted step against jitted autodiff: how the loss's backward is written",
        "",
        "Time per step over autodiff's (median of the rounds), and in brackets the program's starting"
        " operations (those that need nothing computed first):",
        "",
        "| dtype | batch, d_in-hidden-classes | " + " | ".join(ways) + " |",
        "|---|---|" + "---:|" * len(ways),
    ]
    for r in results:
        s = r["shape"]
        cells = [f"{r['ratio_to_autodiff'][w]['median']:.3f} ({r['starting_operations'][w]})" for w in ways]
        shape = f"{s['batch']}, {s['d_in']}-{s['hidden']}-{s['classes']}"
        lines.append(f"| {r['dtype']} | {shape} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
