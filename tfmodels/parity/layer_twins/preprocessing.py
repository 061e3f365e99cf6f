"""The twins of Keras's preprocessing layers inside a model: ``Normalization`` and the
random augmentation layers, which are the identity in inference: ``{keras class: builder}``.

(``Rescaling`` is in ``core``; ``AutoContrast`` and ``Equalization``, which transform
images in inference too, are in ``misc``; ``ContrastLimitedAdaptiveHistogramEqualization``
has no twin, so ``twin`` refuses it by name.)
"""

import keras
import numpy as np

from numpy_ref.layers import preprocessing
from tfmodels.parity import registry

# Every Keras image layer whose inference is the identity (with a cast to the layer's
# dtype); in training mode each draws a random transformation.
RANDOM_AUGMENTATIONS = tuple(getattr(keras.layers, name) for name in (
    "AugMix", "CutMix", "MixUp", "RandAugment", "RandomBrightness", "RandomColorDegeneration",
    "RandomColorJitter", "RandomContrast", "RandomCrop", "RandomElasticTransform",
    "RandomErasing", "RandomFlip", "RandomGaussianBlur", "RandomGrayscale", "RandomHue",
    "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomRotation",
    "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation", "RandomZoom",
    "Solarization") if hasattr(keras.layers, name))


def _normalization(layer):
    """The statistics as Keras computes with them: an adapted layer's weights (``mean``,
    ``variance``, ``count``: the twin's state), or the constants it was given."""
    shape = [int(size) for size in layer._broadcast_shape]
    dtype = layer.compute_dtype
    used = {key: np.asarray(getattr(layer, key)) for key in ("mean", "variance")}
    if layer.input_mean is not None:
        return preprocessing.KerasNormalization(used["mean"], used["variance"], shape,
                                                layer.invert, dtype)
    held = {"mean": registry.weights(layer.adapt_mean),
            "variance": registry.weights(layer.adapt_variance)}
    for key, value in held.items():
        if not np.array_equal(value.reshape(shape).astype(dtype), used[key], equal_nan=True):
            raise registry.unsupported_error(
                layer, f"computes with a {key} that is not its {key!r} weight (the weight "
                       "was assigned after adapt() or loading; call layer.finalize_state() so "
                       "Keras uses it)")
    return preprocessing.KerasNormalization(held["mean"], held["variance"], shape, layer.invert,
                                            dtype, count=registry.weights(layer.count))


def _inference_only(layer):
    return preprocessing.InferenceOnly(layer.name, type(layer).__name__, layer.compute_dtype)


BUILDERS = {
    keras.layers.Normalization: _normalization,
    **{cls: _inference_only for cls in RANDOM_AUGMENTATIONS},
}
