"""Networks: the layers stacked in a :class:`Sequential`, their parameters initialized from a seed.

A network is a list of pieces, each a layer class, the reference function it implements and the
shapes of its parameters. Its parameters are a list with one tuple of arrays per piece (empty for
an activation): ``[(W1, b1), (), (W2, b2)]``, a pytree for ``jax.jit`` as it is. Its gradients
have the same structure, computed by the layers' own ``backward`` from a softmax cross-entropy
loss on integer labels.

    net = Sequential(dense(64, 128), relu(), dense(128, 10))
    params = net.init(seed=0)
    loss, grads = net.loss_and_gradients(params, X, labels)  # grads: [(dW1, db1), (), (dW2, db2)]
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handlayers import vector
from handlayers._layer import Layer, shape_error

__all__ = ["INITS", "Flatten", "Piece", "Sequential", "conv2d", "dense", "flatten", "max_pool2d", "relu"]


class Flatten(Layer):
    """``X (n, ...)`` → ``(n, d)``, each example's entries in row-major order; ``backward`` reshapes back."""

    def _check_shapes(self, X: tuple) -> None:
        if len(X) < 1:
            raise shape_error("Flatten", "X (n, ...)", X=X)

    def _forward(self, X: Any) -> Any:
        self.shape = X.shape
        return self._xp.reshape(X, (X.shape[0], -1))

    def _backward(self, dY: Any) -> Any:
        return self._xp.reshape(dY, self.shape)


def _flatten_reference(X: Any) -> Any:
    """``X.reshape(n, -1)``: the reference of :class:`Flatten`."""
    return X.reshape(X.shape[0], -1)


@dataclass(frozen=True)
class Piece:
    """One layer of a network.

    Attributes:
        reference: the name of its reference function, ``"vector.affine"`` (a name of
            ``handlayers.testing.SPECS``), or ``"flatten"``.
        layer: makes the layer from the constructor keywords ``kwargs`` (``None`` in a network
            built by :meth:`Sequential.from_references`, which has only its references).
        shapes: the shapes of its parameters, forward's inputs after the first.
        fans: ``(fan_in, fan_out)`` of its weight, for the initialization.
        kwargs: the layer's constructor keywords, also the reference's keyword arguments.
        takes_input_grad: whether the layer takes ``input_grad=False`` (no gradient for its input,
            which the first layer of a network does not need).
    """

    reference: str
    layer: Callable[..., Any] | None
    shapes: tuple[tuple[int, ...], ...] = ()
    fans: tuple[int, int] = (0, 0)
    kwargs: dict[str, Any] = field(default_factory=dict)
    takes_input_grad: bool = False

    def make(self, first: bool = False) -> Any:
        """A new layer; ``first``: the network's first, whose input (data) needs no gradient."""
        extra = {"input_grad": False} if first and self.takes_input_grad else {}
        return self.layer(**self.kwargs, **extra)

    def reference_function(self) -> Callable[..., Any]:
        """The ``jax.numpy`` function this piece computes (imports ``reference``, and so jax)."""
        if self.reference == "flatten":
            return _flatten_reference
        family, name = self.reference.split(".")
        return getattr(importlib.import_module(f"reference.{family}"), name)


def dense(d_in: int, d_out: int) -> Piece:
    """``X @ W + b``: :class:`handlayers.vector.Affine` with ``W (d_in, d_out)``, ``b (d_out,)``."""
    return Piece("vector.affine", vector.Affine, ((d_in, d_out), (d_out,)), (d_in, d_out), takes_input_grad=True)


def relu() -> Piece:
    """``max(A, 0)``: :class:`handlayers.vector.ReLU`."""
    return Piece("vector.relu", vector.ReLU)


def conv2d(c: int, f: int, size: int, *, stride: int = 1, pad: int = 0) -> Piece:
    """``f`` filters of ``c`` channels, ``size x size``: ``vector.Conv2d`` with ``W (f, c, size, size)``, ``b (f,)``."""
    return Piece(
        "vector.conv2d",
        vector.Conv2d,
        ((f, c, size, size), (f,)),
        (c * size * size, f * size * size),
        {"stride": stride, "pad": pad},
    )


def max_pool2d(size: int = 2, stride: int = 2) -> Piece:
    """The max of each ``size x size`` window: ``vector.MaxPool2d``."""
    return Piece("vector.max_pool2d", vector.MaxPool2d, kwargs={"size": size, "stride": stride})


def flatten() -> Piece:
    """``(n, ...)`` → ``(n, d)``: :class:`Flatten`, between the convolutions and the dense layers."""
    return Piece("flatten", Flatten)


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """He (Kaiming) normal: ``N(0, 2 / fan_in)``, which keeps a ReLU network's activations' scale."""
    return rng.standard_normal(shape) * math.sqrt(2 / fan_in)


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    """Glorot (Xavier) uniform: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``."""
    a = math.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-a, a, shape)


#: the initialization schemes by name: ``scheme(rng, shape, fan_in, fan_out)`` draws a weight
INITS: dict[str, Callable[[np.random.Generator, tuple[int, ...], int, int], np.ndarray]] = {
    "he": _he,
    "glorot": _glorot,
}


class Sequential:
    """Layers applied one after another, then a softmax cross-entropy loss on integer labels.

    Args:
        pieces: the layers, in order (:func:`dense`, :func:`relu`, :func:`conv2d`, ...).
        init: the weights' initialization, a name of :data:`INITS` (``"he"`` or ``"glorot"``);
            biases start at 0.
    """

    def __init__(self, *pieces: Piece, init: str = "he") -> None:
        if init not in INITS:
            raise ValueError(f"unknown initialization {init!r}; the schemes are: {', '.join(INITS)}")
        self.pieces, self.init_scheme = pieces, init

    def init(self, seed: int, dtype: Any = np.float64, xp: Any = np) -> list[tuple[Any, ...]]:
        """The parameters, drawn from ``seed`` in float64 and cast to ``dtype`` in ``xp`` (numpy or
        ``jax.numpy``): the same seed gives the same numbers in both."""
        rng = np.random.default_rng(seed)
        draw = INITS[self.init_scheme]
        params = []
        for piece in self.pieces:
            weights = [
                draw(rng, shape, *piece.fans) if i == 0 else np.zeros(shape) for i, shape in enumerate(piece.shapes)
            ]
            params.append(tuple(xp.asarray(w, dtype=dtype) for w in weights))
        return params

    def logits(self, params: Sequence[tuple[Any, ...]], X: Any) -> Any:
        """The network's output (the scores the loss takes) for the inputs ``X``."""
        for piece, p in zip(self.pieces, params, strict=True):
            X = piece.make().forward(X, *p)
        return X

    def loss_and_gradients(self, params: Sequence[tuple[Any, ...]], X: Any, labels: Any) -> tuple[Any, list[tuple]]:
        """The mean softmax cross-entropy of the batch and its gradient with respect to every
        parameter, by the layers' hand-written backward passes (numpy or jax arrays alike)."""
        layers = [piece.make(first=i == 0) for i, piece in enumerate(self.pieces)]
        for layer, p in zip(layers, params, strict=True):
            X = layer.forward(X, *p)
        loss_layer = vector.SoftmaxCrossEntropy()
        loss = loss_layer.forward(X, labels)
        dX, _ = loss_layer.backward(1.0)
        grads: list[tuple] = [()] * len(layers)
        for i in reversed(range(len(layers))):
            out = layers[i].backward(dX)
            if params[i]:
                dX, *dparams = out  # (dX, dW, db): dX is None for the first layer
                grads[i] = tuple(dparams)
            else:
                dX = out
        return loss, grads

    def references(self) -> list[tuple[str, dict[str, Any]]]:
        """Each piece's reference and keywords: all :meth:`reference_loss` needs, to build it again
        elsewhere with :meth:`from_references` (the training's audit does, in a process of its own)."""
        return [(piece.reference, dict(piece.kwargs)) for piece in self.pieces]

    @classmethod
    def from_references(cls, references: Sequence[tuple[str, dict[str, Any]]]) -> Sequential:
        """A network of :meth:`references`' pieces, without their layers: for :meth:`reference_loss`."""
        return cls(*(Piece(reference, None, kwargs=dict(kwargs)) for reference, kwargs in references))

    def reference_loss(self, params: Sequence[tuple[Any, ...]], X: Any, labels: Any) -> Any:
        """The same loss built from the reference functions: ``jax.grad`` of it is the audit's oracle."""
        from reference.vector import softmax_cross_entropy

        for piece, p in zip(self.pieces, params, strict=True):
            X = piece.reference_function()(X, *p, **piece.kwargs)
        return softmax_cross_entropy(X, labels)
