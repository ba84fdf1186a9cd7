"""The command line: ``python -m handlayers`` (installed as ``handlayers``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def lab() -> int:
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


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command it names."""
    parser = argparse.ArgumentParser(prog="handlayers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("lab", help="print the lab's worked examples")
    args = parser.parse_args(argv)
    return {"lab": lab}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
