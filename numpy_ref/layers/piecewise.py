"""Activations defined piece by piece: linear (or exponential) on each side of a kink.

Each is a layer (``forward(x, training=False)``, ``backward(dout)``) computing
what Keras 3 computes under its name with the TensorFlow backend, registered in
``numpy_ref.layers.activations``. At a kink the backward takes TF's side:
hard_tanh'(+-1) = 1, relu6'(0) = relu6'(6) = 0, celu'(0) = 2; elu and selu
are differentiated from their outputs, as TF's EluGrad and SeluGrad do.
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L


class _Masked(L.Layer):
    """y = f(x); dx = dout where TF's gradient mask is set, else 0."""

    def backward(self, dout):
        return dout * self.mask


class LeakyReLU(L.Layer):
    """x where x > 0, else negative_slope * x (slope rounded to float32, as TF's op
    attribute is); dx = dout where x > 0, else dout * slope (0 counts as negative)."""

    def __init__(self, negative_slope=0.2):
        super().__init__()
        if negative_slope is None or negative_slope < 0:
            raise ValueError("negative_slope of a LeakyReLU cannot be None or negative. "
                             f"Received: negative_slope={negative_slope}")
        self.negative_slope = negative_slope

    def forward(self, x, training=False):
        self.x = x
        return F.leaky_relu(x, self.negative_slope)

    def backward(self, dout):
        return np.where(self.x > 0, dout, dout * F.float32_attr(self.negative_slope))


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


class SparsePlus(L.Layer):
    """0, (x + 1)^2 / 4, x on x <= -1, -1 < x < 1, x >= 1; dx = 0, dout * (x + 1) / 2, dout."""

    def forward(self, x, training=False):
        self.x = x
        return F.sparse_plus(x)

    def backward(self, dout):
        x = self.x
        return np.where(x <= -1, 0, np.where(x < 1, dout * 0.25 * 2 * (x + 1), dout))


class ELU(L.Layer):
    """x where x > 0, else alpha * (exp(x) - 1).

    Backward from TF's output-based EluGrad, res = elu with alpha 1:
    dres = dout where x > 0 else alpha * dout; dx = dres * (res + 1) where res < 0, else dres.
    """

    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x, training=False):
        self.positive = x > 0
        self.res = F.elu(x)
        return self.res if self.alpha == 1 else np.where(self.positive, self.res,
                                                          self.alpha * self.res)

    def backward(self, dout):
        if self.alpha != 1:
            dout = np.where(self.positive, dout, dout * self.alpha)
        return np.where(self.res < 0, dout * (self.res + 1), dout)


class SELU(L.Layer):
    """scale * x where x >= 0, else scale_alpha * (exp(x) - 1);
    dx = dout * (y + scale_alpha) where y < 0, else dout * scale (TF's SeluGrad)."""

    def forward(self, x, training=False):
        self.out = F.selu(x)
        return self.out

    def backward(self, dout):
        y = self.out
        return np.where(y < 0, dout * (y + F.SELU_SCALE_ALPHA), dout * F.SELU_SCALE)


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


__all__ = ["CELU", "ELU", "HardSiLU", "HardSigmoid", "HardTanh", "LeakyReLU", "ReLU6", "SELU",
           "SoftShrink", "SparsePlus"]
