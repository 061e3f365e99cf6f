"""Every public Keras layer class is twinned and checked against Keras, or refused with a reason.

``tfmodels.parity.coverage`` sorts the classes ``keras.layers`` exports into
twinned and refused (``REFUSED``, with the reason docs/layers.md shows);
this file fails on a class in neither (a new Keras adding layers says so) and runs
each twinned class, with one example configuration, through ``parity.compare``
in inference: its output, the gradient at its output and input, and its weight
gradients against Keras's. The families' own test files check every option and
the training mode; this is the one place that proves no class was forgotten.

A few classes need inputs of their own kind (integer tokens) or sit in a model
only as part of a larger one; ``CHECKED_ELSEWHERE`` names the test file that holds
each against Keras, and the test checks that the file names the class.

Tolerance: float64, compare's verdict and every scaled difference <= 1e-12 (the
same IEEE operations up to summation order: a few ulps; a wrong formula is off by
far more). Layers TensorFlow runs in float32 only (the 3D pools) are checked in
float32 at 2e-6 (float32's eps is 1.2e-7; the sums here are short).
"""

import pathlib

import keras
import numpy as np
import pytest

from keras_twins import report_differences
from tfmodels import parity
from tfmodels.parity import coverage

L = keras.layers
TOL = {"float64": 1e-12, "float32": 2e-6}
HERE = pathlib.Path(__file__).parent

VECTOR, SEQUENCE, IMAGE, VOLUME = (6,), (7, 3), (8, 8, 3), (4, 4, 4, 2)


def ex(factory, shape=IMAGE, dtype="float64", inputs=1):
    return factory, shape, dtype, inputs


# class name -> (factory(dtype) -> layer, input shape, dtype, number of inputs)
EXAMPLES = {
    "Activation": ex(lambda d: L.Activation("swish", dtype=d), VECTOR),
    "ActivityRegularization": ex(lambda d: L.ActivityRegularization(0.01, 0.02, dtype=d),
                                 VECTOR),
    "Add": ex(lambda d: L.Add(dtype=d), VECTOR, inputs=2),
    "Subtract": ex(lambda d: L.Subtract(dtype=d), VECTOR, inputs=2),
    "Multiply": ex(lambda d: L.Multiply(dtype=d), VECTOR, inputs=2),
    "Average": ex(lambda d: L.Average(dtype=d), VECTOR, inputs=2),
    "Maximum": ex(lambda d: L.Maximum(dtype=d), VECTOR, inputs=2),
    "Minimum": ex(lambda d: L.Minimum(dtype=d), VECTOR, inputs=2),
    "Concatenate": ex(lambda d: L.Concatenate(dtype=d), VECTOR, inputs=2),
    "AdaptiveAveragePooling1D": ex(lambda d: L.AdaptiveAveragePooling1D(3, dtype=d), SEQUENCE),
    "AdaptiveAveragePooling2D": ex(lambda d: L.AdaptiveAveragePooling2D(3, dtype=d)),
    "AdaptiveAveragePooling3D": ex(lambda d: L.AdaptiveAveragePooling3D(2, dtype=d), VOLUME,
                                   "float32"),
    "AdaptiveMaxPooling1D": ex(lambda d: L.AdaptiveMaxPooling1D(3, dtype=d), SEQUENCE),
    "AdaptiveMaxPooling2D": ex(lambda d: L.AdaptiveMaxPooling2D(3, dtype=d)),
    "AdaptiveMaxPooling3D": ex(lambda d: L.AdaptiveMaxPooling3D(2, dtype=d), VOLUME,
                               "float32"),
    "AveragePooling1D": ex(lambda d: L.AveragePooling1D(2, padding="same", dtype=d), SEQUENCE),
    "AveragePooling2D": ex(lambda d: L.AveragePooling2D(3, 2, padding="same", dtype=d)),
    "AveragePooling3D": ex(lambda d: L.AveragePooling3D(2, dtype=d), VOLUME, "float32"),
    "MaxPooling1D": ex(lambda d: L.MaxPooling1D(2, dtype=d), SEQUENCE),
    "MaxPooling2D": ex(lambda d: L.MaxPooling2D(2, dtype=d)),
    "MaxPooling3D": ex(lambda d: L.MaxPooling3D(2, dtype=d), VOLUME, "float32"),
    "GlobalAveragePooling1D": ex(lambda d: L.GlobalAveragePooling1D(dtype=d), SEQUENCE),
    "GlobalAveragePooling2D": ex(lambda d: L.GlobalAveragePooling2D(dtype=d)),
    "GlobalAveragePooling3D": ex(lambda d: L.GlobalAveragePooling3D(dtype=d), VOLUME),
    "GlobalMaxPooling1D": ex(lambda d: L.GlobalMaxPooling1D(dtype=d), SEQUENCE),
    "GlobalMaxPooling2D": ex(lambda d: L.GlobalMaxPooling2D(dtype=d)),
    "GlobalMaxPooling3D": ex(lambda d: L.GlobalMaxPooling3D(dtype=d), VOLUME),
    "BatchNormalization": ex(lambda d: L.BatchNormalization(dtype=d)),
    "LayerNormalization": ex(lambda d: L.LayerNormalization(dtype=d)),
    "RMSNormalization": ex(lambda d: L.RMSNormalization(dtype=d)),
    "GroupNormalization": ex(lambda d: L.GroupNormalization(3, dtype=d)),
    "UnitNormalization": ex(lambda d: L.UnitNormalization(dtype=d)),
    "Normalization": ex(lambda d: L.Normalization(mean=0.5, variance=2.0, dtype=d)),
    "Rescaling": ex(lambda d: L.Rescaling(1 / 255, offset=-0.5, dtype=d)),
    "Conv1D": ex(lambda d: L.Conv1D(4, 3, padding="causal", dtype=d), SEQUENCE),
    "Conv2D": ex(lambda d: L.Conv2D(6, 3, groups=3, dtype=d)),
    "Conv3D": ex(lambda d: L.Conv3D(3, 2, dtype=d), VOLUME),
    "Conv1DTranspose": ex(lambda d: L.Conv1DTranspose(4, 3, strides=2, dtype=d), SEQUENCE),
    "Conv2DTranspose": ex(lambda d: L.Conv2DTranspose(4, 3, strides=2, padding="same",
                                                      dtype=d)),
    "Conv3DTranspose": ex(lambda d: L.Conv3DTranspose(2, 2, strides=2, dtype=d), VOLUME),
    "DepthwiseConv1D": ex(lambda d: L.DepthwiseConv1D(3, depth_multiplier=2, dtype=d),
                          SEQUENCE),
    "DepthwiseConv2D": ex(lambda d: L.DepthwiseConv2D(3, strides=2, padding="same", dtype=d)),
    "SeparableConv1D": ex(lambda d: L.SeparableConv1D(4, 3, dtype=d), SEQUENCE),
    "SeparableConv2D": ex(lambda d: L.SeparableConv2D(4, 3, dtype=d)),
    "Cropping1D": ex(lambda d: L.Cropping1D((1, 2), dtype=d), SEQUENCE),
    "Cropping2D": ex(lambda d: L.Cropping2D(((1, 0), (2, 1)), dtype=d)),
    "Cropping3D": ex(lambda d: L.Cropping3D(1, dtype=d), VOLUME),
    "ZeroPadding1D": ex(lambda d: L.ZeroPadding1D(2, dtype=d), SEQUENCE),
    "ZeroPadding2D": ex(lambda d: L.ZeroPadding2D(((1, 2), (0, 1)), dtype=d)),
    "ZeroPadding3D": ex(lambda d: L.ZeroPadding3D(1, dtype=d), VOLUME),
    "UpSampling1D": ex(lambda d: L.UpSampling1D(2, dtype=d), SEQUENCE),
    "UpSampling2D": ex(lambda d: L.UpSampling2D(2, interpolation="bilinear", dtype=d),
                       dtype="float32"),
    "UpSampling3D": ex(lambda d: L.UpSampling3D(2, dtype=d), VOLUME),
    "Dense": ex(lambda d: L.Dense(4, activation="tanh", dtype=d), VECTOR),
    "Flatten": ex(lambda d: L.Flatten(dtype=d)),
    "Reshape": ex(lambda d: L.Reshape((3, 7), dtype=d), SEQUENCE),
    "Permute": ex(lambda d: L.Permute((2, 1), dtype=d), SEQUENCE),
    "RepeatVector": ex(lambda d: L.RepeatVector(3, dtype=d), VECTOR),
    "Identity": ex(lambda d: L.Identity(dtype=d), VECTOR),
    "ELU": ex(lambda d: L.ELU(0.5, dtype=d), VECTOR),
    "LeakyReLU": ex(lambda d: L.LeakyReLU(0.2, dtype=d), VECTOR),
    "PReLU": ex(lambda d: L.PReLU(shared_axes=(1, 2), dtype=d)),
    "ReLU": ex(lambda d: L.ReLU(max_value=1.0, threshold=0.1, dtype=d), VECTOR),
    "Softmax": ex(lambda d: L.Softmax(dtype=d), VECTOR),
    "Dropout": ex(lambda d: L.Dropout(0.3, dtype=d), VECTOR),
    "AlphaDropout": ex(lambda d: L.AlphaDropout(0.3, dtype=d), VECTOR),
    "GaussianDropout": ex(lambda d: L.GaussianDropout(0.3, dtype=d), VECTOR),
    "GaussianNoise": ex(lambda d: L.GaussianNoise(0.3, dtype=d), VECTOR),
    "SpatialDropout1D": ex(lambda d: L.SpatialDropout1D(0.3, dtype=d), SEQUENCE),
    "SpatialDropout2D": ex(lambda d: L.SpatialDropout2D(0.3, dtype=d)),
    "SpatialDropout3D": ex(lambda d: L.SpatialDropout3D(0.3, dtype=d), VOLUME),
    "Resizing": ex(lambda d: L.Resizing(5, 6, dtype=d), dtype="float32"),
    "CenterCrop": ex(lambda d: L.CenterCrop(5, 6, dtype=d)),
    "SimpleRNN": ex(lambda d: L.SimpleRNN(4, return_sequences=True, dtype=d), SEQUENCE),
    "LSTM": ex(lambda d: L.LSTM(4, go_backwards=True, dtype=d), SEQUENCE),
    "GRU": ex(lambda d: L.GRU(4, reset_after=False, return_sequences=True, dtype=d), SEQUENCE),
    "RNN": ex(lambda d: L.RNN(L.GRUCell(3, dtype=d), dtype=d), SEQUENCE),
    "Bidirectional": ex(lambda d: L.Bidirectional(L.LSTM(2, dtype=d), dtype=d), SEQUENCE),
    "TimeDistributed": ex(lambda d: L.TimeDistributed(L.Dense(2, dtype=d), dtype=d),
                          SEQUENCE),
    "ConvLSTM1D": ex(lambda d: L.ConvLSTM1D(2, 3, padding="same", return_sequences=True,
                                            dtype=d), (3, 6, 2)),
    "ConvLSTM2D": ex(lambda d: L.ConvLSTM2D(2, 3, strides=2, dtype=d), (3, 5, 5, 2)),
    "ConvLSTM3D": ex(lambda d: L.ConvLSTM3D(2, 2, go_backwards=True, dtype=d),
                     (2, 3, 3, 3, 2)),
}
# The image augmentation layers: the identity in inference (their twins refuse training).
for _name in ("AugMix", "CutMix", "MixUp", "RandAugment", "RandomBrightness",
              "RandomColorDegeneration", "RandomColorJitter", "RandomContrast", "RandomCrop",
              "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur",
              "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective",
              "RandomPosterization", "RandomRotation", "RandomSaturation", "RandomSharpness",
              "RandomShear", "RandomTranslation", "RandomZoom", "Solarization"):
    _ARGS = {"RandomBrightness": (0.2,), "RandomContrast": (0.2,), "RandomCrop": (8, 8),
             "RandomRotation": (0.1,), "RandomTranslation": (0.1, 0.1), "RandomZoom": (0.1,),
             "RandomHue": (0.1,), "RandomSaturation": (0.1,), "RandomSharpness": (0.1,),
             "RandomShear": (0.1,), "RandomPosterization": ((1, 4),),
             "RandomColorDegeneration": (0.2,)}.get(_name, ())
    EXAMPLES[_name] = ex(lambda d, n=_name, a=_ARGS: getattr(L, n)(*a, dtype=d))

# class name -> the test file that holds it against Keras (inputs of its own kind)
CHECKED_ELSEWHERE = {name: "test_twin_misc.py" for name in (
    "AutoContrast", "CategoryEncoding", "Discretization", "Dot", "Equalization",
    "MaxNumBoundingBoxes", "SpectralNormalization", "Pipeline")}
# Attention twins' builders read the call's arguments; Embedding takes integer ids.
CHECKED_ELSEWHERE.update({name: "test_twin_attention.py" for name in (
    "EinsumDense", "Embedding", "ReversibleEmbedding", "Masking", "MultiHeadAttention",
    "GroupQueryAttention", "Attention", "AdditiveAttention")})


def model_around(layer, shape, dtype, inputs):
    xs = [keras.Input(shape, dtype=dtype) for _ in range(inputs)]
    h = layer(xs if inputs > 1 else xs[0])
    if len(h.shape) > 2:
        h = L.Flatten(dtype=dtype)(h)
    return keras.Model(xs if inputs > 1 else xs[0], L.Dense(3, dtype=dtype, name="head")(h))


def test_every_public_layer_class_is_twinned_or_refused_with_a_reason():
    other = sorted(name for cls, name in coverage.public_layer_classes().items()
                   if coverage.status(cls)[0] == "other")
    assert not other, f"Keras layer classes neither twinned nor refused: {other}"
    stale = sorted({*coverage.REFUSED, *coverage.TRACED}
                   - {c.__name__ for c in coverage.public_layer_classes()})
    assert not stale, f"REFUSED names classes Keras does not export: {stale}"


def twinned_names():
    return sorted(name for cls, name in coverage.public_layer_classes().items()
                  if coverage.status(cls)[0] == "twinned")


def test_every_twinned_class_has_an_example_here_or_a_test_elsewhere():
    traced = sorted(name for cls, name in coverage.public_layer_classes().items()
                    if coverage.status(cls)[0] == "traced")
    missing = sorted(set(twinned_names() + traced) - set(EXAMPLES) - set(CHECKED_ELSEWHERE))
    assert not missing, f"twinned classes checked nowhere: {missing}"
    assert not set(EXAMPLES) - set(twinned_names()), "an example of a class without a twin"
    for name, path in CHECKED_ELSEWHERE.items():
        assert name in (HERE / path).read_text(), f"{path} does not check {name}"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_twinned_class_agrees_with_keras(name):
    factory, shape, dtype, inputs = EXAMPLES[name]
    keras.utils.set_random_seed(0)
    model = model_around(factory(dtype), shape, dtype, inputs)
    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 1, (2, *shape)).astype(dtype) for _ in range(inputs)]
    report = parity.compare(model, xs if inputs > 1 else xs[0], np.array([0, 2]))
    assert report.ok, str(report)
    differences = report_differences(report)
    assert max(map(scaled, differences)) <= TOL[dtype], str(report)


def scaled(difference):
    """|difference| / max(1, largest |value|): relative for large values, absolute for
    values below 1 (a gradient of 1e-7 with a 1e-16 error is exact, not 1e-9 off)."""
    largest = difference.abs / difference.rel if difference.rel else 0.0
    return difference.abs / max(1.0, largest)


def test_the_docs_table_is_the_coverage_table():
    table = (HERE.parent / "docs" / "layers.md").read_text()
    assert coverage.markdown_table() in table, (
        "docs/layers.md's layer table is stale: paste the output of scripts/layer_table.py")
