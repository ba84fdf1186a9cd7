"""Lab layers, each with one deliberate mistake of the kind students make."""

import math

from lab_right import Affine as RightAffine


class ReLUThroughAtZero:
    """Passes the gradient through at a == 0."""

    def forward(self, a):
        self.a = a
        return max(a, 0.0)

    def backward(self, dout):
        return dout if self.a >= 0 else 0.0


class SquareNoTwo:
    """Drops the factor 2."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dout):
        return self.x * dout


class SquaredLossWrongSign:
    """dy has the sign of dy_hat."""

    def forward(self, y_hat, y):
        self.diff = y_hat - y
        return self.diff**2

    def backward(self, dout):
        return 2 * self.diff * dout, 2 * self.diff * dout


class AffineIgnoresDout:
    """Returns the local derivatives without multiplying by dout."""

    def forward(self, x, w, b):
        self.x, self.w = x, w
        return w * x + b

    def backward(self, dout):
        return self.w, self.x, 1.0


class AffineSwapped:
    """Returns dw where dx belongs and dx where dw belongs."""

    def forward(self, x, w, b):
        self.x, self.w = x, w
        return w * x + b

    def backward(self, dout):
        return self.x * dout, self.w * dout, dout


class AffineTwoGradients:
    """Forgets db."""

    def forward(self, x, w, b):
        self.x, self.w = x, w
        return w * x + b

    def backward(self, dout):
        return self.w * dout, self.x * dout


class SigmoidOverflows:
    """math.exp(-a) overflows for a below about -709."""

    def forward(self, a):
        self.s = 1 / (1 + math.exp(-a))
        return self.s

    def backward(self, dout):
        return dout * self.s * (1 - self.s)


class SigmoidOffByAMillionth:
    """A gradient wrong by one part in a million."""

    def forward(self, a):
        self.s = 1 / (1 + math.exp(-a)) if a >= 0 else math.exp(a) / (1 + math.exp(a))
        return self.s

    def backward(self, dout):
        return dout * self.s * (1 - self.s) * (1 + 1e-6)


class HingeThroughAtMargin:
    """Treats a margin of exactly 0 as active."""

    def forward(self, y_hat, y):
        self.y_hat, self.y = y_hat, y
        return max(0.0, 1 - y * y_hat)

    def backward(self, dout):
        if 1 - self.y * self.y_hat < 0:
            return 0.0, 0.0
        return -self.y * dout, -self.y_hat * dout


class SubclassedAffine(RightAffine):
    """Right, by inheritance: a file may import its neighbours."""
