"""Twins of Keras's noise layers: identity in inference, random in training.

In training mode (shape letters: x any shape; the noise has x's shape, or
``noise_shape`` broadcast over x for alpha dropout):
    KerasGaussianNoise     y = x + e,  e ~ N(0, stddev^2);                  dx = dout
    KerasGaussianDropout   y = x * e,  e ~ N(1, rate / (1 - rate));         dx = dout * e
    KerasAlphaDropout      k = U[0, 1) >= rate (a float32 draw), as 1.0 / 0.0 in x's dtype;
                           y = a * (x * k + alpha' * (1 - k)) + b;          dx = dout * a * k
        with alpha' = -1.6733 * 1.0507 (SELU's negative saturation), and a, b keeping
        a SELU-normalised input's mean 0 and variance 1:
        a = ((1 - rate) * (1 + rate * alpha'^2))^(-1/2),  b = -a * alpha' * rate.

The draws come from ``np.random.default_rng(seed)``; set ``fixed_noise`` to the
numbers Keras drew (``tfmodels.parity.compare`` does: ``noise_kind`` says which of
its draws a layer takes, "normal" or "uniform") and the twin computes with them.
"""

import math

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.dropout import concrete_noise_shape

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _check_rate(rate, name="rate"):
    if not 0 <= rate <= 1:
        raise ValueError(f"{name} must be in [0, 1]. Received: {name}={rate}")


class _Noise(L.Layer):
    """What the three share: the seed, the generator, the draw Keras made."""

    noise_kind = "normal"

    def __init__(self, seed=None):
        super().__init__()
        self.seed = seed
        self.rng = np.random.default_rng(None if seed is None else seed % 2**64)
        self.fixed_noise = None
        self.noise = None  # the noise of the last training pass; None: it was the identity

    def _draw(self, shape, dtype):
        if self.fixed_noise is None:
            return self._own_draw(shape, dtype)
        noise = np.asarray(self.fixed_noise)
        if noise.shape != tuple(shape):
            raise ValueError(f"fixed_noise of shape {noise.shape} does not match the noise "
                             f"shape {tuple(shape)}")
        return noise


class KerasGaussianNoise(_Noise):
    """The twin of ``keras.layers.GaussianNoise``: y = x + N(0, stddev^2) in training."""

    def __init__(self, stddev, seed=None):
        _check_rate(stddev, "stddev")
        super().__init__(seed)
        self.stddev = stddev

    def _own_draw(self, shape, dtype):
        return self.rng.normal(0.0, self.stddev, shape).astype(dtype)

    def forward(self, x, training=False):
        self.noise = None
        if not training or self.stddev == 0:
            return x
        self.noise = self._draw(x.shape, x.dtype)
        return x + self.noise

    def backward(self, dout):
        return dout * 1  # a fresh array, never the caller's


class KerasGaussianDropout(_Noise):
    """The twin of ``keras.layers.GaussianDropout``: y = x * N(1, rate / (1 - rate)) in training."""

    def __init__(self, rate, seed=None):
        _check_rate(rate)
        super().__init__(seed)
        self.rate = rate

    def _own_draw(self, shape, dtype):
        if self.rate == 1:
            raise ValueError("KerasGaussianDropout(rate=1) has an infinite standard deviation "
                             "(Keras divides by 1 - rate = 0)")
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        return self.rng.normal(1.0, stddev, shape).astype(dtype)

    def forward(self, x, training=False):
        self.noise = None
        if not training or self.rate == 0:
            return x
        self.noise = self._draw(x.shape, x.dtype)
        return x * self.noise

    def backward(self, dout):
        return dout * 1 if self.noise is None else dout * self.noise


class KerasAlphaDropout(_Noise):
    """The twin of ``keras.layers.AlphaDropout`` (see the module's formulas); its noise is
    the uniform draw (float32, of the noise shape) that ``k = draw >= rate`` reads."""

    noise_kind = "uniform"

    def __init__(self, rate, noise_shape=None, seed=None):
        _check_rate(rate)
        super().__init__(seed)
        self.rate = rate
        self.noise_shape = None if noise_shape is None else list(noise_shape)

    def _own_draw(self, shape, dtype):
        return self.rng.random(shape, dtype=np.float32)

    def forward(self, x, training=False):
        self.noise = None
        if not training or self.rate == 0:
            return x
        if self.rate == 1:
            raise ValueError("KerasAlphaDropout(rate=1) has no finite scale a (Keras computes "
                             "0 ** -0.5)")
        self.noise = self._draw(concrete_noise_shape(self.noise_shape, x.shape), x.dtype)
        t = x.dtype.type
        self.kept = (self.noise >= np.float32(self.rate)).astype(x.dtype)  # k: 1.0 or 0.0
        alpha_p = -SELU_ALPHA * SELU_SCALE
        a = ((1 - self.rate) * (1 + self.rate * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * self.rate
        self.a = t(a)
        dropped = x * self.kept + t(alpha_p) * (t(1) - self.kept)
        return self.a * dropped + t(b)

    def backward(self, dout):
        if self.noise is None:
            return dout * 1
        return (dout * self.a) * self.kept


__all__ = ["KerasAlphaDropout", "KerasGaussianDropout", "KerasGaussianNoise", "SELU_ALPHA",
           "SELU_SCALE"]
