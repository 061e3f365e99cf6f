"""A run directory tells the truth about its run (issue 21, the probe's remaining cases).

- Settings a run cannot train with are refused in one line before any work: a seed
  outside [0, 2**32-1], a float setting that is inf or nan, an empty --model_dir.
- The evaluation files describe the weights beside them: a session that trains on
  removes them (and says so), and each records the epoch it evaluated.
- Evaluation outputs name the classes (SVHN's class 9 is the digit "0").
- history.json records which epochs ran under which settings, as manifest.json does.
- A --model_file is read once: the model is built from, and the run's copy holds, the
  same bytes, however the user's file changes meanwhile.
"""

import dataclasses
import json
import logging as py_logging
import pathlib
import re

from absl import flags
import keras
import numpy as np
import pytest

import runs
from fakes import tiny_digits
from procs import assert_fails_with, run_script
from tfmodels import data, files
from tfmodels.errors import ConfigError, Interrupted, RunDirError, WeightsFileError
from tfmodels.run import artifacts, backends, evaluation, experiment, manifest, names, rundir
from tfmodels.run import config as run_config
from tfmodels.run.config import RunConfig


def parse(*args):
    """The RunConfig train.py makes of ``args`` (absl's flag validators included)."""
    flag_values = flags.FlagValues()
    run_config.define_flags(flag_values)
    flag_values(["train.py", *args])
    return run_config.from_flags(flag_values)


# Settings refused before any work.

@pytest.mark.parametrize("seed", [-1, 2 ** 32, 2 ** 40])
def test_a_seed_outside_32_bits_is_refused_naming_the_range(seed):
    """Issue 21 (5): --seed=-1 or >= 2**32 was a traceback from NumPy's seeding."""
    with pytest.raises(flags.IllegalFlagValueError,
                       match=re.escape("--seed must be in [0, 2**32-1]")):
        parse(f"--seed={seed}")
    with pytest.raises(ConfigError, match=re.escape(f"--seed must be in [0, 2**32-1] (0 to "
                                                    f"4294967295); got {seed}")):
        RunConfig(seed=seed).validate()


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
def test_the_largest_seed_trains(tmp_path, backend):
    settings = dict(backend=backend, epochs=1, hidden_units=(8,), seed=2 ** 32 - 1,
                    model_dir=str(tmp_path / "run"))
    assert parse(*(f"--{k}={v}" if k != "hidden_units" else "--hidden_units=8"
                   for k, v in settings.items())).seed == 2 ** 32 - 1
    result = experiment.run(RunConfig(**settings),
                            datasets_override=(tiny_digits(64, 0), tiny_digits(32, 1)))
    assert [e["epoch"] for e in result["epochs"]] == [1]


FLOATS = [field.name for field in run_config.FIELDS if field.type is float]


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
@pytest.mark.parametrize("name", FLOATS)
def test_every_float_setting_must_be_finite(name, value):
    """Issue 21 (5): --weight_decay=inf was a traceback; --learning_rate=inf passed "> 0"."""
    assert set(FLOATS) >= {"learning_rate", "weight_decay", "dropout", "learning_rate_decay"}
    with pytest.raises(flags.IllegalFlagValueError,
                       match=f"--{name} must be a finite number"):
        parse(f"--{name}={value}")
    with pytest.raises(ConfigError, match=f"^--{name} must be a finite number; got {value}$"):
        RunConfig(**{name: float(value)}).validate()


def test_finite_values_still_pass_the_settings_own_checks():
    assert parse("--learning_rate=1e300", "--weight_decay=0.5").weight_decay == 0.5
    with pytest.raises(ConfigError, match="--learning_rate must be > 0; got -1.0"):
        RunConfig(learning_rate=-1.0).validate()


def test_an_empty_model_dir_is_refused():
    """Issue 21 (8): --model_dir= wrote the whole run into the current folder."""
    with pytest.raises(flags.IllegalFlagValueError, match="--model_dir must name a folder"):
        parse("--model_dir=")
    with pytest.raises(ConfigError, match="^--model_dir must name a folder .*; got ''$"):
        RunConfig(model_dir="").validate()


@pytest.mark.integration
@pytest.mark.parametrize("backend, flag, fragment", [
    ("numpy", "--seed=-1", "--seed must be in [0, 2**32-1]"),
    ("tensorflow", "--seed=4294967296", "--seed must be in [0, 2**32-1]"),
    ("numpy", "--weight_decay=inf", "--weight_decay must be a finite number"),
    ("tensorflow", "--model_dir=", "--model_dir must name a folder"),
])
def test_train_refuses_them_in_one_line(tmp_path, tiny_data_dir, backend, flag, fragment):
    proc = run_script("train.py", f"--backend={backend}", "--epochs=1", "--hidden_units=8",
                      flag, data_dir=tiny_data_dir, cwd=tmp_path)
    assert_fails_with(proc, 2, fragment)
    assert not list(tmp_path.iterdir())  # nothing written, in the current folder neither


@pytest.mark.integration
@pytest.mark.parametrize("script, args", [("evaluate.py", ()), ("predict.py", ("x.png",))])
def test_evaluate_and_predict_refuse_an_empty_model_dir(tmp_path, script, args):
    proc = run_script(script, "--model_dir=", *args, cwd=tmp_path)
    assert_fails_with(proc, 2, "--model_dir must name a training run's folder, not be empty")
    assert not list(tmp_path.iterdir())


# Evaluations: stale ones removed, the epoch recorded.

def evaluation_files(model_dir):
    return sorted(p.name for p in model_dir.iterdir() if p.name in names.evaluations(
        backends.BACKENDS))


def test_training_on_removes_the_evaluations_of_older_weights(run_copy, tiny_data_dir,
                                                              caplog):
    """Issue 21 (8): evaluation_numpy.json stayed beside newer weights without a word."""
    _, test_data = experiment.load_datasets(runs.config(run_copy, tiny_data_dir))
    result = evaluation.evaluate_run(run_copy, "numpy", test_data=test_data)
    saved = json.loads((run_copy / names.evaluation("numpy")).read_text())
    assert saved["epoch"] == result["epoch"] == 2
    assert evaluation_files(run_copy) == [names.confusion("numpy"), names.evaluation("numpy")]
    # A session that trains nothing keeps them: they still describe the final weights.
    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=2))
    assert evaluation_files(run_copy) == [names.confusion("numpy"), names.evaluation("numpy")]
    with caplog.at_level(py_logging.INFO):
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))
    assert evaluation_files(run_copy) == []
    assert (f"Removed {names.evaluation('numpy')}, {names.confusion('numpy')} from {run_copy}: "
            "they evaluated the final weights of epoch 2, and the run has trained on to epoch "
            "3; run evaluate.py again once the run is finished") in caplog.text
    again = evaluation.evaluate_run(run_copy, "numpy", test_data=test_data)
    assert again["epoch"] == 3


def test_a_session_stopped_before_removing_them_leaves_them_to_the_next(run_copy,
                                                                         tiny_data_dir,
                                                                         monkeypatch, caplog):
    """The window between the manifest's new epoch and the removal: the next session,
    which finds the run unfinished, removes them."""
    _, test_data = experiment.load_datasets(runs.config(run_copy, tiny_data_dir))
    evaluation.evaluate_run(run_copy, "numpy", test_data=test_data)
    kept = {name: (run_copy / name).read_bytes() for name in evaluation_files(run_copy)}

    def stop(self, *args):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(rundir.RunDir, "save_final", stop)
        with pytest.raises(Interrupted, match="interrupted after the last epoch"):
            experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))
    for name, content in kept.items():  # as if the process died before removing them
        (run_copy / name).write_bytes(content)
    assert not manifest.read(run_copy)["finished"]
    with caplog.at_level(py_logging.INFO):
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))
    assert evaluation_files(run_copy) == []
    assert "they evaluated older weights than the run's 3 epochs" in caplog.text


# Class names.

def test_each_data_set_names_its_classes(tmp_path):
    """SVHN's loader makes label 10 (the digit 0) class 9, labels 1..9 classes 0..8: the
    names follow the loader."""
    from scipy import io as sio  # pylint: disable=import-outside-toplevel

    assert data.DATASETS["mnist"].class_names == tuple("0123456789")
    assert data.DATASETS["svhn"].class_names == tuple("1234567890")
    assert all(kind.num_classes == 10 for kind in data.DATASETS.values())
    sio.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 3), np.uint8),
                                              "y": np.array([[1], [5], [10]], np.uint8)})
    _, classes = data.load_svhn_mat(tmp_path / "test_32x32.mat")
    assert [data.DATASETS["svhn"].class_names[k] for k in classes] == ["1", "5", "0"]


def test_svhn_evaluation_outputs_show_digits_not_indices(tmp_path, monkeypatch, caplog):
    """Issue 21 (8): SVHN's confusion matrix and per-class lists showed class indices (a '5'
    was row 4, a '0' row 9)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (48, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(48) % 10
    config = RunConfig(dataset="svhn", backend="numpy", epochs=1, hidden_units=(8,),
                       model_dir=str(tmp_path / "run"))
    experiment.run(config, datasets_override=((images, labels), (images, labels)))
    figures = []
    save_figure = artifacts.save_figure
    monkeypatch.setattr(artifacts, "save_figure",
                        lambda fig, path: (figures.append(fig.axes[0]), save_figure(fig, path)))
    with caplog.at_level(py_logging.INFO):
        result = evaluation.evaluate_run(tmp_path / "run", "numpy", test_data=(images, labels))
    digits = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
    assert result["class_names"] == digits
    assert list(result["per_class_accuracy"]) == digits
    saved = json.loads((tmp_path / "run" / names.evaluation("numpy")).read_text())
    assert list(saved["per_class_accuracy"]) == digits
    counts = np.array(result["confusion_matrix"])
    table = caplog.text.splitlines()
    assert f"    0  {counts[9].sum():>6}  {counts[9, 9]:>7}" in "\n".join(table)  # index 9
    assert any(line.startswith("true\\pred") and line.split()[1:] == digits for line in table)
    axes, = figures
    assert [t.get_text() for t in axes.get_xticklabels()] == digits
    assert [t.get_text() for t in axes.get_yticklabels()] == digits


def test_the_tables_take_the_class_names():
    counts = evaluation.confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
    assert evaluation.format_per_class(counts, ["a", "b"]).splitlines()[1:] == [
        "    a       1        1   100.00%", "    b       2        1    50.00%"]
    assert evaluation.format_confusion(counts, ["a", "b"]).splitlines() == [
        "true\\pred    a    b", "        a    1    0", "        b    1    1"]


# history.json's sessions.

def history_file(model_dir):
    return json.loads((model_dir / names.HISTORY_JSON).read_text())


def test_the_history_records_each_sessions_settings_and_epochs(run_copy, tiny_data_dir):
    """Issue 21 (1): only manifest.json said which epochs ran under which settings."""
    assert history_file(run_copy)["sessions"] == manifest.read(run_copy)["sessions"]
    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=4, steps_per_execution=3))
    saved = history_file(run_copy)
    assert saved["sessions"] == manifest.read(run_copy)["sessions"]
    assert [(s["epochs"], s["flags"]["steps_per_execution"], s["flags"]["epochs"])
            for s in saved["sessions"]] == [([1, 2], 100, 2), ([3, 4], 3, 4)]


def test_a_history_without_sessions_is_still_read(run_copy, tiny_data_dir):
    """Runs saved before history.json recorded sessions resume and evaluate."""
    path = run_copy / names.HISTORY_JSON
    old = history_file(run_copy)
    del old["sessions"]
    path.write_text(json.dumps(old))
    _, test_data = experiment.load_datasets(runs.config(run_copy, tiny_data_dir))
    assert evaluation.evaluate_run(run_copy, "numpy", test_data=test_data)["epoch"] == 2
    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))
    assert [s["epochs"] for s in history_file(run_copy)["sessions"]] == [[1, 2], [3]]


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h["sessions"][0].update(epochs=[1]), "are not those of manifest.json"),
    (lambda h: h["sessions"][0]["flags"].update(seed=7), "are not those of manifest.json"),
    (lambda h: h.update(sessions="all of them"), "is not a list of sessions"),
])
def test_an_edited_history_session_is_refused(run_copy, tiny_data_dir, edit, fragment):
    path = run_copy / names.HISTORY_JSON
    saved = history_file(run_copy)
    edit(saved)
    path.write_text(json.dumps(saved))
    with pytest.raises(RunDirError, match=re.escape(fragment)):
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))


# --model_file: read once.

def save_model(path, activation="relu", outputs=10):
    inputs = keras.Input((784,))
    x = keras.layers.Dense(16, activation=activation, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(outputs, activation="softmax",
                                                   name="out")(x))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    model.save(path)
    return path


def model_file_config(user_file, model_dir, **overrides):
    return RunConfig(**{**dict(model_file=str(user_file), model_dir=str(model_dir),
                               backend="numpy", epochs=1, seed=4), **overrides})


TINY = (tiny_digits(64, 0), tiny_digits(32, 1))


def test_a_model_file_edited_while_the_run_starts_is_not_recorded(tmp_path, monkeypatch):
    """Issue 21: the model was built from the user's file, which was then read again for
    the run's copy: an edit in between trained one model and recorded another."""
    user_file = save_model(tmp_path / "net.keras")
    built = user_file.read_bytes()
    for_training = backends.for_training

    def edit_after_building(config, steps):
        backend = for_training(config, steps)
        save_model(user_file, "sigmoid")  # the user saves another model just then
        return backend

    monkeypatch.setattr(backends, "for_training", edit_after_building)
    experiment.run(model_file_config(user_file, tmp_path / "run"), datasets_override=TINY)
    copy = tmp_path / "run" / names.MODEL_FILE
    assert copy.read_bytes() == built != user_file.read_bytes()
    assert manifest.read(tmp_path / "run")["model_file"]["sha256"] == files.sha256(copy)
    trained = keras.models.load_model(tmp_path / "run" / names.KERAS_MODEL)
    assert trained.get_layer("hidden").activation is keras.activations.relu


def test_a_refused_model_file_is_named_as_given_and_leaves_nothing(tmp_path):
    user_file = save_model(tmp_path / "net.keras", outputs=5)
    with pytest.raises(ConfigError) as refused:
        experiment.run(model_file_config(user_file, tmp_path / "run"), datasets_override=TINY)
    assert f"--model_file={user_file} has 5 outputs" in str(refused.value)
    assert "tfmodels-model-file-" not in str(refused.value)
    assert not (tmp_path / "run").exists()


def test_a_missing_model_file_is_named(tmp_path):
    with pytest.raises(WeightsFileError,
                       match=f"--model_file={tmp_path / 'gone.keras'}: no such file"):
        experiment.run(model_file_config(tmp_path / "gone.keras", tmp_path / "run"),
                       datasets_override=TINY)
    assert not (tmp_path / "run").exists()


def test_the_snapshot_is_private_and_removed(tmp_path):
    user_file = save_model(tmp_path / "net.keras")
    snapshot = rundir.read_model_file(user_file)
    assert snapshot.sha256 == files.sha256(user_file)
    config = model_file_config(user_file, tmp_path / "run")
    with rundir.building_from(config, snapshot) as build:
        private = pathlib.Path(build.model_file)
        assert private.read_bytes() == user_file.read_bytes() and private != user_file
        assert dataclasses.replace(build, model_file=config.model_file) == config
    assert not private.exists()
    with rundir.building_from(config, None) as same:
        assert same is config
