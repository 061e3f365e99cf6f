"""The twin of ``keras.layers.PReLU``: a leaky ReLU whose slope is learned.

    y = relu(x) + (-alpha) * relu(-x)      (x where x > 0, alpha * x where x < 0)
    dx = dout * [x > 0] + dout * alpha * [x < 0]
    dalpha = sum over the batch and the shared axes of dout * (-relu(-x))

alpha has the input's shape without the batch axis, with size 1 on each shared
axis (Keras's ``shared_axes``), and broadcasts over x (N, ...).
"""

import numpy as np

from numpy_ref import layers as L


class KerasPReLU(L.Layer):
    """``alpha``: the slopes, shaped like one sample with 1 on the shared axes."""

    def __init__(self, alpha):
        super().__init__()
        self.params["alpha"] = np.asarray(alpha)

    def forward(self, x, training=False):
        alpha = self.params["alpha"]
        if x.ndim != alpha.ndim + 1:
            raise ValueError(f"KerasPReLU has alpha of shape {alpha.shape}, for inputs of rank "
                             f"{alpha.ndim + 1}. Received: input shape {x.shape}")
        self.x = x
        self.negative_part = np.maximum(-x, 0)  # relu(-x)
        return np.maximum(x, 0) + (-alpha.astype(x.dtype)) * self.negative_part

    def backward(self, dout):
        alpha = self.params["alpha"]
        # Summed over the batch axis and every axis alpha broadcasts along.
        per_element = -(dout * self.negative_part)
        broadcast = (0, *(i + 1 for i, size in enumerate(alpha.shape) if size == 1
                          and self.x.shape[i + 1] != 1))
        grad = per_element.sum(axis=broadcast, keepdims=True)[0]
        self.grads["alpha"] = grad.reshape(alpha.shape).astype(alpha.dtype, copy=False)
        return dout * (self.x > 0) + (dout * alpha.astype(dout.dtype)) * (self.x < 0)


__all__ = ["KerasPReLU"]
