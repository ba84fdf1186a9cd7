"""The command line: ``python -m handlayers`` (installed as ``handlayers``).

- ``handlayers verify``: check every built-in layer against autodiff; the project's main job.
- ``handlayers check FILE.py:CLASS --against scalar.relu``: check your own layer class.
- ``handlayers lab``: print the lab's worked examples.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command it names; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="handlayers", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    verify = commands.add_parser("verify", help="check every built-in layer against autodiff")
    verify.add_argument("--backend", action="append", choices=["numpy", "jax"], help="repeatable; default: both")
    verify.add_argument(
        "--examples", type=_positive, default=50, help="examples per layer, backend and dtype (default 50)"
    )
    verify.add_argument("--json", action="store_true", help="write the results as JSON instead of a table")

    check = commands.add_parser("check", help="check your own layer class against a reference function")
    check.add_argument("target", metavar="FILE.py:CLASS", help="the file and the layer class in it")
    check.add_argument("--against", required=True, metavar="NAME", help="a reference: scalar.relu, vector.affine, ...")
    check.add_argument("--backend", choices=["numpy", "jax"], help="draw arrays of this library (default: numpy)")
    check.add_argument("--arrays", action="store_true", help="scalar.*: draw numpy arrays instead of Python floats")
    check.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    check.add_argument("--examples", type=_positive, default=200, help="how many examples to draw (default 200)")

    commands.add_parser("lab", help="print the lab's worked examples")
    args = parser.parse_args(argv)
    return {"verify": _verify, "check": _check, "lab": _lab}[args.command](args)


# ---------------------------------------------------------------------------------------------
# check


def _check(args: argparse.Namespace) -> int:
    from handlayers import testing

    layer = _load(args.target)
    if isinstance(layer, str):
        return _usage(layer)
    if args.against not in testing.SPECS:
        known = ", ".join(testing.SPECS)
        return _usage(f"no reference named {args.against!r}; the references are: {known}")
    is_scalar = args.against.startswith("scalar.")
    backend = args.backend or ("numpy" if args.arrays or not is_scalar else "python")
    try:
        result = testing.check(layer, args.against, backend=backend, dtype=args.dtype, max_examples=args.examples)
    except testing.Mismatch as mismatch:
        print(str(mismatch))
        return EXIT_MISMATCH
    where = "Python floats" if backend == "python" else f"{backend} {args.dtype} arrays"
    print(
        f"ok: {layer.__name__} matches {args.against} on {result.examples} examples of {where} "
        f"(worst error {result.worst:.2g} of its tolerance)"
    )
    return EXIT_OK


def _load(target: str) -> Any:
    """The class named by ``FILE.py:CLASS``, or a message saying why it cannot be had."""
    path, _, name = target.rpartition(":")
    if not path or not name:
        return f"expected FILE.py:CLASS, got {target!r}"
    if not Path(path).is_file():
        return f"no file {path!r}"
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    if spec is None or spec.loader is None:
        return f"cannot import {path!r} as Python (is it a .py file?)"
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(path).resolve().parent))  # as when running it: its neighbours import
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        from handlayers.testing.report import user_traceback

        lines = "\n  ".join(user_traceback(error))
        return f"importing {path} failed:\n  {lines}"
    layer = getattr(module, name, None)
    if not isinstance(layer, type):
        return f"{path} has no class {name!r}"
    missing = [m for m in ("forward", "backward") if not callable(getattr(layer, m, None))]
    if missing:
        return f"{name} has no {' and no '.join(missing)} method"
    return layer


def _usage(message: str) -> int:
    print(f"handlayers: {message}", file=sys.stderr)
    return EXIT_USAGE


# ---------------------------------------------------------------------------------------------
# verify

COLUMNS = ("layer", "backend", "device", "dtype", "examples", "worst", "verdict")


def _verify(args: argparse.Namespace) -> int:
    import jax

    from handlayers import testing

    backends = list(dict.fromkeys(args.backend or ["numpy", "jax"]))
    runs = [
        (name, backend, device, dtype)
        for name in testing.SPECS
        for backend in backends
        for device in (_devices(jax) if backend == "jax" else [jax.devices("cpu")[0]])
        for dtype in ("float64", "float32")
    ]
    progress = _Progress(len(runs), sys.stderr)
    rows = []
    for name, backend, device, dtype in runs:
        progress.step(f"{name} {backend} {dtype}")
        started = time.perf_counter()
        with jax.default_device(device):
            try:
                result = testing.check(
                    testing.SPECS[name].layer, name, backend=backend, dtype=dtype, max_examples=args.examples
                )
                row = {"examples": result.examples, "worst": result.worst, "verdict": "pass", "report": None}
            except testing.Mismatch as mismatch:
                row = {"examples": None, "worst": None, "verdict": "FAIL", "report": str(mismatch)}
        row.update(layer=name, backend=backend, device=str(device) if backend == "jax" else "cpu", dtype=dtype)
        row["seconds"] = round(time.perf_counter() - started, 3)
        rows.append(row)
        progress.done(f"{name} {backend} {dtype}: {row['verdict']}")
    progress.close()
    ok = all(row["verdict"] == "pass" for row in rows)
    if args.json:
        json.dump({"ok": ok, "results": rows}, sys.stdout, indent=2)
        print()
    else:
        _table(rows)
        for row in rows:
            if row["report"]:
                print("\n" + row["report"])
        passed = sum(row["verdict"] == "pass" for row in rows)
        print(f"\n{passed} passed, {len(rows) - passed} failed")
    return EXIT_OK if ok else EXIT_MISMATCH


def _devices(jax: Any) -> list[Any]:
    """Every jax device kind: the CPU, and the first GPU where there is one."""
    found = [jax.devices("cpu")[0]]
    with contextlib.suppress(RuntimeError):  # no GPU here
        found.append(jax.devices("gpu")[0])
    return found


def _table(rows: list[dict[str, Any]]) -> None:
    cells = [
        [
            row["layer"],
            row["backend"],
            row["device"],
            row["dtype"],
            "-" if row["examples"] is None else str(row["examples"]),
            "-" if row["worst"] is None else f"{row['worst']:.2g}",
            row["verdict"],
        ]
        for row in rows
    ]
    widths = [max(len(c) for c in column) for column in zip(COLUMNS, *cells, strict=True)]
    header = ["worst/tol" if c == "worst" else c for c in COLUMNS]
    widths[5] = max(widths[5], len("worst/tol"))
    for line in [header, ["-" * w for w in widths], *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


class _Progress:
    """A progress bar on a terminal; elsewhere one plain line per finished step."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream, self.count = total, stream, 0
        self.tty = stream.isatty()

    def step(self, label: str) -> None:
        if self.tty:
            filled = 30 * self.count // self.total
            bar = "#" * filled + "." * (30 - filled)
            self.stream.write(f"\r[{bar}] {self.count}/{self.total} {label:<45}")
            self.stream.flush()

    def done(self, label: str) -> None:
        self.count += 1
        if not self.tty:
            print(f"[{self.count}/{self.total}] {label}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 90 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------------------------------------
# lab


def _lab(args: argparse.Namespace) -> int:
    """Print the lab's worked examples, computed by the scalar layers."""
    from handlayers import scalar

    plus, square = scalar.Plus(), scalar.Square()
    c = plus.forward(3, 2)
    e = square.forward(c)
    dc = square.backward(1.0)
    da, db = plus.backward(dc)
    print(f"c = Plus(3, 2) = {c}, e = Square(c) = {e}: (da, db, dc) = {(float(da), float(db), float(dc))}")
    affine = scalar.Affine()
    print(f"Affine(x=1, w=2, b=5) = {affine.forward(1, 2, 5)}: (dx, dw, db) = {_floats(affine.backward(1.0))}")
    loss = scalar.SquaredLoss()
    print(f"SquaredLoss(1, 2) = {loss.forward(1, 2)}: (dy_hat, dy) = {_floats(loss.backward(1.0))}")
    mlp = scalar.MLP()
    out = mlp.forward(2, -1, 1, -2, 1.5, 1)
    grads = _floats(mlp.backward(1.0))
    print(f"MLP(x=2, w1=-1, b1=1, w2=-2, b2=1.5, y=1) = {out}: (dx, dw1, db1, dw2, db2, dy) = {grads}")
    sigmoid = scalar.Sigmoid()
    print(f"Sigmoid(2) = {float(sigmoid.forward(2))!r}: da = {float(sigmoid.backward(1.0))!r}")
    return 0


def _floats(grads: tuple) -> tuple[float, ...]:
    return tuple(float(g) + 0.0 for g in grads)  # + 0.0 shows -0.0 as 0.0


if __name__ == "__main__":
    sys.exit(main())
