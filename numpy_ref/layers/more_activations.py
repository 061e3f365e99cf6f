"""Keras's other activations, as layers: the rest of ``keras.activations``.

Same protocol and the same promise as ``numpy_ref.layers.activations``, whose
registry lists them by name: what Keras 3 computes with the TensorFlow
backend, and TF's gradient, taking TF's side at every kink.
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L


class _Masked(L.Layer):
    """y = f(x); dx = dout where TF's gradient mask is set, else 0."""

    def backward(self, dout):
        return dout * self.mask


class ReLU6(_Masked):
    """min(max(x, 0), 6); the gradient passes where 0 < x < 6 (TF's Relu6Grad)."""

    def forward(self, x, training=False):
        self.mask = (x > 0) & (x < 6)
        return F.relu6(x)


class HardTanh(_Masked):
    """clip(x, -1, 1); the gradient passes where -1 <= x <= 1 (TF's clip, bounds included)."""

    def forward(self, x, training=False):
        self.mask = (x >= -1) & (x <= 1)
        return np.clip(x, -1, 1)


class SoftShrink(_Masked):
    """x -+ threshold outside [-threshold, threshold], else 0; dx = dout outside."""

    def __init__(self, threshold=0.5):
        super().__init__()
        self.threshold = threshold


    def forward(self, x, training=False):
        self.mask = (x > self.threshold) | (x < -self.threshold)
        return F.soft_shrink(x, self.threshold)


class CELU(L.Layer):
    """max(x, 0) + alpha * expm1(min(x, 0) / alpha).

    TF's max and min both pass the gradient at a tie, so at x == 0 the two
    terms add up to 2; elsewhere dx = dout * (1 if x > 0 else exp(x / alpha)).
    """

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha


    def forward(self, x, training=False):
        self.x = x
        return F.celu(x, self.alpha)

    def backward(self, dout):
        x, alpha = self.x, self.alpha
        dneg = (dout * alpha) * np.exp(np.minimum(x, 0) / alpha) / alpha
        return np.where(x >= 0, dout, 0) + np.where(x <= 0, dneg, 0)


class LogSigmoid(L.Layer):
    """-softplus(-x); dx = dout * sigmoid(-x)."""

    def forward(self, x, training=False):
        self.x = x
        return F.log_sigmoid(x)

    def backward(self, dout):
        return dout * F.sigmoid(-self.x)


class HardSigmoid(L.Layer):
    """relu6(x + 3) / 6; dx = dout / 6 where -3 < x < 3."""

    def forward(self, x, training=False):
        self.mask = (x + 3 > 0) & (x + 3 < 6)
        return F.hard_sigmoid(x)

    def backward(self, dout):
        return (dout / 6) * self.mask


class HardSiLU(HardSigmoid):
    """x * hard_sigmoid(x); dx = dout * hard_sigmoid(x) + dout * x / 6 where -3 < x < 3."""

    def forward(self, x, training=False):
        self.x, self.hs = x, super().forward(x)
        return x * self.hs

    def backward(self, dout):
        return dout * self.hs + super().backward(dout * self.x)


class Exponential(L.Layer):
    """y = exp(x); dx = dout * y."""

    def forward(self, x, training=False):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


class Mish(L.Layer):
    """x * t with t = tanh(softplus(x)); dx = dout * t + dout * x * (1 - t^2) * sigmoid(x)."""

    def forward(self, x, training=False):
        self.x, self.t = x, np.tanh(F.softplus(x))
        return x * self.t

    def backward(self, dout):
        t = self.t
        return dout * t + ((dout * self.x) * (1 - t * t)) * F.sigmoid(self.x)


class TanhShrink(L.Layer):
    """x - tanh(x); dx = dout - dout * (1 - tanh(x)^2)."""

    def forward(self, x, training=False):
        self.t = np.tanh(x)
        return x - self.t

    def backward(self, dout):
        return dout - dout * (1 - self.t * self.t)


class Squareplus(L.Layer):
    """(x + s) / 2 with s = sqrt(x^2 + b); dx = dout / 2 + (dout / 4) / s * 2x."""

    def __init__(self, b=4):
        super().__init__()
        self.b = b


    def forward(self, x, training=False):
        self.x, self.s = x, np.sqrt(x * x + self.b)
        return (x + self.s) / 2

    def backward(self, dout):
        dhalf = dout / 2
        return dhalf + (dhalf * 0.5) / self.s * (self.x * 2)


class SparsePlus(L.Layer):
    """0, (x + 1)^2 / 4, x on x <= -1, -1 < x < 1, x >= 1; dx = 0, dout * (x + 1) / 2, dout."""

    def forward(self, x, training=False):
        self.x = x
        return F.sparse_plus(x)

    def backward(self, dout):
        x = self.x
        return np.where(x <= -1, 0, np.where(x < 1, dout * 0.25 * 2 * (x + 1), dout))


__all__ = ["CELU", "Exponential", "HardSiLU", "HardSigmoid", "HardTanh", "LogSigmoid", "Mish",
           "ReLU6", "SoftShrink", "SparsePlus", "Squareplus", "TanhShrink"]
