"""Keras's regression, divergence and hinge losses in NumPy (registered in ``numpy_ref.losses``).

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


class KLDivergence(Loss):
    """sum(t log(t / p)) over the last axis, t and p clipped to [1e-7, 1];
    dp = -dvalues * t / p where 1e-7 <= y <= 1, else 0."""

    def values(self, y_true, y_pred):
        self.t = np.clip(y_true, F.EPSILON, 1)
        self.p = np.clip(y_pred, F.EPSILON, 1)
        self.inside = (y_pred >= F.EPSILON) & (y_pred <= 1)
        self.ratio = self.t / self.p
        return np.sum(self.t * np.log(self.ratio), axis=-1)

    def values_grad(self, dvalues):
        dratio = (dvalues[..., None] * self.t) * (1 / self.ratio)
        return np.where(self.inside, dratio * (-self.t / self.p / self.p), 0)


class Poisson(Loss):
    """mean(y - t log(y + 1e-7)) over the last axis; dy = dvalues / C * (1 - t / (y + 1e-7))."""

    def values(self, y_true, y_pred):
        self.t, self.y = y_true, y_pred
        return np.mean(y_pred - y_true * np.log(y_pred + F.EPSILON), axis=-1)

    def values_grad(self, dvalues):
        g = mean_grad(dvalues, self.y.shape[-1])
        return g + (-g * self.t) * (1 / (self.y + F.EPSILON))


def hinge_labels(y_true):
    """Keras's labels for the hinge losses: 0/1 labels (all of them) become -1/1."""
    return 2 * y_true - 1 if np.all((y_true == 0) | (y_true == 1)) else y_true


class Hinge(Loss):
    """mean(max(1 - t y, 0)) over the last axis, 0/1 labels mapped to -1/1;
    dy = -dvalues / C * t where 1 - t y >= 0 (TF's max passes a tie)."""

    squared = False

    def values(self, y_true, y_pred):
        self.t = hinge_labels(y_true)
        margin = 1 - self.t * y_pred
        self.active = margin >= 0
        self.m = np.maximum(margin, 0)
        return np.mean(self.m * self.m if self.squared else self.m, axis=-1)

    def values_grad(self, dvalues):
        dm = mean_grad(dvalues, self.t.shape[-1])
        if self.squared:
            dm = dm * (self.m * 2)
        return -np.where(self.active, dm, 0) * self.t


class SquaredHinge(Hinge):
    """mean(max(1 - t y, 0)^2) over the last axis, 0/1 labels mapped to -1/1."""

    squared = True


class CategoricalHinge(Loss):
    """max(neg - pos + 1, 0) with pos = sum(t y), neg = max((1 - t) y) over the last axis;
    TF's max over the axis shares the gradient equally among tied maxima."""

    def values(self, y_true, y_pred):
        self.t = y_true
        pos = np.sum(y_true * y_pred, axis=-1)
        others = (1 - y_true) * y_pred
        neg = np.max(others, axis=-1)
        self.argmax = others == neg[..., None]
        self.ties = np.sum(self.argmax, axis=-1, keepdims=True, dtype=y_pred.dtype)
        margin = neg - pos + 1
        self.active = margin >= 0
        return np.maximum(margin, 0)

    def values_grad(self, dvalues):
        g = np.where(self.active, dvalues, 0)[..., None]
        return -g * self.t + ((self.argmax / self.ties) * g) * (1 - self.t)


__all__ = ["CategoricalHinge", "Hinge", "Huber", "KLDivergence", "LogCosh",
           "MeanAbsoluteError", "Poisson", "SquaredHinge", "hinge_labels"]
