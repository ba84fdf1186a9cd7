"""Losses: means over the batch (or, for ``MeanSquaredError`` and ``BinaryCrossEntropyWithLogits``,
over every entry); integer labels (n,) in ``[0, k)`` get the gradient ``None``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from handlayers._layer import Layer, check_indices, shape_error

__all__ = ["BinaryCrossEntropyWithLogits", "HingeLoss", "MeanSquaredError", "SoftmaxCrossEntropy", "SquaredLoss"]


class SquaredLoss(Layer):
    """``l = (1/n) * sum((Y_hat - Y)**2)``.

    Args:
        Y_hat: (n, k) predictions.
        Y: (n, k) targets.

    Returns:
        l: a scalar. ``backward(dl)`` returns ``(dY_hat, dY)``.
    """

    def _check_shapes(self, Y_hat: tuple, Y: tuple) -> None:
        if not (len(Y_hat) == 2 and Y_hat == Y and Y[0] > 0):
            raise shape_error("SquaredLoss", "Y_hat and Y of one shape (n, k), n >= 1", Y_hat=Y_hat, Y=Y)

    def _forward(self, Y_hat: Any, Y: Any) -> Any:
        self.diff = Y_hat - Y
        return self._xp.sum(self.diff * self.diff) / Y.shape[0]

    def _backward(self, dl: Any) -> tuple[Any, Any]:
        dY_hat = (2 / self.diff.shape[0]) * dl * self.diff
        return dY_hat, -dY_hat  # diff = Y_hat - Y


def _check_scores_and_labels(owner: str, scores: tuple, labels: tuple) -> None:
    if not (len(scores) == 2 and len(labels) == 1 and labels[0] == scores[0] and min(scores) > 0):
        raise shape_error(owner, "scores (n, k) and labels (n,), n, k >= 1", scores=scores, labels=labels)


def _check_labels(labels: Any, k: int) -> None:
    """Raise unless ``labels`` are integers; labels outside [0, k) raise on eager inputs."""
    check_indices("labels", labels, k)


def _one_hot(xp: Any, labels: Any, k: int) -> Any:
    """(n, k) booleans, True at each example's label (see :func:`_check_labels`)."""
    _check_labels(labels, k)
    return xp.arange(k) == labels[:, None]


class HingeLoss(Layer):
    """Multiclass hinge loss with margin 1.

    ``l = (1/n) * sum_i sum_{j != labels_i} max(0, S_ij - S_i,labels_i + 1)``.

    Args:
        S: (n, k) scores.
        labels: (n,) integer labels in [0, k).

    Returns:
        l: a scalar, ``NaN`` when a term is ``NaN``. ``backward(dl)`` returns ``(dS, None)``. A
        term that is exactly 0 sends no gradient (we take the gradient of ``max(0, m)`` at
        ``m = 0`` to be 0); a ``NaN`` term sends it, as :class:`~handlayers.vector.ReLU` does.
    """

    labels = (1,)

    def _check_shapes(self, S: tuple, labels: tuple) -> None:
        _check_scores_and_labels("HingeLoss", S, labels)

    def _forward(self, S: Any, labels: Any) -> Any:
        xp = self._xp
        self.is_label = _one_hot(xp, labels, S.shape[1])
        correct = xp.take_along_axis(S, labels[:, None], axis=1)
        margins = S - correct + 1
        self.active = ~(margins <= 0) & ~self.is_label  # margins > 0, or NaN: a NaN term stays
        return xp.sum(xp.where(self.active, margins, 0)) / S.shape[0]

    def _backward(self, dl: Any) -> tuple[Any, None]:
        xp, active = self._xp, self.active
        # each active term adds S_ij and subtracts S_i,label
        counts = xp.sum(active, axis=1, keepdims=True, dtype=dl.dtype)
        dS = (dl / active.shape[0]) * (active - self.is_label * counts)
        return dS, None


class SoftmaxCrossEntropy(Layer):
    """``l = -(1/n) * sum_i log softmax(Z_i)[labels_i]``; finite for any finite ``Z``.

    ``-log softmax(Z_i)[y] = log(sum(exp(Z_i - max(Z_i)))) - (Z_iy - max(Z_i))``: every ``exp`` is
    at most 1 and the largest is exactly 1, so the ``log`` never sees 0.

    Args:
        Z: (n, k) logits.
        labels: (n,) integer labels in [0, k).

    Returns:
        l: a scalar. ``backward(dl)`` returns ``(dZ, None)``, ``dZ = (softmax(Z) - onehot) * dl / n``.
    """

    labels = (1,)

    def _check_shapes(self, Z: tuple, labels: tuple) -> None:
        _check_scores_and_labels("SoftmaxCrossEntropy", Z, labels)

    def _forward(self, Z: Any, labels: Any) -> Any:
        xp = self._xp
        _check_labels(labels, Z.shape[1])
        self.y = labels.copy()  # backward reads them: a caller may reuse its label array meanwhile
        shifted = Z - xp.max(Z, axis=1, keepdims=True)  # at most 0
        e = xp.exp(shifted)
        total = xp.sum(e, axis=1, keepdims=True)  # at least 1
        self.p = e / total
        # -log p_label = log(total) - shifted_label: two sums of terms >= 0, so nothing cancels
        return (xp.sum(xp.log(total)) - xp.sum(xp.take_along_axis(shifted, labels[:, None], axis=1))) / Z.shape[0]

    def _backward(self, dl: Any) -> tuple[Any, None]:
        # dZ = scale * (p - onehot), bit for bit: scale * p everywhere, then (p - 1) * scale at
        # each example's label; no (n, k) one-hot array is built
        xp, p = self._xp, self.p
        scale = dl / p.shape[0]
        rows = xp.arange(p.shape[0])
        at_label = (p[rows, self.y] - 1) * scale
        if xp is np:
            dZ = p * scale
            dZ[rows, self.y] = at_label
            return dZ, None
        # the one-hot form does the same work, but its whole training step ran about 1.2x slower
        # in jax.jit on the CPU (docs/performance.md: "inside jax.jit")
        return (p * scale).at[rows, self.y].set(at_label), None


def _check_same_shape(owner: str, first: str, second: str, a: tuple, b: tuple) -> None:
    """Raise unless ``a`` and ``b`` are one shape with at least one entry (a mean of none is 0/0)."""
    if not (a == b and math.prod(a) > 0):
        raise shape_error(owner, f"{first} and {second} of one shape with at least one entry", **{first: a, second: b})


class MeanSquaredError(Layer):
    """``l = mean((Y_hat - Y)**2)`` over every entry (torch's ``MSELoss()``).

    Args:
        Y_hat: predictions of any shape with at least one entry.
        Y: targets of ``Y_hat``'s shape.

    Returns:
        l: a scalar. ``backward(dl)`` returns ``(dY_hat, dY)``, ``dY_hat = (2 / size) * dl *
        (Y_hat - Y) = -dY``, ``size`` the number of entries. Finite unless a squared difference
        exceeds the dtype's largest number, where the loss itself is about that large.
    """

    def _check_shapes(self, Y_hat: tuple, Y: tuple) -> None:
        _check_same_shape("MeanSquaredError", "Y_hat", "Y", Y_hat, Y)

    def _forward(self, Y_hat: Any, Y: Any) -> Any:
        self.diff = Y_hat - Y
        return self._xp.sum(self.diff * self.diff) / self.diff.size

    def _backward(self, dl: Any) -> tuple[Any, Any]:
        dY_hat = (2 / self.diff.size) * dl * self.diff
        return dY_hat, -dY_hat  # diff = Y_hat - Y


class BinaryCrossEntropyWithLogits(Layer):
    """``l = mean(max(Z, 0) - Z*Y + log(1 + exp(-|Z|)))`` over every entry; finite for any finite ``Z``.

    Each term is ``-Y log(sigmoid(Z)) - (1 - Y) log(1 - sigmoid(Z))`` written so that ``exp``
    never overflows and ``log`` never sees 0 (torch's ``BCEWithLogitsLoss()``). Each term is divided
    by ``size`` before the sum, so the sum cannot overflow where the mean would not.

    Args:
        Z: logits of any shape with at least one entry.
        Y: targets in [0, 1] of ``Z``'s shape (not checked: the formula and its gradient hold for
            any ``Y``).

    Returns:
        l: a scalar. ``backward(dl)`` returns ``(dZ, dY)``, ``dZ = (sigmoid(Z) - Y) * dl / size``
        everywhere, ``Z == 0`` included (the loss is smooth there, though ``max`` and ``|Z|`` are
        not), and ``dY = -Z * dl / size``.
    """

    def _check_shapes(self, Z: tuple, Y: tuple) -> None:
        _check_same_shape("BinaryCrossEntropyWithLogits", "Z", "Y", Z, Y)

    def _forward(self, Z: Any, Y: Any) -> Any:
        xp = self._xp
        self.Z, self.Y = Z, Y
        self.e = xp.exp(-xp.abs(Z))  # in (0, 1]
        terms = xp.maximum(Z, 0) - Z * Y + xp.log1p(self.e)
        return xp.sum(terms / Z.size)

    def _backward(self, dl: Any) -> tuple[Any, Any]:
        xp, Z, e = self._xp, self.Z, self.e
        scale = dl / Z.size
        sigmoid = xp.where(Z >= 0, 1, e) / (1 + e)  # as Sigmoid: no exp of a positive number
        return (sigmoid - self.Y) * scale, -Z * scale
