"""The sequence models `--model=lstm` and `--model=vit`, and the ViT's PositionEmbedding.

- PositionEmbedding and its NumPy twin (numpy_ref/layers/position.py) agree with Keras
  in outputs, input and weight gradients; the twin saves and loads.
- Both models build for MNIST and SVHN shapes with stable layer names, take their own
  default activation, and refuse widths they cannot use.
- Both train through `experiment.run` on tiny data (tests/fakes.py) on both backends; in
  float64 the two backends' histories and weights agree to rounding (on 3,000 real MNIST
  images too, in the slow tier); a run resumes to the weights of an uninterrupted one.

Tolerances: float64 ~1e-12 (a few ulps per operation, O(1) values); float32 ~2e-6.
"""

import json

import keras
import numpy as np
import pytest

from fakes import tiny_digits
from keras_twins import assert_agree, mse, targets_like, twin_of
from numpy_ref.layers.position import PositionEmbedding as Twin
from numpy_ref.network import serialization
from tfmodels import models, parity
from tfmodels.errors import ConfigError
from tfmodels.models.sequence import PositionEmbedding
from tfmodels.run import experiment
from tfmodels.run.config import RunConfig

BACKENDS = ("tensorflow", "numpy")
# Scaled differences (max|numpy - keras| / max(1, max|keras|)): float64 rounding over a
# handful of operations is ~1e-16; float32's ~1e-7, times the few sums of a layer.
TOL = {"float64": 1e-12, "float32": 2e-6}
SMALL = {"lstm": (8,), "vit": (8, 8)}  # tiny widths: one LSTM of 8; two blocks of 8 (2 per head)


@pytest.fixture(scope="module")
def tiny_data():
    return tiny_digits(64, seed=0), tiny_digits(32, seed=1)


# -- PositionEmbedding and its twin -----------------------------------------------------

def position_model(dtype, shape=(5, 6)):
    """Dense -> PositionEmbedding -> Dense: the table's gradient and the input's both
    pass through another layer."""
    inputs = keras.Input(shape, dtype=dtype)
    x = keras.layers.Dense(shape[-1], dtype=dtype)(inputs)
    x = PositionEmbedding(stddev=0.5, dtype=dtype, name="position")(x)
    return keras.Model(inputs, keras.layers.Dense(3, dtype=dtype)(x))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_position_embedding_twin_agrees_with_keras(dtype):
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    model = position_model(dtype)
    x = rng.normal(size=(4, 5, 6)).astype(dtype)
    net = twin_of(model, mse(dtype))
    assert_agree(model, x, targets_like(net, x, rng), mse(dtype), TOL[dtype], net=net)


def test_position_embedding_gradient_is_the_batch_sum():
    """d table = sum over the batch of dout; dx = dout (a fresh array)."""
    rng = np.random.default_rng(0)
    layer = Twin(rng.normal(size=(3, 2)))
    x, dout = rng.normal(size=(4, 3, 2)), rng.normal(size=(4, 3, 2))
    np.testing.assert_array_equal(layer.forward(x), x + layer.params["embeddings"])
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx, dout)
    assert dx is not dout
    np.testing.assert_allclose(layer.grads["embeddings"], dout.sum(axis=0), rtol=1e-15)
    with pytest.raises(ValueError, match=r"table of shape \(3, 2\).*input shape \(4, 2, 3\)"):
        layer.forward(x.reshape(4, 2, 3))


def test_position_embedding_twin_saves_and_loads(tmp_path):
    keras.utils.set_random_seed(2)
    model = position_model("float64")
    net = twin_of(model, mse("float64"))
    x = np.random.default_rng(2).normal(size=(3, 5, 6))
    serialization.save_npz(net, tmp_path / "position.npz")
    loaded, _ = serialization.load_npz(tmp_path / "position.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_position_embedding_keras_file_round_trip(tmp_path):
    keras.utils.set_random_seed(3)
    model = position_model("float32")
    model.save(tmp_path / "position.keras")
    loaded = keras.models.load_model(tmp_path / "position.keras", safe_mode=True)
    x = np.random.default_rng(3).normal(size=(2, 5, 6)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    layer = loaded.get_layer("position")
    assert isinstance(layer, PositionEmbedding) and layer.stddev == 0.5


# -- the models -------------------------------------------------------------------------

@pytest.mark.parametrize("input_shape, steps, features", [((28, 28), 28, 28),
                                                          ((32, 32, 3), 32, 96)])
def test_lstm_reads_the_rows(input_shape, steps, features):
    model = models.build_model("lstm", (8, 6), input_shape=input_shape)
    first, second = model.get_layer("lstm1"), model.get_layer("lstm2")
    assert first.input.shape == (None, steps, features) and first.return_sequences
    assert second.output.shape == (None, 6) and not second.return_sequences
    assert first.activation.__name__ == "tanh"  # the model's default --activation
    assert model.output.shape == (None, 10)
    assert [v.path for v in model.weights][:3] == [
        "lstm1/lstm_cell/kernel", "lstm1/lstm_cell/recurrent_kernel", "lstm1/lstm_cell/bias"]


@pytest.mark.parametrize("input_shape, patch", [((28, 28), 7), ((32, 32, 3), 8)])
def test_vit_has_16_patch_tokens(input_shape, patch):
    model = models.build_model("vit", (8, 8), input_shape=input_shape)
    assert model.get_layer("patches").kernel_size == (patch, patch)
    assert model.get_layer("patches").strides == (patch, patch)
    assert model.get_layer("position").embeddings.shape == (16, 8)
    assert model.get_layer("block2_attention").num_heads == 4
    assert model.get_layer("block1_mlp1").activation.__name__ == "gelu"
    assert "block3_attention" not in {layer.name for layer in model.layers}
    assert model(np.zeros((2, *input_shape), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("units, match", [((8, 12), "equal"), ((6,), "multiple of its 4 heads")])
def test_vit_refuses_widths_it_cannot_use(units, match):
    with pytest.raises(ValueError, match=match):
        models.build_model("vit", units, input_shape=(28, 28))


def test_vit_dropout_regularises_attention_and_mlp():
    model = models.build_model("vit", (8, 8), input_shape=(28, 28), dropout=0.25)
    assert model.get_layer("block2_attention").dropout == 0.25
    assert [model.get_layer(f"block1_drop{i}").rate for i in (1, 2)] == [0.25, 0.25]
    plain = models.build_model("vit", (8, 8), input_shape=(28, 28))
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in plain.layers)
    assert plain.get_layer("block1_attention").dropout == 0


def test_vit_dropout_twin_follows_keras_in_training():
    """In training, with the masks Keras drew (attention weights and both MLP Dropouts),
    the twin's loss and every gradient agree with Keras to float64 rounding."""
    keras.utils.set_random_seed(3)
    model = models.build_model("vit", (8, 8), input_shape=(28, 28), dtype="float64",
                               dropout=0.3)
    x = np.random.default_rng(3).random((4, 28, 28))
    report = parity.compare(model, x, np.arange(4) % 10, training=True)
    assert report.ok, str(report)


def test_each_model_takes_its_own_default_activation():
    assert RunConfig().activation == "relu"
    assert RunConfig(model="lstm").activation == "tanh"
    assert RunConfig(model="vit").activation == "gelu"
    assert RunConfig(model="vit", activation="relu").activation == "relu"
    assert RunConfig(model_file="m.keras").activation is None  # the file's own


# -- training runs ----------------------------------------------------------------------

def run(tmp_path, data, model, backend, **settings):
    settings = {"epochs": 2, "batch_size": 16, "seed": 4, **settings}
    settings.setdefault("hidden_units", SMALL[model])  # None: the model's default sizes
    config = RunConfig(model=model, backend=backend,
                       model_dir=str(tmp_path / backend), **settings)
    return experiment.run(config, datasets_override=data)["epochs"]


def final_weights(model_dir):
    net, _ = serialization.load_npz(model_dir / "weights.npz")
    return {k: np.array(v) for k, v in net.params.items()}


@pytest.mark.parametrize("model", ["lstm", "vit"])
def test_float64_backends_train_alike(tmp_path, tiny_data, model):
    """--dtype=float64, the same start and batches: 2 epochs of 4 Adam steps on each
    backend agree to rounding (only summation orders differ). The TensorFlow run's
    model.keras (with its PositionEmbedding) loads back."""
    histories = {backend: run(tmp_path, tiny_data, model, backend, dtype="float64",
                              learning_rate=0.01) for backend in BACKENDS}
    assert histories["tensorflow"][1]["train_loss"] < histories["tensorflow"][0]["train_loss"]
    saved = json.loads((tmp_path / "numpy" / "history.json").read_text())
    assert saved["flags"]["model"] == model and len(saved["epochs"]) == 2
    assert keras.models.load_model(tmp_path / "tensorflow" / "model.keras").name == model
    for tf_entry, np_entry in zip(histories["tensorflow"], histories["numpy"]):
        for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=0, abs=1e-12), key
    tf_weights, np_weights = (final_weights(tmp_path / b) for b in BACKENDS)
    assert list(tf_weights) == list(np_weights)
    for key, weight in tf_weights.items():
        np.testing.assert_allclose(np_weights[key], weight, rtol=0, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("model", ["lstm", "vit"])
def test_a_run_resumes_to_the_same_weights(tmp_path, tiny_data, model):
    straight = run(tmp_path / "straight", tiny_data, model, "numpy", epochs=2)
    run(tmp_path / "split", tiny_data, model, "numpy", epochs=1)
    resumed = run(tmp_path / "split", tiny_data, model, "numpy", epochs=2)
    assert resumed == straight
    want, got = (final_weights(tmp_path / part / "numpy") for part in ("straight", "split"))
    for key, weight in want.items():
        np.testing.assert_array_equal(got[key], weight, err_msg=key)


def test_vit_widths_are_refused_before_training(tmp_path, tiny_data):
    with pytest.raises(ConfigError, match=r"--model=vit: .*equal.*hidden_units=\[8, 16\]"):
        run(tmp_path, tiny_data, "vit", "tensorflow", hidden_units=(8, 16))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["lstm", "vit"])
def test_float64_backends_train_alike_on_real_mnist(tmp_path, mnist_dir, model):
    """The default sizes (LSTM 128; ViT 3 blocks of 64), 2 epochs on 3,000 real images
    in float64, batch 32 (188 Adam steps): both backends' histories and weights agree to
    float64 rounding compounded over the steps. Measured test accuracy: LSTM 0.769."""
    histories = {backend: run(tmp_path, None, model, backend, dtype="float64", epochs=2,
                              batch_size=32, hidden_units=None, max_train_examples=3000,
                              data_dir=str(mnist_dir)) for backend in BACKENDS}
    for tf_entry, np_entry in zip(histories["tensorflow"], histories["numpy"]):
        for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=0, abs=1e-12), key
    tf_weights, np_weights = (final_weights(tmp_path / b) for b in BACKENDS)
    for key, weight in tf_weights.items():
        np.testing.assert_allclose(np_weights[key], weight, rtol=0, atol=1e-11, err_msg=key)
    assert histories["numpy"][-1]["test_accuracy"] > 0.7
