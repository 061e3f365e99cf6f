"""Keras's losses between distributions in NumPy: Kullback-Leibler and Poisson.

Each computes what the ``keras.losses`` class of the same name computes with
the TensorFlow backend, per sample over the last axis, and TF's gradient of
it; protocol, dtype and reduction are ``numpy_ref.losses.base.Loss``'s.
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref.losses.base import Loss, mean_grad


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


__all__ = ["KLDivergence", "Poisson"]
