"""An LSTM step written as in a course's assignment (numpy, gates i, f, o, g): one right, and wrong ones."""

import numpy as np


def sigmoid(a):
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1, e) / (1 + e)


class LSTMStep:
    def forward(self, x, h_prev, c_prev, Wx, Wh, b):
        H = h_prev.shape[1]
        a = x @ Wx + h_prev @ Wh + b
        i, f, o, g = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 2 * H : 3 * H]), np.tanh(a[:, 3 * H :])
        c = f * c_prev + i * g
        h = o * np.tanh(c)
        self.cache = x, h_prev, c_prev, Wx, Wh, i, f, o, g, c
        return h, c

    def backward(self, douts):
        dh, dc = douts
        x, h_prev, c_prev, Wx, Wh, i, f, o, g, c = self.cache
        dc = dc + self.through_h(dh, o, c)
        da = np.concatenate(
            [
                dc * g * self.dsigmoid(i),
                dc * c_prev * self.dsigmoid(f),
                dh * np.tanh(c) * self.dsigmoid(o),
                dc * i * self.dtanh(g),
            ],
            axis=1,
        )
        return da @ Wx.T, da @ Wh.T, dc * f, x.T @ da, h_prev.T @ da, da.sum(axis=0)

    def through_h(self, dh, o, c):
        return dh * o * (1 - np.tanh(c) ** 2)

    def dsigmoid(self, s):  # at a gate's output s = sigmoid(a)
        return s * (1 - s)

    def dtanh(self, g):  # at g = tanh(a)
        return 1 - g**2


class LSTMStepIFGO(LSTMStep):
    """Splits the gates in torch's order i, f, g, o instead of i, f, o, g."""

    def forward(self, x, h_prev, c_prev, Wx, Wh, b):
        H = h_prev.shape[1]
        order = np.r_[0 : 2 * H, 3 * H : 4 * H, 2 * H : 3 * H]  # swaps the blocks of o and g
        return super().forward(x, h_prev, c_prev, Wx[:, order], Wh[:, order], b[order])


class LSTMStepCellIgnoresH(LSTMStep):
    """Forgets that c also feeds h = o * tanh(c): dc_prev and the gates miss dh's share."""

    def through_h(self, dh, o, c):
        return 0 * dh


class LSTMStepCellTanhFromInput(LSTMStep):
    """Writes tanh(c)'s derivative for its output, 1 - out**2, but computes it from c."""

    def through_h(self, dh, o, c):
        return dh * o * (1 - c**2)


class LSTMStepGateTanhAtOutput(LSTMStep):
    """Takes the g gate's tanh derivative at its output: 1 - tanh(g)**2, where g is tanh's already."""

    def dtanh(self, g):
        return 1 - np.tanh(g) ** 2


class LSTMStepSigmoidAtOutput(LSTMStep):
    """Takes every gate's sigmoid derivative at its output: sigmoid(s) * (1 - sigmoid(s))."""

    def dsigmoid(self, s):
        return sigmoid(s) * (1 - sigmoid(s))


class LSTMStepForgetGateAtOutput(LSTMStep):
    """Takes the forget gate's sigmoid derivative at its output; the other gates are right."""

    def backward(self, douts):
        *_, f, _, _, _ = self.cache
        self.forget = f
        return super().backward(douts)

    def dsigmoid(self, s):
        return sigmoid(s) * (1 - sigmoid(s)) if s is self.forget else s * (1 - s)
