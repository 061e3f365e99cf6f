"""``keras.applications`` models and the ``keras.ops`` arithmetic of functional models,
through their twins.

Every application is built with ``weights=None`` at its smallest input, in float64
(floatx is float64 while it is built: applications take no dtype), its batch
normalization weights drawn at random; its twin must agree with Keras on the output,
the loss, the input gradient and every weight gradient (``keras_twins.assert_agree``).
The fast tier runs MobileNetV3Small (``x + 3.0``, ``* (1 / 6)``, built-in rescaling) and
small models around the layers and operations twinned here; every family is slow.

Tolerances: float64 1e-12 (scaled by max(1, max|value|)): both sides do the same IEEE
operations up to the summation order inside products and reductions; measured <= 1e-15
on these models. float32 2e-6: the same at float32's eps, as test_twin_layers.
"""

import contextlib

import keras
from keras.src.applications import convnext, inception_resnet_v2
import numpy as np
import pytest

from keras_twins import (F32, F64, assert_agree, mse, randomise_batch_normalization, targets_like,
                         twin_of)
from numpy_ref.network import serialization
from tfmodels import parity

TOL = {F64: 1e-12, F32: 2e-6}
L = keras.layers


@contextlib.contextmanager
def floatx(dtype):
    """Keras's default float dtype and dtype policy set to ``dtype`` inside the block
    (applications take no dtype; StochasticDepth draws in floatx). Both: Keras keeps the
    first policy it made from floatx, so floatx alone does not reach the layers."""
    before = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(before[0])
        keras.config.set_dtype_policy(before[1])


# -- keras.ops arithmetic between layers

def run_functional(make, shapes, dtype, batches=(1, 2), seed=0):
    """``make(*inputs)`` on inputs of these shapes, then a Dense head; both sides agree."""
    keras.utils.set_random_seed(seed)
    inputs = [keras.Input(shape, dtype=dtype) for shape in shapes]
    head = L.Dense(3, dtype=dtype, name="head")(make(*inputs))
    model = keras.Model(inputs if len(inputs) > 1 else inputs[0], head)
    net = twin_of(model, mse(dtype))
    rng = np.random.default_rng(seed)
    for batch in batches:
        xs = [rng.normal(0, 2, (batch, *shape)).astype(dtype) for shape in shapes]
        x = xs if len(xs) > 1 else xs[0]
        assert_agree(model, x, targets_like(net, x, rng), mse(dtype), TOL[dtype], net=net)
    return net


OPS = {
    "x + 3.0": (lambda x: x + 3.0, [(3, 4)]),
    "3.0 + x": (lambda x: 3.0 + x, [(3, 4)]),
    "x - 2.5": (lambda x: x - 2.5, [(3, 4)]),
    "2.5 - x": (lambda x: 2.5 - x, [(3, 4)]),
    "x * 0.1": (lambda x: x * 0.1, [(3, 4)]),
    "(1 / 6) * x": (lambda x: (1.0 / 6.0) * x, [(3, 4)]),
    "x / 3": (lambda x: x / 3, [(3, 4)]),
    "1 / (x * x + 1)": (lambda x: 1.0 / (x * x + 1.0), [(3, 4)]),
    "-x": (lambda x: -x, [(3, 4)]),
    "hard_sigmoid": (lambda x: L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0), [(3, 4)]),
    "x + y": (lambda x, y: x + y, [(3, 4), (3, 4)]),
    "x - y": (lambda x, y: x - y, [(3, 4), (3, 4)]),
    "x * y broadcast": (lambda x, y: x * y, [(3, 4), (1, 4)]),
    "y / x broadcast": (lambda x, y: y / (x * x + 1.0), [(3, 4), (3, 1)]),
    "x + array(4)": (lambda x: x + np.arange(4.0), [(3, 4)]),
    "array(3, 1) * x": (lambda x: keras.ops.multiply(np.arange(3.0).reshape(3, 1), x),
                        [(3, 4)]),
    "x + array(3, 1)": (lambda x: x + np.arange(3.0).reshape(3, 1), [(3, 4)]),
}


# float32 where a Python constant is rounded to the tensor's dtype; float64 for all.
IN_FLOAT32 = ("x * 0.1", "(1 / 6) * x", "x / 3", "2.5 - x", "hard_sigmoid", "y / x broadcast")


@pytest.mark.parametrize("name,dtype", [(name, F64) for name in OPS]
                         + [(name, F32) for name in IN_FLOAT32])
def test_keras_ops_between_layers(name, dtype):
    make, shapes = OPS[name]
    run_functional(lambda *xs: make(*[L.Dense(shape[-1], dtype=dtype)(x)
                                      for x, shape in zip(xs, shapes)]), shapes, dtype)


def test_a_python_float_takes_the_tensor_dtype():
    """0.1 is float32's 0.1 in a float32 model, float64's in a float64 one."""
    for dtype in (F32, F64):
        inputs = keras.Input((2,), dtype=dtype)
        model = keras.Model(inputs, inputs * 0.1)
        node = twin_of(model, mse(dtype)).nodes[-1]
        assert node.layer.constant_value.dtype == np.dtype(dtype)
        x = np.array([[1.0, 3.0]], dtype)
        np.testing.assert_array_equal(node.layer.forward(x), model(x).numpy())


def test_a_constant_keras_adds_as_a_bias_elsewhere_is_refused():
    inputs = keras.Input((4, 4), dtype=F64)
    model = keras.Model(inputs, inputs + np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"operation 'add(_\d+)?' .*as a bias along axis 2"):
        parity.twin(model)


# -- the layers applications define

def _randomise(model, rng):
    """BatchNormalization's weights and LayerScale's gamma (1e-6 at first) drawn at random."""
    randomise_batch_normalization(model, rng)
    for layer in model.layers:
        if isinstance(layer, convnext.LayerScale):
            layer.gamma.assign(rng.normal(0, 1, layer.gamma.shape))


def test_layer_scale_and_custom_scale():
    def make(x, y):
        scaled = convnext.LayerScale(0.5, 4, dtype=F64)(L.Dense(4, dtype=F64)(x))
        return inception_resnet_v2.CustomScaleLayer(0.17, dtype=F64)([scaled, y])
    net = run_functional(make, [(3, 4), (3, 4)], F64)
    assert {type(node.layer).__name__ for node in net.nodes} >= {"LayerScale", "CustomScale"}


def test_stochastic_depth_drops_the_samples_keras_dropped():
    with floatx(F64):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((5, 4), dtype=F64)
        branch = convnext.StochasticDepth(0.5, dtype=F64)(L.Dense(4, dtype=F64)(inputs))
        model = keras.Model(inputs, L.Dense(2, dtype=F64)(L.Add(dtype=F64)([inputs, branch])))
        rng = np.random.default_rng(3)
        x = rng.normal(size=(16, 5, 4))
        y = rng.normal(size=(16, 5, 2))
        assert parity.compare(model, x, y, mse(F64), training=False).ok
        net = parity.twin(model, mse(F64))
        report = parity.compare(model, x, y, mse(F64), training=True, net=net)
    assert report.ok, str(report)
    mask = next(node.layer for node in net.nodes
                if type(node.layer).__name__ == "StochasticDepth").mask
    assert mask.shape == (16, 1, 1) and 0 < mask.sum() < 16  # some samples dropped, not all


def test_tiny_convnext_with_stochastic_depth_in_inference(tmp_path):
    keras.utils.set_random_seed(4)
    with floatx(F64):  # twin() traces training mode too, where StochasticDepth draws
        model = convnext.ConvNeXt(depths=[1, 1, 1, 1], projection_dims=[4, 4, 8, 8],
                                  drop_path_rate=0.3, input_shape=(32, 32, 3), classes=5,
                                  name="tiny_convnext")
        rng = np.random.default_rng(4)
        _randomise(model, rng)
        net = twin_of(model, mse(F64))
    x = rng.uniform(0, 255, (2, 32, 32, 3))
    assert_agree(model, x, targets_like(net, x, rng), mse(F64), TOL[F64], net=net,
                 training=False)
    serialization.save_npz(net, tmp_path / "convnext.npz")
    loaded, _ = serialization.load_npz(tmp_path / "convnext.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_op_twins_survive_saving(tmp_path):
    make = lambda x, y: inception_resnet_v2.CustomScaleLayer(0.2, dtype=F64)(  # noqa: E731
        [2.5 - x / (y * y + 1.0), -(x * y) / 6.0])  # x * 0.1 reads as sparse to Keras here
    net = run_functional(make, [(3,), (3,)], F64, batches=(2,))
    serialization.save_npz(net, tmp_path / "ops.npz")
    loaded, _ = serialization.load_npz(tmp_path / "ops.npz")
    xs = list(np.random.default_rng(5).normal(size=(2, 2, 3)))
    np.testing.assert_array_equal(loaded.predict(xs), net.predict(xs))


# -- the applications themselves

SIDE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
PREPROCESSING = {"MobileNetV3Small": True, "MobileNetV3Large": True}
PIXELS = ("ConvNeXt", "EfficientNet", "MobileNetV3")  # models that scale their input


def assert_application_agrees(name, batch=1):
    side = SIDE.get(name, 32)
    kwargs = ({"include_preprocessing": True} if name in PREPROCESSING else {})
    keras.utils.set_random_seed(0)
    with floatx(F64):
        model = getattr(keras.applications, name)(weights=None, input_shape=(side, side, 3),
                                                 **kwargs)
    rng = np.random.default_rng(0)
    _randomise(model, rng)
    net = twin_of(model, mse(F64))
    shape = (batch, side, side, 3)
    x = rng.uniform(0, 255, shape) if name.startswith(PIXELS) else rng.normal(size=shape)
    assert {layer.compute_dtype for layer in model.layers} == {F64}
    return assert_agree(model, x, targets_like(net, x, rng), mse(F64), TOL[F64], net=net,
                        training=False)


def test_mobilenet_v3_small_with_its_preprocessing():
    assert_application_agrees("MobileNetV3Small", batch=2)


# The smallest variant of each family runs with `make test`; the larger ones, the same
# code at up to 80 s each (about 8 minutes together on 2 cores), with `make test-applications`.
SMALLEST = ["ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionV3",
            "InceptionResNetV2", "MobileNet", "MobileNetV2", "MobileNetV3Large",
            "NASNetMobile", "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception"]
LARGER = [
    *[f"ConvNeXt{size}" for size in ("Small", "Base", "Large", "XLarge")],
    "DenseNet169", "DenseNet201",
    *[f"EfficientNetB{i}" for i in range(1, 8)],
    *[f"EfficientNetV2{v}" for v in ("B1", "B2", "B3", "S", "M", "L")],
    "NASNetLarge", "ResNet101", "ResNet152", "ResNet101V2", "ResNet152V2",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", SMALLEST)
def test_every_application_family(name):
    assert_application_agrees(name)


@pytest.mark.slow
@pytest.mark.applications
@pytest.mark.parametrize("name", LARGER)
def test_every_larger_application(name):
    assert_application_agrees(name)
