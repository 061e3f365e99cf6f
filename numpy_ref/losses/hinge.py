"""Keras's hinge losses in NumPy: the margins of a classifier with -1/1 labels.

Each computes what the ``keras.losses`` class of the same name computes with
the TensorFlow backend, per sample over the last axis, and TF's gradient of
it; protocol, dtype and reduction are ``numpy_ref.losses.base.Loss``'s.
"""

import numpy as np

from numpy_ref.losses.base import Loss, mean_grad


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


__all__ = ["CategoricalHinge", "Hinge", "SquaredHinge", "hinge_labels"]
