"""Keras's regression losses in NumPy: squared, absolute, Huber and log-cosh errors.

Each computes what the ``keras.losses`` class of the same name computes with
the TensorFlow backend, per sample over the last axis, and TF's gradient of
it; protocol, dtype and reduction are ``numpy_ref.losses.base.Loss``'s.
"""

import math

import numpy as np

from numpy_ref import functions as F
from numpy_ref.losses.base import Loss, mean_grad

# Keras evaluates log(2.0) in floatx (float32) before casting it to the loss's
# dtype, so even a float64 LogCosh subtracts float32's log 2.
LOG_2 = F.float32_attr(math.log(2.0))


class MeanSquaredError(Loss):
    """mean((t - y)^2) over the last axis; dy = -(dvalues / C) * 2 (t - y)."""

    def values(self, y_true, y_pred):
        self.diff = y_true - y_pred
        return np.mean(self.diff * self.diff, axis=-1)

    def values_grad(self, dvalues):
        return -(mean_grad(dvalues, self.diff.shape[-1]) * (self.diff * 2))


class MeanAbsoluteError(Loss):
    """mean(|t - y|) over the last axis; dy = -(dvalues / C) * sign(t - y) (0 where equal)."""

    def values(self, y_true, y_pred):
        self.diff = y_true - y_pred
        return np.mean(np.abs(self.diff), axis=-1)

    def values_grad(self, dvalues):
        return -(mean_grad(dvalues, self.diff.shape[-1]) * np.sign(self.diff))


class Huber(Loss):
    """mean over the last axis of e^2 / 2 where |e| <= delta, else delta |e| - delta^2 / 2,
    e = y - t; de = e where |e| <= delta (bound included), else delta * sign(e)."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", dtype=None):
        super().__init__(reduction, dtype)
        self.delta = delta

    def values(self, y_true, y_pred):
        self.error = y_pred - y_true
        abs_error = np.abs(self.error)
        self.delta_ = y_pred.dtype.type(self.delta)
        self.quadratic = abs_error <= self.delta_
        return np.mean(np.where(self.quadratic, 0.5 * (self.error * self.error),
                                self.delta_ * abs_error - 0.5 * (self.delta_ * self.delta_)),
                       axis=-1)

    def values_grad(self, dvalues):
        g = mean_grad(dvalues, self.error.shape[-1])
        return np.where(self.quadratic, (g * 0.5) * (self.error * 2),
                        (g * self.delta_) * np.sign(self.error))


class LogCosh(Loss):
    """mean(x + softplus(-2x) - log 2) over the last axis, x = y - t (log cosh x, computed
    without overflow); dx = dvalues / C * (1 - 2 sigmoid(-2x)) = tanh(x) dvalues / C."""

    def values(self, y_true, y_pred):
        self.x = y_pred - y_true
        return np.mean(self.x + F.softplus(self.x * -2.0) - LOG_2, axis=-1)

    def values_grad(self, dvalues):
        g = mean_grad(dvalues, self.x.shape[-1])
        return g + (g * F.sigmoid(self.x * -2.0)) * -2.0


__all__ = ["Huber", "LogCosh", "MeanAbsoluteError", "MeanSquaredError"]
