"""Activation layers by name: the one vocabulary of activations.

Each activation is a layer (``forward(x, training=False)``, ``backward(dout)``)
computing what Keras 3 computes under that name (``keras.activations.<name>``
with the TensorFlow backend), and the gradient TensorFlow's gradient
computes; the arguments of the Keras function (``negative_slope``, ``alpha``,
``axis``, ...) are constructor arguments, returned by ``get_config()``.

The registry ``ACTIVATIONS`` names them all. The common ones live here
(``Linear``, ``ReLU``, ``Softmax``, ``LogSoftmax``; the book's ``Sigmoid`` and
``Tanh`` are ``numpy_ref.layers``'), the others by kind: ``piecewise`` (a kink
where TF picks the gradient's side: leaky_relu, relu6, hard_tanh, elu, ...) and
``smooth`` (softplus, silu, gelu, mish, ...).

    get("relu")                     a fresh layer
    get("softmax", axis=1)          with the activation's own arguments
    get(functions.sigmoid)          the book passes functions
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L
from numpy_ref.layers import piecewise as P
from numpy_ref.layers import smooth as S


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
        self.plain = negative_slope == 0 and max_value is None and threshold == 0  # max(x, 0)
        self._leaky = negative_slope != 0 and max_value is None and threshold == 0

    def forward(self, x, training=False):
        if self.plain:
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
        if self.plain:
            return L.Relu.backward(self, dout)
        if self._leaky:
            return np.where(self.x > 0, dout, dout * F.float32_attr(self.negative_slope))
        dx = dout * self.mask
        if self.negative_slope != 0:
            dx = dx + (dout * self.negative_slope) * (self.threshold - self.x > 0)
        return dx


class Softmax(L.Layer):
    """y = exp(x - max) / sum(exp(x - max)) over ``axis`` (an int, a tuple, or None for
    all axes); dx = y * (dout - sum(dout * y)), TF's SoftmaxGrad."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis

    def forward(self, x, training=False):
        self.out = F.softmax(x, axis=self.axis)
        return self.out

    def backward(self, dout):
        y = self.out
        return y * (dout - np.sum(dout * y, axis=self.axis, keepdims=True))


class LogSoftmax(Softmax):
    """y = x - logsumexp(x) over ``axis``; dx = dout - sum(dout) * exp(y), TF's gradient."""

    def forward(self, x, training=False):
        self.out = F.log_softmax(x, axis=self.axis)
        return self.out

    def backward(self, dout):
        return dout - np.sum(dout, axis=self.axis, keepdims=True) * np.exp(self.out)


ACTIVATIONS = {
    "linear": Linear,
    "relu": ReLU,
    "relu6": P.ReLU6,
    "leaky_relu": P.LeakyReLU,
    "sigmoid": L.Sigmoid,
    "tanh": L.Tanh,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
    "elu": P.ELU,
    "selu": P.SELU,
    "celu": P.CELU,
    "softplus": S.Softplus,
    "softsign": S.Softsign,
    "silu": S.SiLU,
    "swish": S.SiLU,
    "gelu": S.GELU,
    "hard_sigmoid": P.HardSigmoid,
    "hard_silu": P.HardSiLU,
    "hard_swish": P.HardSiLU,
    "exponential": S.Exponential,
    "mish": S.Mish,
    "log_sigmoid": S.LogSigmoid,
    "tanh_shrink": S.TanhShrink,
    "squareplus": S.Squareplus,
    "sparse_plus": P.SparsePlus,
    "soft_shrink": P.SoftShrink,
    "hard_tanh": P.HardTanh,
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


__all__ = ["ACTIVATIONS", "Linear", "LogSoftmax", "ReLU", "Softmax", "get", "name_of"]
