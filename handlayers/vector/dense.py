"""Dense layers: ``X @ W + b``, torch's ``X @ W.T + b``, and the one-hidden-layer network."""

from __future__ import annotations

from typing import Any

import numpy as np

from handlayers import scalar
from handlayers._layer import Layer, shape_error
from handlayers.vector.activations import ReLU
from handlayers.vector.losses import SquaredLoss

__all__ = ["MLP", "Affine", "Linear"]


class Affine(Layer):
    """``A = X @ W + b``.

    Args:
        X: (n, d_in) inputs.
        W: (d_in, d_out) weights.
        b: (d_out,) biases.

    Returns:
        A: (n, d_out). ``backward(dA)`` returns ``(dX, dW, db)`` of the shapes of ``X, W, b``.

    ``Affine(input_grad=False)`` returns ``None`` for ``dX`` and skips its matmul, the largest
    cost of the backward pass when ``d_in`` is large: for the first layer of a network, whose
    input is data, training needs only ``dW`` and ``db``.
    """

    def __init__(self, input_grad: bool = True) -> None:
        self.input_grad = input_grad

    def _check_shapes(self, X: tuple, W: tuple, b: tuple) -> None:
        if not (len(X) == 2 and len(W) == 2 and len(b) == 1 and X[1] == W[0] and W[1] == b[0]):
            raise shape_error("Affine", "X (n, d_in), W (d_in, d_out), b (d_out,)", X=X, W=W, b=b)

    def _forward(self, X: Any, W: Any, b: Any) -> Any:
        self.X, self.W = X, W
        A = X @ W
        if self._xp is np:
            A += b  # A is new, so no temporary for the sum
            return A
        return A + b

    def _backward(self, dA: Any) -> tuple[Any, Any, Any]:
        dX = dA @ self.W.T if self.input_grad else None
        dW = self.X.T @ dA
        db = self._xp.sum(dA, axis=0)  # b was broadcast over the batch
        return dX, dW, db


class Linear(Layer):
    """``A = X @ W.T + b``, with ``W`` in torch's layout (one row per output).

    Args:
        X: (n, d_in) inputs.
        W: (d_out, d_in) weights.
        b: (d_out,) biases.

    Returns:
        A: (n, d_out). ``backward(dA)`` returns ``(dX, dW, db)`` of the shapes of ``X, W, b``:
        ``dX = dA @ W``, ``dW = dA.T @ X``, ``db = sum(dA, axis=0)``.
    """

    def _check_shapes(self, X: tuple, W: tuple, b: tuple) -> None:
        if not (len(X) == 2 and len(W) == 2 and len(b) == 1 and X[1] == W[1] and W[0] == b[0]):
            raise shape_error("Linear", "X (n, d_in), W (d_out, d_in), b (d_out,)", X=X, W=W, b=b)

    def _forward(self, X: Any, W: Any, b: Any) -> Any:
        self.X, self.W = X, W
        A = X @ W.T
        if self._xp is np:
            A += b  # A is new, so no temporary for the sum
            return A
        return A + b

    def _backward(self, dA: Any) -> tuple[Any, Any, Any]:
        dX = dA @ self.W
        dW = dA.T @ self.X
        db = self._xp.sum(dA, axis=0)  # b was broadcast over the batch
        return dX, dW, db


class MLP(scalar.MLP):
    """One hidden layer, built from the layers above, as :class:`handlayers.scalar.MLP` is from
    the scalar ones: ``l = SquaredLoss(Affine(ReLU(Affine(X, W1, b1)), W2, b2), Y)``.

    Args:
        X: (n, d_in), W1: (d_in, h), b1: (h,), W2: (h, k), b2: (k,), Y: (n, k).

    Returns:
        l: a scalar. ``backward(dl)`` returns ``(dX, dW1, db1, dW2, db2, dY)``.
    """

    Affine, ReLU, Loss = Affine, ReLU, SquaredLoss

    def __init__(self, input_grad: bool = True) -> None:
        """``MLP(input_grad=False)`` returns ``None`` for ``dX`` (see :class:`Affine`)."""
        super().__init__()
        self.hidden = Affine(input_grad=input_grad)

    def _check_shapes(self, X: tuple, W1: tuple, b1: tuple, W2: tuple, b2: tuple, Y: tuple) -> None:
        fits = len(X) == len(W1) == len(W2) == len(Y) == 2 and len(b1) == len(b2) == 1
        if not (fits and X[1] == W1[0] and W1[1] == b1[0] == W2[0] and W2[1] == b2[0] and (X[0], W2[1]) == Y):
            raise shape_error(
                "MLP",
                "X (n, d_in), W1 (d_in, h), b1 (h,), W2 (h, k), b2 (k,), Y (n, k)",
                X=X, W1=W1, b1=b1, W2=W2, b2=b2, Y=Y,
            )  # fmt: skip
