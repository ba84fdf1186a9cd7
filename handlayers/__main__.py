"""The command line: ``python -m handlayers`` (installed as ``handlayers``).

- ``handlayers verify``: check every built-in layer against autodiff; the project's main job.
- ``handlayers check FILE.py:NAME --against REFERENCE``: check your own layer, written in any of
  the usual conventions, against a built-in reference or any jax function.
- ``handlayers train``: train a network of the layers on scikit-learn's digits, its gradients audited.
- ``handlayers lab``: print the lab's worked examples.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import json
import os
import re
import select
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
EXIT_ORACLE = 3  # train: the gradient audit's oracle failed, so nothing was audited


def _at_least(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


_positive = _at_least(1)


def _kinks(text: str) -> list[float]:
    """``--kinks``' value: numbers separated by commas."""
    try:
        return [float(part) for part in _list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


#: the options whose value may start with a minus sign (--kinks -1,1), which argparse would take for an option
_SIGNED = ("--kinks",)


def _attached(argv: Sequence[str]) -> list[str]:
    """``argv`` with each of :data:`_SIGNED` joined to a value that starts with a minus sign and
    a digit or a point (``--kinks -1,1`` as ``--kinks=-1,1``)."""
    out: list[str] = []
    for arg in argv:
        signed = arg[:1] == "-" and arg[1:2] in tuple("0123456789.")
        if out and out[-1] in _SIGNED and signed:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


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

    _check_parser(commands)

    train = commands.add_parser(
        "train",
        help="train a network of the layers on scikit-learn's digits",
        epilog="exit status: 0 trained, 1 the gradient audit stopped training (its report on stdout), "
        "3 the audit's oracle failed (its error on stderr)",
    )
    train.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    train.add_argument("--backend", choices=["numpy", "jax"], default="numpy")
    train.add_argument("--epochs", type=_positive, default=20, help="passes over the training set (default 20)")
    train.add_argument("--seed", type=int, default=0, help="the split, the initialization and the batches (default 0)")
    train.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    train.add_argument(
        "--audit-every",
        type=_at_least(0),
        default=100,
        metavar="K",
        help="audit the gradients every K steps (default 100; 0: no audit)",
    )
    train.add_argument("--json", action="store_true", help="write the results as JSON")
    train.add_argument("--plot", metavar="FILE.png", help="draw the loss and accuracy curves into FILE.png")

    commands.add_parser("lab", help="print the lab's worked examples")
    listing = commands.add_parser(
        "list", help="list the built-in references (--against NAME): inputs, keywords, outputs, layers"
    )
    listing.add_argument("--json", action="store_true", help="write them as JSON")
    args = parser.parse_args(_attached(sys.argv[1:] if argv is None else argv))
    commands_ = {"verify": _verify, "check": _check, "train": _train, "lab": _lab, "list": _references}
    try:
        status = commands_[args.command](args)
        sys.stdout.flush()  # here, where a closed pipe can still be caught
    except BrokenPipeError:
        if not _reader_gone(sys.stdout):
            raise  # another pipe broke (a child process's): an error, not the end of the output
        # the reader went away (handlayers list | head): nothing more to say, and nothing to say it
        # to; Python's own flush at exit goes to devnull, and the status is the shell's for SIGPIPE
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return SIGPIPE_STATUS
    return status


#: the exit status when the output's reader went away, as a shell reports a command SIGPIPE ended
SIGPIPE_STATUS = 128 + 13


def _reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reader has closed it (poll says so: an error on its
    writing end); where that cannot be asked (no poll: Windows), taken to be."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file (a capture): no pipe of ours
        return False
    if not hasattr(select, "poll"):
        return True
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    # a pipe's closed reader is an error on Linux, a hang-up elsewhere (and for a socket)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


# ---------------------------------------------------------------------------------------------
# check


CHECK_EPILOG = """\
conventions (each taken as written; the docs' "Checking code as it is written" has more):
  a class with forward(*inputs) and backward(dout):
    handlayers check layers.py:Affine --against vector.affine
  CS231n function pairs affine_forward(x, w, b) -> (out, cache), affine_backward(dout, cache):
    handlayers check layers.py:affine --against vector.affine
    handlayers check layers.py:conv --against vector.conv2d    (conv_forward_naive, conv_backward_naive)
  a loss returning (loss, dx), checked at dout = 1 on its first input:
    handlayers check layers.py:softmax_loss --against vector.softmax_cross_entropy
  parameters and gradients as attributes ("from scratch" books):
    handlayers check nn.py:Layer_Dense --against vector.affine --init W.0,W.1 \\
      --param W=weights --param b=biases:row --grad dW=dweights --grad db=dbiases \\
      --grad dX=dinputs --output output
  a loss layer whose backward() takes no dout, or other arguments (the nnfs book's: forward
  returns one loss per row, Loss.calculate their mean):
    handlayers check nn.py:Loss_MeanSquaredError --against vector.mean_squared_error \\
      --shapes "Y_hat: n k; Y: n k" --forward calculate --backward-args Y_hat,Y --no-grad Y \\
      --grad dY_hat=dinputs
  a method of a class: handlayers check losses.py:Svm_loss.loss --against vector.hinge_loss
  a jax function with a custom VJP (checked eagerly and under jax.jit):
    handlayers check kernels.py:gelu --against jax.nn.gelu --shapes "x: n d"
  any reference, with its inputs' shapes (named dimensions), labels and keywords:
    handlayers check layers.py:Dense --against refs.py:dense --shapes "X: n d_in; W: d_in d_out; b: d_out"
    handlayers check layers.py:CE --against refs.py:ce --shapes "Z: n k" --labels "labels: n < k"
    handlayers check rnn.py:temporal_softmax_loss --against refs.py:temporal_softmax_loss \\
      --shapes "x: n t v" --labels "y: n t < v" --masks "mask: n t"

exit status: 0 match, 1 mismatch (with the report), 2 when something named cannot be found or
loaded, or a flag does not fit the code.
"""


def _check_parser(commands: Any) -> argparse.ArgumentParser:
    check = commands.add_parser(
        "check",
        help="check your own layer, as it is written, against a reference function",
        description="Check your own layer, as it is written, against a reference function.",
        epilog=CHECK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument(
        "target",
        metavar="FILE.py:NAME",
        help="your code: a class, a function, NAME_forward and NAME_backward (or NAME_forward_naive and "
        "NAME_backward_naive; named NAME or either half), or CLASS.METHOD (layers.py:Affine, "
        "layers.py:affine, losses.py:Svm_loss.loss)",
    )
    check.add_argument(
        "--against",
        required=True,
        metavar="REFERENCE",
        help="a built-in reference (--against vector.affine), or a jax.numpy function of the inputs: "
        "FILE.py:FUNCTION or package.module.FUNCTION (--against jax.nn.gelu --shapes 'x: n d')",
    )
    check.add_argument(
        "--backend",
        choices=["numpy", "jax"],
        help="draw arrays of this library (default: numpy; jax for a jax function): --backend jax",
    )
    check.add_argument(
        "--arrays",
        action="store_true",
        help="scalar.*: draw numpy arrays instead of Python floats: --against scalar.relu --arrays",
    )
    check.add_argument(
        "--dtype",
        choices=["float64", "float32"],
        default="float64",
        help="the inputs' float dtype (default float64; Python floats are float64 only, so with a "
        "scalar.* reference add --arrays or --backend): --dtype float32",
    )
    check.add_argument(
        "--examples", type=_positive, default=200, help="how many examples to draw (default 200): --examples 500"
    )
    check.add_argument(
        "--shapes",
        metavar="SHAPES",
        help="a reference of your own: each input's shape in named dimensions (the same name, the same "
        "size; the inputs go in the reference's order): --shapes 'X: n d_in; W: d_in d_out; b: d_out'",
    )
    check.add_argument(
        "--labels", metavar="LABELS", help='integer inputs with values in [0, k): --labels "labels: n < k"'
    )
    check.add_argument(
        "--masks",
        metavar="MASKS",
        help='boolean inputs, any values (for code that indexes with them, x[mask]): --masks "mask: n t"',
    )
    check.add_argument(
        "--kinks",
        type=_kinks,
        default=[],
        metavar="X,Y",
        help="values where your reference has a kink, drawn often: --kinks 0.5,-2 (or --kinks -1,1)",
    )
    check.add_argument(
        "--kw",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a keyword for the reference and your code (the constructor, the pair's forward, the loss "
        "function; a *_param dict): --kw axis=1 (repeatable)",
    )
    check.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="INPUT=ATTR",
        help="set input INPUT as the attribute ATTR before forward, not passed to it; ATTR:row gives a "
        "1-d input as a (1, d) row: --param W=weights --param b=biases:row (repeatable)",
    )
    check.add_argument(
        "--init",
        metavar="ARG,ARG",
        help="constructor arguments, not passed to forward: an input (--init W,b for Affine(W, b)) or "
        "INPUT.AXIS for a size (--init W.0,W.1 for Layer_Dense(n_inputs, n_neurons))",
    )
    check.add_argument(
        "--grad",
        action="append",
        default=[],
        metavar="dINPUT=ATTR",
        help="after backward, read the gradient of INPUT from attribute ATTR: --grad dW=dweights (repeatable)",
    )
    check.add_argument("--output", metavar="ATTR", help="read forward's result from an attribute: --output output")
    check.add_argument(
        "--forward",
        metavar="METHOD",
        default="forward",
        help="the method that computes the output (default forward): --forward calculate for the nnfs "
        "book's losses, whose forward returns one loss per row and calculate their mean",
    )
    check.add_argument(
        "--setup",
        metavar="METHOD,...",
        help="methods called with no arguments on each new object, after --param, before forward (or the "
        "--forward method): --setup new_pass for "
        "the nnfs book's later losses, whose calculate adds to running sums that new_pass starts",
    )
    check.add_argument(
        "--no-grad",
        action="append",
        default=[],
        metavar="INPUT",
        help="your code computes no gradient for INPUT (a loss's targets): --no-grad Y (repeatable)",
    )
    check.add_argument(
        "--backward-args",
        metavar="ARG,ARG",
        help="call backward with these: dout, an input's name, or @ATTR for an attribute: "
        "--backward-args @output,Y (backward(dvalues, y_true)); --backward-args dout,x",
    )
    return check


def _check(args: argparse.Namespace) -> int:
    from handlayers import testing
    from handlayers.testing.declared import parse_keywords, with_keywords

    code = _load(args.target)
    if isinstance(code, str):
        return _usage(code)
    try:
        keywords = parse_keywords(args.kw)
        spec = _reference(args, keywords)
        if isinstance(spec, str):
            return _usage(spec)
        spec = spec if args.against not in testing.SPECS else with_keywords(spec, keywords)
        layer = testing.adapt(
            code,
            spec,
            params=dict(_pairs(args.param, "--param")),
            init=_list(args.init),
            grads=dict(_pairs(args.grad, "--grad")),
            output=args.output,
            no_grad=args.no_grad,
            backward_args=None if args.backward_args is None else _list(args.backward_args),
            forward=args.forward,
            setup=_list(args.setup),
        )
    except ValueError as error:  # testing.ConventionError among them: a flag does not fit the code
        return _usage(str(error))
    is_scalar = args.against.startswith("scalar.")
    backend = args.backend or ("jax" if layer.kind == "jax" else "numpy" if args.arrays or not is_scalar else "python")
    if backend == "python" and args.dtype != "float64":
        floats = f"{args.against} draws Python floats, which are float64"
        return _usage(f"{floats}: add --arrays (or --backend) for {args.dtype} arrays")
    total = args.examples
    try:
        with _Progress(total) as progress:  # a bar on a terminal: a jax function's check compiles per shape
            result = testing.check(
                layer, spec, backend=backend, dtype=args.dtype, max_examples=total,
                on_example=lambda n: progress.advance(min(n, total), total),
            )  # fmt: skip
    except testing.Mismatch as mismatch:
        print(str(mismatch))
        return EXIT_MISMATCH
    except testing.ShapesError as error:  # --shapes that do not fit the reference
        return _usage(str(error))
    where = "Python floats" if backend == "python" else f"{backend} {args.dtype} arrays"
    jit = " (eagerly and under jax.jit)" if layer.kind == "jax" else ""
    print(
        f"ok: {layer.name} matches {args.against}{jit} on {result.examples} examples of {where} "
        f"(worst error {result.worst:.2g} of its tolerance)"
    )
    return EXIT_OK


def _pairs(items: list[str], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{flag} {item!r}: expected NAME=VALUE")
        pairs.append((name, value))
    return pairs


def _list(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _reference(args: argparse.Namespace, keywords: dict[str, Any]) -> Any:
    """The spec named by ``--against``, or a message saying why it cannot be had."""
    from handlayers import testing
    from handlayers.testing.declared import parse_labels, parse_shapes

    against = args.against
    if ":" not in against and against not in testing.SPECS:
        module, _, name = against.rpartition(".")
        found = _importable(module)
        if found is None or not callable(getattr(found, name, None)):
            known = ", ".join(testing.SPECS)
            return f"no reference named {against!r}; the references are: {known} (or FILE.py:FUNCTION)"
        against = f"{module}:{name}"  # package.module.FUNCTION (jax.nn.gelu) is package.module:FUNCTION
    if ":" not in against:
        if not args.shapes:  # the built-in reference draws its own shapes
            flags = (("--labels", args.labels), ("--masks", args.masks), ("--kinks", args.kinks))
            given = [flag for flag, value in flags if value]
            if given:
                return f"{' and '.join(given)} need --shapes with a built-in reference; {args.against} draws its own"
            return testing.SPECS[args.against]
        # --shapes narrows a built-in reference to the shapes the user's code takes (a "from scratch"
        # loss of (n, k) only, where the reference takes any shape)
        function = testing.SPECS[args.against].reference
    else:
        function = _load_function(against)
        if isinstance(function, str):
            return function
    if not args.shapes:
        return f'--against {args.against} needs --shapes, the shape of each input: --shapes "X: n d_in; W: d_in d_out"'
    declared = [("--shapes", parse_shapes, args.shapes), ("--labels", parse_labels, args.labels)]
    for flag, parse, text in [*declared, ("--masks", parse_shapes, args.masks)]:
        try:  # each flag's syntax first, so that its error names it
            parse(text or {})
        except ValueError as error:
            return f"{flag}: {error}"
    return testing.spec(
        function, args.shapes, args.labels, kinks=args.kinks, kwargs=keywords, name=args.against, masks=args.masks
    )


def _importable(module: str) -> Any:
    """The module of that name, or ``None`` where there is none (``scalar`` in ``scalar.relu``)."""
    try:
        return importlib.import_module(module) if module else None
    except ImportError:
        return None


def _load_function(target: str) -> Any:
    """The function ``FILE.py:FUNCTION`` or ``package.module:FUNCTION`` names, or why it cannot be had."""
    path, _, name = target.rpartition(":")
    if path.endswith(".py") or "/" in path or Path(path).is_file():
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(path)
        except ImportError as error:
            return f"cannot import {path!r}: {error}"
    if isinstance(module, str):
        return module
    function = getattr(module, name, None)
    if not callable(function):
        return f"{path} has no function {name!r}"
    return function


def _import_file(path: str) -> Any:
    """The module of the file at ``path``, or a message saying why it cannot be imported."""
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
    return module


def _load(target: str) -> Any:
    """The code ``FILE.py:NAME`` names (a class, a function, a pair ``NAME_forward`` and
    ``NAME_backward``, named by ``NAME`` or by either half, a ``CLASS.METHOD``), or a message
    saying why it cannot be had."""
    from handlayers.testing import Method

    path, _, name = target.rpartition(":")
    if not path or not name:
        return f"expected FILE.py:CLASS or FILE.py:NAME, got {target!r}"
    module = _import_file(path)
    if isinstance(module, str):
        return module
    owner, _, method = name.partition(".")
    found = getattr(module, owner, None)
    if method:
        if not isinstance(found, type) or not callable(getattr(found, method, None)):
            return f"{path} has no class {owner!r} with a method {method!r}"
        return Method(found, method)
    for half, other in (("_forward", "_backward"), ("_backward", "_forward")):
        base, cut, suffix = name.rpartition(half)
        # one half of a pair, named: the pair it belongs to (conv_forward_naive: conv_backward_naive;
        # batchnorm_backward_alt, a second backward: batchnorm_forward)
        partners = [base + other + suffix, base + other] if cut and base and suffix[:1] in ("", "_") else []
        candidates = (getattr(module, partner, None) for partner in partners)
        partner = next((p for p in candidates if callable(p)), None)
        if callable(found) and partner is not None:
            return (found, partner) if half == "_forward" else (partner, found)
    if isinstance(found, type) or (callable(found) and not isinstance(found, type(sys))):
        return found
    pairs = _function_pairs(module, name) if found is None else {}
    if len(pairs) == 1:
        return next(iter(pairs.values()))
    if pairs:
        return f"{path} has {len(pairs)} pairs {name}_forward_* and {name}_backward_*: name one of {', '.join(pairs)}"
    return f"{path} has no class {name!r}, function {name!r} or pair {name}_forward and {name}_backward"


def _function_pairs(module: Any, name: str) -> dict[str, tuple[Any, Any]]:
    """The pair ``NAME_forward`` and ``NAME_backward`` in ``module``, or else those with a suffix
    after each (CS231n's ``conv_forward_naive`` and ``conv_backward_naive``), by forward's name,
    or else the one NAME names as the reports do (``conv_naive``)."""
    plain = getattr(module, f"{name}_forward", None), getattr(module, f"{name}_backward", None)
    if all(callable(f) for f in plain):
        return {f"{name}_forward": plain}
    found = {}
    for attribute in sorted(vars(module)):
        suffix = attribute.removeprefix(f"{name}_forward")
        if suffix != attribute and suffix.startswith("_"):
            pair = getattr(module, attribute), getattr(module, f"{name}_backward{suffix}", None)
            if all(callable(f) for f in pair):
                found[attribute] = pair
    for k in [k for k, c in enumerate(name) if c == "_" and k > 0] if not found else []:
        # NAME as the reports name such a pair: conv_naive for conv_forward_naive
        forward = f"{name[:k]}_forward{name[k:]}"
        pair = getattr(module, forward, None), getattr(module, f"{name[:k]}_backward{name[k:]}", None)
        if all(callable(f) for f in pair):
            return {forward: pair}
    return found


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
    rows = []
    with _Progress(len(runs)) as progress:
        for name, backend, device, dtype in runs:
            progress.start(f"{name} {backend} {dtype}")
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
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for column in COLUMNS:
        table.add_column("worst/tol" if column == "worst" else column, no_wrap=True)
    for row in rows:
        table.add_row(
            row["layer"],
            row["backend"],
            row["device"],
            row["dtype"],
            "-" if row["examples"] is None else str(row["examples"]),
            "-" if row["worst"] is None else f"{row['worst']:.2g}",
            row["verdict"] if row["verdict"] == "pass" else f"[bold red]{row['verdict']}[/]",
        )
    _console(sys.stdout).print(table)


def _console(stream: TextIO) -> Any:
    """A rich console on ``stream``: colours on a terminal; elsewhere plain text, never cut short."""
    from rich.console import Console

    return Console(file=stream, width=None if stream.isatty() else 1000, highlight=False)


class _Progress:
    """A progress bar (rich) on a terminal; elsewhere one plain line per finished task.

    ``start(label)`` names the task now running and ``done(label)`` reports it finished, ``total``
    tasks in all. ``advance(completed, total)`` moves the bar by finer steps than tasks (training
    steps in epochs); then each finished task is also printed above the bar, to stay on screen.
    """

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.stream = stream or sys.stderr
        self.total, self.count, self.steps = total, 0, False
        self.console = _console(self.stream)
        self.bar = Progress(
            BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"),
            console=self.console, transient=True, disable=not self.console.is_terminal,
        )  # fmt: skip
        self.task = self.bar.add_task("", total=total)

    def __enter__(self) -> _Progress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, label: str) -> None:
        self.bar.update(self.task, description=label)

    def advance(self, completed: int, total: int) -> None:
        self.steps = True
        self.bar.update(self.task, completed=completed, total=total)

    def done(self, label: str) -> None:
        self.count += 1
        line = f"[{self.count}/{self.total}] {label}"
        if not self.console.is_terminal:
            print(line, file=self.stream, flush=True)
        elif self.steps:
            self.bar.console.print(line)
            self.bar.update(self.task, description=label)
        else:
            self.bar.update(self.task, advance=1, description=label)


# ---------------------------------------------------------------------------------------------
# train


def _train(args: argparse.Namespace) -> int:

    from handlayers import train

    with _Progress(args.epochs) as progress:

        def epoch(record: dict[str, Any]) -> None:
            progress.done(
                f"epoch {record['epoch']}/{args.epochs}: loss {record['loss']:.4f}, train accuracy "
                f"{record['train_accuracy']:.4f}, test accuracy {record['test_accuracy']:.4f}"
            )

        try:
            result = train.train(
                args.model,
                backend=args.backend,
                epochs=args.epochs,
                seed=args.seed,
                dtype=args.dtype,
                audit_every=args.audit_every,
                on_step=progress.advance,
                on_epoch=epoch,
            )
        except train.AuditFailure as failure:
            print(str(failure))
            return EXIT_MISMATCH
        except train.OracleError as error:
            print(
                f"handlayers train: the gradient audit's oracle failed, so training stopped:\n{error}", file=sys.stderr
            )
            return EXIT_ORACLE
    if args.plot:
        _plot(result["history"], args.plot, f"{args.model}, {args.backend}, seed {args.seed}")
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        print(
            f"{args.model} on {args.backend} ({', '.join(result['devices'])}): test accuracy "
            f"{result['test_accuracy']:.4f} after {result['epochs']} epochs in {result['seconds']:.1f} s; "
            + (
                f"gradient audit: worst error {result['gradient_audit']:.2g} of its tolerance "
                f"over {result['audits']} audits ({result['audit_seconds']:.2f} s)"
                if result["audits"]
                else "no gradient audit"
            )
        )
    return EXIT_OK


def _plot(history: list[dict[str, Any]], path: str, title: str) -> None:
    """The training loss and the accuracies, epoch by epoch, side by side, into ``path``."""
    from matplotlib.figure import Figure  # no pyplot: no window, no global state
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in history]
    figure = Figure(figsize=(9, 3.5), layout="constrained")
    loss, accuracy = figure.subplots(1, 2)
    loss.plot(epochs, [r["loss"] for r in history], marker=".")
    loss.set(xlabel="epoch", ylabel="training loss (cross-entropy)", yscale="log")
    accuracy.plot(epochs, [r["train_accuracy"] for r in history], marker=".", label="train")
    accuracy.plot(epochs, [r["test_accuracy"] for r in history], marker=".", label="test")
    accuracy.set(xlabel="epoch", ylabel="accuracy")
    accuracy.legend()
    for axes in (loss, accuracy):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
    figure.suptitle(f"handlayers train: {title}")
    figure.savefig(path, dpi=120)


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


# ---------------------------------------------------------------------------------------------
# list


def _references(args: argparse.Namespace) -> int:
    """Print every built-in reference: its inputs (those without a gradient marked), keywords with
    their defaults, outputs, layer class and what it computes (its docstring's first sentence)."""
    from handlayers import testing

    entries = [_entry(spec) for spec in testing.SPECS.values()]
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    for entry in entries:
        inputs = [f"{a} (no gradient)" if a in entry["no_gradient"] else a for a in entry["inputs"]]
        keywords = "; " + ", ".join(f"{k}={v!r}" for k, v in entry["keywords"].items()) if entry["keywords"] else ""
        print(f"{entry['name']}({', '.join(inputs)}{keywords}) -> {', '.join(entry['outputs'])}: {entry['layer']}")
        print(f"    {entry['computes']}")
    return 0


def _entry(spec: Any) -> dict[str, Any]:
    """What :func:`_references` says of one spec, as JSON."""
    family = spec.name.partition(".")[0]
    public = importlib.import_module(f"handlayers.{family}")
    layer = spec.layer
    where = f"handlayers.{family}" if getattr(public, layer.__name__, None) is layer else layer.__module__
    parameters = inspect.signature(spec.reference).parameters.values()
    doc = " ".join((inspect.getdoc(spec.reference) or "").split("\n\n")[0].split()).replace("``", "`")
    return {
        "name": spec.name,
        "inputs": list(spec.args),
        "no_gradient": [spec.args[i] for i in spec.labels],
        "keywords": {p.name: p.default for p in parameters if p.default is not p.empty},
        "outputs": list(spec.outputs),
        "gradients": [g for i, g in enumerate(spec.grads) if i not in spec.labels],
        "layer": f"{where}.{layer.__qualname__}",
        "computes": re.split(r"(?<=\.)\s", doc, maxsplit=1)[0],  # the first sentence
    }


def _floats(grads: tuple) -> tuple[float, ...]:
    return tuple(float(g) + 0.0 for g in grads)  # + 0.0 shows -0.0 as 0.0


if __name__ == "__main__":
    sys.exit(main())
