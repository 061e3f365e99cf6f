"""Smooth activations: one formula everywhere, its derivative the backward.

Each is a layer (``forward(x, training=False)``, ``backward(dout)``) computing
what Keras 3 computes under its name with the TensorFlow backend, registered in
``numpy_ref.layers.activations``. Where TF's gradient chains the operations of
its formula rather than the textbook derivative (gelu, mish), the backward
chains the same operations.
"""

import math

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L


class Softplus(L.Layer):
    """log(1 + exp(x)) with TF's shortcuts (``functions.softplus``); dx = dout * sigmoid(x)."""

    def forward(self, x, training=False):
        self.x = x
        return F.softplus(x)

    def backward(self, dout):
        return dout * F.sigmoid(self.x)


class Softsign(L.Layer):
    """x / (1 + |x|); dx = dout / (1 + |x|)^2."""

    def forward(self, x, training=False):
        self.x = x
        return F.softsign(x)

    def backward(self, dout):
        return dout / (np.abs(self.x) + 1) ** 2


class SiLU(L.Layer):
    """x * s with s = sigmoid(x); dx = dout * s * (1 + x * (1 - s)), TF's custom gradient."""

    def forward(self, x, training=False):
        self.x, self.s = x, F.sigmoid(x)
        return x * self.s

    def backward(self, dout):
        s = self.s
        return dout * (s * (1 + self.x * (1 - s)))


class GELU(L.Layer):
    """0.5 * x * erfc(-x / sqrt(2)), or with ``approximate`` the tanh form
    (``functions.gelu``); the backward chains TF's gradients of those operations:
    erfc'(u) = -2 / sqrt(pi) * exp(-u^2), tanh' = 1 - tanh^2, (x^3)' = 3 x^2."""

    def __init__(self, approximate=False):
        super().__init__()
        self.approximate = bool(approximate)

    def forward(self, x, training=False):
        self.x = x
        self.half_x = 0.5 * x
        if self.approximate:
            self.tanh = np.tanh(F.GELU_SQRT_2_OVER_PI * (x + F.GELU_CUBIC * x ** 3))
            self.b = 1 + self.tanh
        else:
            self.u = -x * F.GELU_SQRT_HALF
            self.b = F.erfc(self.u).astype(x.dtype, copy=False)
        return self.half_x * self.b

    def backward(self, dout):
        x = self.x
        dx = dout * self.b * 0.5
        dhalf = dout * self.half_x  # the gradient reaching the second factor
        if self.approximate:
            dinner = dhalf * (1 - self.tanh * self.tanh) * F.GELU_SQRT_2_OVER_PI
            return dx + dinner + (dinner * F.GELU_CUBIC) * 3 * x ** 2
        du = dhalf * (-2 / math.sqrt(math.pi)) * np.exp(-(self.u * self.u))
        return dx - du * F.GELU_SQRT_HALF


class Mish(L.Layer):
    """x * t with t = tanh(softplus(x)); dx = dout * t + dout * x * (1 - t^2) * sigmoid(x)."""

    def forward(self, x, training=False):
        self.x, self.t = x, np.tanh(F.softplus(x))
        return x * self.t

    def backward(self, dout):
        t = self.t
        return dout * t + ((dout * self.x) * (1 - t * t)) * F.sigmoid(self.x)


class LogSigmoid(L.Layer):
    """-softplus(-x); dx = dout * sigmoid(-x)."""

    def forward(self, x, training=False):
        self.x = x
        return F.log_sigmoid(x)

    def backward(self, dout):
        return dout * F.sigmoid(-self.x)


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


class Exponential(L.Layer):
    """y = exp(x); dx = dout * y."""

    def forward(self, x, training=False):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


__all__ = ["Exponential", "GELU", "LogSigmoid", "Mish", "SiLU", "Softplus", "Softsign",
           "Squareplus", "TanhShrink"]
