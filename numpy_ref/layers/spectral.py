"""The twin of ``keras.layers.SpectralNormalization``: a layer (``Dense``, a convolution)
whose kernel is divided by an estimate of its largest singular value, in training.

What Keras does, and so the twin:

- Inference: y = layer(x), with the kernel as it is. Nothing is normalised then: the
  kernel was normalised in place by the training steps before.
- Training, unless every kernel entry is 0 (then nothing changes): with W the kernel
  reshaped to (R, M) (M its last axis) and u the state ``vector_u`` (1, M), each of
  ``power_iterations`` rounds computes
      v = normalize(u W^T)   (1, R)
      u = normalize(v W)     (1, M)
  with normalize(a) = a * min(1 / sqrt(sum a^2), 1 / epsilon); then
      sigma = v W u^T        (a number)
      kernel <- kernel / sigma,   vector_u <- u
  both written in place (Keras assigns both variables), and y = layer(x) with the new
  kernel. The gradient reaches the kernel through ``layer`` only: Keras assigns the
  normalised kernel to the variable and the layer reads the variable, so no gradient
  flows back through sigma. The layer's weight gradients are the wrapped twin's.

Shape letters: R the kernel's entries per output unit, M output units (its last axis).
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.dot import normalize


def power_iteration(kernel, vector_u, iterations, epsilon):
    """(new u (1, M), sigma (1, 1)) for kernel (..., M) and u (1, M)."""
    weights = kernel.reshape(-1, kernel.shape[-1])  # (R, M)
    u = vector_u
    for _ in range(iterations):
        v = normalize(u @ weights.T, None, epsilon)[0]  # (1, R)
        u = normalize(v @ weights, None, epsilon)[0]  # (1, M)
    sigma = (v @ weights) @ u.T  # (1, 1)
    return u, sigma


class SpectralNormalization(L.Layer):
    """The twin of ``keras.layers.SpectralNormalization`` around the twin of its layer.

    Args:
        layer: the wrapped layer's twin (its ``params`` hold the kernel under
            ``kernel_key``).
        vector_u: the state (1, M), Keras's ``vector_u``.
        power_iterations: rounds of the power iteration per training step.
        kernel_key: "kernel" (or "embeddings", the weight Keras normalises instead).
        epsilon: Keras's ``epsilon()``.
    """

    def __init__(self, layer, vector_u, power_iterations=1, kernel_key="kernel",
                 epsilon=1e-7):
        super().__init__()
        self.layer = layer
        self.power_iterations, self.kernel_key = int(power_iterations), kernel_key
        self.epsilon = float(epsilon)
        self.params = layer.params  # the wrapped layer's weights are this layer's
        self.state["vector_u"] = vector_u

    def get_config(self):
        return {"layer": {"class": L.class_key(type(self.layer)),
                          "config": self.layer.get_config()},
                "power_iterations": self.power_iterations, "kernel_key": self.kernel_key,
                "epsilon": self.epsilon}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        config = dict(config)
        inner = config.pop("layer")
        layer = L.LAYER_CLASSES[inner["class"]].from_config(inner["config"], params)
        return cls(layer, **config, **(state or {}))

    def forward(self, x, training=False):
        if training:
            self.normalize_kernel()
        return self.layer.forward(x, training=training)

    def normalize_kernel(self):
        """One training step's update of the kernel and ``vector_u``, in place."""
        kernel, vector_u = self.params[self.kernel_key], self.state["vector_u"]
        if not np.any(kernel != 0):
            return  # Keras keeps both as they are
        u, sigma = power_iteration(kernel, vector_u, self.power_iterations, self.epsilon)
        vector_u[...] = u
        kernel[...] = kernel / sigma.reshape(())

    def backward(self, dout):
        dx = self.layer.backward(dout)
        self.grads = self.layer.grads
        return dx

    def backward_weights(self, dout):
        result = self.layer.backward_weights(dout)
        self.grads = self.layer.grads
        return result


__all__ = ["SpectralNormalization", "power_iteration"]
