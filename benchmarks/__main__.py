"""``python -m benchmarks``: every measurement, printed as tables and written as JSON (and a plot).

    python -m benchmarks                 # all three, the CPU sizes
    python -m benchmarks --only step     # one of: step, jit-start, checkers, suite, train, sequence, conv
    python -m benchmarks --quick         # small sizes and few rounds: checks that it all runs
    python -m benchmarks --only train --training mlp:numpy --rounds 30   # one training's audit, 30 rounds

On a GPU (jax's default backend), the training step and the sequence layers use sizes that fill
the chip and time the jax ways only; the other measurements are CPU measurements and are skipped
there.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
#: the training step on a GPU: large enough that the matmuls, not the launches, take the time
GPU_SHAPE = {"batch": 16384, "d_in": 4096, "hidden": 4096, "classes": 1000}
QUICK_SHAPE = {"batch": 64, "d_in": 32, "hidden": 16, "classes": 4}
#: the convolution and pooling on a GPU: a batch of 1024 images, wider channels
CONV_GPU_SHAPE = {"n": 1024, "c": 64, "h": 32, "w": 32, "f": 64, "k": 3, "pad": 1, "pool": 2}
CONV_QUICK_SHAPE = {"n": 4, "c": 2, "h": 8, "w": 8, "f": 3, "k": 3, "pad": 1, "pool": 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["step", "jit-start", "checkers", "suite", "train", "sequence", "conv"], action="append"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few rounds")
    parser.add_argument(
        "--rounds",
        type=int,
        help="rounds of each measurement (default 9; 2 with --quick); the epoch's are 4 times as many",
    )
    parser.add_argument(
        "--training",
        action="append",
        metavar="MODEL:BACKEND",
        help="repeatable: the default runs of handlayers train that --only train measures, of mlp:numpy, "
        "mlp:jax, cnn:numpy, cnn:jax (default all four)",
    )
    parser.add_argument("--limit", type=float, default=60.0, help="seconds before a checker is stopped")
    parser.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for the JSON and the plot")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for numpy's BLAS, XLA and torch, and cores for all (default: theirs, every core)",
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    only = set(args.only or ["step", "jit-start", "checkers", "suite", "train", "sequence", "conv"])
    if args.threads:  # before numpy, jax or torch load; the measuring subprocesses inherit it
        for threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[threads] = str(args.threads)
        flags = f"--xla_cpu_multi_thread_eigen={'true' if args.threads > 1 else 'false'}"
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flags}".strip()
        # and as many cores: XLA:CPU runs some work on threads of its own that no flag here limits
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.threads])

    if args.training and ("train" not in only or args.quick):
        parser.error("--training chooses the default runs of --only train, which --quick skips")
    if args.training:  # checked before any measurement, once --threads is applied (this loads numpy)
        from benchmarks.training import TRAININGS

        unknown = sorted(set(args.training) - set(TRAININGS))
        if unknown:
            parser.error(f"--training: unknown {', '.join(unknown)}; choose from {', '.join(TRAININGS)}")

    import jax

    jax.config.update("jax_enable_x64", True)
    gpu = jax.default_backend() == "gpu"
    device = str(jax.devices()[0])
    plural = "s" if args.threads and args.threads > 1 else ""
    threads = (
        f"{args.threads} thread{plural} each, on {args.threads} core{plural}" if args.threads else "default threads"
    )
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {threads}; jax {jax.__version__} on {device}",
        "python": sys.version.split()[0],
        "threads": args.threads,
    }
    os.makedirs(args.out, exist_ok=True)
    name = "gpu" if gpu else "cpu"
    tables = [f"# handlayers benchmarks, {results['date']}: {results['machine']}\n"]
    print(tables[0])
    rounds = args.rounds or (2 if args.quick else 9)
    if "step" in only:
        from benchmarks import step

        shape = QUICK_SHAPE if args.quick else GPU_SHAPE if gpu else step.SHAPE
        results["step"] = [step.run(dtype, rounds=rounds, shape=shape, cpu=not gpu) for dtype in ("float32", "float64")]
        tables.append(step_tables(results["step"]))
        print(tables[-1])
    if "jit-start" in only and not gpu:
        from benchmarks import jit_start

        shapes = (tuple(QUICK_SHAPE.values()),) if args.quick else jit_start.SHAPES
        results["jit_start"] = [
            r for dt in ("float32", "float64") for r in jit_start.run(dt, rounds=rounds, shapes=shapes)
        ]
        tables.append(jit_start.table(results["jit_start"]))
        print(tables[-1])
    if "checkers" in only and not gpu:
        from benchmarks import checkers

        sizes = (4, 8) if args.quick else checkers.SIZES
        results["checkers"] = checkers.run(limit=args.limit, sizes=sizes)
        tables.append(checker_table(results["checkers"]))
        print(tables[-1])
        checkers.plot(results["checkers"], os.path.join(args.out, f"checker_cost{'-quick' if args.quick else ''}.png"))
    if "suite" in only and not gpu:
        from benchmarks import suite

        results["suite"] = suite.run(examples=3 if args.quick else 20)
        tables.append(suite_table(results["suite"]))
        print(tables[-1])
    if "train" in only:
        from benchmarks import training

        results["train"] = training.run(rounds, quick=args.quick, trainings=tuple(args.training or training.TRAININGS))
        tables.append(training.table(results["train"]))
        print(tables[-1])
    if "sequence" in only:
        from benchmarks import sequence

        sizes = sequence.QUICK_SIZES if args.quick else sequence.GPU_SIZES if gpu else sequence.SIZES
        results["sequence"] = [sequence.run(dt, rounds=rounds, sizes=sizes) for dt in ("float32", "float64")]
        tables.append(sequence.table(results["sequence"]))
        print(tables[-1])
    if "conv" in only:
        from benchmarks import conv

        shape = CONV_QUICK_SHAPE if args.quick else CONV_GPU_SHAPE if gpu else conv.SHAPE
        results["conv"] = [conv.run(dtype, rounds=rounds, shape=shape, cpu=not gpu) for dtype in ("float32", "float64")]
        tables.append(conv.table(results["conv"]))
        print(tables[-1])
    # a run of some measurements only writes files of its own, beside those of a full run
    part = "-" + "-".join(sorted(only)) if args.only else ""
    part += "".join(f"-{t.replace(':', '-')}" for t in sorted(args.training or ()) if "train" in only)
    path = os.path.join(args.out, f"{name}{part}{'-quick' if args.quick else ''}")
    with open(f"{path}.json", "w") as f:
        json.dump(results, f, indent=1, default=str)
    with open(f"{path}.md", "w") as f:
        f.write("\n".join(tables))
    print(f"written: {path}.json, {path}.md")
    return 0


def _ms(seconds: float | str) -> str:
    return seconds if isinstance(seconds, str) else f"{seconds * 1e3:.3g}"


def step_tables(runs: list[dict[str, Any]]) -> str:
    shape = runs[0]["shape"]
    lines = [
        f"## One training step: {shape['d_in']}-{shape['hidden']}-{shape['classes']}, batch {shape['batch']}",
        "",
        "| way | " + " | ".join(f"{r['dtype']} ms | {r['dtype']} peak MiB" for r in runs) + " |",
        "|---|" + "---:|---:|" * len(runs),
    ]
    for way in runs[0]["seconds"]:
        cells = []
        for r in runs:
            memory = r["bytes"].get(way)
            cells += [_ms(r["seconds"][way]), "" if memory is None else f"{memory / 2**20:.1f}"]
        lines.append(f"| {way} | " + " | ".join(cells) + " |")
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
    lines.append("")
    lines.append(
        "Memory: numpy's peak during a step beyond its inputs (tracemalloc); for the jitted ways, "
        "XLA's temporary buffers."
    )
    if runs[0]["stages"]:  # None on a GPU: no numpy step
        lines += ["", stage_table(runs)]
    return "\n".join(lines) + "\n"


def stage_table(runs: list[dict[str, Any]]) -> str:
    """Each layer call of ``handlayers numpy``, timed alone, beside the GEMM floor."""
    lines = [
        "Where `handlayers numpy` spends its time, each layer call timed alone (median of "
        f"{runs[0]['stages']['steps']} steps; the Affine calls hold the floor's matrix products):",
        "",
        "| layer call | " + " | ".join(f"{r['dtype']} ms" for r in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for stage in runs[0]["stages"]["seconds"]:
        lines.append(f"| {stage} | " + " | ".join(_ms(r["stages"]["seconds"][stage]) for r in runs) + " |")
    totals = (sum(r["stages"]["seconds"].values()) for r in runs)
    lines.append("| sum of the calls | " + " | ".join(_ms(t) for t in totals) + " |")
    lines.append("| gemm floor | " + " | ".join(_ms(r["seconds"]["gemm floor"]) for r in runs) + " |")
    return "\n".join(lines)


def checker_table(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    lines = [
        f"## Checking vector.Affine once (float64, ms; stopped after {result['limit_s']:g} s "
        f"or {result['memory_limit_bytes'] / 2**30:.0f} GiB)",
        "",
        "| method | " + " | ".join(f"n = {n}" for n in sizes) + " |",
        "|---|" + "---:|" * len(sizes),
    ]
    for method, by_n in result["seconds"].items():
        lines.append(f"| {method} | " + " | ".join(_ms(by_n[n]) for n in sizes) + " |")
    return "\n".join(lines) + "\n"


def suite_table(result: dict[str, Any]) -> str:
    lines = [
        f"## Suite throughput, cold process ({result['examples_per_test']} examples per layer and dtype)",
        "",
        "| way | examples | seconds | examples / s | of drawing alone |",
        "|---|---:|---:|---:|---:|",
    ]
    for way, r in result["ways"].items():
        lines.append(f"| {way} | {r['examples']} | {r['seconds']:.1f} | {r['per_s']:.0f} | {r['of_drawing']:.2f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
