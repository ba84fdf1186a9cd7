"""Training on the digits: the split, reproducibility, both backends, the audit, data parallelism, the command."""

import concurrent.futures
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import Future

import numpy as np
import pytest

from handlayers import nn, train, vector
from handlayers.__main__ import main
from handlayers._oracle_process import OracleError, OracleProcess
from handlayers.optim import SGD
from tests.helpers import batch_of_8, fresh_python, reference_gradients

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


WAIT = 300  # seconds for any answer of the oracle: a process starting jax on a busy 2-core machine


@pytest.fixture
def audit_of():
    """``audit_of(network, backend, dtype)``: a :class:`train.Audit`, its oracle's process closed after the test."""
    made = []

    def audit_of(*args):
        made.append(train.Audit(*args))
        return made[-1]

    yield audit_of
    for audit in made:
        audit.close()


def signature(tree):
    """Each array's shape and dtype: the oracle compiles once for all arguments of one signature."""
    import jax

    return jax.tree.map(lambda a: (np.shape(a), np.asarray(a).dtype.name), tree)


def test_audit_failure_without_a_wrong_layer_says_so(audit_of):
    """When the layers pass alone but the network does not (the optimizer saw other gradients), the report says so."""
    net, params, grads, X, y = batch_of_8()
    grads[0] = (grads[0][0] + 1e-3, grads[0][1])
    audit = audit_of(net, "numpy", np.float64)
    audit(7, params, grads, X, y)
    with pytest.raises(train.AuditFailure, match="every layer passes the checker on its own in this batch"):
        audit.finish(WAIT)


class Answers:
    """An oracle whose answers the test gives: each ``submit`` is a future left pending."""

    def __init__(self):
        self.futures = []

    def submit(self, params, X, labels):
        self.futures.append(Future())
        return self.futures[-1]

    def close(self, kill=False):
        pass


def test_audits_wait_for_the_oracles_answers_and_are_judged_in_order(audit_of):
    """Audits wait in `pending` while training goes on; `poll` judges the answered ones oldest first,
    up to the first not answered, and a wrong one fails with the step it audited."""
    net, params, grads, X, y = batch_of_8()
    audit = audit_of(net, "numpy", np.float64)
    audit.oracle = answers = Answers()
    assert audit(0, params, grads, X, y) is None
    wrong = [(grads[0][0] * (1 + 1e-6), grads[0][1]), *grads[1:]]
    audit(5, params, wrong, X, y)
    assert [p[1] for p in audit.pending] == [0, 5]
    assert (audit.poll(), audit.judged_through()) == ([], -1)
    expected = reference_gradients(net, params, X, y)
    answers.futures[1].set_result(expected)
    assert (audit.poll(), audit.judged_through()) == ([], -1)  # the oldest first
    answers.futures[0].set_result(expected)
    with pytest.raises(train.AuditFailure, match=r"^gradient audit at step 5: layer 0 \(vector\.affine\) dW"):
        audit.poll()
    assert (audit.count, audit.pending, audit.judged_through()) == (2, [], np.inf)
    assert audit.worst > 1


def test_an_oracle_that_failed_fails_the_audit(audit_of):
    """An error of the oracle's process is raised by the audit waiting for it, not taken for a pass."""
    net, params, grads, X, y = batch_of_8()
    audit = audit_of(net, "numpy", np.float64)
    audit.oracle = answers = Answers()
    audit(0, params, grads, X, y)
    answers.futures[0].set_exception(OracleError("Traceback ... MemoryError"))
    with pytest.raises(OracleError, match="MemoryError"):
        audit.finish(WAIT)


def test_audits_judge_their_gradients_as_the_checker_does(audit_of, dtype):
    """Right gradients pass with a ratio above 0 and wrong ones fail (one part in a million in
    float64, one in a hundred in float32), with or without `start`: the first audit starts the
    oracle if need be."""
    net, params, grads, X, y = batch_of_8(dtype)
    started, unstarted = audit_of(net, "numpy", dtype), audit_of(net, "numpy", dtype)
    started.start(params, X, y)
    for audit in started, unstarted:
        audit(0, params, grads, X, y)
        (ratio,) = audit.finish(WAIT)
        assert 0 < ratio <= 1
        off = [*grads[:2], (grads[2][0], grads[2][1] * (1 + (1e-6 if np.dtype(dtype) == np.float64 else 1e-2)))]
        audit(1, params, off, X, y)
        with pytest.raises(train.AuditFailure, match=r"^gradient audit at step 1: layer 2 \(vector\.affine\) db"):
            audit.finish(WAIT)
    assert started.oracle.ready.done()
    never = audit_of(net, "numpy", dtype)
    never.close()  # nothing started, nothing to end
    assert never.oracle is None


def test_the_oracle_starts_before_the_data_loads(monkeypatch, dtype):
    """`train` starts the oracle's process before it loads the digits, compiling for the very
    signature of the batches it then audits: the audits compile nothing more."""
    calls, likes, audited = [], [], []
    init, submit, load = OracleProcess.__init__, OracleProcess.submit, train.load_digits

    def starting(oracle, pieces, like):
        calls.append("start")
        likes.append(signature(like))
        init(oracle, pieces, like)

    monkeypatch.setattr(OracleProcess, "__init__", starting)
    monkeypatch.setattr(OracleProcess, "submit", lambda o, *args: audited.append(signature(args)) or submit(o, *args))
    monkeypatch.setattr(train, "load_digits", lambda *args: calls.append("load") or load(*args))
    result = train.train("mlp", epochs=1, dtype=dtype)
    assert calls == ["start", "load"]
    assert result["audits"] == 2
    assert audited == likes * 2


def test_the_audit_imports_what_judging_needs_when_it_starts():
    """In a fresh process, `start` imports the checker's tolerance, and the audits after it import nothing."""
    probe = """
import json, sys, numpy as np
from handlayers import train
net, shape = train.MODELS["mlp"]()
audit = train.Audit(net, "numpy", np.float64)
params = net.init(0)
X, y = np.random.default_rng(0).random((8, *shape)), np.arange(8)
audit.start(params, X, y)
before = set(sys.modules)
_, grads = net.loss_and_gradients(params, X, y)
audit(0, params, grads, X, y)
ratios = audit.finish(300)
audit.close()
print(json.dumps({"new": sorted(set(sys.modules) - before), "ratios": ratios}))
"""
    result = json.loads(fresh_python(probe))
    assert result["new"] == []
    assert 0 < result["ratios"][0] <= 1


def test_the_oracle_process_starts_before_this_one_imports_jax():
    """In a fresh process training on numpy, the oracle's process starts before this one imports jax
    (for judging the audits): the two imports then run side by side."""
    probe = """
import json, sys
from handlayers import train
seen, init = [], train.OracleProcess.__init__
train.OracleProcess.__init__ = lambda oracle, *args: seen.append("jax" in sys.modules) or init(oracle, *args)
result = train.train("mlp", epochs=1)
print(json.dumps({"jax imported before": seen, "audits": result["audits"]}))
"""
    assert json.loads(fresh_python(probe)) == {"jax imported before": [False], "audits": 2}


class InProcess:
    """An oracle computing here as it is asked, whose answers wait until the training's step
    ``hold_until`` (``None``: answered at once)."""

    def __init__(self, references, like, hold_until=None):
        self.network = nn.Sequential.from_references(references)
        self.hold_until, self.held = hold_until, []

    def submit(self, params, X, labels):
        future = Future()
        self.held.append((future, reference_gradients(self.network, params, X, labels)))
        if self.hold_until is None:
            self.release()
        return future

    def release(self):
        self.hold_until = None
        for future, value in self.held:
            future.set_result(value)
        self.held = []

    def close(self, kill=False):
        pass


def with_oracle(monkeypatch, hold_until=None):
    """Training's oracles made :class:`InProcess`, as many as `train` makes: the list of them."""
    made = []

    def make(references, like):
        made.append(InProcess(references, like, hold_until))
        return made[-1]

    monkeypatch.setattr(train, "OracleProcess", make)
    return made


def test_training_reports_an_epoch_once_its_audits_are_judged(monkeypatch):
    """Training does not wait for the oracle's answers: with those of epoch 1 held until step 49
    (in epoch 2), it trains on, and passes each epoch to `on_epoch` once every audit of its steps
    is judged, in order: epoch 1 during epoch 2, not at the end."""
    made = with_oracle(monkeypatch, hold_until=49)
    epochs, seen = [], {}

    def on_step(done, total):
        seen[done] = list(epochs)
        if done == 49:
            made[0].release()

    result = train.train("mlp", epochs=3, audit_every=10, on_step=on_step, on_epoch=lambda r: epochs.append(r["epoch"]))
    assert seen[45] == []  # epoch 1 trained (44 steps), not reported: its audits were not judged
    assert seen[2 * 44 + 1] == [1, 2]  # reported with epoch 2, as soon as judged
    assert epochs == [1, 2, 3]
    assert result["audits"] == 15  # steps 0, 10, ..., 130 and the last, 131
    assert 0 < result["gradient_audit"] <= 1


def test_a_failing_audit_first_reports_the_epochs_whose_audits_passed(monkeypatch):
    """Epoch 1's audits (steps 0 to 40; 44 steps an epoch) answered right only at step 49, in
    epoch 2, whose first audit, at step 50, is answered wrong at once: training stops there,
    having passed epoch 1 to `on_epoch` (not epoch 2)."""

    class WrongFromStep50(InProcess):
        def submit(self, params, X, labels):
            future = Future()
            grads = reference_gradients(self.network, params, X, labels)
            self.count = getattr(self, "count", 0) + 1
            self.held.append((future, grads if self.count <= 5 else [tuple(2 * g for g in p) for p in grads]))
            if self.hold_until is None:
                self.release()
            return future

    made, epochs = [], []
    oracle = lambda *args: made.append(WrongFromStep50(*args, hold_until=49)) or made[-1]  # noqa: E731
    monkeypatch.setattr(train, "OracleProcess", oracle)
    on_step = lambda done, total: done == 49 and made[0].release()  # noqa: E731
    with pytest.raises(train.AuditFailure, match=r"^gradient audit at step 50: layer") as failure:
        train.train("mlp", epochs=3, audit_every=10, on_step=on_step, on_epoch=lambda r: epochs.append(r["epoch"]))
    assert failure.value.step == 50
    assert epochs == [1]


def test_an_audit_failure_of_no_step_passes_through(monkeypatch):
    """An AuditFailure raised by a callback (no step of its own) ends training as it is (not as a
    TypeError), the epochs reported before it reported, no other."""
    with_oracle(monkeypatch)
    epochs = []

    def on_step(done, total):
        if done == 50:
            raise train.AuditFailure("stopped by the caller")

    with pytest.raises(train.AuditFailure, match=r"^stopped by the caller$") as failure:
        train.train("mlp", epochs=2, on_step=on_step, on_epoch=lambda r: epochs.append(r["epoch"]))
    assert failure.value.step is None
    assert epochs == [1]  # judged and reported at its end, step 44


def test_a_failing_audit_stops_training_at_the_step_its_answer_comes(monkeypatch):
    """Each step looks for the oracle's answers: with an oracle answering at once, a wrong layer
    stops training at step 0, before its first step is counted."""
    with_oracle(monkeypatch)
    steps = []
    with pytest.raises(train.AuditFailure, match=r"^gradient audit at step 0: layer 2"):
        train.train("mlp", epochs=2, network=mlp_with(2, OffAffine), on_step=lambda done, total: steps.append(done))
    assert steps == []


@pytest.mark.parametrize("wrong", [False, True])
def test_training_ends_its_oracle_process(monkeypatch, wrong):
    """`train` closes the oracle's process when it returns, and closes it with `kill` when an audit
    fails (on an error's way out it may hang: tests/test_oracle_process.py)."""
    made, kills = [], []

    class Kept(OracleProcess):
        def close(self, kill=False):
            kills.append(kill)
            super().close(kill)

    monkeypatch.setattr(
        train, "OracleProcess", lambda references, like: made.append(Kept(references, like)) or made[-1]
    )
    if wrong:
        with pytest.raises(train.AuditFailure):
            train.train("mlp", epochs=1, network=mlp_with(2, OffAffine))
    else:
        train.train("mlp", epochs=1)
    (oracle,) = made
    assert kills == [wrong]
    oracle.process.wait(WAIT)  # ended (by its end of input, or killed)
    with pytest.raises(OracleError, match="is closed"):
        oracle.submit(*[None] * 3)


def test_audits_in_flight_are_bounded(audit_of):
    """With `in_flight` audits waiting, the next audit waits for the oldest's answer and judges it first."""
    net, params, grads, X, y = batch_of_8()
    audit = audit_of(net, "numpy", np.float64)
    audit.oracle, audit.in_flight = Answers(), 2
    audit(0, params, grads, X, y)
    audit(1, params, grads, X, y)
    expected = reference_gradients(net, params, X, y)
    late = threading.Timer(0.5, audit.oracle.futures[0].set_result, [expected])
    late.start()
    audit(2, params, grads, X, y)  # waits for step 0's answer, half a second away
    late.join()
    assert (audit.count, [p[1] for p in audit.pending]) == (1, [1, 2])


def test_an_answer_not_come_in_time_stays_pending(audit_of):
    """`finish(timeout)` raises a TimeoutError past its timeout and keeps the audit, judged once answered."""
    net, params, grads, X, y = batch_of_8()
    audit = audit_of(net, "numpy", np.float64)
    audit.oracle = Answers()
    audit(0, params, grads, X, y)
    with pytest.raises(concurrent.futures.TimeoutError):  # the builtin TimeoutError from Python 3.11
        audit.finish(0.01)
    assert [p[1] for p in audit.pending] == [0]
    audit.oracle.futures[0].set_result(reference_gradients(net, params, X, y))
    (ratio,) = audit.finish(WAIT)
    assert 0 < ratio <= 1


def test_a_batch_larger_than_the_training_set_is_refused():
    """A batch no epoch can fill is a ValueError that says so, not a division by zero."""
    with pytest.raises(ValueError, match=r"batch_size 2000 is larger than the training set \(1438 examples\)"):
        train.train("mlp", epochs=1, batch_size=2000, audit_every=0)


def test_train_command_exits_3_when_the_oracle_fails(monkeypatch, capsys):
    """An oracle that fails (its process died) ends `train` with status 3 and its error on stderr."""

    class Failing(Answers):
        def submit(self, params, X, labels):
            future = super().submit(params, X, labels)
            future.set_exception(OracleError("the audit's oracle process ended (exit code -9)"))
            return future

    monkeypatch.setattr(train, "OracleProcess", lambda references, like: Failing())
    assert main(["train", "--epochs", "1"]) == 3
    assert (
        "oracle failed, so training stopped:\nthe audit's oracle process ended (exit code -9)"
        in capsys.readouterr().err
    )


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

from handlayers._oracle_process import OracleProcess

signature = lambda tree: repr(jax.tree.map(lambda a: (np.shape(a), np.asarray(a).dtype.name), tree))
likes, audited = [], []
init, submit = OracleProcess.__init__, OracleProcess.submit
OracleProcess.__init__ = lambda oracle, pieces, like: likes.append(signature(like)) or init(oracle, pieces, like)
OracleProcess.submit = lambda oracle, *args: audited.append(signature(args)) or submit(oracle, *args)
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
    / train._tolerances(example, np.float32)(np.asarray(s, np.float64), audit.degree)
    for gs, ss in zip(grads, single) for g, s in zip(gs, ss)
]
print(json.dumps({
    "devices": len(jax.devices()),
    "batch_split": len({str(s.index) for s in Xs.addressable_shards}),
    "replicated": all(g.sharding.is_fully_replicated for gs in grads for g in gs),
    "ratios": ratios,
    "trained": train.train("mlp", backend="jax", epochs=1, batch_size=30)["devices"],
    "waits": train._one_step_at_a_time(jax.devices()),
    "started": likes,
    "audited": audited,
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
    # batches of 30 rounded up to 32 before the oracle compiled for them: the audits compile nothing more
    assert len(result["started"]) == 1
    assert "(32, 64)" in result["started"][0]
    assert result["audited"] == result["started"] * 2
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


def test_audit_counts_a_nan_gradient_as_wrong(audit_of):
    """A NaN in a hand-written gradient fails the audit (its ratio is infinite), whatever the other gradients."""
    net, params, grads, X, y = batch_of_8()
    grads[0] = (grads[0][0], np.full_like(grads[0][1], np.nan))
    audit = audit_of(net, "numpy", np.float64)
    audit(0, params, grads, X, y)
    with pytest.raises(train.AuditFailure, match=r"layer 0 \(vector\.affine\) db is off by inf of its tolerance"):
        audit.finish(WAIT)
