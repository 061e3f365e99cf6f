"""Activation layers by name: the one vocabulary of activations.

Each activation is a layer (``forward(x, training=False)``, ``backward(dout)``)
computing what Keras 3 computes under that name (``keras.activations.<name>``
with the TensorFlow backend), and the gradient TensorFlow's gradient
computes; the arguments of the Keras function (``negative_slope``, ``alpha``,
``axis``, ...) are constructor arguments, returned by ``get_config()``. The
book's ``Sigmoid`` and ``Tanh`` (``numpy_ref.layers``) are the 'sigmoid' and
'tanh' entries; 'relu' is the book's ``Relu`` with the options of
``keras.layers.ReLU``. The activations the twin of a Keras model meets most
live here, Keras's others in ``numpy_ref.layers.more_activations``.

Where TF's gradient is not the textbook derivative, the backward follows TF:
at a kink it takes TF's side (relu'(0) = 0, hard_tanh'(+-1) = 1, celu'(0) = 2),
and it is evaluated with TF's formula (elu and selu from their outputs).

    get("relu")                     a fresh layer
    get("softmax", axis=1)          with the activation's own arguments
    get(functions.sigmoid)          the book passes functions
"""

import math

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L
from numpy_ref.layers import more_activations as M


class Linear(L.Layer):
    """y = x (Keras 'linear', and the ``Identity`` layer); dx = dout."""

    def forward(self, x, training=False):
        return x

    def backward(self, dout):
        return dout


class ReLU(L.Relu):
    """Keras's relu: max(x, 0), or with options

        y = clip(x if x > threshold else 0, 0, max_value)
            - negative_slope * max(threshold - x, 0)

    taking Keras's paths: only ``negative_slope`` -> TF's leaky_relu op (slope
    rounded to float32); ``max_value == 6`` without threshold -> the relu6 op
    (gradient blocked at 0 and 6); any other ``max_value`` -> a clip whose
    gradient passes at the bound. Keras casts ``threshold`` (in the comparison,
    not in the negative part) and ``max_value`` through float32, so they are
    rounded to float32 there. With the defaults it is the book's ``Relu``.
    """

    def __init__(self, negative_slope=0.0, max_value=None, threshold=0.0):
        super().__init__()
        for name, value in (("max_value", max_value), ("negative_slope", negative_slope),
                            ("threshold", threshold)):
            if (value is None and name != "max_value") or (value is not None and value < 0):
                raise ValueError(f"{name} of a ReLU cannot be None or negative. "
                                 f"Received: {name}={value}")
        self.negative_slope, self.max_value, self.threshold = negative_slope, max_value, threshold
        self._plain = negative_slope == 0 and max_value is None and threshold == 0
        self._leaky = negative_slope != 0 and max_value is None and threshold == 0
        if not self._plain:  # only max(x, 0) itself runs in place
            self.forward_in_place = None


    def forward(self, x, training=False):
        if self._plain:
            return L.Relu.forward(self, x)
        self.x = x
        if self._leaky:
            return F.leaky_relu(x, self.negative_slope)
        if self.threshold != 0:
            self.mask = x > F.float32_attr(self.threshold)
            y = np.where(self.mask, x, 0)
        elif self.max_value == 6:
            self.mask = (x > 0) & (x < 6)
            y = F.relu6(x)
        else:
            self.mask = x > 0
            y = np.maximum(x, 0)
        if self.max_value is not None and (self.threshold != 0 or self.max_value != 6):
            max_value = F.float32_attr(self.max_value)
            self.mask &= y <= max_value  # TF's clip passes the gradient at the bound
            y = np.minimum(y, max_value)
        if self.negative_slope != 0:
            y = y - self.negative_slope * np.maximum(self.threshold - x, 0)
        return y

    def backward(self, dout):
        if self._plain:
            return L.Relu.backward(self, dout)
        if self._leaky:
            return np.where(self.x > 0, dout, dout * F.float32_attr(self.negative_slope))
        dx = dout * self.mask
        if self.negative_slope != 0:
            dx = dx + (dout * self.negative_slope) * (self.threshold - self.x > 0)
        return dx


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






class Softmax(L.Layer):
    """y = exp(x - max) / sum(exp(x - max)) over ``axis`` (an int, a tuple, or None for
    all axes); dx = y * (dout - sum(dout * y)), TF's SoftmaxGrad."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis

    def forward(self, x, training=False):
        # shifted and total kept for a cross-entropy of the same logits (Network.loss)
        self.shifted, self.total, self.out = F.softmax_parts(x, axis=self.axis)
        return self.out

    def backward(self, dout):
        y = self.out
        return y * (dout - np.sum(dout * y, axis=self.axis, keepdims=True))


class LogSoftmax(Softmax):
    """y = x - logsumexp(x) over ``axis``; dx = dout - sum(dout) * exp(y), TF's gradient."""

    def forward(self, x, training=False):
        self.shifted = self.total = None
        self.out = F.log_softmax(x, axis=self.axis)
        return self.out

    def backward(self, dout):
        return dout - np.sum(dout, axis=self.axis, keepdims=True) * np.exp(self.out)


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









ACTIVATIONS = {
    "linear": Linear,
    "relu": ReLU,
    "relu6": M.ReLU6,
    "leaky_relu": LeakyReLU,
    "sigmoid": L.Sigmoid,
    "tanh": L.Tanh,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
    "elu": ELU,
    "selu": SELU,
    "celu": M.CELU,
    "softplus": Softplus,
    "softsign": Softsign,
    "silu": SiLU,
    "swish": SiLU,
    "gelu": GELU,
    "hard_sigmoid": M.HardSigmoid,
    "hard_silu": M.HardSiLU,
    "hard_swish": M.HardSiLU,
    "exponential": M.Exponential,
    "mish": M.Mish,
    "log_sigmoid": M.LogSigmoid,
    "tanh_shrink": M.TanhShrink,
    "squareplus": M.Squareplus,
    "sparse_plus": M.SparsePlus,
    "soft_shrink": M.SoftShrink,
    "hard_tanh": M.HardTanh,
}
# The book passes its functions where Keras passes names, and builds its own Relu.
_BOOK_FUNCTIONS = {F.relu: "relu", F.sigmoid: "sigmoid", F.tanh: "tanh",
                   F.identity_function: "linear", F.softmax: "softmax"}
_BOOK_CLASSES = {L.Relu: "relu"}


def name_of(activation):
    """The registry name of an activation given by name, book function or layer
    (the first name of a class with aliases: 'silu', not 'swish')."""
    if isinstance(activation, L.Layer):
        for name, cls in ACTIVATIONS.items():
            if type(activation) is cls:
                return name
        name = _BOOK_CLASSES.get(type(activation), activation)
    elif callable(activation):
        name = _BOOK_FUNCTIONS.get(activation, activation)
    else:
        name = "linear" if activation is None else activation
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}. "
                         f"Received: activation={activation!r}")
    return name


def get(activation, **kwargs):
    """A fresh activation layer: by name ('relu'), by book function, or None ('linear');
    ``kwargs`` are the activation's arguments (``get('elu', alpha=0.5)``; an argument
    the activation does not take is Python's TypeError)."""
    return ACTIVATIONS[name_of(activation)](**kwargs)


__all__ = ["ACTIVATIONS", "ELU", "GELU", "LeakyReLU", "Linear", "LogSoftmax", "ReLU", "SELU",
           "SiLU", "Softmax", "Softplus", "Softsign", "get", "name_of"]
