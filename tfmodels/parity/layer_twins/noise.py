"""The twins of Keras's regularization layers beyond ``Dropout``: the noise layers
(identity in inference; in training ``parity.compare`` hands them the numbers Keras
drew, see ``dropout_masks.py``) and ``ActivityRegularization``, an identity whose
penalty ``regularizers.penalties`` adds to the loss as for any ``activity_regularizer``:
``{keras class: builder}``."""

import keras

from numpy_ref.layers import core, noise
from tfmodels.parity import registry


def seed_of(layer):
    """Keras's seed, or the seed its generator drew (from the global seed Keras was given);
    None where the layer draws nothing (a rate or stddev of 0)."""
    generator = getattr(layer, "seed_generator", None)
    if layer.seed is None and generator is not None:
        return int(generator.state.numpy()[0])
    return layer.seed


BUILDERS = {
    keras.layers.GaussianNoise: lambda layer: noise.KerasGaussianNoise(
        layer.stddev, seed_of(layer)),
    keras.layers.GaussianDropout: lambda layer: noise.KerasGaussianDropout(
        layer.rate, seed_of(layer)),
    keras.layers.AlphaDropout: lambda layer: noise.KerasAlphaDropout(
        layer.rate, layer.noise_shape, seed_of(layer)),
    keras.layers.ActivityRegularization: lambda layer: core.Identity(),
}
