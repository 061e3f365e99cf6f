"""Activation layers by name: the one vocabulary of activations.

Each activation is a layer (``forward(x, training=False)``, ``backward(dout)``)
computing what Keras 3 computes under that name (``keras.activations.<name>``
with the TensorFlow backend), and the gradient TensorFlow's gradient
computes. The book's ``Relu``, ``Sigmoid`` and ``Tanh`` (``numpy_ref.layers``)
are the 'relu', 'sigmoid' and 'tanh' entries.

    get("relu")                     a fresh layer
    get("softmax", axis=1)          with the activation's own arguments
    get(functions.sigmoid)          the book passes functions
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L


class Linear(L.Layer):
    """y = x (Keras 'linear', and the ``Identity`` layer); dx = dout."""

    def forward(self, x, training=False):
        return x

    def backward(self, dout):
        return dout


class Softmax(L.Layer):
    """y = exp(x - max) / sum(exp(x - max)) over ``axis``; dx = y * (dout - sum(dout * y))."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def get_config(self):
        return {"axis": self.axis}

    def forward(self, x, training=False):
        self.out = F.softmax(x, axis=self.axis)
        return self.out

    def backward(self, dout):
        y = self.out
        return y * (dout - np.sum(dout * y, axis=self.axis, keepdims=True))


ACTIVATIONS = {
    "linear": Linear,
    "relu": L.Relu,
    "sigmoid": L.Sigmoid,
    "tanh": L.Tanh,
    "softmax": Softmax,
}
# The book passes its functions where Keras passes names.
_BOOK_FUNCTIONS = {F.relu: "relu", F.sigmoid: "sigmoid", F.tanh: "tanh",
                   F.identity_function: "linear", F.softmax: "softmax"}


def name_of(activation):
    """The registry name of an activation given by name, book function or layer."""
    if isinstance(activation, L.Layer):
        for name, cls in ACTIVATIONS.items():
            if type(activation) is cls:
                return name
    name = _BOOK_FUNCTIONS.get(activation, activation) if callable(activation) else activation
    if activation is None:
        name = "linear"
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}. "
                         f"Received: activation={activation!r}")
    return name


def get(activation, **kwargs):
    """A fresh activation layer: by name ('relu'), by book function, or None ('linear')."""
    return ACTIVATIONS[name_of(activation)](**kwargs)


__all__ = ["ACTIVATIONS", "Linear", "Softmax", "get", "name_of"]
