"""Keras's core layers in NumPy: ``Dense``, ``Flatten``, ``Reshape``, ``Identity``, ``Cast``,
``Rescaling``.

They follow Keras's conventions where they differ from the book's: ``Dense``
acts on the last axis (the book's ``Affine`` flattens its input first), and
the activation is part of the layer. ``Activation``, ``ReLU``, ``Softmax`` and
the other activation layers are the layers of ``numpy_ref.layers.activations``.

Shape letters: N batch, D input features, M units.
"""

import math

import numpy as np

from numpy_ref.layers import activations
from numpy_ref import layers as L


def activation_config(activation):
    """How a layer saves its activation: {"activation": name, **the activation's arguments}."""
    return {"activation": activations.name_of(activation), **activation.get_config()}


def activation_from_config(config):
    """The activation layer that ``activation_config`` describes."""
    config = dict(config)
    return activations.get(config.pop("activation"), **config)


class Dense(L.Layer):
    """y = activation(x @ kernel + bias) on the last axis, the twin of ``keras.layers.Dense``.

    Args:
        kernel: (D, M), used as given.
        bias: (M,), or None (``use_bias=False``).
        activation: a name from ``numpy_ref.layers.activations`` or an activation layer.

    Input shape: (N, ..., D). Output shape: (N, ..., M).
    """

    def __init__(self, kernel, bias=None, activation="linear"):
        super().__init__()
        L.set_kernel_and_bias(self, kernel, bias)
        self.activation = (activation if isinstance(activation, L.Layer)
                           else activations.get(activation))

    def get_config(self):
        return activation_config(self.activation)

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(params["kernel"], params.get("bias"), activation_from_config(config))

    def forward(self, x, training=False):
        self.x = x
        params = self.params
        z = x @ params["kernel"]  # (N, ..., M)
        if "bias" in params:
            z += params["bias"]
        return self.activation.forward(z, training=training)

    def backward(self, dout):
        dz = self.backward_weights(dout)
        return dz @ self.params["kernel"].T  # (N, ..., D)

    def backward_weights(self, dout):
        """Stores dkernel and dbias; returns dL/dz, the gradient before the activation."""
        dz = self.activation.backward(dout)
        kernel = self.params["kernel"]
        dz2 = dz.reshape(-1, kernel.shape[1])  # (N * ..., M)
        self.grads["kernel"] = self.x.reshape(-1, kernel.shape[0]).T @ dz2  # (D, M)
        if "bias" in self.params:
            self.grads["bias"] = np.sum(dz2, axis=0)  # (M,)
        return dz


class Flatten(L.Layer):
    """(N, ...) -> (N, prod(...)); channels_first input is moved to channels_last first,
    as ``keras.layers.Flatten(data_format="channels_first")`` does."""

    def __init__(self, data_format="channels_last"):
        super().__init__()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError("data_format must be 'channels_last' or 'channels_first'. "
                             f"Received: data_format={data_format!r}")
        self.data_format = data_format

    def _channels_first(self, ndim):
        return self.data_format == "channels_first" and ndim >= 3

    def forward(self, x, training=False):
        self.x_shape = x.shape
        if self._channels_first(x.ndim):
            x = np.moveaxis(x, 1, -1)  # (N, C, ...) -> (N, ..., C)
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        if self._channels_first(len(self.x_shape)):
            n, c, *rest = self.x_shape
            return np.moveaxis(dout.reshape(n, *rest, c), -1, 1)
        return dout.reshape(self.x_shape)


class Reshape(L.Layer):
    """(N, ...) -> (N, *target_shape); one entry of target_shape may be -1."""

    def __init__(self, target_shape):
        super().__init__()
        self.target_shape = tuple(int(d) for d in target_shape)

    def forward(self, x, training=False):
        self.x_shape = x.shape
        known = math.prod(d for d in self.target_shape if d != -1)
        features = math.prod(x.shape[1:])
        if features % max(known, 1) or (-1 not in self.target_shape and known != features):
            raise ValueError(f"cannot reshape {x.shape[1:]} into {self.target_shape}")
        return x.reshape(x.shape[0], *self.target_shape)

    def backward(self, dout):
        return dout.reshape(self.x_shape)


Identity = activations.Linear  # keras.layers.Identity: y = x


class Cast(L.Layer):
    """y = x as ``dtype`` (what Keras does to an input of another dtype); dx in x's dtype."""

    def __init__(self, dtype):
        super().__init__()
        self.dtype = np.dtype(dtype).name

    def forward(self, x, training=False):
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, dout):
        return dout.astype(self.x_dtype)


class ExpandDims(L.Layer):
    """y = x with a new axis of size 1 at ``axis`` (``ops.expand_dims``); dx = dout without
    it. (A Concatenate of masked sequences expands its masks this way.)"""

    def __init__(self, axis):
        super().__init__()
        self.axis = int(axis)

    def forward(self, x, training=False):
        return np.expand_dims(x, self.axis)

    def backward(self, dout):
        return np.squeeze(dout, axis=self.axis)


class TakeOutput(L.Layer):
    """y = values[index]: one output of a layer that returns several (``multi_output``, an
    LSTM with ``return_state``); dvalues = (None, ..., dout, ..., None), None standing for
    the outputs this node does not read."""

    def __init__(self, index):
        super().__init__()
        self.index = int(index)

    def forward(self, values, training=False):
        self.count = len(values)
        return values[self.index]

    def backward(self, dout):
        return tuple(dout if k == self.index else None for k in range(self.count))


class Rescaling(L.Layer):
    """The twin of ``keras.layers.Rescaling``: y = x * scale + offset, computed in ``dtype``.

    As Keras does, the input is first cast to ``dtype`` (the layer's compute dtype; an
    image of uint8 becomes floats), and ``scale`` and ``offset`` are rounded to it, so
    ``1 / 255`` is a float32 number in a float32 layer (``parity.twin`` passes the values
    Keras computes with: TensorFlow rounds a Python float through float32 even for a
    float64 layer). A sequence ``scale`` or ``offset`` applies per channel (the last
    axis). dx = dout * scale.
    """

    def __init__(self, scale, offset=0.0, dtype="float32"):
        super().__init__()
        self.scale, self.offset = scale, offset
        self.dtype = np.dtype(dtype).name

    def get_config(self):
        return {"scale": np.asarray(self.scale).tolist(),
                "offset": np.asarray(self.offset).tolist(), "dtype": self.dtype}

    def forward(self, x, training=False):
        scale = np.asarray(self.scale, self.dtype)
        return np.asarray(x).astype(self.dtype) * scale + np.asarray(self.offset, self.dtype)

    def backward(self, dout):
        return dout * np.asarray(self.scale, dout.dtype)


__all__ = ["Cast", "Dense", "ExpandDims", "Flatten", "Identity", "Rescaling", "Reshape",
           "TakeOutput"]
