"""The twins of Keras's remaining non-sequence layers: ``Dot``, the encodings
(``Discretization``, ``CategoryEncoding``), the ``SpectralNormalization`` wrapper and the
image layers that act in inference too (``AutoContrast``, ``Equalization``,
``MaxNumBoundingBoxes`` on plain images): ``{keras class: builder}``.

Not here, so ``twin`` refuses them by name (``coverage.REFUSED`` holds why):
``ContrastLimitedAdaptiveHistogramEqualization`` (tiled histograms with interpolation
between tiles), ``MelSpectrogram`` and ``STFTSpectrogram`` (framed FFTs).
``Pipeline`` needs no entry: the trace looks into it, as into any layer made of layers.
"""

import keras

from numpy_ref.layers import contrast, core, dot, encoding, spectral
from tfmodels.parity import registry


def _dense_only(layer):
    if getattr(layer, "sparse", False):
        raise registry.no_option(layer, "sparse", True, "False")
    return layer


def _discretization(layer):
    _dense_only(layer)
    if layer.bin_boundaries is None:
        raise registry.unsupported_error(layer, "has no bin_boundaries (adapt it, or give "
                                                "them, before twinning it)")
    return encoding.Discretization(layer.bin_boundaries, layer.output_mode, layer.output_dtype)


def _category_encoding(layer):
    _dense_only(layer)
    return encoding.CategoryEncoding(layer.num_tokens, layer.output_mode, layer.dtype)


def _spectral_normalization(layer):
    inner = layer.layer
    if inner.compute_dtype != layer.compute_dtype:
        raise registry.unsupported_error(
            layer, f"computes in {layer.compute_dtype} around a layer computing in "
                   f"{inner.compute_dtype}; the twin needs one dtype (give both the same)")
    key = "kernel" if hasattr(inner, "kernel") else "embeddings"
    twin = registry.wrapped_twin(layer, inner)
    if key not in twin.params:
        raise registry.unsupported_error(
            layer, f"normalises {key!r}, which the twin of {type(inner).__name__} does not "
                   "hold as a trainable weight")
    return spectral.SpectralNormalization(twin, registry.weights(layer.vector_u),
                                          layer.power_iterations, key, keras.config.epsilon())


BUILDERS = {
    keras.layers.Dot: lambda layer: dot.Dot(layer.axes, layer.normalize,
                                            keras.config.epsilon()),
    keras.layers.Discretization: _discretization,
    keras.layers.CategoryEncoding: _category_encoding,
    keras.layers.SpectralNormalization: _spectral_normalization,
    keras.layers.AutoContrast: lambda layer: contrast.AutoContrast(layer.value_range,
                                                                   layer.compute_dtype),
    keras.layers.Equalization: lambda layer: contrast.Equalization(
        layer.value_range, layer.bins, layer.data_format, layer.compute_dtype),
    # On an image tensor (no bounding boxes) it returns the images as given.
    keras.layers.MaxNumBoundingBoxes: lambda layer: core.Identity(),
}
