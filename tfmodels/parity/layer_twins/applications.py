"""The twins of the layers ``keras.applications`` defines for itself (ConvNeXt's
``LayerScale`` and ``StochasticDepth``, InceptionResNetV2's ``CustomScaleLayer``):
``{keras class: builder}``. The other applications are made of Keras's own layers
and of ``keras.ops`` arithmetic between them (``layer_twins/ops.py``)."""

from keras.src.applications import convnext, inception_resnet_v2

from numpy_ref.layers import applications
from tfmodels.parity import registry


def _layer_scale(layer):
    return applications.LayerScale(registry.weights(layer.gamma), layer.gamma.name)


def _stochastic_depth(layer):
    """Keras draws from the global seed generator (the layer has none of its own); in
    training ``parity.compare`` hands the twin that draw, ``dropout_masks.py``."""
    return applications.StochasticDepth(float(layer.drop_path_rate))


def _custom_scale(layer):
    if not isinstance(layer.scale, (int, float)):
        raise registry.no_option(layer, "scale", layer.scale, "a Python number")
    return applications.CustomScale(float(layer.scale))


BUILDERS = {
    convnext.LayerScale: _layer_scale,
    convnext.StochasticDepth: _stochastic_depth,
    inception_resnet_v2.CustomScaleLayer: _custom_scale,
}
