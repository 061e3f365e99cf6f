"""One registry: Keras layer class -> the builder of its ``numpy_ref`` twin.

A builder takes the built Keras layer and returns a ``numpy_ref`` layer holding
copies of its weights, with ``params`` keyed by the Keras weights' own names
(``kernel``, ``bias``) and non-trainable weights in ``state``. Adding a layer
type is one ``register_twin`` line; users register their own custom layers the
same way::

    tfmodels.parity.register_twin(MyScale, lambda layer: MyScaleTwin(layer.scale.numpy()))

Lookups match the exact class: a subclass of ``Dense`` with its own ``call``
is not a ``Dense``, so it needs its own entry (or is traced through, when it is
made of registered layers).
"""

import functools

import keras
import numpy as np

from numpy_ref.layers import activations, conv, core, dropout, merge, normalization, pooling

_TWINS = {}  # keras layer class -> builder(keras_layer) -> numpy_ref layer


def register_twin(keras_class, builder):
    """Registers ``builder(keras_layer) -> numpy_ref layer`` as the twin of ``keras_class``."""
    if not (isinstance(keras_class, type) and issubclass(keras_class, keras.layers.Layer)):
        raise ValueError("register_twin needs a Keras layer class. "
                         f"Received: keras_class={keras_class!r}")
    if not callable(builder):
        raise ValueError(f"register_twin needs a callable builder. Received: builder={builder!r}")
    _TWINS[keras_class] = builder
    return builder


def builder_for(layer):
    """The registered builder for this layer's exact class, or None."""
    return _TWINS.get(type(layer))


def supported():
    """Names of the Keras layer classes that have a twin, sorted."""
    return sorted(cls.__name__ for cls in _TWINS)


def unsupported_error(layer, why="has no NumPy twin"):
    cls = type(layer)
    return ValueError(
        f"Keras layer {layer.name!r} ({cls.__module__}.{cls.__qualname__}) {why}. "
        f"Layers with a twin: {', '.join(supported())}. A custom layer gets one with "
        f"tfmodels.parity.register_twin({cls.__name__}, builder).")


def weights(variable):
    """A NumPy copy of a Keras variable's value."""
    return np.array(variable.numpy())


# -- activations: Keras's functions -> numpy_ref.layers.activations names

def _keras_activation_names():
    """{Keras activation function: its registry name} for every name Keras exports."""
    names = {}
    for name in activations.ACTIVATIONS:
        try:
            names.setdefault(keras.activations.get(name), name)
        except ValueError:  # a name numpy_ref has and this Keras lacks
            continue
    return names


def twin_activation(function, layer):
    """The ``numpy_ref`` activation layer computing what Keras's ``function`` computes.

    ``function`` is a Keras activation (``keras.activations.relu``), a
    ``functools.partial`` of one with keyword arguments (``gelu`` with
    ``approximate=True``), or a Keras layer that has a twin.
    """
    if isinstance(function, keras.layers.Layer):
        builder = builder_for(function)
        if builder is None:
            raise unsupported_error(function)
        return builder(function)
    kwargs = {}
    if isinstance(function, functools.partial) and not function.args:
        function, kwargs = function.func, dict(function.keywords)
    name = _keras_activation_names().get(function)
    if name is None:
        raise ValueError(
            f"Keras layer {layer.name!r} ({type(layer).__name__}) uses the activation "
            f"{getattr(function, '__name__', function)!r}, which has no NumPy twin. "
            f"Activations with a twin: {', '.join(sorted(activations.ACTIVATIONS))}.")
    return activations.get(name, **kwargs)


# -- the built-in entries

def _dense(layer):
    bias = weights(layer.bias) if layer.use_bias else None
    return core.Dense(weights(layer.kernel), bias, twin_activation(layer.activation, layer))


def _relu(layer):
    options = {"negative_slope": layer.negative_slope, "max_value": layer.max_value,
               "threshold": layer.threshold}
    return activations.get("relu", **{k: v for k, v in options.items()
                                      if v not in (None, 0, 0.0)})


def _no_option(layer, option, value, supported):
    return unsupported_error(layer, f"has {option}={value!r}, which has no NumPy twin "
                                    f"(supported: {supported})")


def _channels_last(layer):
    if layer.data_format != "channels_last":
        raise _no_option(layer, "data_format", layer.data_format, "'channels_last'")
    return layer


def _conv2d(layer):
    _channels_last(layer)
    if layer.groups != 1:
        raise _no_option(layer, "groups", layer.groups, "1")
    if layer.lora_enabled:
        raise _no_option(layer, "lora_rank", layer.lora_rank, "None")
    bias = weights(layer.bias) if layer.use_bias else None
    return conv.Conv2D(weights(layer.kernel), bias, layer.strides, layer.padding,
                       layer.dilation_rate, twin_activation(layer.activation, layer))


def _pooling(twin_class):
    def build(layer):
        _channels_last(layer)
        return twin_class(layer.pool_size, layer.strides, layer.padding)
    return build


def _global_pooling(twin_class):
    return lambda layer: twin_class(_channels_last(layer).keepdims)
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
            raise unsupported_error(layer, f"has {option}=True, which has no NumPy twin "
                                           f"(twin it with {option}=False)")
    return normalization.KerasBatchNormalization(
        weights(layer.moving_mean), weights(layer.moving_variance),
        weights(layer.gamma) if layer.scale else None,
        weights(layer.beta) if layer.center else None,
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
        weights(layer.gamma) if layer.gamma is not None else None,
        weights(layer.beta) if layer.beta is not None else None,
        layer.axis, layer.epsilon, layer.rms_scaling)


_BUILTIN = {
    keras.layers.Dense: _dense,
    keras.layers.Flatten: lambda layer: core.Flatten(layer.data_format),
    keras.layers.Reshape: lambda layer: core.Reshape(layer.target_shape),
    keras.layers.Identity: lambda layer: core.Identity(),
    keras.layers.Rescaling: _rescaling,
    keras.layers.Activation: lambda layer: twin_activation(layer.activation, layer),
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
    keras.layers.Conv2D: _conv2d,
    keras.layers.MaxPooling2D: _pooling(pooling.MaxPooling2D),
    keras.layers.AveragePooling2D: _pooling(pooling.AveragePooling2D),
    keras.layers.GlobalAveragePooling2D: _global_pooling(pooling.GlobalAveragePooling2D),
    keras.layers.GlobalMaxPooling2D: _global_pooling(pooling.GlobalMaxPooling2D),
    keras.layers.ZeroPadding2D: lambda layer: conv.ZeroPadding2D(
        _channels_last(layer).padding),
    keras.layers.Dropout: _dropout,
    keras.layers.SpatialDropout1D: _spatial_dropout(1),
    keras.layers.SpatialDropout2D: _spatial_dropout(2),
    keras.layers.SpatialDropout3D: _spatial_dropout(3),
    keras.layers.BatchNormalization: _batch_normalization,
    keras.layers.LayerNormalization: _layer_normalization,
    keras.layers.RMSNormalization: lambda layer: normalization.KerasRMSNormalization(
        weights(layer.scale), layer.axis, layer.epsilon),
}
for _cls, _builder in _BUILTIN.items():
    register_twin(_cls, _builder)
