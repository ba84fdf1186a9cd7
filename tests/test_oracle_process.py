"""The training audit's oracle in a process of its own: its answers, its failures, its end."""

import gc
import io
import os
import pickle
import subprocess
import sys
import time
import types
from concurrent.futures import Future

import jax
import numpy as np
import pytest

from handlayers import _oracle_process, nn
from handlayers._oracle_process import OracleError, OracleProcess, serve
from tests.helpers import batch_of_8, reference_gradients

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAIT = 300  # seconds for any answer: a process starting jax on a busy 2-core machine


def relu_oracle():
    """An oracle of a one-ReLU network (nothing to compile for its first answer but a ReLU)."""
    return OracleProcess([("vector.relu", {})], ([()], np.zeros((2, 3)), np.zeros(2, np.int64)))


def test_the_oracle_process_computes_the_reference_gradients():
    """The process's gradients are `jax.grad` of the reference network's loss in float64, as in this
    process, for the arguments it compiled for and for others."""
    net, params, _, X, y = batch_of_8()
    oracle = OracleProcess(net.references(), (params, X, y))
    try:
        assert oracle.ready.result(WAIT) is None
        answers = [
            oracle.submit(params, X, y).result(WAIT),
            oracle.submit(params, X[::-1], y[:4].repeat(2)).result(WAIT),
        ]
    finally:
        oracle.close()
    for (Xi, yi), answer in zip([(X, y), (X[::-1], y[:4].repeat(2))], answers, strict=True):
        for want, got in zip(
            jax.tree.leaves(reference_gradients(net, params, Xi, yi)), jax.tree.leaves(answer), strict=True
        ):
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16)
    assert oracle.process.wait(WAIT) == 0  # closing ended it


def test_a_request_the_oracle_cannot_answer_is_an_error_and_it_goes_on():
    """A request the oracle fails on comes back as an OracleError with its traceback; the next is answered."""
    net, params, _, X, y = batch_of_8()
    oracle = OracleProcess(net.references(), (params, X, y))
    try:
        bad, good = oracle.submit(params, X[:, :3], y), oracle.submit(params, X, y)
        with pytest.raises(OracleError, match="Traceback"):
            bad.result(WAIT)
        assert len(jax.tree.leaves(good.result(WAIT))) == 4
    finally:
        oracle.close()


def test_the_oracle_process_serves_in_this_process():
    """`serve`, run here on pickled requests: compiles for the first, answers the next with gradients
    or a traceback, and returns at the end of its input."""
    net, params, _, X, y = batch_of_8()
    requests = io.BytesIO()
    for request in (net.references(), (params, X, y)), (params, X, y), (params, X[:, :3], y):
        pickle.dump(request, requests)
    requests.seek(0)
    answers = io.BytesIO()
    serve(requests, answers)
    answers.seek(0)
    compiled, gradients, error = (pickle.load(answers) for _ in range(3))
    assert compiled == (True, None)
    assert gradients[0] is True
    for want, got in zip(
        jax.tree.leaves(reference_gradients(net, params, X, y)), jax.tree.leaves(gradients[1]), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16)
    assert error[0] is False
    assert "Traceback" in error[1]
    assert answers.read() == b""


class Gone(io.BytesIO):
    """Answers whose reader has gone: every write is a broken pipe."""

    def write(self, data):
        raise BrokenPipeError(32, "Broken pipe")


def test_the_oracle_process_ends_quietly_when_the_training_is_gone():
    """When its answers cannot be written, or a request ends halfway (the training exited while
    sending it), `serve` returns, without a traceback."""
    request = pickle.dumps(([("vector.relu", {})], ([()], np.zeros((2, 3)), np.zeros(2, np.int64))))
    requests = io.BytesIO(request)
    serve(requests, Gone())  # returns: nothing raised
    assert requests.read() == b""
    answers = io.BytesIO()
    serve(io.BytesIO(request[: len(request) // 2]), answers)
    assert answers.getvalue() == b""


def test_an_oracle_process_that_ends_fails_every_answer(monkeypatch):
    """A process that dies (here one that exits at once, code 3) fails the answers asked of it, saying so."""
    monkeypatch.setattr(_oracle_process, "BOOT", "import sys; sys.exit(3)")
    oracle = relu_oracle()
    later = oracle.submit([()], np.zeros((2, 3)), np.zeros(2, np.int64))
    for answer in oracle.ready, later:
        with pytest.raises(OracleError, match=r"oracle process ended \(exit code 3; "):
            answer.result(WAIT)
    oracle.close()


TRUNCATED = """
import os, pickle, sys
requests, answers = sys.stdin.buffer, sys.stdout.buffer
pickle.load(requests), pickle.load(requests)  # sys.path, then the network
pickle.dump((True, None), answers)
answers.flush()
pickle.load(requests)
answers.write(pickle.dumps((True, list(range(1000))))[:40])  # dies mid-answer
answers.flush()
os._exit(0)
"""


def test_an_oracle_process_that_dies_mid_answer_fails_it_and_the_next(monkeypatch):
    """A process that dies halfway through an answer (killed while writing it) fails that answer and
    every later one with an OracleError: none waits for ever."""
    monkeypatch.setattr(_oracle_process, "BOOT", TRUNCATED)
    oracle = relu_oracle()
    assert oracle.ready.result(WAIT) is None
    cut, later = (oracle.submit([()], np.zeros((2, 3)), np.zeros(2, np.int64)) for _ in range(2))
    for answer in cut, later:
        with pytest.raises(OracleError, match=r"UnpicklingError|EOFError"):
            answer.result(WAIT)
    oracle.close()


def test_what_cannot_be_sent_is_refused_at_once():
    """A request that cannot be pickled raises where it is made, and the oracle goes on."""
    oracle = relu_oracle()
    try:
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
            oracle.submit([()], lambda: 0, np.zeros(2, np.int64))
        assert oracle.ready.result(WAIT) is None
    finally:
        oracle.close()


SLOW = """
import os, pickle, sys, time
requests, answers = sys.stdin.buffer, sys.stdout.buffer
pickle.load(requests)  # sys.path
count = 0
while True:
    try:
        pickle.load(requests)
    except EOFError:
        os._exit(0)
    count += 1
    time.sleep(1)
    try:
        pickle.dump((True, count), answers)  # which request this is, counting from 1
        answers.flush()
    except BrokenPipeError:
        os._exit(0)
"""


def slow_oracle(monkeypatch):
    """An oracle whose process answers each request with its number, a second after it came."""
    monkeypatch.setattr(_oracle_process, "BOOT", SLOW)
    return relu_oracle()


def submit(oracle):
    return oracle.submit([()], np.zeros((2, 3)), np.zeros(2, np.int64))


def test_closing_lets_the_answer_being_made_finish_fails_the_rest_and_refuses_more(monkeypatch):
    """`close` lets the request being answered finish, fails those still queued, and refuses new ones."""
    oracle = slow_oracle(monkeypatch)
    queued = [submit(oracle) for _ in range(3)]
    while not oracle.ready.running():  # the first request is sent: the process answers it in a second
        time.sleep(0.01)
    oracle.close()
    assert oracle.ready.result(WAIT) == 1
    for answer in queued:
        with pytest.raises(OracleError, match="closed before this answer"):
            answer.result(WAIT)
    with pytest.raises(OracleError, match="is closed"):
        submit(oracle)
    assert oracle.process.wait(WAIT) == 0


def test_a_cancelled_request_is_not_sent(monkeypatch):
    """A request its caller cancelled before it was sent is not sent: the next is the process's second."""
    oracle = slow_oracle(monkeypatch)
    try:
        cancelled, answered = submit(oracle), submit(oracle)
        assert cancelled.cancel()  # the first is being answered for a second: these wait
        assert answered.result(WAIT) == 2
    finally:
        oracle.close()


HANGS = """
import pickle, sys, time
pickle.load(sys.stdin.buffer), pickle.load(sys.stdin.buffer)
time.sleep(3600)
"""


def test_closing_with_kill_ends_a_process_that_hangs(monkeypatch):
    """`close(kill=True)`, training's way out on an error, ends a process that never answers and fails its answer."""
    monkeypatch.setattr(_oracle_process, "BOOT", HANGS)
    oracle = relu_oracle()
    while not oracle.ready.running():
        time.sleep(0.01)
    oracle.close(kill=True)
    with pytest.raises(OracleError, match="ended"):
        oracle.ready.result(WAIT)
    assert oracle.process.wait(WAIT) != 0


def test_the_oracle_process_ends_with_its_object():
    """An oracle no longer referenced ends its process: a training that forgets to close leaves none behind."""
    oracle = relu_oracle()
    process = oracle.process
    del oracle
    gc.collect()
    assert process.wait(WAIT) == 0


def test_the_process_runs_on_the_cpu_without_blas_threads_or_the_trainings_xla_flags(monkeypatch):
    """The process is started isolated (`-I`), on the CPU, with one BLAS thread, without XLA_FLAGS
    (a flag its CPU-only jax does not know would abort it), and imports what this process imports."""
    started = []
    popen = subprocess.Popen
    monkeypatch.setattr(
        subprocess, "Popen", lambda command, **kw: started.append((command, kw)) or popen(command, **kw)
    )
    monkeypatch.setenv("XLA_FLAGS", "--xla_tpu_no_such_flag=1")
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    oracle = relu_oracle()
    try:
        assert oracle.ready.result(WAIT) is None
    finally:
        oracle.close()
    ((command, kw),) = started
    assert command[1:3] == ["-I", "-c"]
    assert kw["env"]["JAX_PLATFORMS"] == "cpu"
    assert kw["env"]["OPENBLAS_NUM_THREADS"] == "1"
    assert "XLA_FLAGS" not in kw["env"]


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no nice values here")
def test_the_process_runs_at_nice_10():
    """The process runs at a lower priority than the training (nice 10), and so does every thread
    it starts (jax's): where they compete for a core, the training goes first."""
    oracle = relu_oracle()
    try:
        assert oracle.ready.result(WAIT) is None
        threads = os.listdir(f"/proc/{oracle.process.pid}/task") if os.path.isdir("/proc") else [oracle.process.pid]

        def priority(thread):
            try:
                return os.getpriority(os.PRIO_PROCESS, int(thread))
            except ProcessLookupError:  # a thread that ended since it was listed
                return None

        # nice values stop at 19: a training already at 10 or more has its process at 19
        assert {priority(thread) for thread in threads} - {None} == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + 10)}
    finally:
        oracle.close()


def test_the_process_finds_this_checkout(monkeypatch):
    """The path sent to the process is `sys.path` made absolute, this checkout's folder first if it
    is not in it (imported from a working directory since left: `''` would no longer find it)."""
    path = _oracle_process._path()
    assert path == list(dict.fromkeys(os.path.abspath(p) for p in sys.path))  # the checkout is on sys.path here
    monkeypatch.setattr(sys, "path", [p for p in sys.path if os.path.abspath(p) != ROOT])
    assert _oracle_process._path() == [ROOT, *(p for p in path if p != ROOT)]


def test_a_network_travels_as_its_references():
    """`references` and `from_references` carry what the reference loss needs, and nothing of the layers."""
    net, params, _, X, y = batch_of_8()
    again = nn.Sequential.from_references(net.references())
    assert [(p.reference, p.kwargs, p.layer) for p in again.pieces] == [
        (p.reference, p.kwargs, None) for p in net.pieces
    ]
    for a, b in zip(
        jax.tree.leaves(reference_gradients(again, params, X, y)),
        jax.tree.leaves(reference_gradients(net, params, X, y)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def interrupted(data):
    raise KeyboardInterrupt  # what no `except Exception` catches, as a Ctrl-C in the thread


def test_whatever_ends_the_conversation_no_request_is_left_waiting():
    """Even when the conversation's thread is ended by what it does not catch, every request still
    queued fails with an OracleError: none waits for ever."""
    channel = _oracle_process._Channel(b"")
    first, queued = Future(), Future()
    channel.put(first, b"request")
    channel.put(queued, b"request")
    pipe = types.SimpleNamespace(write=interrupted, close=lambda: None)
    killed = []
    process = types.SimpleNamespace(stdin=pipe, stdout=pipe, wait=lambda: 0, kill=lambda: killed.append(True))
    with pytest.raises(KeyboardInterrupt):
        _oracle_process._converse(process, channel)
    with pytest.raises(OracleError, match="stopped before this answer"):
        first.result(0)  # the one being sent
    with pytest.raises(OracleError, match="closed before this answer"):
        queued.result(0)
    assert channel.closed
    assert killed == [True]  # what it would say next could not be trusted
