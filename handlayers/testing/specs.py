"""The specs: for each reference function, its layer, its inputs' names and how to draw them.

:data:`SPECS` maps a reference's name (``"vector.affine"``) to its :class:`Spec`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
import numpy as np
from hypothesis.extra import numpy as hnp

import reference.scalar
import reference.vector
from handlayers import scalar, vector
from handlayers.testing.strategies import MAX_SIDE, arrays, broadcast_inputs, floats, grid

__all__ = ["SPECS", "Spec"]


@dataclass(frozen=True)
class Spec:
    """What checking a layer against one reference function needs.

    Attributes:
        name: the reference's name, ``"scalar.relu"``.
        reference: the ``jax.numpy`` function whose ``jax.vjp`` is the oracle.
        layer: the built-in layer class that implements it.
        args: the names of forward's inputs, in order (the gradients are ``d`` + each name).
        draw: ``draw(dtype)`` is a strategy of ``(inputs, kwargs)`` for that float dtype.
        labels: the positions of the inputs that are not floating: integer labels or indices,
            boolean masks. They get the gradient ``None`` and reach the layer and the reference
            with their own dtype. At least one input must be floating (else ``ValueError``).
        degree: the degree of the gradients in the inputs' magnitude, for the a-priori (normwise)
            tolerance; ``None`` (the default) measures the tolerance on the reference instead
            (:func:`~handlayers.testing.tolerances`), for ill-conditioned layers and references
            of unknown degree.
        out_degree: the same for the output (default ``degree + 1``; 0 for a bounded output).
        elements: for elementwise (scalar) references, ``elements[i](dtype)`` draws the values of
            input ``i``; it lets :func:`examples` draw plain Python floats.
        outputs: the names of the outputs: ``("output",)`` for a reference of one output; for one
            that returns a tuple (``vector.lstm_step``: ``("h", "c")``), one name each, and then
            ``dout`` is a tuple of as many arrays.
        douts: the names of the output gradients: ``("dout",)``, or ``d`` + each output's name.
    """

    name: str
    reference: Callable[..., Any]
    layer: type
    args: tuple[str, ...]
    draw: Callable[[Any], st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]]
    labels: tuple[int, ...] = ()
    degree: int | None = None
    out_degree: int = -1
    elements: tuple[Callable[[Any], st.SearchStrategy[float]], ...] = ()
    outputs: tuple[str, ...] = ("output",)
    grads: tuple[str, ...] = field(init=False)
    douts: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grads", tuple("d" + a for a in self.args))
        several = len(self.outputs) > 1
        object.__setattr__(self, "douts", tuple("d" + o for o in self.outputs) if several else ("dout",))
        if self.degree is not None and self.out_degree < 0:
            object.__setattr__(self, "out_degree", self.degree + 1)
        if all(i in self.labels for i in range(len(self.args))):
            raise ValueError(f"{self.name}: no float input, so no gradient to check")


def _spec(name: str, layer: type, args: str, degree: int | None, draw: Callable[[Any], Any], **extra: Any) -> Spec:
    family, function = name.split(".")
    module = getattr(reference, family)
    return Spec(name, getattr(module, function), layer, tuple(args.split()), draw, degree=degree, **extra)


def _scalar_spec(
    name: str, layer: type, args: str, degree: int, *elements: Callable[[Any], Any], broadcast: bool = True, **kw: Any
) -> Spec:
    """An elementwise spec: one element strategy per input, shapes that broadcast (or one shared shape)."""

    def draw(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        # Two axes show both kinds of broadcasting (an added axis, a stretched one); a third would
        # only multiply the shapes, and every new combination of shapes compiles anew under jax.
        elements_ = [e(dtype) for e in elements]
        return broadcast_inputs(dtype, elements_, max_dims=2, max_side=MAX_SIDE, broadcast=broadcast)

    return _spec(f"scalar.{name}", layer, args, degree, draw, elements=elements, **kw)


def _wide(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 100.0)


def _sigmoid_input(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 1000.0, specials=(0.0, 1000.0, -1000.0, 2.0))


def _label_pm1(dtype: Any) -> st.SearchStrategy[float]:
    return st.sampled_from([-1.0, 1.0])


def _mlp_value(dtype: Any) -> st.SearchStrategy[float]:
    # float64 rounds too finely to move a kink; float32 gets exact grid values (see grid)
    return floats(dtype, 4.0, specials=(0.0, 1.0, -1.0, 0.5)) if np.dtype(dtype) == np.float64 else grid(4.0)


def _side(max_side: int = MAX_SIDE) -> st.SearchStrategy[int]:
    return st.integers(1, max_side)


def _labels(n: int, k: int) -> st.SearchStrategy[Any]:
    return arrays(np.int64, (n,), st.integers(0, k - 1))


def _logits(dtype: Any) -> st.SearchStrategy[float]:
    # ties come from the specials; 1e4 would overflow exp without the max shift
    return floats(dtype, 1e4, specials=(0.0, 1.0, -1.0, 1e4, -1e4))


def _scores(dtype: Any) -> st.SearchStrategy[float]:
    # S_ij = S_i,label - 1 puts a hinge term exactly at 0; float32 gets grid values, whose
    # differences are exact, so rounding cannot move a term across 0
    return floats(dtype, 100.0, specials=(0.0, 1.0, -1.0, 2.0)) if np.dtype(dtype) == np.float64 else grid(100.0)


def _affine_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        n, d_in = data(_side()), data(_side())
        d_out = data(st.one_of(st.just(d_in), _side()))  # d_out == d_in, where a missing transpose hides
        e = _wide(dtype)
        return (
            data(arrays(dtype, (n, d_in), e)),
            data(arrays(dtype, (d_in, d_out), e)),
            data(arrays(dtype, (d_out,), e)),
        ), {}

    return draw()


def _softmax_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        shape = data(hnp.array_shapes(min_dims=1, max_dims=3, max_side=MAX_SIDE))
        axis = data(st.integers(-len(shape), len(shape) - 1))
        return (data(arrays(dtype, shape, _logits(dtype))),), {"axis": axis}

    return draw()


def _pair_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        shape = (data(_side()), data(_side()))
        return (data(arrays(dtype, shape, _wide(dtype))), data(arrays(dtype, shape, _wide(dtype)))), {}

    return draw()


def _labelled_inputs(elements: Callable[[Any], st.SearchStrategy[float]]) -> Callable[[Any], Any]:
    def inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        @st.composite
        def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
            n, k = data(_side()), data(_side())
            return (data(arrays(dtype, (n, k), elements(dtype))), data(_labels(n, k))), {}

        return draw()

    return inputs


def _mlp_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # three unequal widths in every order: any transpose mixes two of them up
        n, (d_in, h, k) = data(_side()), data(st.sampled_from(list(itertools.permutations((1, 2, 3)))))
        shapes = [(n, d_in), (d_in, h), (h,), (h, k), (k,), (n, k)]
        return tuple(data(arrays(dtype, shape, _mlp_value(dtype))) for shape in shapes), {}

    return draw()


# issue 14: convolution and pooling


def _conv_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # strides of 2 with padding 1 and a batch of 1 come up often; each new shape compiles
        # under jax, so the images stay small
        stride, pad = data(st.sampled_from([1, 2, 3])), data(st.sampled_from([0, 1, 2]))
        n, c, f = data(_side(2)), data(_side()), data(_side())
        h, w = data(st.integers(1, 4)), data(st.integers(1, 4))
        # a kernel as large as the padded input (one output position), often
        hh, ww = (data(st.one_of(st.just(size + 2 * pad), st.integers(1, size + 2 * pad))) for size in (h, w))
        e = _wide(dtype)
        X, W, b = (data(arrays(dtype, shape, e)) for shape in ((n, c, h, w), (f, c, hh, ww), (f,)))
        return (X, W, b), {"stride": stride, "pad": pad}

    return draw()


def _pool_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        size, stride = data(st.integers(1, 3)), data(st.integers(1, 3))  # stride < size: windows overlap
        n, c = data(_side(2)), data(_side(2))
        h, w = data(st.integers(size, size + 3)), data(st.integers(size, size + 3))
        # half the examples on a coarse grid, where windows tie (the first maximum takes the
        # gradient), half without ties (where finite differences can check the reference)
        values = grid(2.0, step=0.5) if data(st.booleans()) else _wide(dtype)
        return (data(arrays(dtype, (n, c, h, w), values)),), {"size": size, "stride": stride}

    return draw()


SPECS: dict[str, Spec] = {
    s.name: s
    for s in [
        _scalar_spec("plus", scalar.Plus, "a b", 0, _wide, _wide),
        _scalar_spec("square", scalar.Square, "x", 1, _wide),
        _scalar_spec("affine", scalar.Affine, "x w b", 1, _wide, _wide, _wide),
        _scalar_spec("relu", scalar.ReLU, "a", 0, _wide),
        _scalar_spec("sigmoid", scalar.Sigmoid, "a", 0, _sigmoid_input, out_degree=0),
        _scalar_spec("squared_loss", scalar.SquaredLoss, "y_hat y", 1, _wide, _wide),
        _scalar_spec("hinge_loss", scalar.HingeLoss, "y_hat y", 1, _wide, _label_pm1),
        # its six inputs share one shape: broadcasting is the layers' own, tested above, and six
        # broadcast shapes make nearly every example a new combination to compile under jax
        _scalar_spec("mlp", scalar.MLP, "x w1 b1 w2 b2 y", 5, *[_mlp_value] * 6, broadcast=False),
        _spec("vector.affine", vector.Affine, "X W b", 1, _affine_inputs),
        _spec("vector.relu", vector.ReLU, "A", 0, lambda dtype: _matrix_inputs(dtype, _wide)),
        _spec(
            "vector.sigmoid", vector.Sigmoid, "A", 0, lambda dtype: _matrix_inputs(dtype, _sigmoid_input), out_degree=0
        ),
        _spec("vector.softmax", vector.Softmax, "Z", 0, _softmax_inputs, out_degree=0),
        _spec("vector.squared_loss", vector.SquaredLoss, "Y_hat Y", 1, _pair_inputs),
        _spec("vector.hinge_loss", vector.HingeLoss, "S labels", 0, _labelled_inputs(_scores), labels=(1,)),
        _spec(
            "vector.softmax_cross_entropy",
            vector.SoftmaxCrossEntropy,
            "Z labels",
            0,
            _labelled_inputs(_logits),
            labels=(1,),
        ),
        _spec("vector.mlp", vector.MLP, "X W1 b1 W2 b2 Y", 5, _mlp_inputs),
        # issue 14: convolution and pooling
        _spec("vector.conv2d", vector.Conv2d, "X W b", 1, _conv_inputs),
        _spec("vector.max_pool2d", vector.MaxPool2d, "X", 0, _pool_inputs),
    ]
}


def _matrix_inputs(dtype: Any, elements: Callable[[Any], st.SearchStrategy[float]]) -> Any:
    """One (n, d) array: the batched elementwise layers."""
    return hnp.array_shapes(min_dims=2, max_dims=2, max_side=MAX_SIDE).flatmap(
        lambda shape: arrays(dtype, shape, elements(dtype)).map(lambda a: ((a,), {}))
    )


# issue 13: part one layers


def _tanh_input(dtype: Any) -> st.SearchStrategy[float]:
    # tanh is 1 in float64 from about 19.1; jax's float64 tanh errs most (about 28 ulps) near 7.25
    return floats(dtype, 20.0, specials=(0.0, 1.0, -1.0, 7.25, -20.0))


def _leaky_relu_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    # a few slopes, the default among them: each new keyword compiles its own oracle under jax
    kwargs = st.sampled_from([{}, {"alpha": 0.2}, {"alpha": 0.0}, {"alpha": 1.5}])
    return st.tuples(_matrix_inputs(dtype, _wide).map(lambda inputs: inputs[0]), kwargs)


def _dropout_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        shape = data(hnp.array_shapes(min_dims=1, max_dims=2, max_side=MAX_SIDE))
        # every unit kept, every unit dropped, or any mask; p = 0 (the identity on kept units)
        keep = data(st.one_of(st.just(np.ones(shape, bool)), st.just(np.zeros(shape, bool)), hnp.arrays(bool, shape)))
        kwargs = data(st.sampled_from([{}, {"p": 0.0}, {"p": 0.25}, {"p": 0.9}]))
        return (data(arrays(dtype, shape, _wide(dtype))), keep), kwargs

    return draw()


def _embedding_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        V, d = data(_side()), data(_side())
        shape = data(hnp.array_shapes(min_dims=1, max_dims=2, max_side=MAX_SIDE))  # idx (n,) or (n, t)
        # indices repeat on purpose: up to 9 of them among at most 3 rows, or all one row
        index = st.integers(0, V - 1)
        idx = data(st.one_of(index.map(lambda i: np.full(shape, i, np.int64)), arrays(np.int64, shape, index)))
        return (idx, data(arrays(dtype, (V, d), _wide(dtype)))), {}

    return draw()


def _linear_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Affine's inputs with ``W`` in torch's layout, (d_out, d_in)."""
    return _affine_inputs(dtype).map(lambda drawn: ((drawn[0][0], drawn[0][1].T.copy(), drawn[0][2]), {}))


def _same_shape_inputs(
    first: Callable[[Any], st.SearchStrategy[float]], second: Callable[[Any], st.SearchStrategy[float]]
) -> Callable[[Any], Any]:
    """Two arrays of one shape with at least one entry (0-d included): the mean-over-entries losses."""

    def inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        @st.composite
        def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
            shape = data(hnp.array_shapes(min_dims=0, max_dims=2, max_side=MAX_SIDE))
            return (data(arrays(dtype, shape, first(dtype))), data(arrays(dtype, shape, second(dtype)))), {}

        return draw()

    return inputs


def _probability(dtype: Any) -> st.SearchStrategy[float]:
    """Targets in [0, 1], exactly 0 and 1 often."""
    uniform = st.floats(0.0, 1.0, width=np.finfo(dtype).bits, allow_subnormal=False)
    return st.one_of(st.sampled_from([0.0, 1.0, 0.5]), uniform)


_PART_ONE = [
    _spec("vector.tanh", vector.Tanh, "A", 0, lambda dtype: _matrix_inputs(dtype, _tanh_input), out_degree=0),
    _spec("vector.leaky_relu", vector.LeakyReLU, "A", 0, _leaky_relu_inputs),
    _spec("vector.dropout", vector.Dropout, "A keep", 0, _dropout_inputs, labels=(1,)),
    _spec("vector.embedding", vector.Embedding, "idx W", 0, _embedding_inputs, labels=(0,)),
    _spec("vector.linear", vector.Linear, "X W b", 1, _linear_inputs),
    _spec("vector.mean_squared_error", vector.MeanSquaredError, "Y_hat Y", 1, _same_shape_inputs(_wide, _wide)),
    # dY = -Z / size is of degree 1; the loss itself grows like |Z|, not |Z|**2
    _spec(
        "vector.binary_cross_entropy_with_logits",
        vector.BinaryCrossEntropyWithLogits,
        "Z Y",
        1,
        _same_shape_inputs(_logits, _probability),
        out_degree=1,
    ),
]
SPECS.update((s.name, s) for s in _PART_ONE)


# issue 13: normalization


def _normalization_inputs(axis: int) -> Callable[[Any], Any]:
    """``(X (n, d), gamma (d,), beta (d,))`` and sometimes ``eps``; often one slice of ``X``
    along ``axis`` (a feature for batch norm, a row for layer norm) is constant, so that its
    variance is 0 and ``eps`` is all that is left. Batch norm draws a batch of one a third of the time."""

    def inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        @st.composite
        def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
            n, d = data(_side()), data(_side())
            X = data(arrays(dtype, (n, d), _wide(dtype)))
            if data(st.booleans()):
                constant = data(st.integers(0, X.shape[1 - axis] - 1))
                value = data(floats(dtype, 100.0, specials=(0.0, 1.0, 0.1, -3.0)))
                X[(slice(None), constant) if axis == 0 else (constant, slice(None))] = value
            gamma, beta = (data(arrays(dtype, (d,), _wide(dtype))) for _ in "gb")
            kwargs = data(st.sampled_from([{}, {"eps": 0.5}]))
            return (X, gamma, beta), kwargs

        return draw()

    return inputs


SPECS.update(
    {
        s.name: s
        for s in [
            # None: the tolerance is measured, since a normalization divides by a standard
            # deviation that can be as small as sqrt(eps), which no degree describes
            _spec("vector.batch_norm", vector.BatchNorm, "X gamma beta", None, _normalization_inputs(0)),
            _spec("vector.layer_norm", vector.LayerNorm, "X gamma beta", None, _normalization_inputs(1)),
        ]
    }
)


# issue 14: recurrent and attention
#
# Sides of 1 to MAX_SIDE draw batches of 1, sequences of length 1 (RNN), one query or key
# (Attention), and unequal sides, where a missing transpose shows; Attention draws tq != tk and
# the causal mask (then tq == tk). The values stay small: an RNN's gradient is a product of up to
# MAX_SIDE weight matrices, and a large value only loosens the tolerance (M ** degree). Where
# rounding can grow with a chain of steps, the degrees below bound it: an error of eps * M**2 in a
# pre-activation reaches a gradient through one more weight (RNNStep, LSTMStep: 3), and through
# one more step each (RNN: 2 + MAX_SIDE); Attention's scores are of degree 2, and the softmax
# carries their error to the output (3) and its gradients (4).


def _small(dtype: Any) -> st.SearchStrategy[float]:
    return floats(dtype, 4.0)


def _step_inputs(gates: int, cell: bool) -> Callable[[Any], Any]:
    """x (n, d), h_prev (n, H) [, c_prev (n, H)], Wx (d, G), Wh (H, G), b (G,), with G = gates * H."""

    def inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
        @st.composite
        def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
            n, d, H = data(_side()), data(_side()), data(_side())
            shapes = [(n, d), (n, H), *([(n, H)] if cell else []), (d, gates * H), (H, gates * H), (gates * H,)]
            return tuple(data(arrays(dtype, shape, _small(dtype))) for shape in shapes), {}

        return draw()

    return inputs


def _rnn_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        n, t, d, H = data(_side()), data(_side()), data(_side()), data(_side())
        shapes = [(n, t, d), (n, H), (d, H), (H, H), (H,)]
        return tuple(data(arrays(dtype, shape, _small(dtype))) for shape in shapes), {}

    return draw()


def _attention_inputs(dtype: Any) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    @st.composite
    def draw(data: st.DrawFn) -> tuple[tuple[Any, ...], dict[str, Any]]:
        causal = data(st.booleans())
        n, tq, d, dv = data(_side()), data(_side()), data(_side()), data(_side())
        tk = tq if causal else data(_side())
        e = floats(dtype, 8.0)  # scores up to 64 * d / sqrt(d): the softmax saturates at times
        shapes = [(n, tq, d), (n, tk, d), (n, tk, dv)]
        return tuple(data(arrays(dtype, shape, e)) for shape in shapes), {"causal": causal}

    return draw()


SPECS.update(
    {
        s.name: s
        for s in [
            _spec("vector.rnn_step", vector.RNNStep, "x h_prev Wx Wh b", 3, _step_inputs(1, cell=False)),
            _spec("vector.rnn", vector.RNN, "x h0 Wx Wh b", 2 + MAX_SIDE, _rnn_inputs, out_degree=1 + MAX_SIDE),
            _spec(
                "vector.lstm_step",
                vector.LSTMStep,
                "x h_prev c_prev Wx Wh b",
                3,
                _step_inputs(4, cell=True),
                outputs=("h", "c"),
            ),
            _spec("vector.attention", vector.Attention, "Q K V", 4, _attention_inputs, out_degree=3),
        ]
    }
)
