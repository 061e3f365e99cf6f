"""The twins of Keras's N-d convolutions (numpy_ref.layers.conv_nd, conv_transpose):
Conv1D/2D/3D with groups, dilation, causal and channels_first, their transposes,
DepthwiseConv1D/2D and SeparableConv1D/2D, against Keras.

Each case is the layer on the model's input, then a linear Dense head, under a mean
squared error (``keras_twins.assert_agree``): output, loss, input gradient, and every
weight gradient must agree, each difference scaled by the values' size.

Tolerances:
- float64, 1e-12: the same IEEE products, summed in another order (TF's Eigen/oneDNN
  or XLA kernels for grouped and 3-d convolutions vs NumPy's matrix products); measured
  <= 1.6e-15 here. A wrong index, axis or factor is off by far more.
- float32, 2e-6: the same reorderings at float32's eps = 1.2e-7, over sums of up to
  ~250 products; measured <= 7e-7.

TensorFlow on CPU runs channels_first for Conv3D, grouped Conv1D/2D (both through XLA),
depthwise and separable layers; it refuses plain Conv1D/Conv2D channels_first and every
transposed convolution channels_first, and float64 transposed convolutions with
dilation > 1. Those twins are checked against the channels_last Keras layer on moved
axes (``test_channels_first_that_tensorflow_refuses_on_cpu``) and at float32.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import (F32, F64, assert_agree, keras_activation_names, mse, targets_like,
                         twin_of)
from numpy_ref.layers import conv, conv_nd, conv_transpose
from numpy_ref.network import serialization
from tfmodels.parity import registry

TOL = {F64: 1e-12, F32: 2e-6}
L = keras.layers
CF = "channels_first"


def randomise(model, rng):
    """Draw every weight (a zero bias would hide a bias on the wrong axis)."""
    for v in model.weights:
        v.assign(rng.normal(0, 0.5, v.shape).astype(v.dtype))


def check(make, shape, dtype, batches=(2,), seed=0):
    """Input -> layer -> Dense head; the twin agrees with Keras on every quantity."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = keras.Input(shape, dtype=dtype)
    layer = make(dtype)
    model = keras.Model(inputs, L.Dense(3, dtype=dtype, name="head")(layer(inputs)))
    randomise(model, rng)
    net = twin_of(model, mse(dtype))
    for n in batches:
        x = rng.normal(0, 1, (n, *shape)).astype(dtype)
        assert_agree(model, x, targets_like(net, x, rng), mse(dtype), TOL[dtype], net=net)
    return model, net


def case(id_, cls, shape, dtypes=(F64, F32), **kwargs):
    """One configuration per dtype; the float32 ones (the same code at float32's
    tolerance) are marked slow, to keep the fast tier fast."""
    return [pytest.param(lambda dtype: cls(dtype=dtype, **kwargs), shape, dtype,
                         id=f"{id_}-{dtype}", marks=[pytest.mark.slow] if dtype == F32 else [])
            for dtype in dtypes]


# keras.applications first: depthwise (MobileNet, EfficientNet), separable (Xception,
# NASNet), grouped Conv2D (ConvNeXt's depthwise Conv2D(groups=C)).
APPLICATION_CASES = [
    *case("depthwise2d", L.DepthwiseConv2D, (7, 8, 3), kernel_size=3, padding="same"),
    *case("depthwise2d-mult-stride", L.DepthwiseConv2D, (7, 8, 3), kernel_size=3,
          depth_multiplier=2, strides=2, padding="same", activation="relu"),
    *case("depthwise2d-stride-and-dilation", L.DepthwiseConv2D, (9, 8, 2), (F64,),
          kernel_size=3, strides=2, dilation_rate=2, padding="same"),
    *case("depthwise2d-cf-dilation", L.DepthwiseConv2D, (3, 9, 8), (F64,), kernel_size=(3, 2),
          depth_multiplier=3, dilation_rate=(2, 1), data_format=CF, activation="tanh"),
    *case("separable2d", L.SeparableConv2D, (7, 8, 3), filters=5, kernel_size=3),
    *case("separable2d-mult-stride-same", L.SeparableConv2D, (7, 8, 3), filters=5,
          kernel_size=3, depth_multiplier=2, strides=2, padding="same", activation="relu"),
    *case("separable2d-stride-and-dilation", L.SeparableConv2D, (9, 8, 3), (F64,), filters=4,
          kernel_size=3, strides=2, dilation_rate=2, padding="same", use_bias=False),
    *case("separable2d-cf", L.SeparableConv2D, (3, 7, 8), (F64,), filters=4, kernel_size=3,
          data_format=CF),
    *case("conv2d-groups-is-channels", L.Conv2D, (7, 8, 4), filters=4, kernel_size=5,
          groups=4, padding="same"),
    *case("conv2d-groups", L.Conv2D, (7, 8, 6), filters=4, kernel_size=(3, 2), groups=2,
          strides=(2, 1), padding="same", activation="elu"),
    *case("conv2d-groups-cf", L.Conv2D, (6, 7, 8), (F64,), filters=9, kernel_size=3, groups=3,
          data_format=CF),
]

OTHER_CASES = [
    *case("conv1d", L.Conv1D, (9, 3), filters=4, kernel_size=3),
    *case("conv1d-same-stride", L.Conv1D, (9, 3), (F64,), filters=4, kernel_size=4, strides=2,
          padding="same"),
    *case("conv1d-causal-dilation", L.Conv1D, (9, 3), filters=4, kernel_size=3,
          dilation_rate=2, padding="causal"),
    *case("conv1d-causal-stride", L.Conv1D, (9, 3), (F64,), filters=4, kernel_size=3,
          strides=2, padding="causal"),
    *case("conv1d-groups-cf", L.Conv1D, (6, 9), (F64,), filters=4, kernel_size=3, groups=2,
          data_format=CF, activation="softmax"),  # softmax over the output's last axis
    *case("conv3d", L.Conv3D, (5, 6, 5, 3), filters=4, kernel_size=3),
    *case("conv3d-same-strides", L.Conv3D, (5, 6, 5, 3), (F64,), filters=2,
          kernel_size=(2, 3, 2), strides=(1, 2, 2), padding="same"),
    *case("conv3d-groups-dilation", L.Conv3D, (5, 6, 5, 4), (F64,), filters=4, kernel_size=3,
          groups=2, dilation_rate=(1, 2, 1), padding="same"),
    *case("conv3d-cf", L.Conv3D, (3, 5, 6, 5), (F64,), filters=4, kernel_size=3,
          data_format=CF),
    *case("depthwise1d", L.DepthwiseConv1D, (9, 3), kernel_size=3, depth_multiplier=2,
          strides=2, padding="same"),
    *case("depthwise1d-cf-dilation", L.DepthwiseConv1D, (3, 9), (F64,), kernel_size=3,
          dilation_rate=2, data_format=CF),
    *case("separable1d", L.SeparableConv1D, (9, 3), filters=5, kernel_size=3,
          depth_multiplier=2, padding="same"),
    *case("separable1d-cf-dilation", L.SeparableConv1D, (3, 11), (F64,), filters=4,
          kernel_size=3, dilation_rate=2, data_format=CF),
    *case("conv2d-transpose", L.Conv2DTranspose, (5, 6, 3), filters=4, kernel_size=3,
          strides=2),
    *case("conv2d-transpose-same", L.Conv2DTranspose, (5, 6, 3), (F64,), filters=4,
          kernel_size=4, strides=2, padding="same"),
    *case("conv2d-transpose-output-padding", L.Conv2DTranspose, (5, 6, 3), filters=4,
          kernel_size=(3, 2), strides=(2, 3), padding="same", output_padding=(1, 2)),
    *case("conv2d-transpose-valid-output-padding", L.Conv2DTranspose, (5, 6, 3), (F64,),
          filters=4, kernel_size=(3, 2), strides=(2, 3), output_padding=(1, 0)),
    *case("conv2d-transpose-stride-over-kernel", L.Conv2DTranspose, (5, 6, 3), (F64,),
          filters=4, kernel_size=2, strides=3, activation="sigmoid"),
    *case("conv2d-transpose-1x1-output-padding", L.Conv2DTranspose, (5, 6, 3), (F64,),
          filters=4, kernel_size=1, strides=2, padding="same", output_padding=1),
    # TF's CPU kernel refuses float64 transposed convolutions with dilation.
    *case("conv2d-transpose-dilation", L.Conv2DTranspose, (5, 6, 3), (F32,), filters=4,
          kernel_size=3, dilation_rate=2, padding="same"),
    *case("conv1d-transpose", L.Conv1DTranspose, (5, 3), (F64,), filters=4, kernel_size=4,
          strides=3, padding="same", output_padding=2),
    *case("conv1d-transpose-dilation", L.Conv1DTranspose, (5, 3), (F32,), filters=4,
          kernel_size=3, dilation_rate=3),
    *case("conv3d-transpose", L.Conv3DTranspose, (3, 4, 3, 3), filters=4, kernel_size=3,
          strides=(2, 1, 2), padding="same"),
    *case("conv3d-transpose-output-padding", L.Conv3DTranspose, (3, 4, 3, 3), (F64,),
          filters=2, kernel_size=2, strides=2, output_padding=1),
]


@pytest.mark.parametrize("make, shape, dtype", APPLICATION_CASES)
def test_layers_keras_applications_use(make, shape, dtype):
    check(make, shape, dtype)


@pytest.mark.parametrize("make, shape, dtype", OTHER_CASES)
def test_the_rest_of_the_family(make, shape, dtype):
    check(make, shape, dtype)


def test_plain_conv2d_keeps_the_fast_twin_and_the_rest_get_the_nd_one():
    def twin(layer, shape):
        layer.build(shape)
        return type(registry.builder_for(layer)(layer))

    assert twin(L.Conv2D(4, 3), (None, 8, 8, 2)) is conv.Conv2D
    assert twin(L.Conv2D(4, 3, groups=2), (None, 8, 8, 2)) is conv_nd.Conv
    assert twin(L.Conv2D(4, 3, data_format=CF), (None, 2, 8, 8)) is conv_nd.Conv
    assert twin(L.Conv1D(4, 3), (None, 8, 2)) is conv_nd.Conv
    assert twin(L.Conv2DTranspose(4, 3), (None, 8, 8, 2)) is conv_transpose.ConvTranspose


@pytest.mark.parametrize("make, shape", [
    (lambda: L.Conv1D(5, 3, data_format=CF, dtype=F64), (2, 4, 9)),
    (lambda: L.Conv2D(4, (3, 2), strides=2, padding="same", data_format=CF,
                      dtype=F64), (2, 3, 7, 9)),
    (lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same", output_padding=1,
                               data_format=CF, dtype=F64), (2, 3, 5, 6)),
    (lambda: L.Conv1DTranspose(4, 3, strides=2, data_format=CF, dtype=F64), (2, 3, 5)),
    (lambda: L.Conv3DTranspose(2, 2, strides=2, data_format=CF, dtype=F64), (2, 3, 3, 2, 3)),
], ids=["conv1d", "conv2d", "conv2d-transpose", "conv1d-transpose", "conv3d-transpose"])
def test_channels_first_that_tensorflow_refuses_on_cpu(make, shape):
    """The channels_first twin computes the channels_last Keras layer on moved axes
    (output shapes chosen so that no last axis has F entries: see the bias test)."""
    rng = np.random.default_rng(3)
    first = make()
    first.build(shape)
    last = type(first).from_config({**first.get_config(), "data_format": "channels_last"})
    x = rng.normal(size=shape)
    moved = np.moveaxis(x, 1, -1)
    last.build(moved.shape)
    for a, b in zip(first.weights, last.weights):
        a.assign(rng.normal(size=a.shape))
        b.assign(a)
    twin = registry.builder_for(first)(first)
    expected = np.moveaxis(np.asarray(last(moved)), -1, 1)
    out = twin.forward(x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    dout = rng.normal(size=out.shape)
    dx = twin.backward(dout)
    xt = tf.constant(moved)  # the channels_last Keras gradients, for the same dout
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = last(xt)
    keras_grads = tape.gradient(y, [xt, *last.trainable_variables],
                                output_gradients=tf.constant(np.moveaxis(dout, 1, -1)))
    np.testing.assert_allclose(dx, np.moveaxis(keras_grads[0].numpy(), -1, 1), atol=1e-12)
    for variable, grad in zip(last.trainable_variables, keras_grads[1:]):
        np.testing.assert_allclose(twin.grads[variable.name], grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("make, shape", [
    (lambda dtype: L.Conv2D(4, 3, groups=2, data_format=CF, dtype=dtype), (6, 7, 6)),
    (lambda dtype: L.SeparableConv1D(5, 3, data_format=CF, dtype=dtype), (3, 7)),
    (lambda dtype: L.DepthwiseConv2D(3, depth_multiplier=2, data_format=CF, dtype=dtype),
     (3, 7, 8)),
], ids=["conv2d-groups", "separable1d", "depthwise2d"])
def test_channels_first_bias_goes_where_keras_puts_it(make, shape):
    """A channels_first output (N, F, ..., F) whose last axis has F entries gets the bias
    along that LAST axis in Keras with TensorFlow (ops.add makes it a bias_add); the twin
    does the same (conv_nd.bias_axis), and agrees with Keras."""
    model, net = check(make, shape, F64)
    layer = model.layers[1]
    x = np.zeros((1, *shape))
    out = np.asarray(layer(x))  # a zero input: the output is the bias alone
    assert out.shape[-1] == out.shape[1]
    np.testing.assert_array_equal(out[0], np.broadcast_to(layer.bias.numpy(), out.shape[1:]))


FEW_ACTIVATIONS = ("relu", "softmax", "gelu")


@pytest.mark.parametrize("names", [
    pytest.param(FEW_ACTIVATIONS, id="few"),
    pytest.param(tuple(sorted(set(keras_activation_names()) - set(FEW_ACTIVATIONS))),
                 id="all-others", marks=pytest.mark.slow)])
def test_every_activation_the_twin_knows(names):
    """Each Keras activation with a twin, through a channels_first DepthwiseConv1D
    (softmax and log_softmax act on the output's last axis, as Keras's do)."""
    for name in names:
        check(lambda dtype, name=name: L.DepthwiseConv1D(3, depth_multiplier=2, data_format=CF,
                                                        activation=name, dtype=dtype),
              (2, 6), F64)


@pytest.mark.parametrize("make", [
    lambda: L.Conv1D(4, 3, lora_rank=2),
    lambda: L.Conv2D(4, 3, groups=2, lora_rank=2),
    lambda: L.Conv3D(4, 3, lora_rank=1),
], ids=["conv1d", "conv2d-groups", "conv3d"])
def test_lora_is_refused_by_name(make):
    layer = make()
    layer.build((None, *(6,) * (len(layer.kernel_size)), 4))
    with pytest.raises(ValueError, match=f"{layer.name!r}.*has lora_rank=.*no NumPy twin"):
        registry.builder_for(layer)(layer)


def test_twins_survive_saving(tmp_path):
    keras.utils.set_random_seed(9)
    inputs = keras.Input((9, 8, 4), dtype=F64)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu",
                          dtype=F64)(inputs)
    h = L.SeparableConv2D(6, 3, strides=2, dtype=F64)(h)
    h = L.Conv2D(6, 3, groups=3, padding="same", activation="gelu", dtype=F64)(h)
    h = L.Conv2DTranspose(3, 3, strides=2, output_padding=1, dtype=F64)(h)
    h = L.Reshape((-1, 3), dtype=F64)(h)
    h = L.Conv1D(2, 3, padding="causal", dtype=F64)(h)
    model = keras.Model(inputs, L.Dense(2, dtype=F64)(h))
    net = twin_of(model, mse(F64))
    x = np.random.default_rng(9).normal(size=(2, 9, 8, 4))
    np.testing.assert_allclose(net.predict(x), model(x).numpy(), rtol=0, atol=1e-12)
    serialization.save_npz(net, tmp_path / "conv_nd.npz")
    loaded, _ = serialization.load_npz(tmp_path / "conv_nd.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
