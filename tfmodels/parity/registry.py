"""One registry: Keras layer class -> the builder of its ``numpy_ref`` twin.

A builder takes the built Keras layer and returns a ``numpy_ref`` layer holding
copies of its weights, with ``params`` keyed by the Keras weights' own names
(``kernel``, ``bias``) and non-trainable weights in ``state``. Adding a layer
type is one ``register_twin`` line; users register their own custom layers the
same way::

    tfmodels.parity.register_twin(MyScale, lambda layer: MyScaleTwin(layer.scale.numpy()))

The built-in entries live in ``tfmodels.parity.layer_twins``, one module per family
of layers, each with a ``BUILDERS`` dict; importing ``tfmodels.parity`` registers them.

Lookups match the exact class: a subclass of ``Dense`` with its own ``call``
is not a ``Dense``, so it needs its own entry (or is traced through, when it is
made of registered layers).
"""

import functools

import keras
from keras.src.ops.operation import Operation
import numpy as np

from numpy_ref.layers import activations

_TWINS = {}  # keras layer class -> builder(keras_layer) -> numpy_ref layer


def register_twin(keras_class, builder):
    """Registers ``builder(keras_layer) -> numpy_ref layer`` as the twin of ``keras_class``
    (or ``builder(keras_layer, call)``, given the ``trace.Call`` too, when marked with
    ``with_call``)."""
    if not (isinstance(keras_class, type) and issubclass(keras_class, Operation)):
        raise ValueError("register_twin needs a Keras layer (or keras.ops operation) class. "
                         f"Received: keras_class={keras_class!r}")
    if not callable(builder):
        raise ValueError(f"register_twin needs a callable builder. Received: builder={builder!r}")
    _TWINS[keras_class] = builder
    return builder


def builder_for(layer):
    """The registered builder for this layer's exact class, or None."""
    return _TWINS.get(type(layer))


def wrapped_twin(wrapper, inner):
    """The twin of the layer ``inner`` a wrapper layer holds (TimeDistributed,
    SpectralNormalization), or a refusal naming the wrapper."""
    builder = builder_for(inner)
    if builder is None:
        raise unsupported_error(
            wrapper, f"wraps {inner.name!r} ({type(inner).__name__}), which has no NumPy twin")
    return builder(inner)


def with_call(builder):
    """Marks ``builder`` as taking the ``trace.Call`` too, ``builder(layer, call)``: for a
    layer whose twin depends on what a call was given that the layer does not hold
    (``use_causal_mask``, ``return_attention_scores``)."""
    builder.takes_call = True
    return builder


def takes_call(builder, layer):
    """Whether ``builder`` is called as ``builder(layer, call)``: always for a ``keras.ops``
    operation (its constants are arguments of the call), and for a builder marked
    ``with_call``."""
    return not isinstance(layer, keras.layers.Layer) or getattr(builder, "takes_call", False)


def builder_for_class(cls):
    """The registered builder for exactly this class, or None."""
    return _TWINS.get(cls)


def supported():
    """Names of the Keras layer classes that have a twin, sorted (then the ``keras.ops``
    operations, as ``ops.Add``)."""
    layers = sorted(cls.__name__ for cls in _TWINS if issubclass(cls, keras.layers.Layer))
    ops = sorted(f"ops.{cls.__name__}" for cls in _TWINS
                 if not issubclass(cls, keras.layers.Layer))
    return layers + ops


def unsupported_error(layer, why="has no NumPy twin"):
    cls = type(layer)
    kind = "layer" if isinstance(layer, keras.layers.Layer) else "operation"
    return ValueError(
        f"Keras {kind} {layer.name!r} ({cls.__module__}.{cls.__qualname__}) {why}. "
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


# -- what builders share

def no_option(layer, option, value, supported):
    return unsupported_error(layer, f"has {option}={value!r}, which has no NumPy twin "
                                    f"(supported: {supported})")


def register_all(builders):
    """Registers every ``{keras class: builder}`` of a dict."""
    for keras_class, builder in builders.items():
        register_twin(keras_class, builder)
