"""The twins of Keras's convolution and pooling layers compute what Keras computes.

Each layer runs in a small model through ``tfmodels.parity.compare``, which checks every
layer's output, the loss gradient at its output and input, and its weight gradients.

Tolerances, relative to the largest |value| of each tensor:
- float64: both sides do the same IEEE operations up to the order of the sums inside
  the convolution (TF's Eigen/oneDNN kernels vs im2col + OpenBLAS), a few ulps of the
  values; measured <= 1e-15. 1e-13 leaves room and still fails any wrong index or factor.
- float32: the same reorderings cost ~6e-8 per addition and grow with the length of the
  sums (here <= 75 products per output, <= 2,400 terms per weight gradient); measured
  <= 5e-7. 1e-5.
Max pooling ties are compared exactly: with integer inputs and integer upstream
gradients every routed sum is exact, so only the choice of the cell can differ.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_ref.network import serialization
from keras_twins import report_differences
from tfmodels import parity
from tfmodels.parity import registry

REL = {"float64": 1e-13, "float32": 1e-5}
LAYERS = keras.layers


def model_around(layer, input_shape, dtype, classes=5):
    """Input -> layer -> Flatten -> Dense(softmax): the loss reaches every output of the layer."""
    inputs = keras.Input(input_shape, dtype=dtype)
    h = layer(inputs)
    if len(h.shape) > 2:
        h = LAYERS.Flatten(dtype=dtype)(h)
    return keras.Model(inputs, LAYERS.Dense(classes, activation="softmax", dtype=dtype)(h))


def assert_agrees(model, x, y, dtype):
    """compare(...) finds no divergence, and every difference is within REL[dtype]."""
    report = parity.compare(model, x, y)
    assert report.ok, str(report)
    differences = report_differences(report)
    assert max(d.rel for d in differences) <= REL[dtype], str(report)
    assert report.input_gradients, "the input gradient was compared"
    return report


def batch(shape, dtype, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(dtype), rng.integers(0, 5, n)


DTYPES = pytest.mark.parametrize("dtype", ["float64", "float32"])


@DTYPES
@pytest.mark.parametrize("input_shape, kwargs, n", [
    ((9, 8, 3), dict(filters=4, kernel_size=3), 3),
    ((9, 8, 3), dict(filters=4, kernel_size=(3, 2), strides=2, padding="same"), 3),
    ((10, 7, 2), dict(filters=3, kernel_size=4, strides=(3, 2), padding="same"), 1),  # batch 1
    ((10, 9, 2), dict(filters=5, kernel_size=3, dilation_rate=2, padding="same"), 2),
    ((10, 9, 2), dict(filters=2, kernel_size=(2, 3), dilation_rate=(3, 1)), 2),
    ((8, 8, 1), dict(filters=6, kernel_size=5, use_bias=False, activation="relu"), 2),
    ((7, 6, 16), dict(filters=3, kernel_size=2, activation="tanh"), 2),  # row-major im2col
    ((6, 6, 3), dict(filters=4, kernel_size=1, activation="sigmoid", padding="same"), 2),
    ((6, 7, 3), dict(filters=3, kernel_size=3, strides=3, activation="elu"), 2),
], ids=["3x3", "strides-same", "batch1-same-uneven", "dilation-same", "dilation-valid",
        "5x5-nobias-relu", "16-channels-tanh", "1x1-sigmoid", "stride3-elu"])
def test_conv2d(input_shape, kwargs, n, dtype):
    keras.utils.set_random_seed(1)
    model = model_around(LAYERS.Conv2D(dtype=dtype, **kwargs), input_shape, dtype)
    assert_agrees(model, *batch(input_shape, dtype, n), dtype)


@DTYPES
@pytest.mark.parametrize("layer_class", [LAYERS.MaxPooling2D, LAYERS.AveragePooling2D])
@pytest.mark.parametrize("pool_size, strides, padding, input_shape", [
    (2, None, "valid", (8, 6, 3)),
    (2, None, "same", (7, 5, 2)),  # padding on the bottom and right
    ((3, 2), 1, "valid", (6, 5, 2)),  # overlapping windows
    (3, 2, "same", (7, 8, 2)),
    ((2, 3), (1, 2), "same", (5, 7, 3)),
], ids=["2x2", "2x2-same-odd", "3x2-overlap", "3x3-s2-same", "2x3-same-mixed"])
def test_pooling2d(layer_class, pool_size, strides, padding, input_shape, dtype):
    layer = layer_class(pool_size, strides, padding, dtype=dtype)
    keras.utils.set_random_seed(2)
    assert_agrees(model_around(layer, input_shape, dtype), *batch(input_shape, dtype), dtype)


@DTYPES
@pytest.mark.parametrize("layer_class", [LAYERS.GlobalAveragePooling2D, LAYERS.GlobalMaxPooling2D])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(layer_class, keepdims, dtype):
    keras.utils.set_random_seed(4)
    model = model_around(layer_class(keepdims=keepdims, dtype=dtype), (5, 4, 3), dtype)
    assert_agrees(model, *batch((5, 4, 3), dtype, n=1), dtype)


@DTYPES
@pytest.mark.parametrize("padding", [1, (2, 0), ((0, 2), (3, 1))])
def test_zero_padding2d(padding, dtype):
    keras.utils.set_random_seed(5)
    model = model_around(LAYERS.ZeroPadding2D(padding, dtype=dtype), (4, 3, 2), dtype)
    assert_agrees(model, *batch((4, 3, 2), dtype), dtype)


# --- ties: which cell gets the gradient ----------------------------------------------


def tf_input_gradient(layer, x, dout):
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    return y.numpy(), tape.gradient(y, xt, output_gradients=tf.constant(dout)).numpy()


@DTYPES
@pytest.mark.parametrize("keras_layer", [
    lambda dtype: LAYERS.MaxPooling2D(2, dtype=dtype),
    lambda dtype: LAYERS.MaxPooling2D(2, 1, dtype=dtype),
    lambda dtype: LAYERS.MaxPooling2D(3, 1, "same", dtype=dtype),
    lambda dtype: LAYERS.MaxPooling2D((3, 2), 2, "same", dtype=dtype),
    lambda dtype: LAYERS.GlobalMaxPooling2D(dtype=dtype),
], ids=["2x2", "2x2-s1", "3x3-s1-same", "3x2-s2-same", "global"])
def test_tied_maxima_get_the_gradient_where_tensorflow_puts_it(keras_layer, dtype):
    """Window max pooling: the first maximum in row-major order of the window;
    global max pooling: all tied maxima, the gradient split equally."""
    rng = np.random.default_rng(6)
    x = rng.integers(0, 3, size=(4, 9, 8, 3)).astype(dtype)  # ties everywhere
    layer = keras_layer(dtype)
    twin = registry.builder_for(layer)(layer)
    out = twin.forward(x)
    dout = rng.integers(1, 5, size=out.shape).astype(dtype)
    keras_out, keras_dx = tf_input_gradient(layer, x, dout)
    np.testing.assert_array_equal(out, keras_out)
    np.testing.assert_array_equal(twin.backward(dout), keras_dx)


def test_average_pooling_same_counts_only_real_cells_as_tensorflow_does():
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    layer = LAYERS.AveragePooling2D(2, 2, "same", dtype="float64")
    np.testing.assert_array_equal(layer(x).numpy().ravel(), [2.0, 3.5, 6.5, 8.0])
    np.testing.assert_array_equal(registry.builder_for(layer)(layer).forward(x).ravel(),
                                  [2.0, 3.5, 6.5, 8.0])


# --- a small CNN -----------------------------------------------------------------------


def small_cnn(dtype):
    return keras.Sequential([
        keras.Input((12, 11, 2), dtype=dtype),
        LAYERS.Conv2D(4, 3, activation="relu", dtype=dtype),
        LAYERS.MaxPooling2D(2, dtype=dtype),
        LAYERS.Conv2D(6, 3, padding="same", activation="relu", dtype=dtype),
        LAYERS.GlobalAveragePooling2D(dtype=dtype),
        LAYERS.Dense(10, activation="softmax", dtype=dtype),
    ])


@DTYPES
def test_small_cnn(dtype):
    keras.utils.set_random_seed(7)
    model = small_cnn(dtype)
    x, y = batch((12, 11, 2), dtype, n=5)
    report = assert_agrees(model, x, y, dtype)
    assert [row.class_name for row in report.rows] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "GlobalAveragePooling2D", "Dense"]


def test_small_cnn_trains_a_step_like_keras_and_survives_saving(tmp_path):
    keras.utils.set_random_seed(8)
    model = small_cnn("float64")
    x, y = batch((12, 11, 2), "float64", n=4)
    net = parity.twin(model)
    optimizer = keras.optimizers.Adam(0.01)
    twin_optimizer = parity.twin_optimizer(optimizer, model.trainable_variables)
    loss = keras.losses.SparseCategoricalCrossentropy(dtype="float64")
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    optimizer.apply(tape.gradient(value, model.trainable_variables), model.trainable_variables)
    twin_loss, grads = net.loss_and_gradient(x, y)
    twin_optimizer.update(net.params, grads)
    assert twin_loss == pytest.approx(float(value), abs=1e-13)
    for variable in model.trainable_variables:
        np.testing.assert_allclose(net.params[variable.path], variable.numpy(), rtol=0,
                                   atol=1e-13, err_msg=variable.path)
    serialization.save_npz(net, tmp_path / "cnn.npz")
    loaded, _ = serialization.load_npz(tmp_path / "cnn.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


# --- options without a twin ------------------------------------------------------------


@pytest.mark.parametrize("layer, option", [
    (lambda: LAYERS.Conv2D(4, 3, lora_rank=2), "lora_rank=2"),
    (lambda: LAYERS.UpSampling2D(2, interpolation="bicubic"), "interpolation='bicubic'"),
], ids=["conv-lora", "upsampling-bicubic"])
def test_options_without_a_twin_are_refused_by_name(layer, option):
    keras_layer = layer()
    keras_layer.build((None, 8, 8, 4))
    with pytest.raises(ValueError, match=f"{keras_layer.name!r}.*has {option}.*no NumPy twin"):
        registry.builder_for(keras_layer)(keras_layer)
