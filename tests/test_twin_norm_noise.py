"""The twins of Keras's GroupNormalization, UnitNormalization, PReLU, ActivityRegularization,
noise layers, Normalization, Rescaling and random augmentation layers against Keras.

Each layer runs in a small model (the layer, Flatten, a softmax Dense) through
``parity.compare``, which checks every layer's output, the loss (with ``model.losses``:
the regularizers), the loss gradient at each layer's output and at the input, and the
weight gradients. The noise layers also run in training mode, where compare hands the
twin the numbers Keras drew (``dropout_masks.py``).

Tolerances, relative to the largest |value| of each tensor (``Difference.rel``):
- float64, 1e-13: both sides do the same IEEE operations up to the order of the sums
  over the normalised axes and in the Dense head; measured <= 7.3e-16 (GroupNormalization
  on axis 1).
- float32, 2e-6: the same reorderings at float32's eps = 1.2e-7, and Eigen's float32
  rsqrt a few ulps off 1/sqrt; measured <= 6.0e-7 (GroupNormalization on axis 1).
"""

import keras
import numpy as np
import pytest

from numpy_ref.layers import noise
from numpy_ref.layers.dropout import KerasDropout
from numpy_ref.network import serialization
from keras_twins import report_differences
from tfmodels import parity
from tfmodels.parity import registry
from tfmodels.parity.layer_twins import noise as noise_twins
from tfmodels.parity.layer_twins import preprocessing as preprocessing_twins

L = keras.layers
F64, F32 = "float64", "float32"
REL = {F64: 1e-13, F32: 2e-6}


def model_around(layer, shape, dtype):
    inputs = keras.Input(shape, dtype=dtype)
    h = layer(inputs)
    if len(h.shape) > 2:
        h = L.Flatten(dtype=dtype)(h)
    return keras.Model(inputs, L.Dense(5, activation="softmax", dtype=dtype)(h))


def batch(shape, dtype, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(dtype), rng.integers(0, 5, n)


def assert_agrees(model, x, y, dtype, training=False, net=None):
    report = parity.compare(model, x, y, training=training, net=net)
    assert report.ok, str(report)
    differences = report_differences(report)
    assert max(d.rel for d in differences) <= REL[dtype], str(report)
    assert report.input_gradients, "the input gradient was compared"
    return report


def gn_weights():
    """GroupNormalization's gamma and beta start as 1 and 0, which hides mistakes: draw them."""
    return {key: keras.initializers.RandomNormal(0.5, 0.5)
            for key in ("gamma_initializer", "beta_initializer")}


def adapted(axis=-1, invert=False, dtype=F64):
    layer = L.Normalization(axis=axis, invert=invert, dtype=dtype)
    data = np.random.default_rng(3).normal(2, 3, (20, 4, 3))
    data[:, 0, 0] = 1.5  # a variance of 0: the 1e-7 floor on the standard deviation
    layer.adapt(data.astype(dtype))
    return layer


# --- layers without randomness: inference, both dtypes ---------------------------------

CASES = [
    ("group-2", lambda d: L.GroupNormalization(2, dtype=d, **gn_weights()), (5, 4, 6)),
    ("group-3-axis1", lambda d: L.GroupNormalization(3, axis=1, dtype=d, **gn_weights()),
     (6, 4, 5)),
    ("group-axis-2", lambda d: L.GroupNormalization(2, axis=-2, dtype=d, **gn_weights()),
     (3, 4, 5)),
    ("group-instance-plain", lambda d: L.GroupNormalization(
        -1, scale=False, center=False, dtype=d), (5, 4)),
    ("group-regularized", lambda d: L.GroupNormalization(
        2, dtype=d, gamma_regularizer="l2", beta_regularizer=keras.regularizers.L1(0.1),
        **gn_weights()), (6,)),
    ("unit", lambda d: L.UnitNormalization(dtype=d), (5, 4)),
    ("unit-axes", lambda d: L.UnitNormalization(axis=[1, 2], dtype=d), (5, 4, 3)),
    ("prelu", lambda d: L.PReLU(alpha_initializer="random_normal", dtype=d), (5, 4)),
    ("prelu-shared-regularized", lambda d: L.PReLU(
        alpha_initializer="random_normal", shared_axes=[1, 2],
        alpha_regularizer=keras.regularizers.L2(0.1), dtype=d), (5, 4, 3)),
    ("activity-regularization", lambda d: L.ActivityRegularization(0.01, 0.02, dtype=d),
     (5, 4)),
    ("normalization-adapted", lambda d: adapted(dtype=d), (4, 3)),
    ("normalization-adapted-invert", lambda d: adapted(invert=True, dtype=d), (4, 3)),
    ("normalization-adapted-axis-none", lambda d: adapted(axis=None, dtype=d), (4, 3)),
    ("normalization-adapted-axes", lambda d: adapted(axis=(1, 2), dtype=d), (4, 3)),
    ("normalization-given", lambda d: L.Normalization(
        mean=[1.0, 2, 3], variance=[4.0, 0, 2], dtype=d), (4, 3)),
    ("normalization-given-axes-invert", lambda d: L.Normalization(
        axis=(1, 2), mean=[1.0, 2, 3], variance=[4.0, 0, 2], invert=True, dtype=d), (4, 3)),
    ("rescaling-per-channel", lambda d: L.Rescaling(
        [0.5, 2.0, 1 / 255], offset=[0.1, 0.2, 0.3], dtype=d), (4, 3)),
]


@pytest.mark.parametrize("make, shape", [pytest.param(m, s, id=i) for i, m, s in CASES])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_layer_agrees_with_keras(make, shape, dtype):
    keras.utils.set_random_seed(1)
    model = model_around(make(dtype), shape, dtype)
    assert_agrees(model, *batch(shape, dtype), dtype)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_unit_normalization_caps_the_scale_of_tiny_vectors_as_keras(dtype):
    """inv = min(rsqrt(sum x^2), 1e12): the cap wins for a tiny and a zero vector."""
    model = model_around(L.UnitNormalization(dtype=dtype), (4,), dtype)
    x = np.array([[1e-13, 2e-13, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]], dtype)
    assert_agrees(model, x, np.array([0, 1, 2]), dtype)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_rescaling_with_per_channel_scale_in_channels_first(dtype):
    """Keras reshapes a per-channel scale to (C, 1, 1) when the global image data format
    is channels_first (read when the twin is built); the offset is not reshaped."""
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        model = model_around(L.Rescaling([0.5, 2.0, 1 / 255], offset=0.5, dtype=dtype),
                             (3, 4, 2), dtype)
        assert_agrees(model, *batch((3, 4, 2), dtype), dtype)
    finally:
        keras.config.set_image_data_format(previous)


def test_activity_regularization_is_a_penalty_on_the_loss():
    model = model_around(L.ActivityRegularization(l1=0.3, l2=0.1, dtype=F64), (5,), F64)
    x, y = batch((5,), F64)
    assert_agrees(model, x, y, F64)
    net = parity.twin(model)
    assert len(net.penalties) == 1
    assert net.loss(x, y, training=False) - net.data_loss > 0.1


def test_normalization_state_is_keras_non_trainable_weights():
    layer = adapted()
    model = model_around(layer, (4, 3), F64)
    net = parity.twin(model)
    assert sorted(net.state) == sorted(v.path for v in model.non_trainable_weights) == [
        f"{layer.name}/count", f"{layer.name}/mean", f"{layer.name}/variance"]
    assert not net.params.keys() - {v.path for v in model.trainable_weights}
    net.state[f"{layer.name}/mean"][...] += 1.0
    parity.to_keras(net, model)
    layer.finalize_state()  # Keras computes with the weights from here on
    x = batch((4, 3), F64)[0]  # model.predict would round it to float32
    np.testing.assert_allclose(net.predict(x), model(x, training=False), rtol=1e-13)


def test_normalization_weights_keras_does_not_use_are_refused():
    layer = adapted()
    model = model_around(layer, (4, 3), F64)
    layer.adapt_mean.assign(layer.adapt_mean + 1.0)  # no finalize_state: Keras ignores it
    with pytest.raises(ValueError, match=f"{layer.name!r}.*not its 'mean' weight"):
        parity.twin(model)


# --- noise layers in training mode -----------------------------------------------------

NOISES = [
    ("gaussian-noise", lambda d: L.GaussianNoise(0.3, dtype=d), (5, 4)),
    ("gaussian-dropout", lambda d: L.GaussianDropout(0.3, dtype=d), (5, 4)),
    ("alpha-dropout", lambda d: L.AlphaDropout(0.3, dtype=d), (5, 4)),
    ("alpha-dropout-noise-shape", lambda d: L.AlphaDropout(
        0.4, noise_shape=(None, 1, 4), dtype=d), (5, 4)),
]


@pytest.mark.parametrize("make, shape", [pytest.param(m, s, id=i) for i, m, s in NOISES])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_noise_agrees_in_training_with_the_numbers_keras_drew(make, shape, dtype):
    keras.utils.set_random_seed(2)
    model = model_around(make(dtype), shape, dtype)
    x, y = batch(shape, dtype, n=5)
    net = parity.twin(model)
    assert_agrees(model, x, y, dtype, net=net)  # inference: the identity
    report = assert_agrees(model, x, y, dtype, training=True, net=net)
    assert abs(report.loss["numpy"] - net.loss(x, y, training=False)) > 1e-4  # noise applied
    assert net.nodes[0].layer.fixed_noise is None  # compare gave Keras's draw back


def test_twin_noise_draws_follow_the_formulas():
    x = np.ones((4000, 3))
    y = noise.KerasGaussianDropout(0.2, seed=1).forward(x, training=True)
    assert abs(y.mean() - 1) < 0.02 and abs(y.var() - 0.25) < 0.02
    layer = noise.KerasAlphaDropout(0.3, noise_shape=(None, 1), seed=1)
    selu = np.random.default_rng(0).normal(size=(4000, 3))  # standardised input
    y = layer.forward(selu, training=True)
    assert layer.kept.shape == (4000, 1) and abs(layer.kept.mean() - 0.7) < 0.03
    assert abs(y.mean()) < 0.06 and abs(y.var() - 1) < 0.06  # a and b keep mean 0, var 1
    np.testing.assert_array_equal(layer.backward(np.ones_like(y)),
                                  np.broadcast_to(layer.a * layer.kept, y.shape))
    assert noise.KerasGaussianNoise(0.5).forward(x, training=False) is x


@pytest.mark.parametrize("cls, shape, channels_first, spatial", [
    (L.SpatialDropout1D, (6, 8), False, (1,)),
    (L.SpatialDropout2D, (5, 6, 8), False, (1, 2)),
    (L.SpatialDropout2D, (8, 5, 6), True, (2, 3)),
    (L.SpatialDropout3D, (3, 4, 5, 8), False, (1, 2, 3)),
    (L.SpatialDropout3D, (8, 3, 4, 5), True, (2, 3, 4)),
])
def test_spatial_dropout_twin_draws_one_unit_per_channel(cls, shape, channels_first, spatial):
    kwargs = {"data_format": "channels_first"} if channels_first else {}
    layer = cls(0.5, seed=3, **kwargs)
    layer.build((None, *shape))
    twin = registry.builder_for(layer)(layer)
    assert isinstance(twin, KerasDropout)
    twin.forward(np.ones((4, *shape)), training=True)
    assert twin.mask.shape == tuple(1 if i in spatial else n for i, n in enumerate((4, *shape)))
    assert 0 < twin.mask.mean() < 1


def test_seed_of_reads_the_drawn_seed():
    keras.utils.set_random_seed(5)
    assert noise_twins.seed_of(L.GaussianNoise(0.1, seed=7)) == 7
    assert isinstance(noise_twins.seed_of(L.GaussianNoise(0.1)), int)
    assert noise_twins.seed_of(L.GaussianNoise(0.0)) is None


# --- random augmentation layers: the identity in inference ------------------------------

AUGMENTATION_ARGS = {
    "RandomCrop": dict(height=6, width=6), "RandomBrightness": dict(factor=0.2),
    "RandomColorDegeneration": dict(factor=0.2), "RandomContrast": dict(factor=0.2),
    "RandomHue": dict(factor=0.2), "RandomPosterization": dict(factor=4),
    "RandomRotation": dict(factor=0.2), "RandomSaturation": dict(factor=0.2),
    "RandomSharpness": dict(factor=0.2), "RandomZoom": dict(height_factor=0.2),
    "RandomTranslation": dict(height_factor=0.2, width_factor=0.2),
}


def test_every_keras_random_layer_has_a_twin():
    names = {name for name in dir(L) if name.startswith("Random")}
    assert names <= {cls.__name__ for cls in preprocessing_twins.RANDOM_AUGMENTATIONS}


# The fast tier checks a few; every class runs in the slow tier (about 0.5 s each).
FAST_AUGMENTATIONS = ("RandomFlip", "RandomCrop", "RandomRotation", "MixUp")


@pytest.mark.parametrize("cls", [
    pytest.param(cls, id=cls.__name__,
                 marks=() if cls.__name__ in FAST_AUGMENTATIONS else pytest.mark.slow)
    for cls in preprocessing_twins.RANDOM_AUGMENTATIONS])
def test_random_augmentation_is_the_identity_in_inference_and_refused_in_training(cls):
    layer = cls(dtype=F64, **AUGMENTATION_ARGS.get(cls.__name__, {}))
    model = model_around(layer, (6, 6, 3), F64)
    x, y = batch((6, 6, 3), F64, n=2)
    net = parity.twin(model)
    assert_agrees(model, x * 100 + 100, y, F64, net=net)
    message = (f"^Keras layer {layer.name!r} \\({cls.__name__}\\) draws random "
               "transformations in training mode; the NumPy twin follows it in inference only")
    with pytest.raises(ValueError, match=message):
        net.loss_and_gradient(x, y, training=True)


def test_random_augmentation_casts_integer_images_as_keras():
    inputs = keras.Input((6, 6, 3), dtype="uint8")
    h = L.Rescaling(1 / 255, dtype=F32)(L.RandomFlip(dtype=F32)(inputs))
    model = keras.Model(inputs, L.Dense(2, dtype=F32)(L.Flatten(dtype=F32)(h)))
    x = np.random.default_rng(1).integers(0, 256, (2, 6, 6, 3)).astype("uint8")
    # float32 sums of 108 products, the outputs of order 1: a few 1e-7 apart.
    np.testing.assert_allclose(parity.twin(model).predict(x), model.predict(x, verbose=0),
                               rtol=0, atol=2e-6)


@pytest.mark.parametrize("cls", [L.ContrastLimitedAdaptiveHistogramEqualization])
def test_image_layers_that_transform_in_inference_are_refused_by_name(cls):
    layer = cls(dtype=F32)
    model = model_around(layer, (6, 6, 3), F32)
    with pytest.raises(ValueError, match=f"Keras layer {layer.name!r} .*has no NumPy twin"):
        parity.twin(model)


def test_group_normalization_with_several_axes_is_refused_by_name():
    layer = L.GroupNormalization(2, axis=[-1])
    with pytest.raises(ValueError, match=f"{layer.name!r}.*has axis=\\[-1\\].*no NumPy twin"):
        registry.builder_for(layer)(layer)


# --- saving ----------------------------------------------------------------------------


def test_twins_survive_saving(tmp_path):
    keras.utils.set_random_seed(4)
    inputs = keras.Input((4, 6), dtype=F64)
    h = L.RandomFlip(dtype=F64)(inputs)
    h = adapted(dtype=F64)(L.Reshape((4, 3), dtype=F64)(L.Dense(3, dtype=F64)(h)))
    h = L.Normalization(mean=[1.0, 2, 3], variance=[4.0, 1, 2], invert=True, dtype=F64)(h)
    h = L.GroupNormalization(3, dtype=F64, **gn_weights())(h)
    h = L.GroupNormalization(-1, scale=False, center=False, dtype=F64)(h)
    h = L.LayerNormalization(center=False, dtype=F64)(h)  # no beta: saved since this
    h = L.PReLU(alpha_initializer="random_normal", dtype=F64)(h)
    h = L.UnitNormalization(dtype=F64)(h)
    for layer in (L.GaussianNoise(0.2, dtype=F64), L.GaussianDropout(0.2, dtype=F64),
                  L.AlphaDropout(0.2, noise_shape=(None, 1, 3), dtype=F64),
                  L.ActivityRegularization(0.1, dtype=F64)):
        h = layer(h)
    model = keras.Model(inputs, L.Dense(2, dtype=F64)(L.Flatten(dtype=F64)(h)))
    x = batch((4, 6), F64)[0]
    net = parity.twin(model)
    np.testing.assert_allclose(net.predict(x), model(x, training=False), rtol=1e-13)
    serialization.save_npz(net, tmp_path / "twin.npz")
    loaded, _ = serialization.load_npz(tmp_path / "twin.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert sorted(loaded.state) == sorted(net.state)


def test_prelu_alpha_constraint_is_refused_by_the_twin_optimizer():
    """A constraint acts in the optimizer step: the twin's forward and gradients agree,
    and ``twin_optimizer`` refuses to step the constrained slope."""
    layer = L.PReLU(alpha_initializer="random_normal", alpha_constraint="non_neg", dtype=F64)
    model = model_around(layer, (4,), F64)
    assert_agrees(model, *batch((4,), F64), F64)
    with pytest.raises(ValueError, match=f"'{layer.alpha.path}' has a constraint"):
        parity.twin_optimizer(keras.optimizers.SGD(0.1), model.trainable_variables)
