"""The command line: `handlayers check` on lab-style files, right and wrong; `verify`; `lab`; `list`."""

import dataclasses
import importlib
import io
import json
import os
import re
import select
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import handlayers
import handlayers.__main__
from handlayers import testing
from handlayers.__main__ import _Progress, main

LABS = Path(__file__).parent / "labs"
#: the installed package's folder: its frames are the ones a report must leave out
PACKAGE = Path(handlayers.__file__).resolve().parent


def traceback_files(report):
    """The files of the traceback frames a report shows (its ``File "...", line N`` lines)."""
    return [Path(f).resolve() for f in re.findall(r'File "([^"]+)", line \d+', report)]


def package_frames(report):
    """The frames of a report that lie inside the handlayers package (by file, not by text)."""
    return [f for f in traceback_files(report) if f == PACKAGE or PACKAGE in f.parents]


RIGHT = [
    ("Plus", "scalar.plus"),
    ("Square", "scalar.square"),
    ("Affine", "scalar.affine"),
    ("ReLU", "scalar.relu"),
    ("Sigmoid", "scalar.sigmoid"),
    ("SquaredLoss", "scalar.squared_loss"),
    ("HingeLoss", "scalar.hinge_loss"),
    ("MLP", "scalar.mlp"),
]


@pytest.mark.parametrize(("name", "reference"), RIGHT)
def test_a_right_lab_layer_passes(name, reference, capsys):
    """A lab layer written for Python numbers (max, math.exp) passes, in one line."""
    assert main(["check", f"{LABS / 'lab_right.py'}:{name}", "--against", reference, "--examples", "40"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {name} matches {reference} on 40 examples of Python floats")


WRONG = [
    (
        "lab_wrong.py",
        "ReLUThroughAtZero",
        "scalar.relu",
        ["a         = 0.0", "da passes the gradient through at the kink"],
    ),
    ("lab_wrong.py", "SquareNoTwo", "scalar.square", ["dx has a factor of 2 too few"]),
    ("lab_wrong.py", "SquaredLossWrongSign", "scalar.squared_loss", ["dy_hat: ok", "dy has the wrong sign"]),
    ("lab_wrong.py", "AffineIgnoresDout", "scalar.affine", ["ignores dout"]),
    ("lab_wrong.py", "AffineSwapped", "scalar.affine", ["dx and dw are swapped"]),
    ("lab_wrong.py", "AffineTwoGradients", "scalar.affine", ["backward returned 2 gradients, expected 3 (dx, dw, db)"]),
    ("lab_wrong.py", "HingeThroughAtMargin", "scalar.hinge_loss", ["dy_hat passes the gradient through at the kink"]),
    ("lab_wrong.py", "SigmoidOffByAMillionth", "scalar.sigmoid", ["da: WRONG: worst error"]),
    (
        "lab_wrong.py",
        "SigmoidOverflows",
        "scalar.sigmoid",
        ["raised OverflowError", "lab_wrong.py", "math.exp(-a)", "OverflowError: math range error"],
    ),
    ("batched.py", "AffineBiasAveraged", "vector.affine", ["db is averaged, not summed, over the batch"]),
    ("batched.py", "AffineBiasNotSummed", "vector.affine", ["db is missing the sum over the batch"]),
    ("batched.py", "AffineBiasSummedEverywhere", "vector.affine", ["db sums over every axis, where it should sum"]),
    ("batched.py", "AffineTransposedW", "vector.affine", ["dW is transposed"]),
    ("batched.py", "SoftmaxCrossEntropyNoMean", "vector.softmax_cross_entropy", ["dZ is missing the 1/n of the mean"]),
    ("batched.py", "Crashes", "vector.affine", ["raised AttributeError", "return self.X.T @ dA"]),
]


@pytest.mark.parametrize(("file", "name", "reference", "phrases"), WRONG)
def test_a_wrong_layer_fails_with_the_smallest_example_and_the_mistake(file, name, reference, phrases, capsys):
    """A layer with one deliberate mistake exits 1 with a report naming it; the traceback of an
    exception in the user's layer shows the user's frames and none of the package's."""
    assert main(["check", f"{LABS / file}:{name}", "--against", reference]) == 1
    out = capsys.readouterr().out
    for phrase in phrases:
        assert phrase in out
    if "Traceback" in out:
        assert traceback_files(out)
        assert all(f.parent == LABS.resolve() for f in traceback_files(out))
    assert not package_frames(out)


def test_a_user_file_in_a_folder_named_handlayers_keeps_its_frames(tmp_path, capsys):
    """A layer in a folder named handlayers (a clone's default name) that raises shows its own
    frames: only frames inside the package's folder are left out, whatever the paths' text."""
    user = tmp_path / "handlayers" / "my_layer.py"
    user.parent.mkdir()
    user.write_text((LABS / "batched.py").read_text())
    assert main(["check", f"{user}:Crashes", "--against", "vector.affine"]) == 1
    out = capsys.readouterr().out
    assert traceback_files(out) == [user.resolve()]
    assert "return self.X.T @ dA" in out
    assert not package_frames(out)


def test_package_frames_finds_the_packages_files_and_no_other():
    """The frame test above can fail: a frame in the package is found, one beside it is not."""
    inside = f'  File "{PACKAGE / "testing" / "compare.py"}", line 3, in check'
    beside = f'  File "{PACKAGE.parent / "handlayers_user" / "layer.py"}", line 3, in backward'
    assert package_frames(inside + "\n" + beside) == [PACKAGE / "testing" / "compare.py"]


def test_check_draws_arrays_when_asked(capsys):
    """--arrays draws numpy arrays for a scalar reference: the built-in layers pass, a lab layer
    written for Python numbers fails (it returns Python floats, or max() fails on an array)."""
    relu = f"{PACKAGE / 'scalar.py'}:ReLU"  # by the package's own path: any current directory
    assert main(["check", relu, "--against", "scalar.relu", "--arrays", "--examples", "20"]) == 0
    assert "numpy float64 arrays" in capsys.readouterr().out
    assert main(["check", f"{LABS / 'lab_right.py'}:ReLU", "--against", "scalar.relu", "--arrays"]) == 1
    out = capsys.readouterr().out
    assert "(numpy, float64)" in out
    assert "Likely mistake" not in out


def test_check_on_jax_float32(capsys):
    """--backend jax --dtype float32 checks a built-in layer on jax arrays."""
    args = ["check", f"{PACKAGE / 'vector' / 'activations.py'}:Softmax", "--against", "vector.softmax"]
    args += ["--backend", "jax"]
    assert main([*args, "--dtype", "float32", "--examples", "20"]) == 0
    assert "jax float32 arrays" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("target", "reference", "message"),
    [
        ("nowhere.py:ReLU", "scalar.relu", "no file 'nowhere.py'"),
        (f"{LABS / 'lab_right.py'}:Nothing", "scalar.relu", "has no class 'Nothing'"),
        (f"{LABS / 'lab_right.py'}:ReLU", "scalar.nothing", "no reference named 'scalar.nothing'"),
        (f"{LABS / 'lab_right.py'}", "scalar.relu", "expected FILE.py:CLASS"),
        (f"{LABS / 'lab_right.py'}:math", "scalar.relu", "has no class 'math'"),
        (f"{LABS / 'not_a_layer.py'}:NoBackward", "scalar.relu", "NoBackward has no backward method"),
        (f"{LABS}:ReLU", "scalar.relu", "no file"),
    ],
)
def test_check_says_what_cannot_be_found_and_exits_2(target, reference, message, capsys):
    """A missing file, class, reference or method exits 2 with a clear message."""
    assert main(["check", target, "--against", reference]) == 2
    assert message in capsys.readouterr().err


def test_check_of_python_floats_in_float32_is_a_usage_error(capsys):
    """A scalar layer is checked on Python floats, which are float64: --dtype float32 asks for
    --arrays instead of reporting every result as of the wrong dtype."""
    args = ["check", f"{LABS / 'lab_right.py'}:ReLU", "--against", "scalar.relu", "--dtype", "float32"]
    assert main(args) == 2
    assert "Python floats, which are float64: add --arrays (or --backend) for float32 arrays" in capsys.readouterr().err
    ours = ["check", f"{PACKAGE / 'scalar.py'}:ReLU", "--against", "scalar.relu", "--dtype", "float32"]
    assert main([*ours, "--arrays", "--examples", "10"]) == 0
    assert "numpy float32 arrays" in capsys.readouterr().out


def test_check_refuses_a_file_that_is_not_python(tmp_path, capsys):
    """A target that Python cannot import as a module exits 2."""
    (tmp_path / "layer.txt").write_text("not python")
    assert main(["check", f"{tmp_path / 'layer.txt'}:X", "--against", "scalar.relu"]) == 2
    assert "cannot import" in capsys.readouterr().err


def test_verify_passes_and_writes_json(capsys):
    """`verify --json` checks every built-in layer on the chosen backend and reports it as data."""
    assert main(["verify", "--backend", "numpy", "--examples", "3", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["ok"] is True
    assert {(r["layer"], r["dtype"]) for r in report["results"]} == {
        (name, dtype) for name in testing.SPECS for dtype in ("float64", "float32")
    }
    assert all(r["verdict"] == "pass" and r["examples"] == 3 for r in report["results"])
    runs = 2 * len(testing.SPECS)  # every layer in two dtypes
    assert f"[1/{runs}] scalar.plus numpy float64: pass" in captured.err  # plain lines off a terminal


def test_verify_fails_with_a_table_and_the_report(monkeypatch, capsys):
    """A built-in layer that goes wrong fails `verify` (exit 1): a FAIL row and its report."""

    class Wrong(testing.SPECS["scalar.square"].layer):
        def backward(self, dout):
            return -super().backward(dout)

    spec = dataclasses.replace(testing.SPECS["scalar.square"], layer=Wrong)
    monkeypatch.setattr(testing, "SPECS", {"scalar.plus": testing.SPECS["scalar.plus"], "scalar.square": spec})
    assert main(["verify", "--backend", "numpy", "--backend", "jax", "--examples", "5"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["layer", "backend", "device", "dtype", "examples", "worst/tol", "verdict"]
    assert "scalar.square  numpy    cpu" in out
    assert "FAIL" in out
    assert "dx has the wrong sign" in out
    assert "scalar.plus    numpy    cpu     float64  5         0          pass" in out
    assert "4 passed, 4 failed" in out


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self):
        return True


def test_progress_draws_a_bar_on_a_terminal():
    """On a terminal, progress is one bar (rich) redrawn in place with the count and the task, erased at the end."""
    stream = Terminal()
    with _Progress(2, stream) as progress:
        progress.start("first")
        progress.done("first")
        progress.start("second")
        progress.bar.refresh()
    text = stream.getvalue()
    assert "1/2" in text
    assert "second" in text
    assert "[1/2]" not in text  # no plain lines
    assert text.endswith("\x1b[2K")  # the bar's line erased


def test_progress_by_steps_prints_each_finished_task_above_the_bar():
    """With a bar moved by steps (training), each finished task (epoch) is printed once and stays."""
    stream = Terminal()
    with _Progress(2, stream) as progress:
        progress.advance(5, 10)
        progress.done("epoch 1")
        progress.bar.refresh()
    text = stream.getvalue()
    assert text.count("[1/2] epoch 1\n") == 1
    assert "5/10" in text


def test_lab_prints_the_worked_examples(capsys):
    """`handlayers lab` prints the lab's numbers as the scalar layers compute them."""
    assert main(["lab"]) == 0
    out = capsys.readouterr().out
    assert "(da, db, dc) = (10.0, 10.0, 10.0)" in out
    assert "(dx, dw1, db1, dw2, db2, dy) = (0.0, 0.0, 0.0, 0.0, 1.0, -1.0)" in out
    assert "Sigmoid(2) = 0.8807970779778823" in out


def test_list_names_every_reference_with_its_inputs_keywords_and_layer(capsys):
    """`handlayers list` gives each built-in reference's inputs (those without a gradient marked),
    keywords and outputs, a layer that is the spec's own, and its docstring's first sentence."""
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vector.conv2d(X, W, b; stride=1, pad=0) -> output: handlayers.vector.Conv2d\n" in out
    assert "vector.hinge_loss(S, labels (no gradient)) -> output: handlayers.vector.HingeLoss\n" in out
    assert "\n    `X @ W + b` for X (n, d_in), W (d_in, d_out), b (d_out,).\n" in out
    assert main(["list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in entries] == list(testing.SPECS)
    for entry in entries:
        spec = testing.SPECS[entry["name"]]
        module, _, name = entry["layer"].rpartition(".")
        assert getattr(importlib.import_module(module), name) is spec.layer
        assert entry["inputs"] == list(spec.args)
        assert entry["gradients"] == [g for g in spec.grads if g[1:] not in entry["no_gradient"]]
        assert entry["computes"].endswith(".")
    by_name = {e["name"]: e for e in entries}
    assert by_name["vector.lstm_step"]["outputs"] == ["h", "c"]
    assert by_name["vector.embedding"]["no_gradient"] == ["idx"]
    assert by_name["vector.softmax"]["keywords"] == {"axis": -1}
    # a layer shared by two families is named in the reference's own
    assert by_name["vector.relu"]["layer"] == "handlayers.vector.ReLU"
    assert by_name["vector.affine"]["computes"].startswith("`X @ W + b`")


class Unlisted:
    """A layer its family does not export."""


def test_list_names_a_layer_its_family_does_not_export_by_its_module(monkeypatch, capsys):
    spec = dataclasses.replace(testing.SPECS["vector.tanh"], layer=Unlisted)
    monkeypatch.setitem(testing.SPECS, "vector.tanh", spec)
    assert main(["list"]) == 0
    assert "vector.tanh(A) -> output: test_cli.Unlisted\n" in capsys.readouterr().out.replace(
        "tests.test_cli", "test_cli"
    )


def test_unknown_command_is_a_usage_error():
    """An unknown command exits with argparse's usage error, 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2


def test_a_reader_that_goes_away_ends_the_command_quietly(monkeypatch, capsys):
    """handlayers list | head: the closed pipe ends the command with the shell's SIGPIPE status,
    no traceback, and nothing left to write at exit."""
    read, write = os.pipe()
    os.close(read)
    pipe = os.fdopen(write, "w", buffering=1)  # line-buffered: the first line meets the closed pipe
    monkeypatch.setattr(sys, "stdout", pipe)
    try:
        assert main(["list"]) == 128 + 13
        print("after the pipe closed", file=pipe)
        pipe.flush()  # what Python's exit does: now into devnull, without an error
    finally:
        pipe.close()
    assert capsys.readouterr().err == ""


def test_another_broken_pipe_is_an_error_not_the_end_of_the_output(monkeypatch, tmp_path):
    """A pipe to a child process that breaks is raised; stdout (a file, a capture, a pipe still
    read) is not a reader gone; where poll is missing (Windows), a broken pipe ends the output."""

    def breaks(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(handlayers.__main__, "_references", breaks)
    with pytest.raises(BrokenPipeError):
        main(["list"])
    read, write = os.pipe()
    with open(tmp_path / "out.txt", "w") as file, os.fdopen(read), os.fdopen(write, "w") as pipe:
        assert not handlayers.__main__._reader_gone(file)
        assert not handlayers.__main__._reader_gone(pipe)  # its reader is still there
    assert not handlayers.__main__._reader_gone(io.StringIO())  # no file: no pipe of ours
    near, far = socket.socketpair()  # a socket whose peer is gone hangs up (so does a pipe, elsewhere)
    far.close()
    with near:
        assert handlayers.__main__._reader_gone(near)
    monkeypatch.delattr(select, "poll")
    with open(tmp_path / "out.txt", "w") as file:
        assert handlayers.__main__._reader_gone(file)


def test_a_closed_pipe_in_a_real_process_leaves_no_traceback():
    """The same through python -m handlayers, its stdout a pipe whose reader is gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "handlayers", "list"], stdout=write, stderr=subprocess.PIPE, text=True, check=False
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (128 + 13, "")


def test_a_file_that_fails_to_import_exits_2_with_its_traceback(tmp_path, capsys):
    """A user file that raises on import exits 2, showing the user's line."""
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    assert main(["check", f"{tmp_path / 'broken.py'}:X", "--against", "scalar.relu"]) == 2
    err = capsys.readouterr().err
    assert "importing" in err
    assert "ModuleNotFoundError" in err


def test_examples_must_be_positive(capsys):
    """--examples 0 is a usage error, not a crash."""
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "x.py:X", "--against", "scalar.relu", "--examples", "0"])
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err
