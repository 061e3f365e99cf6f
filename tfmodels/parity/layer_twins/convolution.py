"""The twins of Keras's convolution layers: ``Conv1D/2D/3D`` (groups, dilation, causal,
channels_first), their ``Transpose`` versions, ``DepthwiseConv1D/2D`` and
``SeparableConv1D/2D``: ``{keras class: builder}``.

A plain channels_last ``Conv2D`` (groups=1) gets ``numpy_ref.layers.conv.Conv2D``, the
fast path training depends on; every other setting gets the N-d layers of
``numpy_ref.layers.conv_nd`` and ``conv_transpose``. LoRA (``lora_rank``) has no twin.
"""

import keras

from numpy_ref.layers import conv, conv_nd, conv_transpose
from tfmodels.parity import registry


def _no_lora(layer):
    if getattr(layer, "lora_enabled", False):
        raise registry.no_option(layer, "lora_rank", layer.lora_rank, "None")


def _bias(layer):
    return registry.weights(layer.bias) if layer.use_bias else None


def _conv(layer):
    _no_lora(layer)
    activation = registry.twin_activation(layer.activation, layer)
    if (isinstance(layer, keras.layers.Conv2D) and layer.groups == 1
            and layer.data_format == "channels_last"):
        return conv.Conv2D(registry.weights(layer.kernel), _bias(layer), layer.strides,
                           layer.padding, layer.dilation_rate, activation)
    return conv_nd.Conv(registry.weights(layer.kernel), _bias(layer), layer.strides,
                        layer.padding, layer.dilation_rate, layer.groups, layer.data_format,
                        activation)


def _conv_transpose(layer):
    _no_lora(layer)
    return conv_transpose.ConvTranspose(
        registry.weights(layer.kernel), _bias(layer), layer.strides, layer.padding,
        layer.output_padding, layer.dilation_rate, layer.data_format,
        registry.twin_activation(layer.activation, layer))


def _depthwise(layer):
    _no_lora(layer)
    return conv_nd.DepthwiseConv(registry.weights(layer.kernel), _bias(layer), layer.strides,
                                 layer.padding, layer.dilation_rate, layer.data_format,
                                 registry.twin_activation(layer.activation, layer))


def _separable(layer):
    _no_lora(layer)
    return conv_nd.SeparableConv(
        registry.weights(layer.depthwise_kernel), registry.weights(layer.pointwise_kernel),
        _bias(layer), layer.strides, layer.padding, layer.dilation_rate, layer.data_format,
        registry.twin_activation(layer.activation, layer))


BUILDERS = {
    keras.layers.Conv1D: _conv,
    keras.layers.Conv2D: _conv,
    keras.layers.Conv3D: _conv,
    keras.layers.Conv1DTranspose: _conv_transpose,
    keras.layers.Conv2DTranspose: _conv_transpose,
    keras.layers.Conv3DTranspose: _conv_transpose,
    keras.layers.DepthwiseConv1D: _depthwise,
    keras.layers.DepthwiseConv2D: _depthwise,
    keras.layers.SeparableConv1D: _separable,
    keras.layers.SeparableConv2D: _separable,
}
