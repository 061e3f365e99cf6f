"""The twins of Keras's core, activation, merge, dropout and
normalization layers that came first: ``{keras class: builder}``."""

import keras
import numpy as np

from numpy_ref.layers import activations, core, dropout, merge, normalization
from tfmodels.parity import registry


def lora(layer):
    """Refuses a layer with LoRA enabled (its kernel is a sum of three weights)."""
    if getattr(layer, "lora_enabled", False):
        raise registry.no_option(layer, "lora_rank", layer.lora_rank, "None")
    return layer


def _dense(layer):
    lora(layer)
    bias = registry.weights(layer.bias) if layer.use_bias else None
    return core.Dense(registry.weights(layer.kernel), bias,
                      registry.twin_activation(layer.activation, layer))


def _relu(layer):
    """Every option as the layer holds it: a value of 0 (``max_value=0.0``) is an option
    like any other, only None means "not given"."""
    return activations.get("relu", negative_slope=layer.negative_slope,
                           max_value=layer.max_value, threshold=layer.threshold)


def _dropout(layer, noise_shape=None):
    """Keras's seed, or the seed its generator drew (from the global seed Keras was given)."""
    seed = layer.seed
    generator = getattr(layer, "seed_generator", None)  # none when rate is 0
    if seed is None and generator is not None:
        seed = int(generator.state.numpy()[0])
    return dropout.KerasDropout(layer.rate, noise_shape or layer.noise_shape, seed)


def _spatial_dropout(rank):
    """Spatial dropout: one draw per (sample, channel), shared over the ``rank`` spatial axes."""
    def build(layer):
        channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
        spatial = (1,) * rank
        return _dropout(layer, (None, None, *spatial) if channels_first
                        else (None, *spatial, None))
    return build


def _batch_normalization(layer):
    for option in ("synchronized", "renorm"):  # other statistics, no twin
        if getattr(layer, option, False):
            raise registry.unsupported_error(layer, f"has {option}=True, which has no NumPy twin "
                                           f"(twin it with {option}=False)")
    return normalization.KerasBatchNormalization(
        registry.weights(layer.moving_mean), registry.weights(layer.moving_variance),
        registry.weights(layer.gamma) if layer.scale else None,
        registry.weights(layer.beta) if layer.center else None,
        layer.axis, layer.momentum, layer.epsilon, trainable=layer.trainable)


def _rescaling(layer):
    """The scale and offset as the layer computes with them: TensorFlow turns a Python
    float into a float32 tensor before the cast, so a float64 layer's 1/255 is float32's."""
    scale, offset = (np.asarray(layer.backend.cast(value, layer.compute_dtype))
                     for value in (layer.scale, layer.offset))
    if scale.ndim and keras.config.image_data_format() == "channels_first":
        scale = scale.reshape(scale.shape + (1,) * (3 - scale.ndim))  # as Keras reshapes it
    return core.Rescaling(scale.tolist(), offset.tolist(), layer.compute_dtype)


def _layer_normalization(layer):
    return normalization.KerasLayerNormalization(
        registry.weights(layer.gamma) if layer.gamma is not None else None,
        registry.weights(layer.beta) if layer.beta is not None else None,
        layer.axis, layer.epsilon, layer.rms_scaling)


BUILDERS = {
    keras.layers.Dense: _dense,
    keras.layers.Flatten: lambda layer: core.Flatten(layer.data_format),
    keras.layers.Reshape: lambda layer: core.Reshape(layer.target_shape),
    keras.layers.Identity: lambda layer: core.Identity(),
    keras.layers.Rescaling: _rescaling,
    keras.layers.Activation: lambda layer: registry.twin_activation(layer.activation, layer),
    keras.layers.ReLU: _relu,
    keras.layers.LeakyReLU: lambda layer: activations.get(
        "leaky_relu", negative_slope=layer.negative_slope),
    keras.layers.ELU: lambda layer: activations.get("elu", alpha=layer.alpha),
    keras.layers.Softmax: lambda layer: activations.get("softmax", axis=layer.axis),
    keras.layers.Add: lambda layer: merge.Add(),
    keras.layers.Subtract: lambda layer: merge.Subtract(),
    keras.layers.Multiply: lambda layer: merge.Multiply(),
    keras.layers.Average: lambda layer: merge.Average(),
    keras.layers.Maximum: lambda layer: merge.Maximum(),
    keras.layers.Minimum: lambda layer: merge.Minimum(),
    keras.layers.Concatenate: lambda layer: merge.Concatenate(layer.axis),
    keras.layers.Dropout: _dropout,
    keras.layers.SpatialDropout1D: _spatial_dropout(1),
    keras.layers.SpatialDropout2D: _spatial_dropout(2),
    keras.layers.SpatialDropout3D: _spatial_dropout(3),
    keras.layers.BatchNormalization: _batch_normalization,
    keras.layers.LayerNormalization: _layer_normalization,
    keras.layers.RMSNormalization: lambda layer: normalization.KerasRMSNormalization(
        registry.weights(layer.scale), layer.axis, layer.epsilon),
}
