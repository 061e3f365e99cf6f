"""Activation, output and loss functions as pure NumPy math.

Shape letters: N batch size, C classes. Every function accepts a single sample
(1-D) or a batch (2-D, one row per sample) and keeps the input's float dtype.

Two cross-entropies live here on purpose:
- ``cross_entropy_error`` is the book's formula, ``-sum(t * log(y + 1e-7)) / N``.
- ``keras_sparse_categorical_crossentropy`` is what Keras 3 computes for
  ``SparseCategoricalCrossentropy(from_logits=False)`` on a plain probability
  tensor: clip to [1e-7, 1 - 1e-7], renormalise each row, take ``-log``.
- ``softmax_cross_entropy_with_logits`` is what the same Keras loss computes
  when the probabilities come out of a softmax activation: Keras caches the
  logits on that tensor and uses them instead, with no clipping.
The three agree unless a probability is within ~1e-7 of 0 or 1.
"""

import numpy as np

EPSILON = 1e-7  # the book's log guard and Keras's backend.epsilon()


def step_function(x):
    """1 where x > 0, else 0 (int64, like the book's ``np.array(x > 0, dtype=int)``)."""
    return (np.asarray(x) > 0).astype(np.int64)


def sigmoid(x):
    """1 / (1 + exp(-x)), written so that neither branch overflows."""
    x = np.asarray(x)
    # exp(-|x|) <= 1 never overflows; pick the algebraically equal form per sign.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def relu(x):
    """max(0, x)."""
    return np.maximum(x, 0)


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def identity_function(x):
    """Returns x unchanged (the output function for regression)."""
    return x


def softmax(x, axis=-1):
    """exp(x - max) / sum(exp(x - max)) over ``axis`` (the last by default).

    Subtracting the row maximum keeps exp from overflowing and does not change
    the result. Reducing over ``axis=-1`` with ``keepdims`` makes a batch (N, C)
    work row by row; a softmax written for 1-D input that reduces over the
    whole array would silently mix the rows of a batch.
    """
    x = np.asarray(x)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def as_batch(y, t):
    """Views y as (N, C) and t as (N,) integer labels or (N, C) one-hot."""
    y = np.asarray(y)
    t = np.asarray(t)
    if t.ndim == 0:  # one integer label
        t = t.reshape(1)
    if y.ndim == 1:  # one sample: (C,) -> (1, C)
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.ndim == 1 and t.size == y.shape[1] else t.reshape(1)
    if t.shape == y.shape:  # one-hot -> integer labels
        t = t.argmax(axis=1)
    if t.shape != (y.shape[0],):
        raise ValueError(
            f"Labels must be integers of shape ({y.shape[0]},) or one-hot of "
            f"shape {y.shape}. Received: t.shape={t.shape}")
    return y, t.astype(np.intp, copy=False)


def cross_entropy_error(y, t):
    """The book's cross-entropy: -sum(log(y[n, t_n] + 1e-7)) / N.

    Args:
        y: probabilities, (C,) for one sample or (N, C) for a batch.
        t: integer labels, (N,) or a scalar, or one-hot with y's shape.
    """
    y, t = as_batch(y, t)
    batch_size = y.shape[0]
    picked = y[np.arange(batch_size), t]  # (N,)
    return -np.sum(np.log(picked + EPSILON)) / batch_size


def keras_sparse_categorical_crossentropy(y, t):
    """Keras 3's cross-entropy on probabilities, reproduced operation by operation.

    clip(y, 1e-7, 1 - 1e-7), then ``sparse_softmax_cross_entropy_with_logits``
    on ``log`` of that, i.e. ``-log(c[t] / sum(c))`` per row, averaged over N.
    """
    y, t = as_batch(y, t)
    log_c = np.log(np.clip(y, EPSILON, 1 - EPSILON))  # (N, C)
    return -np.mean(log_softmax(log_c)[np.arange(y.shape[0]), t])


def log_softmax(z):
    """log(softmax(z)) over the last axis, computed stably as z - logsumexp(z)."""
    z = np.asarray(z)
    shifted = z - np.max(z, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def softmax_cross_entropy_with_logits(z, t):
    """Mean of -log softmax(z)[t] from logits, without forming probabilities."""
    z, t = as_batch(z, t)
    return -np.mean(log_softmax(z)[np.arange(z.shape[0]), t])


def mean_squared_error(y, t):
    """1/2 * mean((y - t)^2) over every element, as the material's DNN uses."""
    diff = np.asarray(y) - np.asarray(t)
    return 0.5 * np.mean(diff * diff)


def sum_squared_error(y, t):
    """The book's 1/2 * sum((y - t)^2)."""
    diff = np.asarray(y) - np.asarray(t)
    return 0.5 * np.sum(diff * diff)
