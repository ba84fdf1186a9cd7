"""A loss as a method of an object, returning (loss, dx): Svm_loss().loss(x, y)."""

import numpy as np


class Svm_loss:
    def __init__(self, delta=1.0):
        self.delta = delta

    def loss(self, x, y):
        n = x.shape[0]
        correct = x[np.arange(n), y][:, None]
        margins = np.maximum(0, x - correct + self.delta)
        margins[np.arange(n), y] = 0
        positive = (margins > 0).astype(x.dtype)
        positive[np.arange(n), y] = -positive.sum(axis=1)
        return margins.sum() / n, positive / n


class Svm_loss_through(Svm_loss):
    """Counts a margin of exactly 0 as active (>= where the convention takes >)."""

    def loss(self, x, y):
        n = x.shape[0]
        correct = x[np.arange(n), y][:, None]
        scores = x - correct + self.delta
        scores[np.arange(n), y] = -1
        positive = (scores >= 0).astype(x.dtype)
        positive[np.arange(n), y] = -positive.sum(axis=1)
        return np.maximum(scores, 0).sum() / n, positive / n


class Softmax_loss:
    """A loss whose constructor takes the number of classes: Softmax_loss(k).loss(x, y)."""

    def __init__(self, classes):
        self.classes = classes

    def loss(self, x, y):
        if x.shape[1] != self.classes:
            raise ValueError(f"expected {self.classes} classes, got x {x.shape}")
        n = x.shape[0]
        shifted = x - x.max(axis=1, keepdims=True)
        total = np.exp(shifted).sum(axis=1, keepdims=True)
        loss = (np.log(total[:, 0]) - shifted[np.arange(n), y]).sum() / n
        p = np.exp(shifted) / total
        p[np.arange(n), y] -= 1
        return loss, p / n
