"""Tests for `tfmodels.models`: shapes, parameter counts, dtypes, arguments, serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmodels.models import Mymodel, TwoLayerNet

# Pinned by hand: sum of fan_in * units + units over the Dense layers, on 784 inputs.
MYMODEL_PARAMS_784 = 71_146  # 784*32+32 + 32*64+64 + 64*128+128 + 128*256+256 + 256*10+10
TWO_LAYER_NET_PARAMS_784 = 39_760  # 784*50+50 + 50*10+10

INPUT_SHAPES = {
    "mnist_2d": (28, 28),
    "mnist_channel": (28, 28, 1),
    "flat_784": (784,),
    "svhn_rgb": (32, 32, 3),
}
MODEL_CLASSES = {"Mymodel": Mymodel, "TwoLayerNet": TwoLayerNet}


def _images(rng, n, shape, dtype="float32"):
    return rng.random((n, *shape)).astype(dtype)


@pytest.mark.parametrize("model_cls", MODEL_CLASSES.values(), ids=MODEL_CLASSES.keys())
@pytest.mark.parametrize("shape", INPUT_SHAPES.values(), ids=INPUT_SHAPES.keys())
def test_output_is_a_probability_row_per_image(model_cls, shape):
    x = _images(np.random.default_rng(0), 5, shape)
    y = model_cls()(x).numpy()
    assert y.shape == (5, 10)
    assert (y >= 0).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=0, atol=1e-5)


@pytest.mark.parametrize("model_cls, expected", [
    (Mymodel, MYMODEL_PARAMS_784),
    (TwoLayerNet, TWO_LAYER_NET_PARAMS_784),
], ids=["Mymodel", "TwoLayerNet"])
def test_parameter_count_on_784_inputs(model_cls, expected):
    model = model_cls()
    model(np.zeros((1, 784), "float32"))
    assert model.count_params() == expected


def test_dense_layers_order_and_shapes():
    model = Mymodel()
    model(np.zeros((2, 28, 28), "float32"))
    dense = model.dense_layers
    assert [layer.name for layer in dense] == ["dense_0", "dense_1", "dense_2", "dense_3",
                                               "classifier"]
    assert [tuple(layer.kernel.shape) for layer in dense] == [
        (784, 32), (32, 64), (64, 128), (128, 256), (256, 10)]
    assert [tuple(layer.bias.shape) for layer in dense] == [(32,), (64,), (128,), (256,), (10,)]
    assert dense[-1] is model.classifier and dense[:-1] == list(model.hidden)
    # The list covers every trainable weight, in the model's own order.
    assert [w.path for layer in dense for w in (layer.kernel, layer.bias)] == [
        w.path for w in model.trainable_weights]


def test_two_layer_net_dense_layers_and_init():
    model = TwoLayerNet(hidden_size=50, weight_init_std=0.01)
    model(np.zeros((1, 784), "float32"))
    hidden, classifier = model.dense_layers
    assert hidden.kernel.shape == (784, 50) and classifier.kernel.shape == (50, 10)
    assert model.activation == "relu" and hidden.activation.__name__ == "relu"
    assert classifier.activation.__name__ == "softmax"
    # The book's init: N(0, std^2) kernels (39,200 draws: the sample std is within a few %),
    # zero biases.
    np.testing.assert_allclose(np.std(hidden.kernel.numpy()), 0.01, rtol=0.05)
    assert not hidden.bias.numpy().any() and not classifier.bias.numpy().any()


@pytest.mark.parametrize("model_cls", MODEL_CLASSES.values(), ids=MODEL_CLASSES.keys())
def test_float64_propagates_to_weights_and_outputs(model_cls):
    model = model_cls(dtype="float64")
    y = model(_images(np.random.default_rng(1), 3, (28, 28)))  # float32 in, cast by Keras
    assert y.dtype == tf.float64
    assert model.weights and all(w.dtype == "float64" for w in model.weights)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
def test_custom_architecture(activation):
    model = Mymodel(hidden_units=[7, 5], activation=activation, num_classes=3)
    y = model(_images(np.random.default_rng(2), 4, (6,))).numpy()
    assert y.shape == (4, 3)
    assert [tuple(layer.kernel.shape) for layer in model.dense_layers] == [(6, 7), (7, 5), (5, 3)]
    assert model.activation == activation
    assert all(layer.activation.__name__ == activation for layer in model.hidden)


def test_logits_output_when_output_activation_is_none():
    model = Mymodel(hidden_units=(4,), output_activation=None)
    y = model(_images(np.random.default_rng(3), 8, (5,))).numpy()
    assert not np.allclose(y.sum(axis=1), 1.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden_units=[0]), r"Received: hidden_units=\[0\]"),
    (dict(hidden_units=[32, -1]), r"Received: hidden_units=\[32, -1\]"),
    (dict(hidden_units=[2.5]), r"Received: hidden_units=\[2.5\]"),
    (dict(activation="swoosh"), r"Received: activation='swoosh'"),
    (dict(num_classes=1), r"Received: num_classes=1"),
], ids=["zero_units", "negative_units", "float_units", "bad_activation", "one_class"])
def test_mymodel_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Mymodel(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden_size=0), r"Received: hidden_size=0"),
    (dict(weight_init_std=0.0), r"Received: weight_init_std=0.0"),
    (dict(activation="swoosh"), r"Received: activation='swoosh'"),
    (dict(num_classes=0), r"Received: num_classes=0"),
], ids=["zero_hidden", "zero_std", "bad_activation", "zero_classes"])
def test_two_layer_net_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwoLayerNet(**kwargs)


@pytest.mark.parametrize("make_model", [
    lambda: Mymodel(hidden_units=(8, 4), activation="tanh", num_classes=3, dtype="float64"),
    lambda: TwoLayerNet(hidden_size=12, num_classes=4, activation="sigmoid",
                        weight_init_std=0.1),
], ids=["Mymodel", "TwoLayerNet"])
def test_config_round_trip(make_model):
    model = make_model()
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    assert clone.dtype_policy.name == model.dtype_policy.name
    x = _images(np.random.default_rng(4), 2, (9,))
    model(x), clone(x)
    assert [(layer.kernel.shape, layer.kernel.dtype, layer.activation.__name__)
            for layer in clone.dense_layers] == [
        (layer.kernel.shape, layer.kernel.dtype, layer.activation.__name__)
        for layer in model.dense_layers]


def test_compile_fit_evaluate_with_keras():
    rng = np.random.default_rng(5)
    x, y = _images(rng, 32, (28, 28)), rng.integers(0, 10, 32)
    model = Mymodel(hidden_units=(16,))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loss, accuracy = model.evaluate(x, y, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(loss)
    assert 0.0 <= accuracy <= 1.0


@pytest.mark.parametrize("model_cls", MODEL_CLASSES.values(), ids=MODEL_CLASSES.keys())
def test_save_and_load_keras_file_gives_identical_predictions(model_cls, tmp_path):
    x = _images(np.random.default_rng(6), 4, (28, 28, 1))
    model = model_cls(activation="tanh", num_classes=5)
    expected = model(x).numpy()
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is model_cls
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(restored(x).numpy(), expected)
