"""Keras's cross-entropies in NumPy: sparse, categorical, binary, and their focal forms.

Each computes what the ``keras.losses`` class of the same name computes with the
TensorFlow backend, operation by operation (clip to [1e-7, 1 - 1e-7],
renormalise, TF's ``sigmoid_cross_entropy_with_logits``/
``softmax_cross_entropy_with_logits``), and its backward is TensorFlow's
gradient of those operations: a clip passes the gradient where the value lies
inside its bounds, bounds included. Protocol, dtype and reductions are
``numpy_ref.losses.base.Loss``'s.

Shape letters: N batch (any leading axes), C classes or features.
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref.losses.base import Loss, mean_grad

EPSILON = F.EPSILON  # keras.backend.epsilon()


def clip_probabilities(p):
    """clip(p, 1e-7, 1 - 1e-7) and the mask where TF's clip passes the gradient."""
    return np.clip(p, EPSILON, 1 - EPSILON), (p >= EPSILON) & (p <= 1 - EPSILON)


class SparseCategoricalCrossentropy(Loss):
    """-log p[t] per sample, p the probabilities (N, C) (or logits), t integer labels (N,).

    Probabilities: TF's sparse softmax cross-entropy of log(clip(p)), i.e.
    -log(c[t] / sum(c)) (``functions.sparse_crossentropy_from_probs``).
    Logits: -log_softmax(z)[t]; its gradient softmax(z) - onehot.
    ``ignore_class``: samples labelled so count as 0 and, for the means, not at all.
    """

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 axis=-1, dtype=None):
        super().__init__(reduction, dtype)
        if axis != -1:
            raise ValueError(f"Only axis=-1 is supported. Received: axis={axis}")
        self.from_logits, self.ignore_class, self.axis = from_logits, ignore_class, axis

    def values(self, y_true, y_pred):
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = y_true[..., 0]
        if y_true.shape != y_pred.shape[:-1]:
            raise ValueError(f"Labels must have y_pred's shape without its last axis. "
                             f"Received: y_true.shape={y_true.shape}, "
                             f"y_pred.shape={y_pred.shape}")
        labels = y_true.astype(np.intp)
        if self.ignore_class is not None:
            self.mask = y_true != self.ignore_class
            labels = np.where(self.mask, labels, 0)
            y_pred = np.where(self.mask[..., None], y_pred, 0)
        self.y = y_pred.reshape(-1, y_pred.shape[-1])  # (N, C)
        self.labels = labels.reshape(-1)
        if self.from_logits:
            res = F.sparse_crossentropy_from_logits(self.y, self.labels)
        else:
            res = F.sparse_crossentropy_from_probs(self.y, self.labels)
        res = res.reshape(labels.shape)
        return res if self.mask is None else np.where(self.mask, res, 0)

    def values_grad(self, dvalues):
        dvalues = dvalues.reshape(-1, 1)
        if self.from_logits:
            dz = F.softmax(self.y)
            dz[np.arange(self.y.shape[0]), self.labels] -= 1
            return dvalues * dz
        return dvalues * F.sparse_crossentropy_from_probs_grad(self.y, self.labels)


class _Crossentropy(Loss):
    """The arguments the cross-entropies share: ``from_logits``, ``label_smoothing``, ``axis``."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(reduction, dtype)
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis

    @staticmethod
    def check_shapes(y_true, y_pred):
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true and y_pred must have the same shape. Received: "
                             f"y_true.shape={y_true.shape}, y_pred.shape={y_pred.shape}")


class CategoricalCrossentropy(_Crossentropy):
    """-sum(t * log p) over ``axis``, t one-hot (or soft) labels.

    Probabilities: p = clip(y / sum(y), 1e-7, 1 - 1e-7), Keras's renormalise-then-clip.
    Logits: TF's softmax cross-entropy, whose gradient is softmax(z) - t even
    when t does not sum to 1 (not the derivative then, which is sum(t) * softmax - t).
    ``label_smoothing`` s: t -> t * (1 - s) + s / C, C the size of the *last* axis.
    """

    def values(self, y_true, y_pred):
        self.check_shapes(y_true, y_pred)
        if self.label_smoothing:
            y_true = smooth_labels(y_true, self.label_smoothing, y_true.shape[-1])
        self.t, self.y = y_true, y_pred
        if self.from_logits:
            return -np.sum(y_true * F.log_softmax(y_pred, axis=self.axis), axis=self.axis)
        self.renormalise_and_clip(y_pred)
        return -np.sum(y_true * np.log(self.c), axis=self.axis)

    def values_grad(self, dvalues):
        dvalues = np.expand_dims(dvalues, self.axis)
        if self.from_logits:
            return dvalues * (F.softmax(self.y, axis=self.axis) - self.t)
        return self.renormalise_and_clip_grad((-dvalues * self.t) * (1 / self.c))

    def renormalise_and_clip(self, y):
        """c = clip(y / sum(y), 1e-7, 1 - 1e-7) over ``axis``."""
        self.y, self.total = y, np.sum(y, axis=self.axis, keepdims=True)
        self.c, self.inside = clip_probabilities(y / self.total)

    def renormalise_and_clip_grad(self, dc):
        """dL/dy from dL/dc: blocked outside the clip, then through y / total (TF's
        RealDiv gradient: dc / total - sum(dc * y / total^2))."""
        dc = np.where(self.inside, dc, 0)
        dtotal = np.sum(dc * (-self.y / self.total / self.total), axis=self.axis, keepdims=True)
        return dc / self.total + dtotal


class BinaryCrossentropy(_Crossentropy):
    """mean over ``axis`` of -(t log p + (1 - t) log(1 - p)), p = clip(y, 1e-7, 1 - 1e-7).

    Logits: TF's max(z, 0) - z t + log1p(exp(-|z|)), differentiated as TF does
    it (each of its operations, not sigmoid(z) - t, which differs by rounding).
    ``label_smoothing`` s: t -> t * (1 - s) + s / 2.
    """

    def values(self, y_true, y_pred):
        return np.mean(self.elements(y_true, y_pred), axis=self.axis)

    def values_grad(self, dvalues):
        return self.elements_grad(mean_grad(dvalues, self.y.shape[self.axis], self.axis))

    def elements(self, y_true, y_pred):
        """The cross-entropy of each element, labels smoothed; caches t (smoothed) and y."""
        self.check_shapes(y_true, y_pred)
        if self.label_smoothing:
            y_true = y_true * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        self.t, self.y = y_true, y_pred
        if self.from_logits:
            return sigmoid_crossentropy_with_logits(y_true, y_pred)
        self.c, self.inside = clip_probabilities(y_pred)
        return -(y_true * np.log(self.c) + (1 - y_true) * np.log(1 - self.c))

    def elements_grad(self, delements):
        t = self.t
        if self.from_logits:
            return sigmoid_crossentropy_with_logits_grad(t, self.y, delements)
        dlog = -delements
        dc = (dlog * t) * (1 / self.c) - (dlog * (1 - t)) * (1 / (1 - self.c))
        return np.where(self.inside, dc, 0)


def sigmoid_crossentropy_with_logits(t, z):
    """TF's max(z, 0) - z * t + log1p(exp(-|z|)), elementwise."""
    positive = z >= 0
    return (np.where(positive, z, 0) - z * t) + np.log1p(np.exp(np.where(positive, -z, z)))


def sigmoid_crossentropy_with_logits_grad(t, z, delements):
    """TF's gradient of ``sigmoid_crossentropy_with_logits`` with respect to z."""
    positive = z >= 0
    e = np.exp(np.where(positive, -z, z))
    through_log = (delements * (1 / (1 + e))) * e
    return (np.where(positive, delements, 0) - delements * t
            + np.where(positive, -through_log, through_log))


def smooth_labels(y_true, label_smoothing, num_classes):
    """Keras's categorical label smoothing: t * (1 - s) + s / num_classes, in t's dtype."""
    return y_true * (1 - label_smoothing) + (
        y_true.dtype.type(label_smoothing) / y_true.dtype.type(num_classes))


class CategoricalFocalCrossentropy(CategoricalCrossentropy):
    """sum over ``axis`` of alpha (1 - c)^gamma (-t log c), with c CategoricalCrossentropy's
    clipped probabilities (of softmax(z) with ``from_logits``) and its label smoothing.
    A list ``alpha`` (one weight per class) is cast through float32, as Keras does."""

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, dtype)
        self.alpha, self.gamma = alpha, gamma

    def values(self, y_true, y_pred):
        self.check_shapes(y_true, y_pred)
        if self.label_smoothing:
            y_true = smooth_labels(y_true, self.label_smoothing, y_true.shape[-1])
        if self.from_logits:
            y_pred = self.softmax = F.softmax(y_pred, axis=self.axis)
        self.t = y_true
        self.renormalise_and_clip(y_pred)
        self.alpha_ = (np.asarray(self.alpha, np.float32).astype(y_pred.dtype)
                       if isinstance(self.alpha, (list, tuple)) else self.alpha)
        self.cce = -y_true * np.log(self.c)
        self.weight = (1 - self.c) ** self.gamma * self.alpha_
        return np.sum(self.weight * self.cce, axis=self.axis)

    def values_grad(self, dvalues):
        g = np.expand_dims(dvalues, self.axis)
        dmodulation = (g * self.cce) * self.alpha_
        dy = self.renormalise_and_clip_grad(
            -(dmodulation * self.gamma * (1 - self.c) ** (self.gamma - 1))
            + ((g * self.weight) * -self.t) * (1 / self.c))
        if self.from_logits:  # TF's SoftmaxGrad
            s = self.softmax
            return (dy - np.sum(dy * s, axis=self.axis, keepdims=True)) * s
        return dy


class BinaryFocalCrossentropy(BinaryCrossentropy):
    """mean over ``axis`` of (1 - p_t)^gamma * bce, p_t = t p + (1 - t)(1 - p), times
    alpha t + (1 - alpha)(1 - t) with ``apply_class_balancing``; bce is BinaryCrossentropy's
    (smoothing and clipping included). With ``from_logits``, p = sigmoid(z) and bce is the
    logits form, because Keras's sigmoid output carries its logits to the bce."""

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, dtype)
        self.apply_class_balancing, self.alpha, self.gamma = apply_class_balancing, alpha, gamma

    def values(self, y_true, y_pred):
        self.bce = self.elements(y_true, y_pred)
        t = self.t
        self.p = F.sigmoid(y_pred) if self.from_logits else y_pred
        self.p_t = t * self.p + (1 - t) * (1 - self.p)
        self.focal = (1 - self.p_t) ** self.gamma
        out = self.focal * self.bce
        if self.apply_class_balancing:
            self.balance = t * self.alpha + (1 - t) * (1 - self.alpha)
            out = self.balance * out
        return np.mean(out, axis=self.axis)

    def values_grad(self, dvalues):
        t = self.t
        g = mean_grad(dvalues, self.y.shape[self.axis], self.axis)
        if self.apply_class_balancing:
            g = g * self.balance
        dp_t = -((g * self.bce) * self.gamma * (1 - self.p_t) ** (self.gamma - 1))
        dp = dp_t * t - dp_t * (1 - t)
        if self.from_logits:
            dp = dp * self.p * (1 - self.p)  # TF's SigmoidGrad
        return dp + self.elements_grad(g * self.focal)


__all__ = ["BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
           "CategoricalFocalCrossentropy", "SparseCategoricalCrossentropy", "clip_probabilities",
           "sigmoid_crossentropy_with_logits", "smooth_labels"]
