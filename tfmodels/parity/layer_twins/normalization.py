"""The twins of Keras's GroupNormalization and UnitNormalization, and of PReLU, the
activation with a weight: ``{keras class: builder}``. (BatchNormalization,
LayerNormalization and RMSNormalization are in ``core``.)"""

import keras

from numpy_ref.layers import normalization, prelu
from tfmodels.parity import registry


def _group_normalization(layer):
    axis = layer.axis
    if not isinstance(axis, int):  # Keras itself indexes the shape with it
        raise registry.no_option(layer, "axis", axis, "one int")
    return normalization.KerasGroupNormalization(
        layer.groups, registry.weights(layer.gamma) if layer.scale else None,
        registry.weights(layer.beta) if layer.center else None, axis, layer.epsilon)


def _prelu(layer):
    """The slope's regularizer is a weight regularizer (``regularizers.penalties`` twins
    it); its constraint acts in the optimizer step (``parity.twin_optimizer`` refuses it)."""
    return prelu.KerasPReLU(registry.weights(layer.alpha))


BUILDERS = {
    keras.layers.GroupNormalization: _group_normalization,
    keras.layers.UnitNormalization: lambda layer: normalization.KerasUnitNormalization(
        layer.axis),
    keras.layers.PReLU: _prelu,
}
