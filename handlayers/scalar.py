"""The lab's one-number layers, elementwise so that they also take arrays and broadcast like numpy.

Inputs whose shapes do not broadcast raise ``ValueError``. Each gradient is summed back to its
input's shape (by :class:`~handlayers.Layer`), so an input that broadcasting stretched receives
the sum of the gradients of the outputs it fed.
"""

from __future__ import annotations

from typing import Any

from handlayers._layer import Layer, keep_where

__all__ = ["MLP", "Affine", "HingeLoss", "Plus", "ReLU", "Sigmoid", "Square", "SquaredLoss"]


class Plus(Layer):
    """``c = a + b``.

    Args:
        a, b: numbers or arrays of shapes that broadcast together.

    Returns:
        ``c``, of the broadcast shape. ``backward(dc)`` returns ``(da, db)``.
    """

    def _forward(self, a: Any, b: Any) -> Any:
        return a + b

    def _backward(self, dc: Any) -> tuple[Any, Any]:
        return dc, dc


class Square(Layer):
    """``y = x**2``. ``backward(dy)`` returns ``dx = 2 x dy``."""

    def _forward(self, x: Any) -> Any:
        self.x = x
        return x * x

    def _backward(self, dy: Any) -> Any:
        return 2 * self.x * dy


class Affine(Layer):
    """``a = w*x + b``, elementwise. ``backward(da)`` returns ``(dx, dw, db)``."""

    def _forward(self, x: Any, w: Any, b: Any) -> Any:
        self.x, self.w = x, w
        return w * x + b

    def _backward(self, da: Any) -> tuple[Any, Any, Any]:
        dx = self.w * da
        dw = self.x * da
        db = da
        return dx, dw, db


class ReLU(Layer):
    """``r = max(a, 0)``; ``NaN`` stays ``NaN``, as in ``np.maximum`` and ``jax.nn.relu``.

    ``backward(dr)`` returns ``da = dr`` except where ``a <= 0``, where it is 0: we take the
    gradient at the kink ``a == 0`` to be 0, as ``jax.nn.relu`` does, and at ``a = NaN`` to pass
    ``dr`` through, as ``torch.relu`` does (``jax.nn.relu`` gives 0 there; the one mask serves
    forward and backward).
    """

    def _forward(self, a: Any) -> Any:
        self.kept = ~(a <= 0)  # a > 0, and NaN: comparisons with NaN are False
        return keep_where(self._xp, self.kept, a)

    def _backward(self, dr: Any) -> Any:
        return keep_where(self._xp, self.kept, dr)


class Sigmoid(Layer):
    """``s = 1 / (1 + exp(-a))``, finite and warning-free for any finite ``a``.

    It never takes ``exp`` of a positive number: with ``e = exp(-|a|)`` in (0, 1],
    ``s = 1 / (1 + e)`` for ``a >= 0`` and ``s = e / (1 + e)`` for ``a < 0``.
    ``backward(ds)`` returns ``da = ds * s * (1 - s) = ds * e / (1 + e)**2``, the second form
    keeping full relative precision where ``s`` rounds to 1 (``a`` above about 17 in float32).
    """

    def _forward(self, a: Any) -> Any:
        xp = self._xp
        self.e = xp.exp(-xp.abs(a))
        return xp.where(a >= 0, 1, self.e) / (1 + self.e)

    def _backward(self, ds: Any) -> Any:
        e = self.e
        return ds * (e / ((1 + e) * (1 + e)))  # s * (1 - s), the same on both sides of 0


class SquaredLoss(Layer):
    """``l = (y_hat - y)**2``. ``backward(dl)`` returns ``(dy_hat, dy)``."""

    def _forward(self, y_hat: Any, y: Any) -> Any:
        self.diff = y_hat - y
        return self.diff * self.diff

    def _backward(self, dl: Any) -> tuple[Any, Any]:
        dy_hat = 2 * self.diff * dl
        return dy_hat, -dy_hat  # diff = y_hat - y


class HingeLoss(Layer):
    """``l = max(0, 1 - y*y_hat)`` for labels ``y`` in {-1, +1}: :class:`ReLU` of the margin.

    ``backward(dl)`` returns ``(dy_hat, dy)``; where the margin ``1 - y*y_hat`` is exactly 0 we
    take the gradient to be 0 (the loss is flat on that side). A ``NaN`` margin gives a ``NaN``
    loss and passes the gradient through, as :class:`ReLU` does.
    """

    def _forward(self, y_hat: Any, y: Any) -> Any:
        margin = 1 - y * y_hat
        self.y_hat, self.y, self.active = y_hat, y, ~(margin <= 0)  # margin > 0, or NaN
        return keep_where(self._xp, self.active, margin)

    def _backward(self, dl: Any) -> tuple[Any, Any]:
        dmargin = keep_where(self._xp, self.active, dl)
        dy_hat = -self.y * dmargin  # margin = 1 - y*y_hat
        dy = -self.y_hat * dmargin
        return dy_hat, dy


class MLP(Layer):
    """One hidden layer, built from the layers above: ``l = SquaredLoss(w2*ReLU(w1*x + b1) + b2, y)``.

    Inputs broadcast elementwise. ``backward(dl)`` returns ``(dx, dw1, db1, dw2, db2, dy)``.
    """

    # the layers it is built from; handlayers.vector.MLP swaps in the batched ones
    Affine, ReLU, Loss = Affine, ReLU, SquaredLoss

    def __init__(self) -> None:
        self.hidden, self.relu, self.output, self.loss = self.Affine(), self.ReLU(), self.Affine(), self.Loss()

    def _forward(self, x: Any, w1: Any, b1: Any, w2: Any, b2: Any, y: Any) -> Any:
        h = self.hidden.forward(x, w1, b1)
        r = self.relu.forward(h)
        y_hat = self.output.forward(r, w2, b2)
        return self.loss.forward(y_hat, y)

    def _backward(self, dl: Any) -> tuple[Any, ...]:
        dy_hat, dy = self.loss.backward(dl)
        dr, dw2, db2 = self.output.backward(dy_hat)
        dh = self.relu.backward(dr)
        dx, dw1, db1 = self.hidden.backward(dh)
        return dx, dw1, db1, dw2, db2, dy
