"""The suite's throughput: examples checked per second against the oracle, in a cold process.

Every reference in :data:`handlayers.testing.SPECS`, in float64 and float32, gets ``examples``
derandomized Hypothesis examples, as in the ``ci`` profile. Each way runs in a fresh process, so
that every shape it meets compiles there, as it does in a test run:

- ``draw only``: Hypothesis drawing the examples, nothing checked: the rate no check can beat;
- ``numpy`` / ``jax``: each drawn example checked on that backend (:func:`check_example`);
- ``numpy + jax``: each drawn example checked on both, the oracle computed once for the two,
  which is what the suite's central test does.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

WAYS = {"draw only": (), "numpy": ("numpy",), "jax": ("jax",), "numpy + jax": ("numpy", "jax")}


def _throughput(backends: tuple[str, ...], examples: int, queue: Any) -> None:
    start = time.perf_counter()
    import jax

    jax.config.update("jax_enable_x64", True)
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from handlayers.testing import SPECS, check_backends
    from handlayers.testing import examples as draw_examples

    imported = time.perf_counter() - start
    drawn = 0

    def test_for(spec: Any, dtype: str) -> Any:
        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.data())
        def run(data: Any) -> None:
            nonlocal drawn
            example = data.draw(draw_examples(spec, dtype))
            drawn += 1
            if backends:
                check_backends(spec.layer, spec, example, backends=backends, dtype=dtype)

        return run

    start = time.perf_counter()
    for spec in SPECS.values():
        for dtype in ("float64", "float32"):
            test_for(spec, dtype)()
    queue.put({"examples": drawn, "seconds": time.perf_counter() - start, "import_s": imported})


def measure(backends: tuple[str, ...], examples: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_throughput, args=(backends, examples, queue))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"measuring {backends or 'drawing'} failed (exit code {child.exitcode})")
    return queue.get()


def run(examples: int = 60) -> dict[str, Any]:
    """Examples per second of every way, each in a cold process, and each as a fraction of the
    rate of drawing alone."""
    rates = {}
    for way, backends in WAYS.items():
        result = measure(backends, examples)
        rates[way] = {**result, "per_s": result["examples"] / result["seconds"]}
    for way in rates:
        rates[way]["of_drawing"] = rates[way]["per_s"] / rates["draw only"]["per_s"]
    return {"examples_per_test": examples, "ways": rates}
