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

The Keras activations (``elu`` ... ``sparse_plus``) follow the operations
TensorFlow runs, down to its constants and branch conditions, so that they
agree with ``keras.activations.<name>`` to rounding; their docstrings name the
places where TF's formula is not the textbook one.
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
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def as_batch(y, t):
    """Views y as (N, C) and t as (N,) integer labels, from labels (N,) or (N, 1)
    (the book's ch07 gradient check passes (1, 1)) or (N, C) one-hot."""
    y = np.asarray(y)
    t = np.asarray(t)
    if t.ndim == 0:  # one integer label
        t = t.reshape(1)
    if y.ndim == 1:  # one sample: (C,) -> (1, C)
        y = y.reshape(1, -1)
        t = t.reshape(1, -1) if t.ndim == 1 and t.size == y.shape[1] else t.reshape(1)
    if t.shape == y.shape:  # one-hot -> integer labels
        t = t.argmax(axis=1)
    elif t.shape == (y.shape[0], 1):  # a column of integer labels
        t = t[:, 0]
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
    return np.mean(sparse_crossentropy_from_probs(*as_batch(y, t)))


def sparse_crossentropy_from_probs(y, labels):
    """Per row of y (N, C): -log(c[t] / sum(c)) with c = clip(y, 1e-7, 1 - 1e-7); labels (N,)."""
    log_c = np.log(np.clip(y, EPSILON, 1 - EPSILON))  # the logits TF's sparse cross-entropy sees
    return -log_softmax(log_c)[np.arange(y.shape[0]), labels]


def sparse_crossentropy_from_probs_grad(y, labels):
    """d/dy of each row of ``sparse_crossentropy_from_probs``, as TensorFlow computes it.

    (c / sum(c) - onehot) / c, the gradient through the log, where y lies in
    [1e-7, 1 - 1e-7], else 0: TF's clip passes the gradient inside the bounds,
    bounds included, and blocks it outside.
    """
    c = np.clip(y, EPSILON, 1 - EPSILON)
    dlog_c = c / np.sum(c, axis=1, keepdims=True)
    dlog_c[np.arange(y.shape[0]), labels] -= 1
    return np.where((y >= EPSILON) & (y <= 1 - EPSILON), dlog_c / c, 0)


def sparse_crossentropy_from_logits(z, labels):
    """Per row of the logits z (N, C): -log(softmax(z)[t]); labels (N,)."""
    return -log_softmax(z)[np.arange(z.shape[0]), labels]


def log_softmax(z, axis=-1):
    """log(softmax(z)) over ``axis``, computed stably as z - logsumexp(z)."""
    z = np.asarray(z)
    shifted = z - np.max(z, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax_cross_entropy_with_logits(z, t):
    """Mean of -log softmax(z)[t] from logits, without forming probabilities."""
    return np.mean(sparse_crossentropy_from_logits(*as_batch(z, t)))


def mean_squared_error(y, t):
    """1/2 * mean((y - t)^2) over every element, as the study notes' DNN uses."""
    diff = np.asarray(y) - np.asarray(t)
    return 0.5 * np.mean(diff * diff)


def sum_squared_error(y, t):
    """The book's 1/2 * sum((y - t)^2)."""
    diff = np.asarray(y) - np.asarray(t)
    return 0.5 * np.sum(diff * diff)


# --- Keras's activations, as TensorFlow computes them ------------------------------
#
# Constants are Python floats, so NumPy casts them to x's dtype exactly as TF
# casts them to the tensor's; float32 inputs stay float32 throughout.

SELU_SCALE = 1.0507009873554804934193349852946
SELU_SCALE_ALPHA = 1.7580993408473768599402175208123  # TF's own constant, not scale * alpha


def float32_attr(value):
    """``value`` rounded to float32, as TF keeps a float op attribute and as ``tf.cast``
    (``keras.ops.cast``) converts a Python float: by way of a float32 tensor."""
    return float(np.float32(value))


def leaky_relu(x, negative_slope=0.2):
    """x where x > 0, else slope * x, with TF's slope rounded to float32 (an op attribute)."""
    return np.where(x > 0, x, x * float32_attr(negative_slope))


def relu6(x):
    """min(max(x, 0), 6)."""
    return np.minimum(np.maximum(x, 0), 6)


def elu(x, alpha=1.0):
    """x where x > 0, else alpha * (exp(x) - 1).

    TF computes exp(x) - 1, not expm1(x): near 0 it keeps only the absolute
    accuracy of exp (float32 elu(-1e-10) is 0). Keras applies alpha != 1
    where x <= 0 on top of TF's elu, which is the same thing.
    """
    res = np.where(x < 0, np.exp(np.minimum(x, 0)) - 1, x)
    return res if alpha == 1 else np.where(x > 0, res, alpha * res)


def selu(x):
    """scale * x where x >= 0, else scale_alpha * (exp(x) - 1) (TF's exp - 1, as in elu)."""
    return np.where(x < 0, SELU_SCALE_ALPHA * (np.exp(np.minimum(x, 0)) - 1), SELU_SCALE * x)


def softplus(x):
    """log(1 + exp(x)), with TF's two shortcuts.

    With t = log(machine epsilon) + 2 in x's dtype (-34.04 in float64, -13.94
    in float32), TF returns x where x > -t and exp(x) where x < t, and
    log1p(exp(x)) between; both shortcuts are exact to that dtype's precision.
    """
    x = np.asarray(x)
    t = np.log(np.finfo(x.dtype).eps) + x.dtype.type(2)
    e = np.exp(np.minimum(x, -t))  # never overflows; unused where x > -t
    return np.where(x > -t, x, np.where(x < t, e, np.log1p(e)))


def softsign(x):
    """x / (1 + |x|)."""
    return x / (np.abs(x) + 1)


def silu(x):
    """x * sigmoid(x), also known as swish."""
    return x * sigmoid(x)


# TF casts these two Python floats to the input's dtype by way of a float32
# tensor, so even float64 GELU uses their float32 roundings.
GELU_SQRT_HALF = float32_attr(0.7071067811865476)  # 1 / sqrt(2)
GELU_CUBIC = float32_attr(0.044715)
GELU_SQRT_2_OVER_PI = 0.7978845608028654  # used as is


def gelu(x, approximate=False):
    """Gaussian error linear unit, both of TF's forms.

    Exact: 0.5 * x * erfc(-x / sqrt(2)) (TF writes it with erfc, which stays
    accurate for very negative x where 1 + erf(x / sqrt(2)) cancels).
    Approximate: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))).
    1 / sqrt(2) and 0.044715 are rounded to float32, as TF's are.
    """
    x = np.asarray(x)
    if approximate:
        return 0.5 * x * (1 + np.tanh(GELU_SQRT_2_OVER_PI * (x + GELU_CUBIC * x ** 3)))
    return 0.5 * x * erfc(-x * GELU_SQRT_HALF).astype(x.dtype, copy=False)


def hard_sigmoid(x):
    """relu6(x + 3) / 6."""
    return relu6(x + 3) / 6


def mish(x):
    """x * tanh(softplus(x))."""
    return x * np.tanh(softplus(x))


def celu(x, alpha=1.0):
    """max(x, 0) + alpha * expm1(min(x, 0) / alpha)."""
    return np.maximum(x, 0) + alpha * np.expm1(np.minimum(x, 0) / alpha)


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x)."""
    return -softplus(-np.asarray(x))


def squareplus(x, b=4):
    """(x + sqrt(x^2 + b)) / 2."""
    return (x + np.sqrt(x * x + b)) / 2


def sparse_plus(x):
    """0 where x <= -1, (x + 1)^2 / 4 where -1 < x < 1, x where x >= 1."""
    return np.where(x <= -1, 0, np.where(x < 1, 0.25 * (x + 1) ** 2, x))


def soft_shrink(x, threshold=0.5):
    """x - threshold where x > threshold, x + threshold where x < -threshold, else 0."""
    return np.where(x > threshold, x - threshold, np.where(x < -threshold, x + threshold, 0))


# Chebyshev coefficients, in t = (a - 4) / (a + 4), of erfcx(a) * (1 + 2a) for
# a >= 0, where erfcx(a) = exp(a^2) erfc(a). Fitted with mpmath at 50 digits on
# 80 Chebyshev nodes; the dropped terms are below 4e-19, so the series is exact
# to double rounding on all of [0, inf).
_ERFC_CHEBYSHEV = (
    1.1774832005374487, -0.007260796620301901, -0.081265123236185, 0.06009212804122225,
    -0.02875393558027666, 0.01059566336347286, -0.003136927294554264,
    0.0007456494372536184, -0.0001369696503010054, 1.7183861600300937e-05,
    -7.158364623450346e-07, -2.4261399442449534e-07, 5.5765709395703566e-08,
    -2.1057869513809494e-09, -1.1717889351884957e-09, 1.9098355172456688e-10,
    1.408871764208813e-11, -6.901108320480815e-12, 9.167958364111294e-14,
    2.1454508286554553e-13, -1.4716575027010623e-14, -6.668675118770408e-15,
    7.504598509880083e-16, 2.22009300666632e-16, -3.1704898956330886e-17,
    -8.193570309884333e-18, 1.2459819733129574e-18)


def erfc(x):
    """The complementary error function 1 - erf(x), in float64, within 3 ulps.

    For a = |x|: erfc(a) = exp(-a^2) * h(t) / (1 + 2a), h the Chebyshev series
    above, summed with Clenshaw's recurrence; erfc(-a) = 2 - erfc(a). exp(-a^2)
    is taken as exp(-z^2) * exp((z - a)(z + a)) with z = a rounded to float32,
    so that z^2 is exact: a^2 itself would carry a rounding error that exp
    magnifies to a^2 ulps.
    """
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), 30)  # erfc(27) already underflows; keeps inf out of t
    t = (a - 4) / (a + 4)
    t2 = t + t
    b1, b2 = np.full_like(a, _ERFC_CHEBYSHEV[-1]), np.zeros_like(a)
    tmp = np.empty_like(a)
    for c in _ERFC_CHEBYSHEV[-2:0:-1]:  # b_k = 2t b_{k+1} - b_{k+2} + c_k, in place
        np.multiply(t2, b1, out=tmp)
        tmp -= b2
        tmp += c
        b1, b2, tmp = tmp, b1, b2
    h = t * b1 - b2 + _ERFC_CHEBYSHEV[0]
    z = a.astype(np.float32).astype(np.float64)
    r = np.exp(-z * z) * np.exp((z - a) * (z + a)) * h / (1 + 2 * a)
    return np.where(x < 0, 2 - r, r)
