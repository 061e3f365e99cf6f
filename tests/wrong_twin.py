"""A custom Keras layer, and a deliberately wrong twin registered for it on import.

For ``scripts/compare.py``'s divergence exit: the script runs in a subprocess,
which cannot see a twin the test process registers, so a wrapper script imports
this module (registering the wrong twin) and then runs compare.py.
"""

import keras
import numpy as np

from numpy_ref import layers as L
from tfmodels import parity


@keras.saving.register_keras_serializable(package="tfmodels_tests")
class Shift(keras.layers.Layer):
    """y = x + offset, one trainable offset per feature."""

    def build(self, input_shape):
        self.offset = self.add_weight(shape=(input_shape[-1],), name="offset",
                                      initializer=keras.initializers.RandomNormal(seed=0))

    def call(self, x):
        return x + self.offset


class WrongShiftTwin(L.Layer):
    """Shift's forward and weight gradient, but twice the gradient passed back to x."""

    def __init__(self, offset):
        super().__init__()
        self.params["offset"] = offset

    def forward(self, x, training=False):
        return x + self.params["offset"]

    def backward(self, dout):
        self.grads["offset"] = dout.reshape(-1, dout.shape[-1]).sum(axis=0)
        return 2.0 * dout  # wrong: y = x + offset passes dout back unchanged


parity.register_twin(Shift, lambda layer: WrongShiftTwin(np.array(layer.offset.numpy())))
