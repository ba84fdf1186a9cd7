"""Training on scikit-learn's bundled digits with the hand-written layers, audited as it goes.

:func:`train` runs mini-batch training of :data:`MODELS`' networks with a hand-written optimizer
(:mod:`handlayers.optim`) on numpy or jax. With jax the whole step (forward, backward, update) is
one ``jax.jit``, its batch sharded over every local device and its parameters replicated: XLA's
all-reduce sums the layers' hand-written gradients over the devices.

The :class:`Audit` checks the network's hand-written gradients while it trains: at the first step,
every ``audit_every`` steps and the last, against ``jax.grad`` of the same network built from the
reference functions, in float64, on the batch of that step, with the checker's tolerance. A ratio
above 1 stops training with :class:`AuditFailure`, whose report runs the checker on each layer
(on its own input and output gradient in that batch) and shows the one that is wrong. The oracle
runs in a process of its own, started before the data loads, so its start and its work run on
another core; training does not wait for its answers, except at the end, and reports an epoch
once every audit of its steps is judged.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from handlayers import nn
from handlayers._oracle_process import OracleError, OracleProcess
from handlayers.optim import Adam

__all__ = [
    "MODELS",
    "Audit",
    "AuditFailure",
    "OracleError",
    "batched",
    "jax_runner",
    "load_digits",
    "train",
    "train_step",
]

#: the models by name: each makes its network and the shape of one example it takes
MODELS: dict[str, Callable[[], tuple[nn.Sequential, tuple[int, ...]]]] = {
    "mlp": lambda: (nn.Sequential(nn.dense(64, 128), nn.relu(), nn.dense(128, 10)), (64,)),
    "cnn": lambda: (
        nn.Sequential(
            nn.conv2d(1, 32, 3),  # (n, 1, 8, 8) -> (n, 32, 6, 6)
            nn.relu(),
            nn.max_pool2d(),  # -> (n, 32, 3, 3)
            nn.flatten(),  # -> (n, 288)
            nn.dense(288, 128),
            nn.relu(),
            nn.dense(128, 10),
        ),
        (1, 8, 8),
    ),
}


def load_digits(seed: int, shape: tuple[int, ...] = (64,)) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits, pixels scaled to [0, 1], each example of ``shape``, in an
    order shuffled by ``seed``: ``(X_train, y_train, X_test, y_test)``, the last 20% the test set."""
    from sklearn.datasets import load_digits as bundled  # ships with scikit-learn: no download

    digits = bundled()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    X = (digits.data[order] / 16.0).reshape(-1, *shape)
    y = digits.target[order].astype(np.int64)
    n_test = round(0.2 * len(y))
    return X[:-n_test], y[:-n_test], X[-n_test:], y[-n_test:]


def train_step(network: nn.Sequential, optimizer: Any) -> Callable[..., Any]:
    """``step(params, state, X, labels) -> (params, state, loss, grads)``: one update, pure."""

    def step(params: Any, state: Any, X: Any, labels: Any) -> tuple[Any, Any, Any, Any]:
        loss, grads = network.loss_and_gradients(params, X, labels)
        params, state = optimizer.step(params, grads, state)
        return params, state, loss, grads

    return step


class AuditFailure(Exception):
    """The hand-written gradients disagree with the reference network's; ``str()`` is the report,
    :attr:`step` the training step whose gradients failed."""

    def __init__(self, report: str, step: int | None = None) -> None:
        super().__init__(report)
        self.step = step


class Audit:
    """The network's hand-written gradients against ``jax.grad`` of its reference network.

    The oracle runs in a Python process of its own (:class:`~handlayers._oracle_process.OracleProcess`,
    float64 on the CPU), which :meth:`start` starts and :func:`train` starts before it loads the
    data: its start (jax, tracing, compiling) runs on another core. An audit sends its batch
    there and waits in :attr:`pending` while training goes on; :meth:`poll` (between steps)
    judges the audits answered, :meth:`finish` waits for them all, and either raises
    :class:`AuditFailure` for a ratio above 1. At most :attr:`in_flight` audits wait: a training
    faster than its oracle (a large network on a GPU) waits for the oldest rather than piling up
    float64 copies. :meth:`close` ends the process.

    Args:
        network: the network trained.
        backend: ``"numpy"`` or ``"jax"``, where its layers run.
        dtype: the dtype they run in (the tolerance is that dtype's).
    """

    def __init__(self, network: nn.Sequential, backend: str, dtype: Any) -> None:
        self.network, self.backend, self.dtype = network, backend, np.dtype(dtype)
        #: the degree of the network's gradients in its inputs, for the tolerance: one factor per
        #: layer with a weight (the loss's own gradient is bounded: softmax minus a one-hot)
        self.degree = sum(bool(p.shapes) for p in network.pieces)
        #: the audits sent to the oracle and not judged yet, oldest first: (answer, step, params,
        #: grads, X, labels), in float64
        self.pending: list[tuple[Any, ...]] = []
        self.worst, self.count, self.seconds = 0.0, 0, 0.0
        self.oracle: OracleProcess | None = None
        #: the most audits waiting for the oracle at once
        self.in_flight = 8

    def start(self, params: Sequence[tuple], X: Any, labels: Any) -> None:
        """Start the oracle's process, compiling it for batches like ``X, labels`` (the first
        audit does it if this was not called)."""
        like = ([tuple(np.zeros(np.shape(a)) for a in p) for p in params], np.zeros(np.shape(X)), np.zeros_like(labels))
        self.oracle = OracleProcess(self.network.references(), like)
        importlib.import_module("handlayers.testing.tolerance")  # what judging imports (jax too), as the process starts

    def __call__(self, step: int, params: Sequence[tuple], grads: Sequence[tuple], X: Any, labels: Any) -> None:
        """Audit ``grads`` (the hand-written gradients at ``params`` on the batch ``X, labels``):
        send them to the oracle; :meth:`poll` or :meth:`finish` judges them (this call judges the
        oldest first if :attr:`in_flight` are waiting)."""
        if len(self.pending) >= self.in_flight:
            self._judge(wait=True, count=len(self.pending) - self.in_flight + 1)
        started = time.perf_counter()
        if self.oracle is None:
            self.start(params, X, labels)
        as64 = [tuple(np.array(a, np.float64) for a in p) for p in params]
        grads64 = [tuple(np.array(g, np.float64) for g in p) for p in grads]
        X64, labels64 = np.array(X, np.float64), np.array(labels)
        self.pending.append((self.oracle.submit(as64, X64, labels64), step, as64, grads64, X64, labels64))
        self.seconds += time.perf_counter() - started

    def poll(self) -> list[float]:
        """Judge the pending audits the oracle has answered, oldest first, up to the first not
        answered yet: their ratios."""
        return self._judge(wait=False)

    def finish(self, timeout: float | None = None) -> list[float]:
        """Wait for the oracle's answers and judge every pending audit: their ratios, oldest first.
        ``timeout``: the seconds to wait for each answer (past them, raises
        ``concurrent.futures.TimeoutError`` and keeps the audit pending)."""
        return self._judge(wait=True, timeout=timeout)

    def judged_through(self) -> float:
        """The last step before the oldest audit not judged yet (infinity when all are)."""
        return self.pending[0][1] - 1 if self.pending else math.inf

    def close(self, kill: bool = False) -> None:
        """End the oracle's process (the audits not judged yet stay so); ``kill``: at once, on an
        error's way out (see :meth:`OracleProcess.close <handlayers._oracle_process.OracleProcess.close>`)."""
        if self.oracle is not None:
            self.oracle.close(kill)

    def _judge(self, wait: bool, count: float = math.inf, timeout: float | None = None) -> list[float]:
        """Judge the oldest ``count`` pending audits, waiting for their answers or (``wait=False``)
        up to the first not answered yet."""
        started = time.perf_counter()
        worsts: list[float] = []
        while self.pending and len(worsts) < count and (wait or self.pending[0][0].done()):
            answer, *audit = self.pending[0]
            expected = answer.result(timeout)  # raises the oracle's OracleError, or TimeoutError (kept pending)
            self.pending.pop(0)
            worsts.append(self._audit(expected, *audit))
        self.seconds += time.perf_counter() - started
        return worsts

    def _audit(
        self, expected: list, step: int, params64: list, grads64: list, X64: np.ndarray, labels: np.ndarray
    ) -> float:
        from handlayers.testing.oracle import Example  # not the whole checker: no Hypothesis

        bound = _tolerances(Example((X64, *(a for p in params64 for a in p), labels), {}, 1.0), self.dtype)
        worst, where = 0.0, ""
        for i, (piece, want, got) in enumerate(zip(self.network.pieces, expected, grads64, strict=True)):
            for name, e, g in zip(("dW", "db"), want, got, strict=False):
                e = np.asarray(e)
                error = float(np.max(np.abs(g - e)))
                ratio = error / bound(e, self.degree)
                ratio = np.inf if np.isnan(ratio) else ratio  # a NaN gradient (or oracle) is as wrong as can be
                if ratio > worst:
                    worst, where = ratio, f"layer {i} ({piece.reference}) {name}"
        self.worst, self.count = max(self.worst, worst), self.count + 1
        if worst > 1:
            self.pending.clear()
            raise AuditFailure(
                f"gradient audit at step {step}: {where} is off by {worst:.3g} of its tolerance\n\n"
                + _in_x64(self.locate)(params64, X64, labels),
                step,
            )
        return worst

    def locate(self, params: Sequence[tuple], X: np.ndarray, labels: np.ndarray) -> str:
        """The checker's report on each layer whose backward is wrong, each checked alone on the
        input it had and the output gradient it got (both from the reference network) in this batch."""
        import jax

        from handlayers import testing
        from reference.vector import softmax_cross_entropy

        inputs, vjps = [X], []
        for piece, p in zip(self.network.pieces, params, strict=True):
            f = piece.reference_function()
            out, vjp = jax.vjp(lambda x, *p, f=f, kw=piece.kwargs: f(x, *p, **kw), inputs[-1], *p)
            inputs.append(np.asarray(out))
            vjps.append(vjp)
        dout = np.asarray(jax.grad(softmax_cross_entropy)(inputs[-1], labels))
        douts: list[Any] = [None] * len(vjps)
        for i in reversed(range(len(vjps))):
            douts[i] = dout
            dout = np.asarray(vjps[i](dout)[0])
        reports = []
        for i, (piece, p) in enumerate(zip(self.network.pieces, params, strict=True)):
            spec = testing.SPECS.get(piece.reference) or testing.Spec(
                piece.reference, piece.reference_function(), piece.layer, ("X",), None
            )
            example = testing.Example((inputs[i], *p), dict(piece.kwargs), douts[i])
            try:
                testing.check_example(piece.layer, spec, example, backend=self.backend, dtype=self.dtype)
            except testing.Mismatch as mismatch:
                reports.append(f"layer {i} ({piece.reference}) is wrong:\n{mismatch}")
        return "\n\n".join(reports) or "every layer passes the checker on its own in this batch"


def _tolerances(example: Any, dtype: Any) -> Callable[[Any, int], float]:
    """The checker's a-priori tolerance for the network's gradients on ``example``, as
    ``bound(gradient, degree)`` (the one place the audit asks for it): measuring the whole
    network's rounding sensitivity, as the checker does for one layer, would cost a Jacobian over
    every value of the network's computation at every audit."""
    from handlayers.testing.tolerance import normwise_bounds

    return normwise_bounds(example, dtype)


def batched(step: Callable[..., Any]) -> Callable[..., Any]:
    """``step`` taking an epoch's batches, ``(params, state, Xs (batches, n, ...), ys (batches, n), b)``,
    and running on batch ``b``: an epoch goes to the devices at once, and each step indexes it."""

    def on_batch(params: Any, state: Any, Xs: Any, ys: Any, b: Any) -> tuple[Any, Any, Any, Any]:
        return step(params, state, Xs[b], ys[b])

    return on_batch


def jax_runner(step: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """:func:`batched` ``step`` jitted whole, the batch axis sharded over every device and
    the parameters replicated; and a function putting an epoch's batches on the devices so. On
    several CPU devices each call returns once its step is done (see :func:`_one_step_at_a_time`)."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    mesh = Mesh(np.array(devices), ("batch",))
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec(None, "batch"))  # (batches, n, ...): n over the devices
    jitted = jax.jit(
        batched(step), in_shardings=(replicated, replicated, split, split, replicated), out_shardings=replicated
    )
    wait = _one_step_at_a_time(devices)

    def run(*args: Any) -> Any:
        out = jitted(*args)
        return jax.block_until_ready(out) if wait else out

    return run, lambda *arrays: tuple(jax.device_put(a, split) for a in arrays)


def _one_step_at_a_time(devices: Sequence[Any]) -> bool:
    """Whether each step must be done before the next is dispatched: on several CPU devices.

    XLA:CPU runs every CPU device's part of a program in one pool of threads, and a collective
    waits until each device's part reaches it. With steps queued ahead by jax's asynchronous
    dispatch, on a busy machine one device's part now and then did not reach an all-gather of a
    step within 40 s, and XLA aborted the process ("Termination timeout ... Expected 4 threads to
    join the rendezvous, but only 3 of them arrived on time"). With 4 CPU devices on this project's
    2-core machine, kept busy by six CPU-bound processes, that was 5 of 35 one-epoch trainings (1
    of 7 without the audit); waiting for each step, 0 of 55. A likely reading of XLA's source, not
    checked on the jaxlib installed: a step launched while 32 are in flight on a device waits
    holding one of the pool's threads, which the running step's collective needs. Turning off
    ``jax_cpu_enable_async_dispatch`` is no alternative: jax applies it to single-device
    programs only (it aborted 1 of 6). On one device, or on GPUs, steps stay queued ahead."""
    return len(devices) > 1 and all(d.platform == "cpu" for d in devices)


def _in_x64(f: Callable[..., Any]) -> Callable[..., Any]:
    """``f`` run with jax's float64 enabled, whatever the global setting: float64 parameters on
    jax, and the audit's float64 oracle."""

    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        import jax

        with jax.enable_x64(True):
            return f(*args, **kwargs)

    return wrapped


def train(
    model: str = "mlp",
    *,
    backend: str = "numpy",
    epochs: int = 20,
    seed: int = 0,
    batch_size: int = 32,
    dtype: Any = np.float64,
    optimizer: Any = None,
    audit_every: int = 100,
    network: nn.Sequential | None = None,
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` (a name of :data:`MODELS`) from ``seed`` and return what happened.

    Each epoch reshuffles the training set (from ``seed``) and takes every full batch of
    ``batch_size`` (the few examples left over wait for another epoch's order). ``network``
    replaces the model's network (same input shape). ``audit_every=0`` audits nothing (to time
    training without the audit). ``on_step(done, total)`` is called after every step with the
    steps done and the steps in all, ``on_epoch(record)`` with each epoch's ``{"epoch", "loss",
    "train_accuracy", "test_accuracy"}``, in order, once every audit of its steps is judged.

    Returns:
        ``{"model", "backend", "devices", "dtype", "seed", "epochs", "steps", "test_accuracy",
        "seconds", "gradient_audit", "audits", "audit_seconds", "history"}``: ``gradient_audit`` is
        the worst audited error as a fraction of its tolerance (``None`` without audits),
        ``audit_seconds`` the time training spent on the audit (sending it batches, judging the
        oracle's answers, waiting for the last), ``seconds`` the wall time of the
        training and testing (after loading the data), ``history`` the epochs' records.

    Raises:
        AuditFailure: when the hand-written gradients fail the audit; training stops at the
        first step after the oracle's answer (at the latest at the end of training).
        OracleError: when the audit's oracle fails (its process's error, or how it ended).
        ValueError: when ``batch_size`` is larger than the training set.
    """
    default, shape = MODELS[model]()
    network = network or default
    optimizer = optimizer or Adam()
    dtype = np.dtype(dtype)
    if backend == "jax":
        import jax

        batch_size += -batch_size % jax.device_count()  # every device gets as many examples
    if importlib.util.find_spec("sklearn") is None:  # before the audit's process starts work for nothing
        raise ModuleNotFoundError("training needs scikit-learn, in the train extra: pip install '.[train]' in a clone")
    audit, trained = Audit(network, backend, dtype) if audit_every else None, False
    try:
        if audit:  # the oracle's process starts first: beside this one importing jax (on numpy) and loading the data
            audit.start(network.init(seed, dtype), np.zeros((batch_size, *shape)), np.zeros(batch_size, np.int64))
        result = _in_x64(_train)(
            model=model, network=network, shape=shape, backend=backend, epochs=epochs, seed=seed,
            batch_size=batch_size, dtype=dtype, optimizer=optimizer, audit=audit, audit_every=audit_every,
            on_step=on_step, on_epoch=on_epoch,
        )  # fmt: skip
        trained = True
        return result
    finally:
        if audit:
            audit.close(kill=not trained)  # on an error's way out, a process that may hang is killed


def _train(
    *,
    model: str,
    network: nn.Sequential,
    shape: tuple[int, ...],
    backend: str,
    epochs: int,
    seed: int,
    batch_size: int,
    dtype: np.dtype,
    optimizer: Any,
    audit: Audit | None,
    audit_every: int,
    on_step: Callable[[int, int], None] | None,
    on_epoch: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """:func:`train`'s training, in float64-enabled jax, once the audit has started."""
    X_train, y_train, X_test, y_test = load_digits(seed, shape)
    started = time.perf_counter()
    step = train_step(network, optimizer)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        step, put = jax_runner(step)
        params = network.init(seed, dtype, jnp)
        logits = jax.jit(network.logits)
        devices = [str(d) for d in jax.devices()]
    else:
        step, put = batched(step), (lambda *a: a)
        params, logits, devices = network.init(seed, dtype), network.logits, ["cpu"]
    X_train = X_train.astype(dtype)
    X_all, y_all = np.concatenate([X_train, X_test.astype(dtype)]), np.concatenate([y_train, y_test])
    state = optimizer.init(params)
    rng = np.random.default_rng(seed)
    per_epoch = len(y_train) // batch_size
    if per_epoch == 0:
        raise ValueError(f"batch_size {batch_size} is larger than the training set ({len(y_train)} examples)")
    last = epochs * per_epoch - 1
    history: list[dict[str, Any]] = []
    reported = 0  # the epochs passed to on_epoch: each once every audit of its steps is judged

    def report(judged: int) -> None:
        """Pass the epochs up to ``judged`` not passed yet to ``on_epoch``."""
        nonlocal reported
        for record in history[reported:judged] if on_epoch else ():
            on_epoch(record)
        reported = max(reported, judged)

    try:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(y_train))[: per_epoch * batch_size].reshape(per_epoch, batch_size)
            Xs, ys = put(X_train[order], y_train[order])
            losses = []
            for b in range(per_epoch):
                t = (epoch - 1) * per_epoch + b
                new_params, state, loss, grads = step(params, state, Xs, ys, b)
                if audit and (t % audit_every == 0 or t == last):
                    audit(t, params, grads, X_train[order[b]], y_train[order[b]])
                if audit and audit.pending:
                    audit.poll()
                params = new_params
                losses.append(loss)
                if on_step:
                    on_step(t + 1, last + 1)
            # both sets in one call: one shape for jax.jit to compile
            right = np.argmax(np.asarray(logits(params, X_all)), axis=1) == y_all
            history.append(
                {
                    "epoch": epoch,
                    "loss": float(np.mean([float(x) for x in losses])),
                    "train_accuracy": float(np.mean(right[: len(y_train)])),
                    "test_accuracy": float(np.mean(right[len(y_train) :])),
                }
            )
            if audit and epoch == epochs:
                audit.finish()
            report(min(epoch, (audit.judged_through() + 1) // per_epoch) if audit else epoch)
    except AuditFailure as failure:  # first the epochs before its step: every audit of theirs passed
        report(min(len(history), failure.step // per_epoch) if failure.step is not None else 0)
        raise
    return {
        "model": model,
        "backend": backend,
        "devices": devices,
        "dtype": dtype.name,
        "seed": seed,
        "epochs": epochs,
        "steps": last + 1,
        "test_accuracy": history[-1]["test_accuracy"],
        "seconds": round(time.perf_counter() - started, 3),
        "gradient_audit": audit.worst if audit else None,
        "audits": audit.count if audit else 0,
        "audit_seconds": round(audit.seconds, 3) if audit else 0.0,
        "history": history,
    }
