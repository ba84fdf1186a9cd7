"""The training audit's oracle in a Python process of its own.

The oracle is ``jax.grad`` of a network's reference loss, in float64, on the CPU. Starting it
(starting Python and jax, tracing the reference network, compiling it: about 0.8 s for the MLP
on the project's 2-core machine) holds Python's lock most of the time, so in a thread beside the
training it took turns with it: the audit added 0.1 to 0.35 s to training runs of 0.4 to 3.3 s.
In a process of its own it runs on another core while the training loads its data and trains,
and each audit's oracle runs beside the training's next steps.

:class:`OracleProcess` starts the process and talks to it from a thread of its own; the training
hands it requests and gets :class:`concurrent.futures.Future` answers. The process reads pickled
requests on its standard input and writes pickled answers on the standard output it was given
(its ``sys.stdout`` goes to standard error, so a stray print cannot break the conversation), and
ends at the end of its input: when the training closes it, or exits.
"""

from __future__ import annotations

import contextlib
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

#: the process's program: the parent's ``sys.path`` comes first, so it imports what the parent does
BOOT = """\
import os, pickle, sys
hasattr(os, "nice") and os.nice(10)  # where both compete for a core, the training goes first
answers = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
sys.path[:] = pickle.load(sys.stdin.buffer)
from handlayers._oracle_process import serve
serve(sys.stdin.buffer, answers)
answers.close()
os._exit(0)  # skip tearing jax down: the parent's pipes to the process close now
"""

#: XLA's cheapest settings (as the checker's rounding sensitivity has them): the oracle runs a few
#: times a training, and compiling it so takes half the time; its float64 arithmetic is the same,
#: only less fused
QUICK = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


class OracleError(RuntimeError):
    """The oracle's process failed: ``str()`` says how (its traceback, or how it ended)."""


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    """The process's loop, until the end of ``requests``.

    The first request is the network, as its pieces' ``(reference, kwargs)``, and arguments like
    those to come, ``(params, X, labels)``: it compiles the oracle for them and answers ``None``.
    Each later request is such arguments, answered with the oracle's gradients (numpy arrays, one
    tuple per piece). Each answer is ``(True, value)``, or ``(False, traceback)`` for an error.
    """
    import jax

    from handlayers import nn

    oracle = None
    while True:
        try:
            request = pickle.load(requests)
        except EOFError:
            return
        try:
            with jax.enable_x64(True):
                if oracle is None:
                    pieces, like = request
                    network = nn.Sequential(*(nn.Piece(reference, None, kwargs=kwargs) for reference, kwargs in pieces))
                    oracle = jax.jit(jax.grad(network.reference_loss), compiler_options=QUICK)
                    oracle(*like)
                    answer: tuple[bool, Any] = (True, None)
                else:
                    answer = (True, [tuple(np.asarray(g) for g in p) for p in oracle(*request)])
        except Exception:
            answer = (False, traceback.format_exc())
        pickle.dump(answer, answers)
        answers.flush()


class OracleProcess:
    """``jax.grad`` of ``pieces``' reference loss, in float64, on the CPU of a process of its own.

    Starts the process and the oracle's compilation for arguments like ``like``; :attr:`ready` is
    done when it is compiled. :meth:`close` ends the process (so does the object's collection).

    Args:
        pieces: the network's pieces, each ``(reference, kwargs)`` (:class:`handlayers.nn.Piece`'s).
        like: arguments ``(params, X, labels)`` shaped as the audits' will be (their values unused).
    """

    def __init__(self, pieces: Sequence[tuple[str, dict[str, Any]]], like: tuple[Any, ...]) -> None:
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",  # the CPU's float64; a GPU stays the training's
            # numpy's BLAS does no work there: without its threads, the process's start takes a
            # quarter less CPU time (0.57 s against 0.76 s for the MLP), taken from the training
            **dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1"),
        }
        process = subprocess.Popen([sys.executable, "-c", BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put(list(sys.path))  # for BOOT, unanswered
        # the thread holds the process and the queue, not this object: collecting it closes the process
        threading.Thread(target=_converse, args=(process, self._requests), name="handlayers-audit", daemon=True).start()
        self._close = weakref.finalize(self, self._requests.put, None)
        self.process = process
        #: done once the oracle is compiled (an :class:`OracleError` if it could not be)
        self.ready = self._ask((list(pieces), like))

    def submit(self, params: Any, X: Any, labels: Any) -> Future:
        """The oracle's gradients at ``params, X, labels`` (numpy arrays), to come: a future."""
        return self._ask((params, X, labels))

    def _ask(self, request: tuple) -> Future:
        future: Future = Future()
        self._requests.put((future, request))
        return future

    def close(self) -> None:
        """End the process, once the requests already made are answered."""
        self._close()


def _converse(process: subprocess.Popen, requests: queue.SimpleQueue) -> None:
    """Send each request to ``process`` and set its future to the answer, until told ``None``; the
    first, ``sys.path``, is for :data:`BOOT` and goes with the next."""
    path, ended = requests.get(), None
    while (item := requests.get()) is not None:
        future, request = item
        if ended is None:
            try:
                if path is not None:
                    pickle.dump(path, process.stdin)
                    path = None
                pickle.dump(request, process.stdin)
                process.stdin.flush()
                ok, value = pickle.load(process.stdout)
            except (EOFError, OSError):
                ended = OracleError(
                    f"the audit's oracle process ended (exit code {process.wait()}); its error is above"
                )
            else:
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(OracleError(value))
                continue
        future.set_exception(ended)
    with contextlib.suppress(OSError):  # a process that died may leave a write unflushed
        process.stdin.close()
    process.wait()
    process.stdout.close()
