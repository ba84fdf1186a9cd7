"""Two versions of ml_dtypes side by side: what each costs ``import jax`` and the training audit.

jax imports ml_dtypes, and every process that imports jax pays for it: the command line, the
training audit's oracle process, each test worker. Put each version in a folder of its own and
compare them in one sitting, rounds interleaved (the order of the folders, and of the
two trainings, reversed every round)::

    python -m pip install --no-deps --target /tmp/mld-0.6.0 ml_dtypes==0.6.0
    python -m pip install --no-deps --target /tmp/mld-0.7.0 ml_dtypes==0.7.0
    python benchmarks/ml_dtypes_import.py /tmp/mld-0.6.0 /tmp/mld-0.7.0 9

Each round times, for each folder (put first on ``PYTHONPATH``; the oracle's process inherits the
path): ``import jax`` in a fresh process, and ``handlayers train`` (the numpy MLP, the defaults)
with and without the audit. It prints medians, and the wall time the audit adds, round by round,
over the training's seconds without it (the training target's measure, as in training.py), with
the middle half of the rounds, and over the median of those seconds with a 95% interval for that
median (what the target is judged on).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, ROOT)

from benchmarks._timing import median, median_interval, ratio  # noqa: E402 (after the path above)

IMPORT = (
    "import time; t = time.perf_counter(); import jax, ml_dtypes; print(time.perf_counter() - t, ml_dtypes.__version__)"
)


def _run(folder: str, args: list[str]) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [folder, os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} with {folder} failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - started, done.stdout


def round_of(folder: str, audited_first: bool) -> dict[str, float | str]:
    """One round for ``folder``: seconds of ``import jax``, and of the training with and without
    the audit (in the order given)."""
    _, out = _run(folder, ["-c", IMPORT])
    seconds, version = out.split()
    result: dict[str, float | str] = {"version": version, "import": float(seconds)}
    arms = [("audited", "100"), ("unaudited", "0")]
    for name, k in arms if audited_first else arms[::-1]:
        wall, out = _run(folder, ["-m", "handlayers", "train", "--backend", "numpy", "--audit-every", k, "--json"])
        result[f"{name}_command"], result[f"{name}_training"] = wall, json.loads(out)["seconds"]
    return result


def main(folders: list[str], rounds: int) -> str:
    samples: dict[str, list[dict]] = {f: [] for f in folders}
    order = list(folders)
    for i in range(rounds):
        for folder in order:
            samples[folder].append(round_of(folder, audited_first=i % 2 == 0))
        order.reverse()
    lines = [
        "| ml_dtypes | import jax s | command s | unaudited command s | unaudited training s "
        "| wall time the audit adds, s | over the unaudited training (middle half) "
        "| over the unaudited training's median (95% interval of the median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in samples.values():
        added = [r["audited_command"] - r["unaudited_command"] for r in rows]
        over = ratio(added, [r["unaudited_training"] for r in rows])
        sure = {k: v / median([r["unaudited_training"] for r in rows]) for k, v in median_interval(added).items()}
        cells = [
            median([r[key] for r in rows])
            for key in ("import", "audited_command", "unaudited_command", "unaudited_training")
        ]
        lines.append(
            f"| {rows[0]['version']} | " + " | ".join(f"{c:.2f}" for c in cells)
            + f" | {median(added):.3f} | {over['median']:.0%} ({over['low']:.0%} to {over['high']:.0%})"
            + f" | {sure['median']:.0%} ({sure['low']:.0%} to {sure['high']:.0%}) |"
        )  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    folders, rounds = sys.argv[1:3], (sys.argv[3:4] or ["9"])[0]
    if len(sys.argv) > 4 or len(folders) < 2 or not all(map(os.path.isdir, folders)) or not rounds.isdigit():
        sys.exit(f"usage: python {sys.argv[0]} FOLDER FOLDER [ROUNDS]  (each FOLDER an ml_dtypes, pip --target)")
    print(main(folders, max(1, int(rounds))))
