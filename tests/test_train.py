"""Training on the digits: the split, reproducibility, both backends, the audit, data parallelism, the command."""

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from handlayers import nn, train, vector
from handlayers.__main__ import main
from handlayers.optim import SGD

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class OffAffine(vector.Affine):
    """An Affine whose dW is off by one part in a million: a mistake no training curve would show."""

    def _backward(self, dA):
        dX, dW, db = super()._backward(dA)
        return dX, dW * (1 + 1e-6), db


class LeakyReLU(vector.ReLU):
    """A ReLU that passes a hundredth of the gradient where its input is negative."""

    def _backward(self, da):
        return self._xp.where(self.a > 0, da, 0.01 * da)

    def _forward(self, a):
        self.a = a
        return super()._forward(a)


def mlp_with(position, layer):
    """The default MLP with its piece at ``position`` computed by ``layer``."""
    net, _ = train.MODELS["mlp"]()
    pieces = list(net.pieces)
    pieces[position] = dataclasses.replace(pieces[position], layer=layer)
    return nn.Sequential(*pieces)


def test_digits_split_is_the_last_fifth_of_a_seeded_shuffle():
    """1797 digits: 1438 to train, the last 359 of the seed's order to test, pixels in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X_train, y_train, X_test, y_test = train.load_digits(seed=3)
    assert (len(y_train), len(y_test)) == (1438, 359)
    order = np.random.default_rng(3).permutation(1797)
    np.testing.assert_array_equal(X_test, digits.data[order[-359:]] / 16)
    np.testing.assert_array_equal(y_train, digits.target[order[:-359]])
    assert X_train.min() == 0
    assert X_train.max() == 1
    assert not np.array_equal(train.load_digits(seed=4)[3], y_test)
    assert train.load_digits(seed=3, shape=(1, 8, 8))[2].shape == (359, 1, 8, 8)


def without_time(result):
    return {k: v for k, v in result.items() if k not in ("seconds", "audit_seconds")}


def test_same_seed_gives_the_same_numbers():
    """Two runs from one seed give the same losses, accuracies and audit, bit for bit."""
    first = train.train("mlp", epochs=2, seed=5)
    assert without_time(first) == without_time(train.train("mlp", epochs=2, seed=5))
    assert first["history"] != train.train("mlp", epochs=2, seed=6)["history"]


@pytest.mark.jax
def test_numpy_and_jax_reach_the_same_accuracy():
    """From one seed the jitted jax step trains as numpy does: the same accuracies, the losses to rounding."""
    on_numpy = train.train("mlp", backend="numpy", epochs=3)
    on_jax = train.train("mlp", backend="jax", epochs=3)
    for a, b in zip(on_numpy["history"], on_jax["history"], strict=True):
        assert a["test_accuracy"] == b["test_accuracy"]
        assert a["train_accuracy"] == b["train_accuracy"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-12)
    assert on_jax["devices"] == ["cpu:0"]
    assert on_numpy["test_accuracy"] > 0.85  # three epochs learn the digits


def test_audit_runs_at_the_first_step_every_k_steps_and_the_last():
    """With 44 steps an epoch, 2 epochs and K = 40: the audit runs at steps 0, 40, 80 and 87."""
    steps = []
    result = train.train("mlp", epochs=2, audit_every=40, on_step=lambda done, total: steps.append((done, total)))
    assert steps[-1] == (88, 88)
    assert len(steps) == 88
    assert result["audits"] == 4
    assert 0 < result["gradient_audit"] <= 1


def test_audit_stops_training_at_a_wrong_layer():
    """A network with one wrong Affine is stopped at the first audit, with the checker's report of that layer."""
    epochs = []
    with pytest.raises(train.AuditFailure) as failure:
        train.train("mlp", epochs=2, network=mlp_with(2, OffAffine), on_epoch=epochs.append)
    report = str(failure.value)
    assert report.startswith("gradient audit at step 0: layer 2 (vector.affine) dW is off by")
    assert "layer 2 (vector.affine) is wrong:" in report
    assert "OffAffine" in report
    assert "layer 0" not in report.split("\n\n", 1)[1]  # the right layers pass the checker alone
    assert epochs == []


def test_audit_names_a_wrong_activation_not_the_layers_it_feeds():
    """A wrong ReLU makes the Affine before it receive wrong gradients; the report names the ReLU."""
    with pytest.raises(train.AuditFailure) as failure:
        train.train("mlp", epochs=1, network=mlp_with(1, LeakyReLU))
    report = str(failure.value)
    assert re.match(r"gradient audit at step 0: layer 0 \(vector\.affine\) d[Wb] is off", report)
    found = report.split("\n\n", 1)[1]
    assert found.startswith("layer 1 (vector.relu) is wrong:")
    assert "layer 0 (vector.affine) is wrong" not in found


def test_audit_failure_without_a_wrong_layer_says_so():
    """When the layers pass alone but the network does not (the optimizer saw other gradients), the report says so."""
    net, _ = train.MODELS["mlp"]()
    X, y, _, _ = train.load_digits(0)
    params = net.init(0)
    _, grads = net.loss_and_gradients(params, X[:8], y[:8])
    grads[0] = (grads[0][0] + 1e-3, grads[0][1])
    with pytest.raises(train.AuditFailure, match="every layer passes the checker on its own in this batch"):
        train.Audit(net, "numpy", np.float64)(7, params, grads, X[:8], y[:8])


def test_an_audit_asked_before_the_oracle_is_compiled_waits_for_it():
    """While the oracle compiles, audits wait in `pending`, in order; `poll` leaves them until it is
    ready, then runs them all, and a wrong one among them fails with the step it audited."""
    from concurrent.futures import Future

    net, _ = train.MODELS["mlp"]()
    X, y, _, _ = train.load_digits(0)
    params = net.init(0)
    _, grads = net.loss_and_gradients(params, X[:8], y[:8])
    audit = train.Audit(net, "numpy", np.float64)
    audit._ready = compiling = Future()
    assert audit(0, params, grads, X[:8], y[:8]) is None
    wrong = [(grads[0][0] * (1 + 1e-6), grads[0][1]), *grads[1:]]
    assert audit(5, params, wrong, X[:8], y[:8]) is None
    assert [p[0] for p in audit.pending] == [0, 5]
    assert audit.poll() == []
    assert (audit.count, len(audit.pending)) == (0, 2)
    compiling.set_result(None)
    with pytest.raises(train.AuditFailure, match=r"^gradient audit at step 5: layer 0 \(vector\.affine\) dW"):
        audit.poll()
    assert (audit.count, audit.pending) == (2, [])
    assert audit.worst > 1


def test_the_oracle_compiles_beside_training_for_the_batches_it_audits():
    """`start` compiles the oracle for the batch's shapes in a thread: after it, an audit of such a
    batch runs at once and agrees with one made without it."""
    net, _ = train.MODELS["mlp"]()
    X, y, _, _ = train.load_digits(0)
    params = net.init(0, np.float32)
    _, grads = net.loss_and_gradients(params, X[:8].astype(np.float32), y[:8])
    started = train.Audit(net, "numpy", np.float32)
    started.start(params, X[:8], y[:8])
    started.finish()
    assert started.oracle._cache_size() == 1
    assert (
        0
        < started(0, params, grads, X[:8], y[:8])
        == train.Audit(net, "numpy", np.float32)(0, params, grads, X[:8], y[:8])
    )
    assert started.oracle._cache_size() == 1  # the audit used what `start` compiled


def test_the_oracle_starts_compiling_before_the_data_loads(monkeypatch, dtype):
    """`train` starts the oracle's compilation before it loads the digits, for the very batches it
    then audits: the audits compile nothing more."""
    calls, audits = [], []
    start, load = train.Audit.start, train.load_digits

    def starting(audit, *args):
        calls.append("start")
        audits.append(audit)
        return start(audit, *args)

    monkeypatch.setattr(train.Audit, "start", starting)
    monkeypatch.setattr(train, "load_digits", lambda *args: calls.append("load") or load(*args))
    result = train.train("mlp", epochs=1, dtype=dtype)
    assert calls == ["start", "load"]
    assert result["audits"] == 2
    assert audits[0].oracle._cache_size() == 1


def test_the_audit_thread_imports_what_the_audits_need():
    """In a fresh process, `start`'s thread imports the checker's tolerance, and the first audit
    then imports nothing."""
    probe = """
import json, sys, threading, numpy as np
from handlayers import train
where = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "handlayers.testing.tolerance":
            where.append(threading.current_thread().name)
sys.meta_path.insert(0, Spy())
net, shape = train.MODELS["mlp"]()
audit = train.Audit(net, "numpy", np.float64)
params = net.init(0)
X, y = np.random.default_rng(0).random((8, *shape)), np.arange(8)
audit.start(params, X, y)
audit.finish()
before = set(sys.modules)
_, grads = net.loss_and_gradients(params, X, y)
ratio = audit(0, params, grads, X, y)
print(json.dumps({"where": where, "new": sorted(set(sys.modules) - before), "ratio": ratio}))
"""
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert len(result["where"]) == 1
    assert result["where"][0].startswith("handlayers-audit")
    assert result["new"] == []
    assert 0 < result["ratio"] <= 1


def test_training_without_scikit_learn_says_what_to_install(monkeypatch):
    """Without scikit-learn, `train` says which extra to install before it starts the audit's work."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else find_spec(name, *a)
    )
    monkeypatch.setattr(train.Audit, "start", lambda *a: pytest.fail("the audit started"))
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install '.[train]'")):
        train.train("mlp", epochs=1)


def test_audit_every_0_trains_without_an_audit(capsys):
    """`audit_every=0` (`--audit-every 0`) trains the same, audits nothing and says so."""
    result = train.train("mlp", epochs=1, audit_every=0)
    assert (result["gradient_audit"], result["audits"], result["audit_seconds"]) == (None, 0, 0.0)
    assert without_time(train.train("mlp", epochs=1))["history"] == result["history"]
    assert main(["train", "--epochs", "1", "--audit-every", "0"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("; no gradient audit")


DATA_PARALLEL = """
import json, jax, numpy as np
jax.config.update("jax_enable_x64", True)
from handlayers import train
from handlayers.optim import SGD

started, start = [], train.Audit.start
train.Audit.start = lambda audit, *args: started.append(audit) or start(audit, *args)
net, _ = train.MODELS["mlp"]()
X, y, _, _ = train.load_digits(0)
X, y = X[:32].astype(np.float32), y[:32]
params = net.init(0, np.float32, jax.numpy)
step = train.train_step(net, SGD())
sharded, put = train.jax_runner(step)
Xs, ys = put(X[None], y[None])
_, _, _, grads = sharded(params, (), Xs, ys, 0)
_, _, _, single = jax.jit(step)(params, (), X, y)  # one device
audit = train.Audit(net, "jax", np.float32)
from handlayers.testing import Example
params64 = [tuple(np.asarray(a, np.float64) for a in p) for p in params]
example = Example((X.astype(np.float64), *(a for p in params64 for a in p), y), {}, 1.0)
ratios = [
    float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(s, np.float64))))
    / train._tolerance(audit.degree, example, np.float32, np.asarray(s, np.float64))
    for gs, ss in zip(grads, single) for g, s in zip(gs, ss)
]
print(json.dumps({
    "devices": len(jax.devices()),
    "batch_split": len({str(s.index) for s in Xs.addressable_shards}),
    "replicated": all(g.sharding.is_fully_replicated for gs in grads for g in gs),
    "ratios": ratios,
    "trained": train.train("mlp", backend="jax", epochs=1, batch_size=30)["devices"],
    "waits": train._one_step_at_a_time(jax.devices()),
    "audit_compiles": started[0].oracle._cache_size(),
}))
"""


@pytest.mark.jax
def test_data_parallel_gradients_match_one_device():
    """On 4 CPU devices the batch is split, the gradients replicated and one device's within the checker's tolerance."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-X", "faulthandler", "-c", DATA_PARALLEL]  # faulthandler: Python's stack on an abort
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, _what_killed(done.stderr)
    result = json.loads(done.stdout)
    assert result["devices"] == result["batch_split"] == 4
    assert result["waits"]  # each step done before the next (see test_the_runner_waits_when_told_to)
    assert result["audit_compiles"] == 1  # batches of 30 rounded up to 32 before the oracle compiled for them
    assert result["replicated"]
    assert len(result["ratios"]) == 4
    assert max(result["ratios"]) <= 1
    assert result["trained"] == [f"cpu:{i}" for i in range(4)]  # `train` itself ran on all four


def _what_killed(stderr: str) -> str:
    """What a process said before it died, for a failure message: XLA's fatal lines and Python's
    first, then the rest without native frames and faulthandler's list of modules."""
    lines = stderr.splitlines()
    fatal = [line for line in lines if re.match(r"F\d{4} |Fatal Python error", line)]
    rest = [line for line in lines if not line.lstrip().startswith(("@", "Extension modules:"))]
    return "\n".join([*fatal, "...", *rest[-40:]])


def test_what_killed_puts_the_fatal_lines_first():
    """The failure message of a died process keeps XLA's fatal line past a long tail."""
    stderr = "\n".join(
        ["E1201 07:14:46.853764 1 rendezvous.cc:116] waiting for 20 seconds"]
        + ["F1201 07:15:26.854298 1 rendezvous.cc:161] Termination timeout of 40 seconds exceeded."]
        + ["    @     0x7fe273240634  absl::LogMessage::SendToLog()"] * 200
        + ["Fatal Python error: Aborted", 'File "handlayers/train.py", line 321 in train']
        + ["Extension modules: numpy, jax" + ", module" * 500]
    )
    message = _what_killed(stderr)
    assert message.startswith("F1201 07:15:26.854298 1 rendezvous.cc:161] Termination timeout")
    assert "Fatal Python error: Aborted" in message
    assert "line 321 in train" in message
    assert "@" not in message
    assert "Extension modules" not in message


def test_one_step_at_a_time_only_on_several_cpu_devices():
    """Steps wait for each other on several CPU devices (XLA:CPU's collectives can deadlock on
    steps queued ahead), and stay queued ahead on one device or on GPUs."""
    device = dataclasses.make_dataclass("Device", ["platform"])
    cpu, gpu = device("cpu"), device("gpu")
    assert train._one_step_at_a_time([cpu, cpu])
    assert train._one_step_at_a_time([cpu, cpu, cpu, cpu])
    assert not train._one_step_at_a_time([cpu])
    assert not train._one_step_at_a_time([gpu, gpu])
    assert not train._one_step_at_a_time([gpu] * 4)
    assert not train._one_step_at_a_time([gpu])


@pytest.mark.jax
@pytest.mark.parametrize("wait", [True, False])
def test_the_runner_waits_when_told_to(monkeypatch, wait):
    """``jax_runner``'s step returns once done exactly where ``_one_step_at_a_time`` says so."""
    import jax

    waited = []
    monkeypatch.setattr(train, "_one_step_at_a_time", lambda devices: wait)
    monkeypatch.setattr(jax, "block_until_ready", lambda out: waited.append(out) or out)
    run, put = train.jax_runner(lambda params, state, X, y: (params, state, X.sum(), y))
    Xs, ys = put(np.ones((2, 4, 3)), np.arange(8).reshape(2, 4))
    out = run((np.float64(1.0),), (), Xs, ys, 1)
    assert float(out[2]) == 12.0
    assert waited == ([out] if wait else [])


def test_train_command_writes_json_and_plot(tmp_path, capsys):
    """`train --json --plot` writes the contract's fields and a PNG of the curves; progress goes to stderr."""
    plot = tmp_path / "curves.png"
    assert main(["train", "--epochs", "2", "--seed", "1", "--json", "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert 0 <= result["test_accuracy"] <= 1
    assert result["epochs"] == 2
    assert result["seconds"] > 0
    assert 0 < result["gradient_audit"] <= 1
    assert "[2/2] epoch 2/2: loss" in captured.err  # plain lines off a terminal
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_train_command_prints_a_summary(capsys):
    """Without --json, `train` prints the test accuracy and the audit's worst ratio in one line."""
    assert main(["train", "--epochs", "1", "--audit-every", "1000"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mlp on numpy (cpu): test accuracy 0.")
    assert "over 2 audits" in out


def test_train_command_exits_1_with_the_audit_report(monkeypatch, capsys):
    """A wrong layer makes `train` exit 1 and print the audit's report."""
    wrong = mlp_with(2, OffAffine)
    monkeypatch.setitem(train.MODELS, "mlp", lambda: (wrong, (64,)))
    assert main(["train", "--epochs", "1"]) == 1
    assert "layer 2 (vector.affine) is wrong:" in capsys.readouterr().out


def test_cnn_trains_an_epoch(backend):
    """The CNN trains an epoch on either backend, its gradients audited, and learns."""
    result = train.train("cnn", backend=backend, epochs=1, audit_every=20)
    assert result["test_accuracy"] > 0.8
    assert result["gradient_audit"] <= 1


def test_sgd_trains_too():
    """Any optimizer of handlayers.optim trains the network: plain SGD learns the digits in two epochs."""
    assert train.train("mlp", epochs=2, optimizer=SGD(lr=0.1))["test_accuracy"] > 0.85


def test_float32_training_is_audited_with_float32_tolerances():
    """In float32 the parameters stay float32 and the audit, with float32's tolerance, passes."""
    result = train.train("mlp", epochs=1, dtype=np.float32)
    assert result["dtype"] == "float32"
    assert 0 < result["gradient_audit"] <= 1


@pytest.mark.jax
def test_benchmark_baseline_takes_the_same_step():
    """The benchmark's plain jax.jit(value_and_grad) step gives the hand-written step's loss, gradients, update."""
    import jax

    from benchmarks import training
    from handlayers.optim import Adam

    net, _ = train.MODELS["mlp"]()
    X, y, _, _ = train.load_digits(0)
    params = net.init(0, np.float64, jax.numpy)
    state = Adam().init(params)
    ours = jax.jit(train.train_step(net, Adam()))(params, state, X[:16], y[:16])
    plain = jax.jit(training.baseline_step(net, Adam()))(params, state, X[:16], y[:16])
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


@pytest.mark.jax
def test_training_needs_no_global_float64_setting():
    """With jax's x64 off, `train` still trains in float64 on jax, as numpy does, and audits in float64."""
    import jax

    with jax.enable_x64(False):
        on_jax = train.train("mlp", backend="jax", epochs=1)
    assert on_jax["dtype"] == "float64"
    assert on_jax["history"][0]["test_accuracy"] == train.train("mlp", epochs=1)["history"][0]["test_accuracy"]
    assert 0 <= on_jax["gradient_audit"] <= 1


def test_audit_counts_a_nan_gradient_as_wrong():
    """A NaN in a hand-written gradient fails the audit (its ratio is infinite), whatever the other gradients."""
    net, _ = train.MODELS["mlp"]()
    X, y, _, _ = train.load_digits(0)
    params = net.init(0)
    _, grads = net.loss_and_gradients(params, X[:8], y[:8])
    grads[0] = (grads[0][0], np.full_like(grads[0][1], np.nan))
    with pytest.raises(train.AuditFailure, match=r"layer 0 \(vector\.affine\) db is off by inf of its tolerance"):
        train.Audit(net, "numpy", np.float64)(0, params, grads, X[:8], y[:8])
