"""The sequence layers' forward plus backward inside ``jax.jit``, against ``jax.jit`` of autodiff.

Each case computes the output and the gradient of every input for one ``dout``, two ways, timed
side by side (:func:`benchmarks._timing.compare`):

- ``handlayers jax.jit``: the layer's ``forward`` then its hand-written ``backward``, traced by
  ``jax.jit``;
- ``jax.jit(vjp)``: ``jax.vjp`` of the reference function, and its pullback applied to ``dout``,
  traced by ``jax.jit``.

The cases: ``Attention`` at ``(n, t, d) = (32, 128, 64)``, with and without the causal mask;
``RNN`` over ``t = 32`` steps with ``n = 64``, ``d = H = 128``; ``LSTMStep`` at ``n = 64``,
``d = H = 128``, one step, and ``LSTM``, 32 ``LSTMStep`` layers chained over ``t = 32`` steps
(unrolled in both ways, the hidden and cell states carried from step to step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._timing import compare, median, ratio
from handlayers import vector

#: the target: the hand-written backward at most as slow as autodiff (within the run's noise)
AT_MOST = 1.00
#: (n, t, d, H or dv): the sizes of the issue
SIZES = {"attention": (32, 128, 64, 64), "recurrent": (64, 32, 128, 128)}
QUICK_SIZES = {"attention": (2, 8, 4, 4), "recurrent": (2, 3, 4, 4)}
#: on a GPU: sizes at which the matrix products, not the launches, take the time
GPU_SIZES = {"attention": (64, 1024, 64, 64), "recurrent": (1024, 64, 1024, 1024)}


def _lstm(x: Any, h0: Any, c0: Any, Wx: Any, Wh: Any, b: Any, dh: Any) -> Any:
    """An LSTM over ``t`` steps from :class:`~handlayers.vector.LSTMStep` layers: every hidden state
    (n, t, H), and the gradients of the inputs for ``dh`` (n, t, H) on the hidden states."""
    import jax.numpy as jnp

    steps, h, c, hs = [], h0, c0, []
    for s in range(x.shape[1]):
        steps.append(vector.LSTMStep())
        h, c = steps[-1].forward(x[:, s], h, c, Wx, Wh, b)
        hs.append(h)
    dxs, dh_next, dc_next, dWx, dWh, db = [], jnp.zeros_like(h0), jnp.zeros_like(c0), 0, 0, 0
    for s in reversed(range(x.shape[1])):
        dx, dh_next, dc_next, dWx_s, dWh_s, db_s = steps[s].backward((dh[:, s] + dh_next, dc_next))
        dxs.append(dx)
        dWx, dWh, db = dWx + dWx_s, dWh + dWh_s, db + db_s
    return jnp.stack(hs, axis=1), (jnp.stack(dxs[::-1], axis=1), dh_next, dc_next, dWx, dWh, db)


def reference_lstm(x: Any, h0: Any, c0: Any, Wx: Any, Wh: Any, b: Any) -> Any:
    """The same LSTM from ``reference.vector.lstm_step``: every hidden state (n, t, H)."""
    import jax.numpy as jnp

    import reference.vector as ref

    h, c, hs = h0, c0, []
    for s in range(x.shape[1]):
        h, c = ref.lstm_step(x[:, s], h, c, Wx, Wh, b)
        hs.append(h)
    return jnp.stack(hs, axis=1)


def _layer_step(layer: Callable[[], Any]) -> Callable[..., Any]:
    def step(*inputs_and_dout: Any) -> Any:
        *inputs, dout = inputs_and_dout
        instance = layer()
        return instance.forward(*inputs), instance.backward(dout)

    return step


def _autodiff_step(reference: Callable[..., Any]) -> Callable[..., Any]:
    def step(*inputs_and_dout: Any) -> Any:
        import jax

        *inputs, dout = inputs_and_dout
        out, pullback = jax.vjp(reference, *inputs)
        return out, pullback(dout)

    return step


def cases(dtype: Any, sizes: dict[str, tuple[int, ...]] | None = None) -> dict[str, dict[str, Any]]:
    """For each case: its inputs and dout (numpy, standard normal, weights scaled by
    1/sqrt(fan-in)), its hand-written step and its autodiff step (neither jitted yet)."""
    import functools

    import reference.vector as ref

    sizes = sizes or SIZES
    rng = np.random.default_rng(0)

    def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(dtype)

    n, t, d, dv = sizes["attention"]
    attention = (normal(n, t, d), normal(n, t, d), normal(n, t, dv), normal(n, t, dv))
    n, t, d, H = sizes["recurrent"]
    weights = (normal(d, H, scale=d**-0.5), normal(H, H, scale=H**-0.5), normal(H))
    gates = (normal(d, 4 * H, scale=d**-0.5), normal(H, 4 * H, scale=H**-0.5), normal(4 * H))
    x, state = normal(n, t, d), (normal(n, H), normal(n, H))
    out = {}
    for causal in (False, True):
        out[f"Attention{' causal' if causal else ''} {sizes['attention'][:3]}"] = {
            "args": attention,
            "handlayers": _layer_step(functools.partial(vector.Attention, causal=causal)),
            "autodiff": _autodiff_step(functools.partial(ref.attention, causal=causal)),
        }
    out[f"RNN n={n} t={t} d=H={H}"] = {
        "args": (x, state[0], *weights, normal(n, t, H)),
        "handlayers": _layer_step(vector.RNN),
        "autodiff": _autodiff_step(ref.rnn),
    }
    out[f"LSTMStep n={n} d=H={H}"] = {
        "args": (x[:, 0], *state, *gates, (normal(n, H), normal(n, H))),
        "handlayers": _layer_step(vector.LSTMStep),
        "autodiff": _autodiff_step(ref.lstm_step),
    }
    out[f"LSTM of {t} LSTMSteps n={n} d=H={H}"] = {
        "args": (x, *state, *gates, normal(n, t, H)),
        "handlayers": _lstm,
        "autodiff": _autodiff_step(reference_lstm),
    }
    return out


def run(dtype: Any, *, rounds: int = 9, sizes: dict[str, tuple[int, ...]] | None = None) -> dict[str, Any]:
    """Seconds per call of both ways for every case, and their ratio round by round."""
    import jax

    results = {}
    for name, case in cases(dtype, sizes).items():
        args = jax.device_put(case["args"])
        ours, autodiff = jax.jit(case["handlayers"]), jax.jit(case["autodiff"])
        ways = {"handlayers jax.jit": lambda f=ours, a=args: f(*a), "jax.jit(vjp)": lambda f=autodiff, a=args: f(*a)}
        samples = compare(ways, rounds=rounds)
        results[name] = {
            "seconds": {way: median(s) for way, s in samples.items()},
            "ratio": {**ratio(samples["handlayers jax.jit"], samples["jax.jit(vjp)"]), "at_most": AT_MOST},
        }
    return {"dtype": np.dtype(dtype).name, "cases": results}


def table(runs: list[dict[str, Any]]) -> str:
    """One row per case and dtype: both ways' medians and the ratio with its spread."""
    lines = [
        "## Sequence layers inside jax.jit: forward + backward, hand-written against autodiff",
        "",
        "| case | dtype | handlayers jax.jit ms | jax.jit(vjp) ms | ratio (median, middle half) | target |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        for name, c in r["cases"].items():
            q = c["ratio"]
            met = "" if q["median"] <= q["at_most"] else " (within noise)" if q["low"] <= q["at_most"] else " (missed)"
            ms = [f"{c['seconds'][way] * 1e3:.3g}" for way in ("handlayers jax.jit", "jax.jit(vjp)")]
            lines.append(
                f"| {name} | {r['dtype']} | {ms[0]} | {ms[1]} | "
                f"{q['median']:.3f} ({q['low']:.3f} to {q['high']:.3f}){met} | at most {q['at_most']:.2f} |"
            )
    return "\n".join(lines) + "\n"
