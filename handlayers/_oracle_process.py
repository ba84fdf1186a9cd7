"""The training audit's oracle in a Python process of its own.

The oracle is ``jax.grad`` of a network's reference loss, in float64, on the CPU. Starting it
(starting Python and jax, tracing the reference network, compiling it: about 0.6 s for the MLP
on the project's 2-core machine) holds Python's lock most of the time, so in a thread beside the
training it took turns with it: the audit added 0.1 to 0.35 s to training runs of 0.4 to 3.3 s.
In a process of its own it runs on another core while the training loads its data and trains,
and each audit's oracle runs beside the training's next steps.

:class:`OracleProcess` starts the process and talks to it from a thread of its own; the training
hands it requests and gets :class:`concurrent.futures.Future` answers. The process reads pickled
requests on its standard input and writes pickled answers on the standard output it was given
(its ``sys.stdout`` goes to standard error, so a stray print cannot break the conversation), and
ends at the end of its input: when the training closes it, or exits. Every request gets an
answer or an :class:`OracleError`, whatever happens to the process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, BinaryIO

import numpy as np

__all__ = ["OracleError", "OracleProcess", "serve"]

#: the process's program (run with ``-I``: nothing from the working directory shadows ``pickle``);
#: the parent's ``sys.path`` comes first, so it imports what the parent does
BOOT = """\
import os, pickle, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training's: it closes the process
hasattr(os, "nice") and os.nice(10)  # where both compete for a core, the training goes first
answers = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
try:
    sys.path[:] = pickle.load(sys.stdin.buffer)
except (EOFError, pickle.UnpicklingError):  # closed before its first request, or the training gone
    os._exit(0)
from handlayers._oracle_process import serve
serve(sys.stdin.buffer, answers)
os._exit(0)  # skip tearing jax down: the parent's pipes to the process close now
"""


class OracleError(RuntimeError):
    """The oracle's process failed: ``str()`` says how (its traceback, or how it ended)."""


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The process's loop, until the end of ``requests`` (or of the pipe to its answers).

    The first request is the network, as :meth:`handlayers.nn.Sequential.references`, and
    arguments like those to come, ``(params, X, labels)``: it compiles the oracle for them and
    answers ``None``. Each later request is such arguments, answered with the oracle's gradients
    (numpy arrays, one tuple per piece). Each answer is ``(True, value)``, or ``(False,
    traceback)`` for an error.
    """
    import jax

    from handlayers import nn
    from handlayers.testing.oracle import quick_jit

    oracle = None
    while True:
        try:
            request = pickle.load(requests)
        except (EOFError, pickle.UnpicklingError):  # the end, or the training gone halfway through
            return
        try:
            with jax.enable_x64(True):
                if oracle is None:
                    references, like = request
                    network = nn.Sequential.from_references(references)
                    oracle = quick_jit(jax.grad(network.reference_loss), cheapest=True)
                    oracle(*like)
                    answer: tuple[bool, Any] = (True, None)
                else:
                    answer = (True, [tuple(np.asarray(g) for g in p) for p in oracle(*request)])
        except Exception:
            answer = (False, traceback.format_exc())
        try:
            pickle.dump(answer, answers)
            answers.flush()
        except OSError:  # the training is gone: nobody to answer
            return


class OracleProcess:
    """``jax.grad`` of a network's reference loss, in float64, on the CPU of a process of its own.

    Starts the process and the oracle's compilation for arguments like ``like``; :attr:`ready` is
    done when it is compiled. :meth:`close` ends the process (so does the object's collection).

    Args:
        references: the network's :meth:`handlayers.nn.Sequential.references`.
        like: arguments ``(params, X, labels)`` shaped as the audits' will be (their values unused).
    """

    def __init__(self, references: Sequence[tuple[str, dict[str, Any]]], like: tuple[Any, ...]) -> None:
        path = _dumps(_path())
        env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}  # none is the oracle's
        env["JAX_PLATFORMS"] = "cpu"  # the CPU's float64; a GPU stays the training's
        # numpy's BLAS does no work there: without its threads, the process's start takes a quarter
        # less CPU time (0.57 s against 0.76 s for the MLP), taken from the training
        env.update(dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"))
        command = [sys.executable, "-I", "-c", BOOT]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        # the thread holds the channel, not this object: collecting it closes the process
        self._channel = channel = _Channel(path)
        threading.Thread(target=_converse, args=(self.process, channel), name="handlayers-audit", daemon=True).start()
        weakref.finalize(self, channel.close)
        #: done once the oracle is compiled (an :class:`OracleError` if it could not be)
        self.ready = self._ask((list(references), like))

    def submit(self, params: Any, X: Any, labels: Any) -> Future:
        """The oracle's gradients at ``params, X, labels`` (numpy arrays), to come: a future.

        Raises:
            OracleError: when the process is closed.
            pickle.PicklingError: when the arguments cannot be sent."""
        return self._ask((params, X, labels))

    def _ask(self, request: tuple) -> Future:
        future: Future = Future()
        self._channel.put(future, _dumps(request))  # pickled here: what cannot be raises here
        return future

    def close(self, kill: bool = False) -> None:
        """End the process: the requests not answered yet fail with :class:`OracleError`. The one
        being answered is let finish, unless ``kill`` (for an error's way out: the process may hang)."""
        self._channel.close()
        if kill:
            self.process.kill()  # the thread, waiting for its answer, then fails it


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, pickle.HIGHEST_PROTOCOL)


def _path() -> list[str]:
    """The parent's ``sys.path`` for the process, absolute, with the folders that hold the
    ``handlayers`` and ``reference`` it imported first (they may come from a working directory
    since left)."""
    path = [os.path.abspath(p) for p in sys.path]
    specs = [importlib.util.find_spec(name) for name in ("handlayers", "reference")]
    roots = [os.path.dirname(spec.submodule_search_locations[0]) for spec in specs if spec]
    return [*dict.fromkeys([*(root for root in roots if root not in path), *path])]


class _Channel:
    """What :class:`OracleProcess` shares with its conversation's thread: the requests, each a
    future and its pickled request, and whether it is closed."""

    def __init__(self, path: bytes) -> None:
        self.path, self.closed = path, False
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()

    def put(self, future: Future, request: bytes) -> None:
        with self._lock:
            if self.closed:
                raise OracleError("the audit's oracle process is closed")
            self.requests.put((future, request))

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self.requests.put(None)


def _converse(process: subprocess.Popen, channel: _Channel) -> None:
    """Send each request to ``process`` and set its future to the answer, until the channel is
    closed; the futures it cannot answer fail with :class:`OracleError`, and anything unexpected
    on the pipes ends the process (what it says next could not be trusted)."""
    first, ended, future = True, None, None
    try:
        while (item := channel.requests.get()) is not None:
            future, request = item
            if not future.set_running_or_notify_cancel():
                continue  # cancelled by its caller
            if channel.closed:
                ended = ended or OracleError("the audit's oracle process was closed before this answer")
            if ended is None:
                try:
                    process.stdin.write(channel.path + request if first else request)
                    process.stdin.flush()
                    first = False
                    ok, value = pickle.load(process.stdout)
                except Exception as error:  # EOF, a broken pipe, a truncated answer...
                    process.kill()
                    ended = OracleError(
                        f"the audit's oracle process ended (exit code {process.wait()}; "
                        f"{type(error).__name__}: {error}); its error, if any, is above"
                    )
                else:
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(OracleError(value))
                    continue
            future.set_exception(OracleError(*ended.args))
    finally:
        channel.close()
        if future is not None and not future.done():  # ended by what it does not catch, mid-request
            process.kill()
            future.set_exception(OracleError("the audit's oracle process was stopped before this answer"))
        while not channel.requests.empty():  # closed: nothing more comes
            item = channel.requests.get()
            if item is not None and item[0].set_running_or_notify_cancel():
                item[0].set_exception(OracleError("the audit's oracle process was closed before this answer"))
        for pipe in process.stdin, process.stdout:
            with contextlib.suppress(OSError):  # a process that died may leave a write unflushed
                pipe.close()
        process.wait()
