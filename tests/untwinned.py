"""Custom Keras layers that no twin is registered for, for the tests of refusals.

Every built-in Keras layer a float model can hold has a twin (or a documented
refusal), so the tests that need "a layer without a twin" use these. They are
registered as serializable, so a saved model holding one loads wherever this
module is imported (scripts run in a subprocess import it through a wrapper).
"""

import keras


@keras.saving.register_keras_serializable(package="tfmodels_tests")
class Cube(keras.layers.Layer):
    """y = x ** 3, element-wise; no weights."""

    def call(self, x):
        return x * x * x


@keras.saving.register_keras_serializable(package="tfmodels_tests")
class Doubled(keras.layers.Layer):
    """y = [x, 2x] along the last axis: changes the shape; no weights."""

    def call(self, x):
        return keras.ops.concatenate([x, 2 * x], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1])
