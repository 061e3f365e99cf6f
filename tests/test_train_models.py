"""Every model kind, the MLP options and a user's model file through a whole training run.

Tiny data (the bright-bar digits of tests/fakes.py) so that each run takes seconds; the
real-MNIST runs are marked slow. Both backends start from the same weights and read the
same batches, so in float32 their histories agree to float32 rounding.
"""

import json

import keras
import numpy as np
import pytest

import procs
from fakes import tiny_digits
from untwinned import Cube
from tfmodels import models, optimizers
from tfmodels.errors import ConfigError, WeightsFileError
from tfmodels.run import experiment, keras_model
from tfmodels.run.config import RunConfig

BACKENDS = ("tensorflow", "numpy")
# float32 on both backends, the same start and batches, different summation orders:
# ~1e-7 relative per operation, compounding over the steps of two epochs.
HISTORY_RTOL = 1e-3


@pytest.fixture(scope="module")
def tiny_data():
    return tiny_digits(96, seed=0), tiny_digits(48, seed=1)


@pytest.fixture(scope="module")
def tiny_svhn():
    """SVHN-shaped colour images (32, 32, 3): the bars of tiny_digits in the green channel."""
    def colour(x, y):
        images = np.zeros((len(x), 32, 32, 3), np.uint8)
        images[:, 2:30, 2:30, 1] = x
        return images, y
    return colour(*tiny_digits(64, seed=2)), colour(*tiny_digits(32, seed=3))


def run_both(tmp_path, data, **settings):
    """{backend: history entries} of one config trained by each backend."""
    return {backend: experiment.run(
        RunConfig(backend=backend, epochs=2, batch_size=16, seed=4,
                  model_dir=str(tmp_path / backend), **settings), datasets_override=data)["epochs"]
            for backend in BACKENDS}


def assert_histories_agree(histories):
    for tf_entry, np_entry in zip(histories["tensorflow"], histories["numpy"]):
        for key in ("train_loss", "test_loss"):
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=HISTORY_RTOL), key


@pytest.mark.parametrize("model", ["simple_convnet", "deep_convnet"])
def test_convnets_train_alike_on_both_backends(tmp_path, tiny_data, model):
    histories = run_both(tmp_path, tiny_data, model=model)
    if model != "deep_convnet":  # its dropout masks are each backend's own draws
        assert_histories_agree(histories)
    for backend in BACKENDS:
        saved = json.loads((tmp_path / backend / "history.json").read_text())
        assert saved["flags"]["model"] == model and len(saved["epochs"]) == 2
        assert (tmp_path / backend / "weights.npz").is_file()


def test_float64_convnet_metrics_are_not_rounded_to_float32(tmp_path, tiny_data):
    """A float64 functional model's metrics accumulate in float64 (Keras's functional
    Model takes no dtype; the model's policy is set), so the backends agree to float64
    rounding compounded over 12 steps, far below float32's 6e-8 relative spacing."""
    assert models.build_model("simple_convnet", dtype="float64",
                              input_shape=(28, 28)).dtype_policy.name == "float64"
    histories = run_both(tmp_path, tiny_data, model="simple_convnet", hidden_units=(16,),
                         dtype="float64")
    for tf_entry, np_entry in zip(histories["tensorflow"], histories["numpy"]):
        for key in ("train_loss", "test_loss"):
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=1e-12, abs=0), key


def test_a_decaying_learning_rate_steps_alike_on_both_backends(tmp_path, tiny_data):
    """--learning_rate_decay=0.5: the rate halves after each epoch (6 steps of 16 here) on
    both backends, whose float64 histories then agree to rounding; the run differs from
    one at a constant rate from epoch 2 on."""
    settings = dict(model="two_layer_net", hidden_units=(16,), dtype="float64",
                    learning_rate=0.05, optimizer="sgd")
    decayed = run_both(tmp_path / "decayed", tiny_data, learning_rate_decay=0.5, **settings)
    for tf_entry, np_entry in zip(decayed["tensorflow"], decayed["numpy"]):
        for key in ("train_loss", "test_loss"):
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=1e-12), key
    constant = run_both(tmp_path / "constant", tiny_data, **settings)["tensorflow"]
    assert constant[0]["train_loss"] == decayed["tensorflow"][0]["train_loss"]
    assert constant[1]["train_loss"] != decayed["tensorflow"][1]["train_loss"]


def test_the_decay_is_keras_exponential_decay_per_epoch():
    config = RunConfig(learning_rate=0.01, learning_rate_decay=0.5)
    model = models.build_model("two_layer_net", (4,), input_shape=(28, 28))
    optimizer, _ = keras_model.training_setup(config, model, steps_per_epoch=6)
    optimizer.build(model.trainable_variables)
    for iterations, rate in ((0, 0.01), (5, 0.01), (6, 0.005), (13, 0.0025)):
        optimizer.iterations.assign(iterations)
        assert float(optimizer.learning_rate) == pytest.approx(rate, rel=1e-7)
    constant, _ = keras_model.training_setup(config, model)  # evaluation: no steps
    assert float(constant.learning_rate) == pytest.approx(0.01, rel=1e-7)
    with pytest.raises(ConfigError, match="learning_rate_decay"):
        RunConfig(learning_rate_decay=0.0).validate()


@pytest.mark.parametrize("optimizer", optimizers.OPTIMIZER_NAMES)
def test_every_optimizer_trains_alike_on_both_backends(tmp_path, tiny_data, optimizer):
    # float64: the twin of each Keras optimizer steps exactly as Keras does, so the two
    # backends' histories agree to float64 rounding compounded over 12 steps.
    histories = run_both(tmp_path, tiny_data, model="two_layer_net", hidden_units=(16,),
                         optimizer=optimizer, dtype="float64")
    for tf_entry, np_entry in zip(histories["tensorflow"], histories["numpy"]):
        for key in ("train_loss", "test_loss"):
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=1e-9), key


@pytest.mark.parametrize("model", ["simple_convnet", "mymodel"])
def test_svhn_shaped_colour_images(tmp_path, tiny_svhn, model):
    histories = run_both(tmp_path, tiny_svhn, model=model, dataset="svhn")
    assert_histories_agree(histories)


@pytest.mark.parametrize("options", [dict(dropout=0.3), dict(batchnorm=True),
                                     dict(weight_decay=1e-3),
                                     dict(dropout=0.2, batchnorm=True, weight_decay=1e-4)],
                         ids=["dropout", "batchnorm", "weight_decay", "all"])
def test_mlp_options_on_both_backends(tmp_path, tiny_data, options):
    histories = run_both(tmp_path, tiny_data, model="two_layer_net", hidden_units=(16,),
                         **options)
    if "dropout" not in options:  # each backend draws its own dropout masks
        assert_histories_agree(histories)
    model = keras.models.load_model(tmp_path / "tensorflow" / "model.keras")
    layers = {type(layer).__name__ for layer in model.layers}
    assert ("Dropout" in layers) == ("dropout" in options)
    assert ("BatchNormalization" in layers) == ("batchnorm" in options)
    assert bool(model.losses) == ("weight_decay" in options)


def test_mlp_options_are_refused_for_a_convnet(tmp_path):
    with pytest.raises(ConfigError, match="--dropout applies to --model=mymodel or "
                                          "two_layer_net or vit, not --model=simple_convnet"):
        RunConfig(model="simple_convnet", dropout=0.5, model_dir=str(tmp_path)).validate()


def save_user_model(path, loss="sparse_categorical_crossentropy", input_shape=(28, 28, 1),
                    extra=None):
    """A small functional CNN of a user's, compiled, saved as .keras."""
    inputs = keras.Input(input_shape)
    x = inputs if len(input_shape) == 3 else keras.layers.Reshape((28, 28, 1))(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    if extra is not None:
        x = extra(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    model.compile(loss=loss, optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.save(path)
    return path


@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy"])
def test_a_users_model_file_trains_on_both_backends(tmp_path, tiny_data, loss):
    path = save_user_model(tmp_path / "mine.keras", loss)
    histories = run_both(tmp_path, tiny_data, model_file=str(path))
    assert_histories_agree(histories)
    assert histories["numpy"][-1]["test_accuracy"] > 0.5
    saved = json.loads((tmp_path / "numpy" / "history.json").read_text())["flags"]
    assert saved["model_file"] == str(path) and saved["optimizer"] is None  # the file's SGD


def test_a_model_file_of_another_input_size_is_refused(tmp_path, tiny_data):
    path = save_user_model(tmp_path / "wide.keras", input_shape=(32, 32, 3))
    config = RunConfig(model_file=str(path), model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"takes inputs of shape \[\(32, 32, 3\)\].*mnist "
                                          r"image \(28, 28\)"):
        experiment.run(config, datasets_override=tiny_data)


def test_a_model_file_with_a_layer_without_twin_is_refused_before_training(tmp_path, tiny_data):
    path = save_user_model(tmp_path / "noisy.keras", extra=lambda x: Cube(name="cube")(x))
    for backend in BACKENDS:
        config = RunConfig(model_file=str(path), backend=backend,
                           model_dir=str(tmp_path / backend))
        with pytest.raises(WeightsFileError, match=r"noisy.keras: Keras layer 'cube' "
                                                   r"\(untwinned.Cube\) has no NumPy twin"):
            experiment.run(config, datasets_override=tiny_data)
        assert not (tmp_path / backend / "checkpoints").exists()  # no epoch was trained


@pytest.mark.integration
def test_model_file_through_the_cli(tmp_path, tiny_data_dir):
    path = save_user_model(tmp_path / "mine.keras", input_shape=(784,))
    run = tmp_path / "run"
    proc = procs.run_script("train.py", f"--model_file={path}", "--backend=numpy",
                            "--epochs=1", f"--model_dir={run}", data_dir=tiny_data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The run ends with a summary: accuracy, time, where the files are, how to evaluate.
    assert "Done: test accuracy" in proc.stderr and f"Files: {run}" in proc.stderr
    assert f"scripts/evaluate.py --model_dir={run} --backend=tensorflow" in proc.stderr
    evaluated = procs.run_script("evaluate.py", f"--model_dir={run}", "--backend=tensorflow",
                                 data_dir=tiny_data_dir)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    refused = procs.run_script("train.py", f"--model_file={path}", "--hidden_units=8",
                               f"--model_dir={tmp_path / 'other'}", data_dir=tiny_data_dir)
    procs.assert_fails_with(refused, 2, "--model_file brings its own architecture",
                            "--hidden_units")


def test_the_model_registry_declares_each_kind_once():
    for name, kind in models.MODELS.items():
        model = models.build_model(name, input_shape=(28, 28))
        assert model.name == name and model.built
        assert all(path.count("/") >= 1 for path in (v.path for v in model.weights))
        assert model(np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.parametrize("model, epochs, examples, floor", [
    ("simple_convnet", 1, 12_000, 0.85), ("deep_convnet", 2, 12_000, 0.9)])
def test_convnets_learn_real_mnist(tmp_path, mnist_dir, model, epochs, examples, floor):
    """Short real runs (TensorFlow backend): measured 0.888 (the book's small initial
    weights start slowly) and 0.941 (its two dropouts slow the first epoch down)."""
    config = RunConfig(model=model, data_dir=str(mnist_dir), epochs=epochs, batch_size=100,
                       max_train_examples=examples, model_dir=str(tmp_path / "run"))
    assert experiment.run(config)["epochs"][-1]["test_accuracy"] > floor


@pytest.fixture(scope="module")
def svhn_dir(tmp_path_factory):
    """train_32x32.mat and test_32x32.mat in the Stanford layout (X (32, 32, 3, N) uint8,
    y (N, 1) labels 1..10), written as the benchmark writes full-size ones."""
    from benchmarking.pipeline import write_svhn_mat  # pylint: disable=import-outside-toplevel

    folder = tmp_path_factory.mktemp("svhn")
    write_svhn_mat(folder / "train_32x32.mat", 96, seed=0)
    write_svhn_mat(folder / "test_32x32.mat", 32, seed=1)
    return folder


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_every_model_trains_on_svhn_files(tmp_path, svhn_dir, model):
    """From the .mat files through the loader, one epoch on the NumPy backend."""
    config = RunConfig(model=model, dataset="svhn", data_dir=str(svhn_dir), backend="numpy",
                       epochs=1, batch_size=32, model_dir=str(tmp_path / "run"))
    entry = experiment.run(config)["epochs"][-1]
    assert np.isfinite(entry["train_loss"]) and 0 <= entry["test_accuracy"] <= 1


@pytest.mark.parametrize("model", sorted(models.MODELS))
def test_every_model_and_its_twin_agree_on_the_real_svhn_crops(svhn_sample_file, model):
    """The four real crops, scaled as the pipeline scales them, through each model in
    float64 and its twin (compare: every layer agrees)."""
    from tfmodels import data, parity  # pylint: disable=import-outside-toplevel

    images, labels = data.load_svhn_mat(svhn_sample_file)
    keras.utils.set_random_seed(0)
    model = models.build_model(model, dtype="float64", input_shape=images.shape[1:])
    report = parity.compare(model, data.scale_images(images, np.float64), labels)
    assert report.ok, report


@pytest.mark.slow
def test_a_saved_mobilenet_v2_trains_from_its_file_on_both_backends(tmp_path, tiny_svhn):
    """keras.applications through --model_file: depthwise convolutions, ReLU6, batch
    normalization in training mode, on SVHN-shaped images; each backend trains 4 steps.
    Their losses are not compared: in float32, at 32x32 and batch 16, the deep batch
    normalizations make the run chaotic (Keras against itself with a moved input parts
    as much; tests/test_twin_training_resnet.py)."""
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    path = tmp_path / "mobilenet_v2.keras"
    model.save(path)
    for backend in BACKENDS:
        history = experiment.run(
            RunConfig(model_file=str(path), dataset="svhn", backend=backend, epochs=1,
                      batch_size=16, model_dir=str(tmp_path / backend)),
            datasets_override=tiny_svhn)["epochs"]
        assert len(history) == 1 and np.isfinite(history[0]["train_loss"]), backend
