"""Layers that take their parameters in the constructor and keep gradients as attributes:
backward returns dX and stores dW and db."""

import numpy as np


class Dense:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, X):
        self.X = X
        return X @ self.W + self.b

    def backward(self, dout):
        self.dW = self.X.T @ dout
        self.db = dout.sum(axis=0)
        return dout @ self.W.T


class Dense_dW_over_n(Dense):
    """Divides dW by the batch size (a mean where the layer sums)."""

    def backward(self, dout):
        dX = super().backward(dout)
        self.dW = self.dW / len(dout)
        return dX


class Dense_zero_forward(Dense):
    """Forgets to add the product: returns only the bias, broadcast."""

    def forward(self, X):
        self.X = X
        return np.zeros((len(X), 1)) + self.b


class Linear:
    """torch's layout: W is (out, in), y = X W^T + b."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, X):
        self.X = X
        return X @ self.W.T + self.b

    def backward(self, dout):
        self.dW = dout.T @ self.X
        self.db = dout.sum(axis=0)
        return dout @ self.W


class Gate:
    """A multiply gate whose backward takes (dout, x): z = x * y."""

    def forward(self, x, y):
        self.y = y
        return x * y

    def backward(self, dout, x):
        return dout * self.y, dout * x


class Gate_stored:
    """A multiply gate handed its own stored input: backward(dout, x) called as backward(dout, self.x)."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout, x):
        return dout * self.y, dout * x


class Gate_wrong_input(Gate):
    """dy uses y where x belongs (the derivative taken from the wrong array)."""

    def backward(self, dout, x):
        return dout * self.y, dout * self.y


class Gate_no_dout(Gate):
    """Leaves out the upstream gradient: dx = y and dy = x, whatever dout is."""

    def backward(self, dout, x):
        return self.y, x
