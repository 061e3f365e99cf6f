"""The ConvLSTM1D/2D/3D twins (``numpy_ref.layers.conv_lstm``) compute what Keras computes.

``direct`` calls the Keras layer eagerly (initial states, a mask, the returned states)
under a GradientTape with a random upstream gradient per output and holds its twin's
outputs, input and initial-state gradients and weight gradients against Keras's;
``parity.compare`` holds a small model (ConvLSTM -> Flatten -> Dense) in inference and
in training mode, where the twin uses the dropout masks Keras drew.

Tolerances, relative to max(1, largest |value|):
- float64: per step both sides sum the same kp*C (and kp*F) products per position,
  in another order (TensorFlow's convolution against im2col's matrix product), then
  apply the same gate formulas; T steps of the recurrence carry that rounding on.
  Measured <= 4e-15; 1e-13 fails any wrong gate, tap, padding, mask rule or factor.
- float32: each reordered sum costs a few float32 ulps (~1e-7 relative) and goes
  through T steps and the backward pass; measured <= 7e-7; 1e-5.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import recurrent_differences, report_differences, scaled
from numpy_ref.layers import conv_lstm
from numpy_ref.network import serialization
from tfmodels import parity
from tfmodels.parity import registry

L = keras.layers
REL = {"float64": 1e-13, "float32": 1e-5}
N, T = 2, 4
MASK = np.array([[1, 0, 1, 1], [0, 1, 1, 0]], bool)  # a masked first and last step
KINDS = {1: L.ConvLSTM1D, 2: L.ConvLSTM2D, 3: L.ConvLSTM3D}


def built(layer, frame, dtype="float64", seed=0):
    """``layer`` built on (None, T, *frame) with every weight drawn at scale 0.5 (the
    bias too, so a wrong gate's bias shows)."""
    layer(keras.Input((T, *frame), dtype=dtype))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape) * 0.5)
    return layer


def data(shape, dtype="float64", seed=2):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def states_for(layer, x, dtype="float64"):
    """Random (h0, c0) of the shape of the layer's state for x."""
    shape = layer.compute_output_shape(x.shape)
    if layer.return_state:
        shape = shape[1]  # (output, h, c)
    elif layer.return_sequences:
        shape = (shape[0], *shape[2:])
    return [data(shape, dtype, seed=3), data(shape, dtype, seed=4)]


# name -> (rank, frame (*S, C) or (C, *S), options)
CASES = {
    "2d-valid-sequences-state": (2, (6, 5, 2), dict(return_sequences=True,
                                                    return_state=True)),
    "1d-strided-same-backwards-unrolled": (1, (9, 3), dict(strides=2, padding="same",
                                                           go_backwards=True, unroll=True)),
    "3d-dilated": (3, (5, 4, 3, 2), dict(padding="same", dilation_rate=(2, 1, 2),
                                         return_sequences=True)),
    "2d-no-bias-zero-output": (2, (5, 6, 2), dict(
        kernel_size=(2, 3), use_bias=False, zero_output_for_mask=True, return_sequences=True,
        return_state=True, go_backwards=True, activation="relu",
        recurrent_activation="hard_sigmoid")),
}


def make(rank, options, dtype="float64"):
    options = dict(options)
    return KINDS[rank](3, options.pop("kernel_size", 3), dtype=dtype, **options)


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_lstm_with_and_without_initial_state_and_mask(name):
    """Every output, returned state and gradient, float64."""
    rank, frame, options = CASES[name]
    layer = built(make(rank, options), frame)
    x = data((N, T, *frame))
    assert direct(layer, [x]) <= REL["float64"]
    assert direct(layer, [x, *states_for(layer, x)], MASK) <= REL["float64"]


def test_float32():
    rank, frame, options = CASES["2d-valid-sequences-state"]
    layer = built(make(rank, options, "float32"), frame, "float32")
    x = data((N, T, *frame), "float32")
    assert direct(layer, [x, *states_for(layer, x, "float32")], MASK) <= REL["float32"]


def test_compute_mask_follows_keras():
    x = data((N, T, 6, 2))
    for options in ({}, dict(return_sequences=True), dict(return_state=True),
                    dict(return_sequences=True, return_state=True)):
        layer = built(L.ConvLSTM1D(2, 3, dtype="float64", **options), (6, 2))
        keras_mask = layer.compute_mask(tf.constant(x), tf.constant(MASK))
        twin_mask = registry.builder_for(layer)(layer).compute_mask([x], MASK)
        for a, b in zip(*(m if isinstance(m, list) else [m] for m in (twin_mask, keras_mask))):
            assert (a is None) == (b is None) and (a is None or np.array_equal(a, b))


# --- in a model, dropout in training mode ----------------------------------------------

def head(h, dtype):
    """Flatten -> Dense softmax: the probabilities compare's default loss (sparse
    crossentropy) reads; raw outputs near 0 there would make it ill-conditioned."""
    return L.Dense(3, activation="softmax", dtype=dtype)(L.Flatten(dtype=dtype)(h))


def model_around(layer, frame, dtype):
    inputs = keras.Input((T, *frame), dtype=dtype)
    return keras.Model(inputs, head(layer(inputs), dtype))


def assert_agrees(model, x, dtype, training):
    report = parity.compare(model, x, np.array([0, 2]), training=training)
    assert report.ok, str(report)
    worst = max(d.abs / max(1.0, d.abs / d.rel if d.rel else 0.0)
                for d in report_differences(report))
    assert worst <= REL[dtype], str(report)


MODELS = {
    "2d-dropout": (lambda d: L.ConvLSTM2D(3, 3, padding="same", dropout=0.3,
                                          recurrent_dropout=0.4, return_sequences=True,
                                          dtype=d), (5, 4, 2)),
    "1d-recurrent-dropout": (lambda d: L.ConvLSTM1D(3, 2, recurrent_dropout=0.5, dtype=d),
                             (6, 2)),
    "1d-dropout-rate-1": (lambda d: L.ConvLSTM1D(2, 3, dropout=1.0, dtype=d), (6, 2)),
}


def test_training_mode_uses_the_masks_keras_drew():
    dtype = "float64"
    make_layer, frame = MODELS["2d-dropout"]
    keras.utils.set_random_seed(3)
    model = model_around(make_layer(dtype), frame, dtype)
    x = data((2, T, *frame))
    inference = model(x, training=False).numpy()
    keras.utils.set_random_seed(4)
    assert not np.allclose(model(x, training=True).numpy(), inference), "dropout dropped"
    assert_agrees(model, x, dtype, training=True)


def test_a_mask_computed_in_the_model_skips_steps():
    """A Keras mask made by ``keras.ops`` from the input (all-zero frames are padding)
    and given to the layer: the twin follows it."""
    inputs = keras.Input((T, 6, 2), dtype="float64")
    mask = keras.ops.any(keras.ops.not_equal(inputs, 0), axis=(2, 3))
    h = L.ConvLSTM1D(3, 3, dtype="float64")(inputs, mask=mask)
    keras.utils.set_random_seed(0)
    model = keras.Model(inputs, head(h, "float64"))
    x = data((2, T, 6, 2))
    x[0, 2:] = 0
    x[1, 0] = 0
    assert any(node.masks for node in parity.twin(model).nodes)
    assert_agrees(model, x, "float64", training=False)


# --- channels_first (ConvLSTM3D: TensorFlow runs 1-D/2-D ones on GPU only) ---------------

def channels_first_pair(options):
    """ConvLSTM3D channels_first and its channels_last twin with the same weights, on
    frames (C, *S) = (2, 4, 5, 3): 3 filters, as many as the last image axis, where a
    bias added along the wrong axis would pass unnoticed by shape."""
    first = built(L.ConvLSTM3D(3, 2, data_format="channels_first", dtype="float64",
                               **options), (2, 4, 5, 3))
    last = built(L.ConvLSTM3D(3, 2, dtype="float64", **options), (4, 5, 3, 2))
    return first, last


def test_channels_first_is_channels_last_moved():
    """The twin computes a channels_first layer channels last, moving the axes at its
    edges (no rounding): outputs, states and every gradient equal the channels_last
    twin's, moved. (Against Keras, which takes 20 s and more per call here: slow.)"""
    first, last = (registry.builder_for(layer)(layer) for layer in channels_first_pair(
        dict(padding="same", dilation_rate=(2, 1, 2), return_sequences=True,
             return_state=True, go_backwards=True)))
    x = data((N, T, 2, 4, 5, 3))  # (N, T, C, *S)
    h0, c0 = data((N, 3, 4, 5, 3), seed=3), data((N, 3, 4, 5, 3), seed=4)

    def last_of(a, axis):
        return np.moveaxis(a, axis, -1)

    ys_first = first.forward([x, h0, c0], mask=MASK)
    ys_last = last.forward([last_of(x, 2), last_of(h0, 1), last_of(c0, 1)], mask=MASK)
    for a, b, axis in zip(ys_first, ys_last, (2, 1, 1)):
        np.testing.assert_array_equal(last_of(a, axis), b)
    gs = [data(np.shape(y), seed=5 + k) for k, y in enumerate(ys_first)]
    d_first = first.backward(tuple(gs))
    d_last = last.backward(tuple(last_of(g, axis) for g, axis in zip(gs, (2, 1, 1))))
    for a, b, axis in zip(d_first, d_last, (2, 1, 1)):
        np.testing.assert_array_equal(last_of(a, axis), b)
    for key in ("kernel", "recurrent_kernel", "bias"):
        np.testing.assert_array_equal(first.grads[key], last.grads[key])


@pytest.mark.slow
def test_channels_first_against_keras():
    """Keras compiles each channels_first 3-D convolution with XLA on CPU, one compile
    per call (seconds each): two time steps, one direct call, one training-mode model."""
    first, _ = channels_first_pair(dict(padding="same", dilation_rate=(2, 1, 2),
                                        return_sequences=True, return_state=True))
    x = data((N, 2, 2, 4, 5, 3))
    h0, c0 = data((N, 3, 4, 5, 3), seed=3), data((N, 3, 4, 5, 3), seed=4)
    assert direct(first, [x, h0, c0], MASK[:, 1:3]) <= REL["float64"]
    keras.utils.set_random_seed(3)
    inputs = keras.Input((2, 2, 3, 4, 3), dtype="float64")
    h = L.ConvLSTM3D(3, 2, dropout=0.4, recurrent_dropout=0.3, data_format="channels_first",
                     return_sequences=True, dtype="float64")(inputs)
    model = keras.Model(inputs, head(h, "float64"))
    assert_agrees(model, data((2, 2, 2, 3, 4, 3)), "float64", training=True)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_in_both_modes_and_dtypes(name, training, dtype):
    make_layer, frame = MODELS[name]
    keras.utils.set_random_seed(3)
    model = model_around(make_layer(dtype), frame, dtype)
    assert_agrees(model, data((2, T, *frame), dtype), dtype, training)


@pytest.mark.slow
@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("strides, dilation", [(1, 1), (2, 1), (1, 2), ((2, 1), 1)])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_options_sweep(rank, strides, dilation, padding):
    if rank == 1 and np.ndim(strides):
        strides = strides[0]
    elif np.ndim(strides):
        strides = (*strides, *(1,) * (rank - 2))
    frame = {1: (7, 2), 2: (6, 5, 2), 3: (5, 4, 4, 2)}[rank]
    layer = built(KINDS[rank](2, 2, strides=strides, dilation_rate=dilation, padding=padding,
                              return_sequences=True, return_state=True, dtype="float64"),
                  frame)
    x = data((N, T, *frame))
    assert direct(layer, [x, *states_for(layer, x)], MASK) <= REL["float64"]


@pytest.mark.slow
@pytest.mark.parametrize("activation, recurrent_activation", [
    ("softmax", "sigmoid"), ("elu", "softsign"), ("gelu", "linear"), ("swish", "relu")])
def test_activations(activation, recurrent_activation):
    layer = built(L.ConvLSTM2D(3, 2, activation=activation,
                               recurrent_activation=recurrent_activation,
                               return_sequences=True, dtype="float64"), (4, 5, 2))
    x = data((N, T, 4, 5, 2))
    assert direct(layer, [x], MASK) <= REL["float64"]


# --- saving, refusals ------------------------------------------------------------------

def test_a_saved_twin_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    layer = L.ConvLSTM2D(3, 3, padding="same", strides=(1, 2), dropout=0.2,
                         activation="relu", return_sequences=True, dtype="float64")
    model = model_around(layer, (5, 6, 2), "float64")
    net = parity.twin(model)
    serialization.save_npz(net, tmp_path / "conv_lstm.npz")
    loaded, _ = serialization.load_npz(tmp_path / "conv_lstm.npz")
    assert any(isinstance(node.layer, conv_lstm.ConvLSTM) for node in loaded.nodes)
    x = data((2, T, 5, 6, 2))
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    np.testing.assert_allclose(net.predict(x), model(x).numpy(), rtol=1e-13, atol=1e-14)


def test_a_mask_of_another_shape_is_refused():
    layer = built(L.ConvLSTM2D(2, 3, dtype="float64"), (5, 5, 2))
    twin = registry.builder_for(layer)(layer)
    with pytest.raises(ValueError, match=r"mask \(N, T\)"):
        twin.forward([data((N, T, 5, 5, 2))], mask=np.ones((N, T, 5, 5), bool))


@pytest.mark.parametrize("make_layer, frame, words", [
    (lambda: L.ConvLSTM2D(2, 3, stateful=True), (5, 5, 2), "stateful=True"),
    (lambda: L.ConvLSTM1D(2, 3, data_format="channels_first"), (2, 6),
     "data_format='channels_first'"),
    (lambda: L.ConvLSTM2D(2, 3, data_format="channels_first"), (2, 5, 5),
     "data_format='channels_first'"),
    (lambda: L.ConvLSTM3D(2, 2, activation="softmax", data_format="channels_first"),
     (2, 3, 3, 3), "activation='softmax'"),
    (lambda: L.ConvLSTM1D(2, 3, unroll=True, go_backwards=True, zero_output_for_mask=True,
                          return_sequences=True), (6, 2), "unroll=True"),
], ids=["stateful", "1d-channels-first", "2d-channels-first", "3d-channels-first-softmax",
        "unrolled-backwards-zero-output"])
def test_refusals_name_the_layer_and_option(make_layer, frame, words):
    layer = make_layer()
    layer.build((N, T, *frame))  # TensorFlow cannot call 1-D/2-D channels_first on CPU
    with pytest.raises(ValueError, match=words) as error:
        registry.builder_for(layer)(layer)
    assert repr(layer.name) in str(error.value)


def direct(layer, xs, mask=None, training=False, seed=0):
    """The largest scaled difference of ``keras_twins.recurrent_differences``."""
    return recurrent_differences(layer, xs, mask=mask, training=training, seed=seed)[0]
