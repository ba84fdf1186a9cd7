"""One check of ``vector.Affine`` by a given checkout's checker, against the layer alone.

``python benchmarks/checker_versions.py ROOT N`` imports handlayers from the checkout at ``ROOT``
(a git worktree of another commit) and prints the median of 15 checks of an ``N x N`` affine
layer (``check_example``, the oracle compiled beforehand) beside the median of the layer's own
forward plus backward. Run it alternately for two checkouts to compare their checkers in one
sitting (docs/performance.md).
"""

import statistics
import sys
import time


def main(root: str, n: int) -> str:
    sys.path.insert(0, root)
    import jax

    jax.config.update("jax_enable_x64", True)
    import numpy as np

    from handlayers import vector
    from handlayers.testing import SPECS, Example, check_example

    rng = np.random.default_rng(0)
    X, W, b = rng.standard_normal((n, n)), rng.standard_normal((n, n)), rng.standard_normal(n)
    example = Example((X, W, b), {}, rng.standard_normal((n, n)))
    spec = SPECS["vector.affine"]

    def alone() -> None:
        layer = vector.Affine()
        layer.forward(X, W, b)
        layer.backward(example.dout)

    check_example(vector.Affine, spec, example)
    alone()
    checks, alones = [], []
    for _ in range(15):
        start = time.perf_counter()
        check_example(vector.Affine, spec, example)
        checks.append(time.perf_counter() - start)
        start = time.perf_counter()
        alone()
        alones.append(time.perf_counter() - start)
    check, layer = statistics.median(checks), statistics.median(alones)
    return f"{root} n={n} check {check * 1e3:.1f} ms alone {layer * 1e3:.2f} ms ratio {check / layer:.2f}"


if __name__ == "__main__":
    print(main(sys.argv[1], int(sys.argv[2])))
