"""A run's model.keras is usable on its own: plain ``keras.models.load_model`` reads it
(the dense stacks and convnets with no tfmodels import at all, the ViT after
``import tfmodels``), compiled with the optimizer the run trained with, holding its
state, and the run's loss, so that ``model.optimizer``, ``evaluate`` and ``fit`` go on
from the run.
"""

import json
import logging as py_logging
import subprocess
import sys

import keras
import numpy as np
import pytest

import procs
from fakes import tiny_digits
from tfmodels import models, parity
from tfmodels.optimizers import OPTIMIZERS
from tfmodels.run import artifacts, experiment
from tfmodels.run.backend_numpy import NumpyBackend
from tfmodels.run.config import RunConfig
from tfmodels.run.keras_model import (build_model, checked_twin, compiled, portable,
                                      save_keras_model, training_setup)


# --- in this process (the fast tier) --------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "mixed_float16"])
@pytest.mark.parametrize("name, options", [
    ("mymodel", dict(hidden_units=(8, 6), dropout=0.2, batchnorm=True, weight_decay=1e-3)),
    ("two_layer_net", dict(hidden_units=(5,)))])
def test_a_dense_stack_is_saved_as_keras_layers_computing_the_same_bits(tmp_path, name, options,
                                                                        dtype):
    if dtype == "mixed_float16":  # as a --mixed_precision run: the global policy
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(dtype)
        try:
            model = models.build_model(name, num_classes=10, input_shape=(28, 28), **options)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        assert model.classifier.dtype_policy.name == "float32"
        assert model.dtype_policy.name == "mixed_float16"
    else:
        model = models.build_model(name, num_classes=10, input_shape=(28, 28), dtype=dtype,
                                   **options)
    x = np.random.default_rng(0).random((7, 28, 28)).astype(np.float32)
    for variable in model.non_trainable_variables:  # moving statistics away from 0 and 1
        variable.assign(np.full(variable.shape, 0.3, variable.dtype))
    optimizer = keras.optimizers.Adam(0.01)
    if dtype == "mixed_float16":  # as the TensorFlow backend wraps it
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    compiled(model, optimizer)
    path = tmp_path / "model.keras"
    save_keras_model(model, path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is keras.Sequential and loaded.name == name
    assert all(type(layer).__module__.startswith("keras.") for layer in loaded.layers)
    # The same variables, in the same order (a loaded model's paths start at its layers).
    assert [v.path for v in portable(model).weights] == [v.path for v in model.weights]
    assert [v.path for v in loaded.weights] == [v.path.split("/", 1)[1] for v in model.weights]
    for copy in (portable(model), loaded):
        np.testing.assert_array_equal(copy(x, training=False), model(x, training=False))
    assert type(loaded.optimizer) is type(optimizer)
    assert bool(loaded.losses) == ("weight_decay" in options)


def test_the_finished_runs_model_file_is_compiled_with_the_optimizers_state(finished_run,
                                                                          tiny_data_dir):
    """The NumPy run of runs.FLAGS (Adam, 2 epochs of 256 tiny digits in batches of 32)."""
    model = keras.models.load_model(finished_run / "model.keras")
    assert type(model.optimizer).__name__ == "Adam"
    assert int(model.optimizer.iterations.numpy()) == 2 * 256 // 32
    assert all(np.any(v.numpy() != 0) for v in model.optimizer.variables[2:])  # m and v slots
    with np.load(tiny_data_dir / "mnist.npz") as files:
        x, y = files["x_test"].astype(np.float32) / 255, files["y_test"]
    result = model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)
    history = json.loads((finished_run / "history.json").read_text())["epochs"][-1]
    assert result["loss"] == pytest.approx(history["test_loss"], rel=1e-5)
    assert result["accuracy"] == pytest.approx(history["test_accuracy"], abs=1e-9)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_the_numpy_backend_hands_its_optimizer_state_to_the_keras_file(tmp_path, optimizer,
                                                                       caplog):
    """Two NumPy steps, then model.keras: its optimizer holds the twin's state, for every
    optimizer (a state that did not fit would be a warning and a fresh optimizer)."""
    config = RunConfig(backend="numpy", optimizer=optimizer, hidden_units=(4,), seed=0,
                       weight_decay=1e-3 if optimizer == "adamw" else 0.0)
    runner = NumpyBackend(config)
    x, y = tiny_digits(8, 0)
    for _ in range(2):
        runner.stepper.train_step(x.astype(np.float32) / 255, y)
    with caplog.at_level(py_logging.WARNING):
        save_keras_model(runner.keras_model(), tmp_path / "model.keras")
    assert "not its state" not in caplog.text
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is type(runner.keras_optimizer)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    state = parity.twin_optimizer(loaded.optimizer).get_state()
    expected = runner.optimizer.get_state()
    assert len(state) == len(expected)  # iterations and the slots (SGD: none)
    for (key, value), (expected_key, expected_value) in zip(sorted(state.items()),
                                                            sorted(expected.items())):
        assert key.split("/")[-2:] == expected_key.split("/")[-2:]  # loaded paths: no model
        np.testing.assert_array_equal(value, expected_value)


def test_a_legacy_h5_model_file_is_built_set_up_and_twinned(tmp_path):
    """``model.save("m.h5")`` (Keras's legacy HDF5 format) was "not a complete .keras
    archive ... truncated or damaged"; it loads (safe mode), with its compiled optimizer
    and loss, and its twin computes what it does."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "m.h5")
    config = RunConfig(model_file=str(tmp_path / "m.h5"), seed=0)
    built = build_model(config)
    optimizer, loss = training_setup(config, built)
    assert type(optimizer).__name__ == "SGD"
    assert float(optimizer.learning_rate) == pytest.approx(0.05)
    x = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(built(x), model(x))
    np.testing.assert_allclose(checked_twin(config, built, loss).predict(x), model(x),
                               rtol=1e-5, atol=1e-7)


# --- fresh processes: what a user's own script sees ---------------------------------------

LOAD = """
import json, sys
{before}
import keras, numpy as np
results = {{"tfmodels imported at first": "tfmodels" in sys.modules}}
for name in sys.argv[2:]:
    if name == "import tfmodels":  # from here on, with tfmodels imported after Keras
        import tfmodels
        continue
    try:
        model = keras.models.load_model(f"{{sys.argv[1]}}/{{name}}/model.keras")
    except Exception as e:
        results.setdefault(name, []).append({{"error": str(e)}})
        continue
    data = np.load(f"{{sys.argv[1]}}/mnist.npz")
    x = data["x_test"].astype(model.inputs[0].dtype) / 255
    evaluated = model.evaluate(x, data["y_test"], batch_size=len(x), verbose=0,
                               return_dict=True)
    np.savez(f"{{sys.argv[1]}}/{{name}}-optimizer.npz",
             *[v.numpy() for v in model.optimizer.variables])
    results.setdefault(name, []).append({{
        "class": type(model).__name__, "optimizer": type(model.optimizer).__name__,
        "learning_rate": float(model.optimizer.learning_rate.numpy()),
        "iterations": int(model.optimizer.iterations.numpy()), **evaluated}})
print(json.dumps(results))
"""

DENSE = dict(model="mymodel", hidden_units=(8,), batchnorm=True, dtype="float64",
             learning_rate=0.01)
RUNS = {"dense-numpy": dict(DENSE, backend="numpy"),
        "dense-tensorflow": dict(DENSE, backend="tensorflow"),
        "vit-tensorflow": dict(model="vit", hidden_units=(8,), backend="tensorflow")}


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_data_dir):
    root = tmp_path_factory.mktemp("model_files")
    (root / "mnist.npz").write_bytes((tiny_data_dir / "mnist.npz").read_bytes())
    for name, settings in RUNS.items():
        experiment.run(RunConfig(epochs=1, seed=3, data_dir=str(root),
                                 model_dir=str(root / name), **settings))
    return root


def load_in_fresh_python(root, before, *names):
    code = LOAD.format(before=before)
    proc = subprocess.run([sys.executable, "-c", code, str(root), *names],
                          env=procs.child_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def final_epoch(root, name):
    return json.loads((root / name / "history.json").read_text())["epochs"][-1]


def assert_vit_loaded(result, root):
    assert result.get("class") == "Functional" and result["optimizer"] == "Adam", result
    history = final_epoch(root, "vit-tensorflow")
    assert result["loss"] == pytest.approx(history["test_loss"], rel=1e-5)


@pytest.mark.integration
def test_runs_load_with_no_import_compiled_as_trained_and_the_vit_after_import_tfmodels(
        runs_root):
    results = load_in_fresh_python(runs_root, "", "dense-numpy", "dense-tensorflow",
                                   "vit-tensorflow", "import tfmodels", "vit-tensorflow")
    assert results["tfmodels imported at first"] is False
    for name in ("dense-numpy", "dense-tensorflow"):
        result, = results[name]
        assert result["class"] == "Sequential" and result["optimizer"] == "Adam", result
        assert result["learning_rate"] == pytest.approx(0.01)
        assert result["iterations"] == 256 // 32
        history = final_epoch(runs_root, name)
        # Keras saves no loss dtype: the loaded float64 model's loss is computed in float32.
        assert result["loss"] == pytest.approx(history["test_loss"], rel=1e-6)
        assert result["accuracy"] == pytest.approx(history["test_accuracy"], abs=1e-9)
    # The ViT's PositionEmbedding is the project's own layer: it needs `import tfmodels`,
    # here after Keras was loaded.
    without, after_import = results["vit-tensorflow"]
    assert "PositionEmbedding" in without["error"]
    assert_vit_loaded(after_import, runs_root)
    # The TensorFlow run's optimizer state is the one its last checkpoint holds...
    checkpoint = np.load(list(artifacts.checkpoint_paths(runs_root / "dense-tensorflow")
                              .values())[-1])
    saved = np.load(runs_root / "dense-tensorflow-optimizer.npz")
    assert len(saved.files) == sum(k.startswith("optimizer/") for k in checkpoint.files) > 2
    for i in range(len(saved.files)):
        np.testing.assert_array_equal(saved[f"arr_{i}"], checkpoint[f"optimizer/{i:03d}"])
    # ... and the NumPy run's, its twin in float64, agrees with it to rounding.
    twin = np.load(runs_root / "dense-numpy-optimizer.npz")
    for i in range(len(saved.files)):
        np.testing.assert_allclose(twin[f"arr_{i}"], saved[f"arr_{i}"], rtol=1e-8, atol=1e-12)


@pytest.mark.integration
def test_the_vit_loads_with_tfmodels_imported_before_keras(runs_root):
    """``import tfmodels`` does not load Keras; its classes are registered when Keras is."""
    results = load_in_fresh_python(runs_root, "import tfmodels", "vit-tensorflow")
    assert results["tfmodels imported at first"] is True
    assert_vit_loaded(results["vit-tensorflow"][0], runs_root)
