"""The twins of Keras's pooling, resampling and reshaping layers: ``{keras class: builder}``.

Every layer here takes ``data_format`` where Keras has it; Keras's TensorFlow backend runs
channels_first pools by transposing to channels_last, and the twins do the same.
Interpolations other than 'bilinear' and 'nearest' (bicubic, lanczos3/5, area) and
antialiasing are refused by name: their kernels (weight tables, ScaleAndTranslate) are
not twinned.
"""

import keras

from numpy_ref.layers import adaptive_pooling, conv, pooling, reshaping, resampling
from tfmodels.parity import registry


def _pooling(twin_class, rank):
    def build(layer):
        if rank == 1:
            return twin_class(layer.pool_size[0], layer.strides[0], layer.padding,
                              layer.data_format)
        return twin_class(layer.pool_size, layer.strides, layer.padding, layer.data_format)
    return build


def _global_pooling(twin_class):
    return lambda layer: twin_class(layer.keepdims, layer.data_format)


def _adaptive(twin_class):
    return lambda layer: twin_class(layer.output_size, layer.data_format)


def _zero_padding2d(layer):
    if layer.data_format == "channels_last":
        return conv.ZeroPadding2D(layer.padding)
    return reshaping.ZeroPadding(layer.padding, layer.data_format)


def _interpolation(layer, name):
    if name not in resampling.INTERPOLATIONS:
        raise registry.no_option(layer, "interpolation", name,
                                 " or ".join(repr(i) for i in resampling.INTERPOLATIONS))
    return name


def _up_sampling2d(layer):
    if layer.interpolation == "nearest":
        return reshaping.UpSampling(layer.size, layer.data_format)
    return resampling.UpSampling2D(layer.size, _interpolation(layer, layer.interpolation),
                                   layer.data_format)


def _resizing(layer):
    if layer.antialias:
        raise registry.no_option(layer, "antialias", True, "False")
    if layer.fill_mode != "constant":
        raise registry.no_option(layer, "fill_mode", layer.fill_mode, "'constant'")
    return resampling.Resizing(layer.height, layer.width,
                               _interpolation(layer, layer.interpolation),
                               layer.crop_to_aspect_ratio, layer.pad_to_aspect_ratio,
                               layer.fill_value, layer.data_format, layer.compute_dtype)


LAYERS = keras.layers

BUILDERS = {
    LAYERS.MaxPooling1D: _pooling(pooling.MaxPooling1D, 1),
    LAYERS.MaxPooling2D: _pooling(pooling.MaxPooling2D, 2),
    LAYERS.MaxPooling3D: _pooling(pooling.MaxPooling3D, 3),
    LAYERS.AveragePooling1D: _pooling(pooling.AveragePooling1D, 1),
    LAYERS.AveragePooling2D: _pooling(pooling.AveragePooling2D, 2),
    LAYERS.AveragePooling3D: _pooling(pooling.AveragePooling3D, 3),
    LAYERS.GlobalAveragePooling1D: _global_pooling(pooling.GlobalAveragePooling1D),
    LAYERS.GlobalAveragePooling2D: _global_pooling(pooling.GlobalAveragePooling2D),
    LAYERS.GlobalAveragePooling3D: _global_pooling(pooling.GlobalAveragePooling3D),
    LAYERS.GlobalMaxPooling1D: _global_pooling(pooling.GlobalMaxPooling1D),
    LAYERS.GlobalMaxPooling2D: _global_pooling(pooling.GlobalMaxPooling2D),
    LAYERS.GlobalMaxPooling3D: _global_pooling(pooling.GlobalMaxPooling3D),
    **{getattr(LAYERS, f"Adaptive{kind}Pooling{rank}D"): _adaptive(twin)
       for kind, twin in (("Average", adaptive_pooling.AdaptiveAveragePooling),
                          ("Max", adaptive_pooling.AdaptiveMaxPooling))
       for rank in (1, 2, 3)},
    LAYERS.Cropping1D: lambda layer: reshaping.Cropping((layer.cropping,)),
    LAYERS.Cropping2D: lambda layer: reshaping.Cropping(layer.cropping, layer.data_format),
    LAYERS.Cropping3D: lambda layer: reshaping.Cropping(layer.cropping, layer.data_format),
    LAYERS.ZeroPadding1D: lambda layer: reshaping.ZeroPadding((layer.padding,),
                                                              layer.data_format),
    LAYERS.ZeroPadding2D: _zero_padding2d,
    LAYERS.ZeroPadding3D: lambda layer: reshaping.ZeroPadding(layer.padding, layer.data_format),
    LAYERS.UpSampling1D: lambda layer: reshaping.UpSampling((layer.size,)),
    LAYERS.UpSampling2D: _up_sampling2d,
    LAYERS.UpSampling3D: lambda layer: reshaping.UpSampling(layer.size, layer.data_format),
    LAYERS.Permute: lambda layer: reshaping.Permute(layer.dims),
    LAYERS.RepeatVector: lambda layer: reshaping.RepeatVector(layer.n),
    LAYERS.Resizing: _resizing,
    LAYERS.CenterCrop: lambda layer: resampling.CenterCrop(
        layer.height, layer.width, layer.data_format, layer.compute_dtype),
}
