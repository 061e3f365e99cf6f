"""Twins of Keras's preprocessing layers that sit inside a model.

``KerasNormalization``, the twin of ``keras.layers.Normalization``: a fixed mean
and variance per index of the kept axes, broadcast over the others:
    y = (x - mean) / max(sqrt(variance), 1e-7)        (invert=False)
    y = mean + x * max(sqrt(variance), 1e-7)          (invert=True)
    dx = dout / max(...)  or  dout * max(...)
computed in the layer's dtype (the input is cast to it first). Nothing is learned:
the statistics come from ``adapt`` or from the constructor, never from training.

``InferenceOnly``, the twin of Keras's random augmentation layers (``RandomFlip``,
``RandomRotation``, ...) in inference, where Keras returns the images unchanged in its
compute dtype: y = cast(x), dx = dout. In training mode Keras draws a random
transformation per call, which the twin does not follow: its forward refuses.
"""

import numpy as np

from numpy_ref import layers as L

KERAS_EPSILON = 1e-7  # keras.config.epsilon(): the smallest standard deviation divided by


class KerasNormalization(L.Layer):
    """The twin of ``keras.layers.Normalization``.

    Args:
        mean, variance: arrays. An adapted Keras layer holds them as non-trainable
            weights (with an int ``count``): give ``count`` and they are the twin's
            ``state``, in the weights' shape (the kept axes' sizes). A layer given
            ``mean=`` and ``variance=`` holds no weights: without ``count`` they are
            constants of the configuration.
        shape: the shape they are broadcast in: the input's rank, the kept axes'
            sizes and 1 elsewhere (Keras's ``_broadcast_shape``).
        invert: y = mean + x * std instead of (x - mean) / std.
        dtype: the layer's compute dtype; the input and the statistics are cast to it.
        count: the number of values ``adapt`` saw (kept, never used in the forward).
    """

    def __init__(self, mean, variance, shape, invert=False, dtype="float32", count=None):
        super().__init__()
        self.shape = [int(s) for s in shape]
        self.invert, self.dtype = bool(invert), np.dtype(dtype).name
        if count is None:
            self.mean, self.variance = np.asarray(mean), np.asarray(variance)
        else:
            self.state.update(mean=np.asarray(mean), variance=np.asarray(variance),
                              count=np.asarray(count))

    def get_config(self):
        config = {"shape": self.shape, "invert": self.invert, "dtype": self.dtype}
        if not self.state:
            config.update(mean=self.mean.tolist(), variance=self.variance.tolist())
        return config

    def _statistic(self, key):
        value = self.state[key] if self.state else getattr(self, key)
        return np.asarray(value).reshape(self.shape).astype(self.dtype)

    def forward(self, x, training=False):
        x = np.asarray(x)
        if x.ndim != len(self.shape):
            raise ValueError(f"KerasNormalization was built for inputs of rank {len(self.shape)}."
                             f" Received: input shape {x.shape}")
        self.x_dtype = x.dtype
        work = np.dtype(self.dtype)
        x = x.astype(work)
        mean = self._statistic("mean")
        self.std = np.maximum(np.sqrt(self._statistic("variance")), work.type(KERAS_EPSILON))
        if self.invert:
            return mean + x * self.std
        return (x - mean) / self.std

    def backward(self, dout):
        dx = dout * self.std if self.invert else dout / self.std
        return dx.astype(self.x_dtype) if self.x_dtype.kind == "f" else dx


class InferenceOnly(L.Layer):
    """A Keras layer that is the identity in inference (a random augmentation): y = x
    cast to ``dtype``; dx = dout, in x's dtype. In training mode ``forward`` raises,
    naming the Keras layer (``keras_name``, ``keras_class``)."""

    def __init__(self, keras_name, keras_class, dtype="float32"):
        super().__init__()
        self.keras_name, self.keras_class = keras_name, keras_class
        self.dtype = np.dtype(dtype).name

    def forward(self, x, training=False):
        if training:
            raise ValueError(
                f"Keras layer {self.keras_name!r} ({self.keras_class}) draws random transformations "
                "in training mode; the NumPy twin follows it in inference only "
                "(training=False), where Keras passes the input through unchanged")
        x = np.asarray(x)
        self.x_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, dout):
        return dout.astype(self.x_dtype) if self.x_dtype.kind == "f" else dout * 1


__all__ = ["KERAS_EPSILON", "InferenceOnly", "KerasNormalization"]
