"""`handlayers check` on code as people write it: every convention, right and wrong.

Each right layer passes in float64 and float32; each wrong one exits 1 with a report that names
its mistake, or shows a typical failing example that makes it plain.
"""

from pathlib import Path

import pytest

from handlayers.__main__ import main

LABS = Path(__file__).parent / "labs"

DENSE = ["--shapes", "X: n d_in; W: d_in d_out; b: d_out"]
ATTRIBUTES = ["--init", "W,b", "--grad", "dW=dW", "--grad", "db=db"]
SCRATCH_DENSE = [
    *("--init", "W.0,W.1", "--param", "W=weights", "--param", "b=biases:row"),
    *("--grad", "dX=dinputs", "--grad", "dW=dweights", "--grad", "db=dbiases", "--output", "output"),
]
SCRATCH_ACTIVATION = ["--grad", "dA=dinputs", "--output", "output"]
MSE_AS_WRITTEN = [
    "--shapes",
    "Y_hat: n k; Y: n k",
    "--no-grad",
    "Y",
    "--backward-args",
    "Y_hat,Y",
    "--grad",
    "dY_hat=dinputs",
]
MSE = [*MSE_AS_WRITTEN, "--forward", "calculate"]  # the book's loss: forward per row, calculate their mean
GELU = ["--shapes", "x: n d"]

# assignment 3's loss, written with the mask as an index: it takes a boolean mask
TEMPORAL = ["--shapes", "x: n t v", "--labels", "y: n t < v", "--masks", "mask: n t"]

RIGHT = [
    ("cs231n.py:affine", "vector.affine", []),
    ("cs231n.py:relu", "vector.relu", []),
    ("cs231n.py:tanh", "jax.numpy:tanh", ["--shapes", "x: n d"]),
    ("cs231n.py:batchnorm", "refs.py:batch_norm", ["--shapes", "X: n d; gamma: d; beta: d", "--kw", "eps=0.5"]),
    ("cs231n.py:softmax_loss", "vector.softmax_cross_entropy", []),
    ("cs231n.py:svm_loss", "vector.hinge_loss", []),
    ("cs231n.py:l2_loss", "vector.squared_loss", []),
    ("cs231n.py:temporal_softmax_loss", "refs.py:temporal_softmax_loss", TEMPORAL),
    ("cs231n.py:rnn_step", "vector.rnn_step", []),
    ("cs231n.py:rnn", "vector.rnn", []),
    ("cs231n.py:lstm_step", "vector.lstm_step", []),  # two outputs, each before the cache
    ("scratch.py:Layer_Dense", "vector.affine", SCRATCH_DENSE),
    ("scratch.py:Activation_ReLU", "vector.relu", SCRATCH_ACTIVATION),
    ("scratch.py:Activation_Sigmoid", "vector.sigmoid", SCRATCH_ACTIVATION),
    ("scratch.py:Loss_MeanSquaredError", "refs.py:mean_squared_error", MSE),
    # the book's later loss class: calculate adds to running sums that new_pass starts
    ("scratch.py:Loss_MeanSquaredError_pass", "refs.py:mean_squared_error", [*MSE, "--setup", "new_pass"]),
    ("scratch.py:SquaredLoss", "vector.squared_loss", []),
    ("scratch.py:SquaredLoss_dout_one", "vector.squared_loss", []),
    ("attributes.py:Dense", "vector.affine", ATTRIBUTES),
    ("attributes.py:Dense", "refs.py:dense", [*ATTRIBUTES, *DENSE]),
    ("attributes.py:Linear", "refs.py:linear", [*ATTRIBUTES, "--shapes", "X: n d_in; W: d_out d_in; b: d_out"]),
    (
        "attributes.py:Gate",
        "refs.py:multiply",
        ["--shapes", "x: n d; y: n d", "--backward-args", "dout,x", "--kinks", "0.5"],
    ),
    ("attributes.py:Gate_stored", "refs.py:multiply", ["--shapes", "x: n d; y: n d", "--backward-args", "dout,@x"]),
    ("cs231n.py:leaky_relu", "vector.leaky_relu", []),
    ("cs231n.py:hard_tanh", "refs.py:hard_tanh_closed", ["--shapes", "x: n d", "--kinks", "-1,1"]),
    ("methods.py:Svm_loss.loss", "vector.hinge_loss", []),
    ("methods.py:Softmax_loss.loss", "vector.softmax_cross_entropy", ["--init", "Z.1"]),
    ("kernels.py:gelu", "jax.nn.gelu", GELU),
    ("kernels.py:relu", "vector.relu", []),
]


def run(target, against, flags, *more):
    file, _, name = target.partition(":")
    against = str(LABS / against) if against.startswith("refs.py") else against
    return main(["check", f"{LABS / file}:{name}", "--against", against, *flags, *more])


@pytest.mark.parametrize(("target", "against", "flags"), RIGHT, ids=[f"{t}-{a}" for t, a, _ in RIGHT])
def test_a_right_layer_in_any_convention_passes(target, against, flags, dtype, capsys):
    """A right layer, written in its own convention and checked with that convention's flags,
    passes in float64 and float32."""
    assert run(target, against, flags, "--dtype", dtype, "--examples", "30") == 0, capsys.readouterr().out
    assert capsys.readouterr().out.startswith("ok: ")


_FROM_DOUT = (
    "Likely mistake: dx is computed from dout where it should be from x (a mask or derivative taken from the wrong "
    "array).\n"
)

WRONG = [
    ("cs231n.py:affine_dw_transposed", "vector.affine", [], ["dW is transposed"]),
    ("cs231n.py:affine_db_mean", "vector.affine", [], ["db is averaged, not summed, over the batch"]),
    ("cs231n.py:relu_dout_mask", "vector.relu", [], ["dA is computed from dout where it should be from A"]),
    ("cs231n.py:relu_in_place", "vector.relu", [], ["dout: backward wrote into it"]),
    ("cs231n.py:relu_no_return", "vector.relu", [], ["dA: WRONG: is a NoneType value, expected numpy"]),
    (
        "cs231n.py:tanh_at_output",
        "jax.numpy:tanh",
        ["--shapes", "x: n d"],
        ["dx is the derivative taken at the output where it should be at x"],
    ),
    (
        "cs231n.py:tanh_at_input",
        "jax.numpy:tanh",
        ["--shapes", "x: n d"],
        ["dx is the derivative written for the output but computed from x"],
    ),
    ("cs231n.py:softmax_loss_no_mean", "vector.softmax_cross_entropy", [], ["dZ is missing the 1/n of the mean"]),
    # shown with the mask as drawn, not as the code left it
    (
        "cs231n.py:temporal_softmax_loss_sets_mask",
        "refs.py:temporal_softmax_loss",
        TEMPORAL,
        ["  mask      = [[False]]\n", "mask: forward or backward wrote into this input"],
    ),
    (
        "cs231n.py:rnn_step_at_output",
        "vector.rnn_step",
        [],
        ["Likely mistake: dx, dh_prev, dWx, dWh and db are computed with tanh's derivative taken at its output"],
    ),
    (
        "cs231n.py:rnn_step_from_input",
        "vector.rnn_step",
        [],
        [
            "Likely mistake: dx, dh_prev, dWx, dWh and db are computed with tanh's derivative written for its "
            "output but computed from its input: 1 - a**2"
        ],
    ),
    # through every step of the sequence (the reference's lax.scan)
    (
        "cs231n.py:rnn_at_output",
        "vector.rnn",
        [],
        ["Likely mistake: dx, dh0, dWx, dWh and db are computed with tanh's derivative taken at its output"],
    ),
    # an LSTM step (two outputs) wrong at one of its sites, or at every sigmoid
    (
        "sequence.py:LSTMStepCellTanhFromInput",
        "vector.lstm_step",
        [],
        [
            "Likely mistake: dx, dh_prev, dc_prev, dWx, dWh and db are computed with tanh's derivative written for "
            "its output but computed from its input in jnp.tanh(c) (line 32 of reference/vector/recurrent.py): 1 - a**2"
        ],
    ),
    (
        "sequence.py:LSTMStepGateTanhAtOutput",
        "vector.lstm_step",
        [],
        [
            "Likely mistake: dx, dh_prev, dWx, dWh and db are computed with tanh's derivative taken at its output in "
            "jnp.tanh(a_g) (line 31 of reference/vector/recurrent.py): 1 - tanh(out)**2"
        ],
    ),
    (
        "sequence.py:LSTMStepSigmoidAtOutput",
        "vector.lstm_step",
        [],
        [
            "Likely mistake: dx, dh_prev, dWx, dWh and db are computed with sigmoid's derivative taken at its "
            "output wherever it is called (3 places): sigmoid(out) * (1 - sigmoid(out)), where out = sigmoid(a)"
        ],
    ),
    (
        "cs231n.py:lstm_step_no_dnext_c",
        "vector.lstm_step",
        [],
        [
            "Likely mistake: dx, dh_prev, dc_prev, dWx, dWh and db are computed without dc "
            "(as if the gradient of c were 0)"
        ],
    ),
    (
        "sequence.py:LSTMStepForgetGateAtOutput",
        "vector.lstm_step",
        [],
        [
            "are computed with sigmoid's derivative taken at its output in sigmoid(a_f) "
            "(line 31 of reference/vector/recurrent.py)"
        ],
    ),
    (
        "cs231n.py:conv_flipped",
        "vector.conv2d",
        ["--kw", "stride=1", "--kw", "pad=0"],
        ["Likely mistake: dW has its window flipped (every axis after the first two reversed)"],
    ),
    ("cs231n.py:svm_loss_flipped", "vector.hinge_loss", [], ["dS has the wrong sign"]),
    ("cs231n.py:l2_loss_no_two", "vector.squared_loss", [], ["dY_hat has a factor of 2 too few"]),
    ("scratch.py:Layer_Dense_dweights_mean", "vector.affine", SCRATCH_DENSE, ["dW is averaged, not summed"]),
    ("scratch.py:Activation_ReLU_no_copy", "vector.relu", SCRATCH_ACTIVATION, ["dout: backward wrote into it"]),
    (
        "scratch.py:Activation_Sigmoid_at_input",
        "vector.sigmoid",
        SCRATCH_ACTIVATION,
        ["dA is the derivative written for the output but computed from A"],
    ),
    (
        "scratch.py:Activation_Sigmoid_scales_state",
        "vector.sigmoid",
        SCRATCH_ACTIVATION,
        ["backward called a second time gave other values for dA", "backward wrote into forward's output"],
    ),
    (
        "scratch.py:Loss_MeanSquaredError_rows",
        "refs.py:mean_squared_error",
        MSE,
        ["dY_hat is k times too large (k entries a row): a mean over the n rows, not over every entry"],
    ),
    (
        "scratch.py:SquaredLoss_flipped",
        "vector.squared_loss",
        [],
        ["dY_hat and dY all have the wrong sign (every sign is flipped: not a swap)"],
    ),
    ("attributes.py:Dense_dW_over_n", "vector.affine", ATTRIBUTES, ["dW is averaged, not summed, over the batch"]),
    (
        "attributes.py:Gate_no_dout",
        "refs.py:multiply",
        ["--shapes", "x: n d; y: n d", "--backward-args", "dout,x"],
        ["dx ignores dout", "dy ignores dout"],
    ),
    ("attributes.py:Dense_zero_forward", "vector.affine", ATTRIBUTES, ["A typical failing example", "output: WRONG"]),
    # torch's layout against X @ W + b: a shape error where d_in != d_out, else a transposed dW
    ("attributes.py:Linear", "vector.affine", ATTRIBUTES, ["Linear raised ValueError", "X @ self.W.T"]),
    (
        "attributes.py:Gate_wrong_input",
        "refs.py:multiply",
        ["--shapes", "x: n d; y: n d", "--backward-args", "dout,x"],
        ["A typical failing example", "dy: WRONG"],
    ),
    ("methods.py:Svm_loss_through.loss", "vector.hinge_loss", [], ["dS passes the gradient through at the kink"]),
    ("kernels.py:gelu_sign", "jax.nn.gelu", GELU, ["gelu_sign does not match jax.nn.gelu (jax, float64)"]),
    ("kernels.py:relu_dout_mask", "vector.relu", [], ["dA is computed from dout where it should be from A"]),
    # right but for the reference's own convention at its kinks: jnp.clip's gradient at -1 and 1 is 0.5
    (
        "cs231n.py:hard_tanh",
        "refs.py:hard_tanh",
        ["--shapes", "x: n d", "--kinks", "-1,1"],
        ["Likely mistake: dx differs only at a kink, where it takes one side's gradient and the reference the mean"],
    ),
    # the book's loss checked at its forward, one loss per row: the report says to check calculate
    (
        "scratch.py:Loss_MeanSquaredError",
        "refs.py:mean_squared_error",
        MSE_AS_WRITTEN,
        [
            "output: WRONG: has shape (1,), expected (): one value per row, whose mean is the reference's",
            "--forward calculate",
        ],
    ),
    # the book's later loss class without new_pass: its AttributeError, and what sets the attribute
    (
        "scratch.py:Loss_MeanSquaredError_pass",
        "refs.py:mean_squared_error",
        MSE,
        [
            "raised AttributeError",
            "Likely mistake: accumulated_sum is set by new_pass(), which the check calls only when told: "
            "--setup new_pass.",
        ],
    ),
    # told another method, which reads the attribute: the method that sets it goes first
    (
        "scratch.py:Loss_MeanSquaredError_pass",
        "refs.py:mean_squared_error",
        [*MSE, "--setup", "calculate_accumulated"],
        [
            "Likely mistake: accumulated_sum is set by new_pass(), which the check calls only when told: "
            "--setup new_pass,calculate_accumulated."
        ],
    ),
    # the same reference's 0.5 at 0 does not hide a mask taken from dout
    ("cs231n.py:relu_dout_mask", "refs.py:relu_split", ["--shapes", "x: n d"], [_FROM_DOUT]),
]


@pytest.mark.parametrize(("target", "against", "flags", "phrases"), WRONG, ids=[f"{t}-{a}" for t, a, *_ in WRONG])
def test_a_wrong_layer_in_any_convention_fails_naming_its_mistake(target, against, flags, phrases, capsys):
    """A layer with one realistic mistake, in its own convention, exits 1 with a report that
    names the mistake or shows a typical example where it is plain."""
    assert run(target, against, flags) == 1
    out = capsys.readouterr().out
    for phrase in phrases:
        assert phrase in out, out


def test_check_help_shows_every_flag_with_an_example(capsys):
    """`handlayers check --help` shows each flag used in an example, and an example per convention."""
    import argparse

    commands = argparse.ArgumentParser().add_subparsers()
    from handlayers.__main__ import _check_parser

    parser = _check_parser(commands)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.option_strings[0] in action.help, action.dest
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = capsys.readouterr().out
    for convention in ("layers.py:affine", "softmax_loss", "--param W=weights", "backward() takes no dout"):
        assert convention in out
    for convention in ("Svm_loss.loss", "custom VJP", "--labels", "exit status"):
        assert convention in out


VARIANTS = [
    ("attributes.py:Linear", "vector.linear", ATTRIBUTES),
    # the "from scratch" loss takes (samples, outputs) only: --shapes narrows the built-in reference,
    # which draws any shape, to those
    ("scratch.py:Loss_MeanSquaredError", "vector.mean_squared_error", MSE),
]


@pytest.mark.parametrize(("target", "against", "flags"), VARIANTS)
def test_a_common_variant_passes_against_its_own_built_in_reference(target, against, flags, capsys):
    """torch's (out, in) weight layout and the mean over every entry have built-in references of
    their own, so right code in those conventions is not called wrong."""
    from handlayers import testing

    if against not in testing.SPECS:
        pytest.skip(f"{against} is added with issue 13's layers; this test runs once it is in SPECS")
    assert run(target, against, flags, "--examples", "30") == 0, capsys.readouterr().out
