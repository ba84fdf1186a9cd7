"""Timing that survives a noisy machine: every case of a comparison is timed in the same rounds,
one after another, so that a slow spell slows all of them alike, and each is quoted as the median
over rounds. Results are seconds per call; the tables quote them as ratios to a baseline."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def block(x: Any) -> Any:
    """Wait for ``x`` to be computed: jax dispatches asynchronously (numpy and torch on the CPU do not)."""
    jax = sys.modules.get("jax")
    return jax.block_until_ready(x) if jax is not None else x


#: seconds of rest before timing a case: BLAS and OpenMP threads spin for a while after a call,
#: and without the rest they slow the next case (XLA after numpy ran 1.5x slower here)
SETTLE = 0.05


def _run(f: Callable[[], Any], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        block(f())
    return time.perf_counter() - start


def compare(cases: dict[str, Callable[[], Any]], *, rounds: int = 9, min_time: float = 0.05) -> dict[str, list[float]]:
    """Seconds per call of each case, one figure per round.

    Each case is called once first (a jitted function compiles then), then as many times per round
    as fill ``min_time``; the rounds interleave the cases, in an order reversed every round, so
    round ``i`` of two cases ran close in time and their ratio is the fairest one (see :func:`ratio`).
    """
    loops = {}
    for name, f in cases.items():
        block(f())
        time.sleep(SETTLE)
        n = 1
        while _run(f, n) < min_time:
            n *= 2
        loops[name] = n
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases.items())
    for _ in range(rounds):
        for name, f in order:
            time.sleep(SETTLE)
            samples[name].append(_run(f, loops[name]) / loops[name])
        order.reverse()  # no case always first (after the rest) or always last
    return samples


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def ratio(a: list[float], b: list[float]) -> dict[str, float]:
    """``a / b`` round by round: the median, and the spread of the middle half of the rounds
    (``low``, ``high``), the noise of this run."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3
    return {"median": statistics.median(ratios), "low": q[0], "high": q[2]}


def median_interval(samples: list[float], resamples: int = 5000, seed: int = 0) -> dict[str, float]:
    """The median of ``samples`` and a 95% interval for it (``low``, ``high``): the 2.5th and
    97.5th percentiles of the medians of ``resamples`` resamples with replacement (the percentile
    bootstrap, seeded: the same samples always give the same interval). What a target is judged
    on: the middle half of the rounds (:func:`ratio`) says how noisy they are, not how sure
    their median is."""
    import numpy as np

    values = np.asarray(samples, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
    medians = np.median(values[picks], axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return {"median": float(np.median(values)), "low": float(low), "high": float(high)}


def once(f: Callable[[], Any]) -> float:
    """Seconds of one call, compilation and all: what a cold process pays."""
    start = time.perf_counter()
    block(f())
    return time.perf_counter() - start
