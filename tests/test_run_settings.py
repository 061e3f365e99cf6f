"""Which settings define a run, and what a run directory does with them (issues 20.1, 21).

- The default --model_dir names every setting that defines the run and is not the
  model's default, so that runs of other settings never meet in one directory.
- Resuming keeps those settings (a change is refused in one line, old -> new, with the
  ways out); the others (epochs, ...) a session may change, and the manifest records
  each session's settings with the epochs it trained.
- A finished run asked for its own epochs trains nothing and says so; for fewer, it is
  refused.
- A --model_file run keeps a copy of the file: resuming compares content, evaluation
  builds from the copy; evaluation falls back from weights.npz to model.keras.
"""

import dataclasses
import json
import logging as py_logging
import os
import pathlib
import re
import shutil

import keras
import numpy as np
import pytest

import runs
from fakes import tiny_digits
from procs import assert_fails_with, run_script
from tfmodels import files
from tfmodels.errors import RunDirError
from tfmodels.run import backends, evaluation, experiment, manifest, names
from tfmodels.run.config import DEFINING, NAME_LIMIT, SESSION, RunConfig


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``, the lock aside."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != names.LOCK}


def history(model_dir):
    return json.loads((pathlib.Path(model_dir) / names.HISTORY_JSON).read_text())["epochs"]


# The default --model_dir.

@pytest.mark.parametrize("settings, expected", [
    ({}, "mymodel-mnist-tensorflow"),
    (dict(backend="numpy", dtype="float64"), "mymodel-mnist-numpy-dtype=float64"),
    (dict(hidden_units=(512, 512)), "mymodel-mnist-tensorflow-hidden_units=512,512"),
    (dict(hidden_units=(32, 64, 128, 256)), "mymodel-mnist-tensorflow"),  # the model's own
    (dict(model="two_layer_net"), "two_layer_net-mnist-tensorflow"),
    (dict(optimizer="sgd"), "mymodel-mnist-tensorflow-optimizer=sgd"),  # sgd's own rate
    (dict(optimizer="sgd", learning_rate=0.1),
     "mymodel-mnist-tensorflow-optimizer=sgd-learning_rate=0.1"),
    (dict(mixed_precision=True, seed=3), "mymodel-mnist-tensorflow-seed=3-mixed_precision"),
    # What a later session may change leaves the directory as it is.
    (dict(epochs=3, steps_per_execution=1, jit_compile="off", device="cpu", data_dir="d"),
     "mymodel-mnist-tensorflow"),
])
def test_the_default_model_dir_names_the_settings_that_define_the_run(settings, expected):
    assert RunConfig(**settings).model_dir == os.path.join("runs", expected)


# A value other than the default for each defining setting that the stem does not name.
OTHER_VALUES = dict(hidden_units=(7,), activation="tanh", dropout=0.25, batchnorm=True,
                    weight_decay=1e-4, batch_size=16, shuffle_buffer=10, optimizer="rmsprop",
                    learning_rate=0.5, learning_rate_decay=0.9, seed=9, mixed_precision=True,
                    dtype="float64", max_train_examples=100)


def test_runs_of_other_defining_settings_never_share_a_default_model_dir():
    assert set(OTHER_VALUES) == set(DEFINING) - {"dataset", "model", "backend"}
    default = RunConfig().model_dir
    dirs = {key: RunConfig(**{key: value}).model_dir for key, value in OTHER_VALUES.items()}
    assert default not in dirs.values() and len(set(dirs.values())) == len(dirs)
    assert all(os.sep not in os.path.relpath(d, "runs") for d in dirs.values())
    # What a later session may change (SESSION) never gives another directory.
    config = RunConfig(backend="numpy", hidden_units=(8,))
    for key, value in dict(epochs=3, data_dir="x", device="cpu", jit_compile="off",
                           steps_per_execution=2, distribution_strategy="mirrored").items():
        assert key in SESSION
        assert dataclasses.replace(config, model_dir=None, **{key: value}).model_dir == \
            config.model_dir


def test_a_long_list_of_settings_stays_short_and_distinct():
    many = RunConfig(**{k: v for k, v in OTHER_VALUES.items() if k != "mixed_precision"})
    other = RunConfig(**{**{k: v for k, v in OTHER_VALUES.items() if k != "mixed_precision"},
                         "max_train_examples": 101})
    stem = "runs/mymodel-mnist-tensorflow-"
    for config in (many, other):
        assert config.model_dir.startswith(stem + "hidden_units=7-activation=tanh-")
        assert re.search(r"-more-[0-9a-f]{8}$", config.model_dir), config.model_dir
        assert len(config.model_dir) - len(stem) <= NAME_LIMIT
    assert many.model_dir != other.model_dir


def save_dense_model(path, activation="relu"):
    """A user's small functional model on flattened 28x28 images, compiled with SGD."""
    inputs = keras.Input((784,))
    x = keras.layers.Dense(16, activation=activation, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(x))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    model.save(path)
    return path


def test_a_model_files_content_names_its_default_model_dir(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = save_dense_model(tmp_path / "a" / "net.keras")
    shutil.copy(first, tmp_path / "b" / "net.keras")
    same = {RunConfig(model_file=str(folder / "net.keras")).model_dir
            for folder in (tmp_path / "a", tmp_path / "b")}
    assert len(same) == 1 and re.fullmatch(r"runs/net-mnist-tensorflow-[0-9a-f]{8}", *same)
    save_dense_model(first, "sigmoid")  # edited: another run
    assert RunConfig(model_file=str(first)).model_dir not in same


# Resuming: the settings that define a run are kept.

@pytest.mark.parametrize("change, shown", [
    (dict(learning_rate=0.5), "--learning_rate=0.001 -> 0.5"),
    (dict(batch_size=16), "--batch_size=32 -> 16"),
    (dict(seed=2), "--seed=1 -> 2"),
    (dict(max_train_examples=100), "--max_train_examples=None -> 100"),
    (dict(shuffle_buffer=10), "--shuffle_buffer=1024 -> 10"),
])
def test_a_finished_run_refuses_a_changed_setting_and_names_the_ways_out(run_copy,
                                                                         tiny_data_dir, change,
                                                                         shown):
    """Issue 21.1: it exited 0 "All epochs were already done" and recorded the new value."""
    before = snapshot(run_copy)
    for epochs in (2, 3):  # as many as the run has (finished), and more (continued)
        with pytest.raises(RunDirError) as refused:
            experiment.run(runs.config(run_copy, tiny_data_dir, epochs=epochs, **change))
        message = str(refused.value)
        assert f"--model_dir={run_copy} holds a run with other settings: {shown};" in message
        assert "pass --noresume to start anew in" in message and "another --model_dir" in message
        default = RunConfig(**{**runs.config(run_copy, tiny_data_dir).to_dict(), **change,
                               "model_dir": None}).model_dir
        assert f"(without --model_dir, these settings train in {default})" in message
    assert snapshot(run_copy) == before


@pytest.mark.integration  # the same check as above (before any epoch), on Keras
def test_a_changed_learning_rate_is_refused_on_the_tensorflow_backend(tmp_path, tiny_data_dir):
    """Issue 21.1: the restored Keras optimizer kept the old rate while the files recorded
    the new one (the NumPy backend used it): now neither backend resumes with it."""
    model_dir = tmp_path / "run"
    experiment.run(runs.config(model_dir, tiny_data_dir, backend="tensorflow", epochs=1))
    before = snapshot(model_dir)
    with pytest.raises(RunDirError, match=r"--learning_rate=0.001 -> 0.5;"):
        experiment.run(runs.config(model_dir, tiny_data_dir, backend="tensorflow", epochs=2,
                                   learning_rate=0.5))
    assert snapshot(model_dir) == before


def test_a_finished_run_asked_for_its_epochs_trains_nothing_and_says_so(run_copy,
                                                                         tiny_data_dir, caplog):
    before = snapshot(run_copy)
    with caplog.at_level(py_logging.INFO):
        result = experiment.run(runs.config(run_copy, tiny_data_dir, epochs=2))
    assert (f"The run in {run_copy} already has 2 epochs: nothing to train. Ask for "
            "--epochs=N above 2 to train on, or pass --noresume to start anew") in caplog.text
    assert "Epoch 1," not in caplog.text and [e["epoch"] for e in result["epochs"]] == [1, 2]
    assert snapshot(run_copy) == before


def test_a_run_asked_for_fewer_epochs_than_it_has_is_refused(run_copy, tiny_data_dir):
    """Issue 20.1: `--epochs=3` after a 10-epoch run exited 0 having trained nothing."""
    before = snapshot(run_copy)
    with pytest.raises(RunDirError) as refused:
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=1))
    assert str(refused.value).startswith(
        f"--model_dir={run_copy}: the run there already has 2 epochs, more than --epochs=1 "
        "asks for; ask for --epochs=2 to keep it as it is (or more to train on), or pass "
        f"--noresume to start anew in {run_copy}")
    assert snapshot(run_copy) == before


def test_the_manifest_records_each_sessions_settings_and_epochs(run_copy, tiny_data_dir):
    first = manifest.read(run_copy)
    assert [s["epochs"] for s in first["sessions"]] == [[1, 2]]
    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=4, steps_per_execution=7))
    saved = manifest.read(run_copy)
    assert [s["epochs"] for s in saved["sessions"]] == [[1, 2], [3, 4]]
    assert saved["sessions"][0] == first["sessions"][0]  # the first session's, untouched
    assert [s["flags"]["epochs"] for s in saved["sessions"]] == [2, 4]
    assert [s["flags"]["steps_per_execution"] for s in saved["sessions"]] == [100, 7]
    assert saved["flags"] == saved["sessions"][-1]["flags"]
    assert json.loads((run_copy / names.HISTORY_JSON).read_text())["flags"] == saved["flags"]


@pytest.mark.parametrize("edit", [
    lambda m: m.update(sessions={"epochs": [1]}),
    lambda m: m["sessions"][0].update(epochs=["1"]),
    lambda m: m.update(model_file={"file": "../elsewhere.keras", "sha256": "0"}),
], ids=["sessions_not_a_list", "epoch_not_an_int", "model_file_elsewhere"])
def test_an_edited_session_or_model_file_record_is_refused(run_copy, edit):
    path = run_copy / names.MANIFEST
    saved = json.loads(path.read_text())
    edit(saved)
    path.write_text(json.dumps(saved))
    with pytest.raises(RunDirError, match="not a manifest this project wrote"):
        manifest.read(run_copy)


# --model_file: the run's own copy.

@pytest.fixture(scope="module")
def tiny_data():
    return tiny_digits(128, seed=0), tiny_digits(64, seed=1)


def model_file_config(model_file, model_dir, **overrides):
    settings = dict(model_file=str(model_file), model_dir=str(model_dir), backend="numpy",
                    epochs=1, seed=4)
    return RunConfig(**{**settings, **overrides})


def test_a_model_file_edited_since_the_run_started_is_refused(tmp_path, tiny_data, caplog):
    """Issue 21.2: the same layer names and shapes with another activation was resumed."""
    user_file, model_dir = save_dense_model(tmp_path / "net.keras"), tmp_path / "run"
    original = user_file.read_bytes()
    experiment.run(model_file_config(user_file, model_dir), datasets_override=tiny_data)
    assert (model_dir / names.MODEL_FILE).read_bytes() == original
    save_dense_model(user_file, "sigmoid")
    before = snapshot(model_dir)
    with pytest.raises(RunDirError) as refused:
        experiment.run(model_file_config(user_file, model_dir, epochs=2),
                       datasets_override=tiny_data)
    copy = model_dir / names.MODEL_FILE
    now, then = (files.sha256(path)[:12] for path in (user_file, copy))
    # Issue 21 (6): the content and the run's copy are named, and the three ways out.
    assert str(refused.value).startswith(
        f"--model_dir={model_dir} holds a run with other settings: --model_file={user_file} "
        f"is not the model file the run started from: its content (SHA-256 {now}...) differs "
        f"from the run's copy {copy} (SHA-256 {then}...); pass --model_file={copy} to go on "
        f"with the model the run started from, or pass --noresume to start anew in "
        f"{model_dir} (it removes that run's files), or another --model_dir"), refused.value
    assert snapshot(model_dir) == before
    # The same content under another name resumes, and restores a lost copy.
    moved = tmp_path / "elsewhere" / "renamed.keras"
    moved.parent.mkdir()
    moved.write_bytes(original)
    (model_dir / names.MODEL_FILE).unlink()
    with caplog.at_level(py_logging.INFO):
        experiment.run(model_file_config(moved, model_dir, epochs=2), datasets_override=tiny_data)
    assert "Resuming" in caplog.text and f"--model_file='{user_file}' -> '{moved}'" in caplog.text
    assert (model_dir / names.MODEL_FILE).read_bytes() == original
    sessions = manifest.read(model_dir)["sessions"]
    assert [(s["flags"]["model_file"], s["epochs"]) for s in sessions] == [
        (str(user_file), [1]), (str(moved), [2])]


def test_evaluate_builds_a_model_file_run_from_its_own_copy(tmp_path, tiny_data, monkeypatch):
    """Issue 21.3: evaluate.py rebuilt from the user's file: after an edit it scored another
    model, after a move (or from another folder, with a relative path) it failed."""
    (tmp_path / "work").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    save_dense_model(pathlib.Path("net.keras"))
    experiment.run(model_file_config("net.keras", tmp_path / "run", epochs=2),
                   datasets_override=tiny_data)
    trained = history(tmp_path / "run")[-1]["test_accuracy"]
    save_dense_model(pathlib.Path("net.keras"), "sigmoid")  # edited since
    scores = [evaluation.evaluate_run(tmp_path / "run", "numpy", test_data=tiny_data[1])]
    os.remove("net.keras")  # gone, and evaluated from another folder
    monkeypatch.chdir(tmp_path / "elsewhere")
    scores.append(evaluation.evaluate_run(tmp_path / "run", "tensorflow",
                                          test_data=tiny_data[1]))
    (tmp_path / "run" / names.WEIGHTS).unlink()  # model.keras (the user's model's layers)
    scores.append(evaluation.evaluate_run(tmp_path / "run", "numpy", test_data=tiny_data[1]))
    assert [s["test_accuracy"] for s in scores] == [pytest.approx(trained)] * 3
    (tmp_path / "run" / names.MODEL_FILE).unlink()
    with pytest.raises(RunDirError, match=r"model_file.keras, the run's copy of its "
                                          r"--model_file, is missing, and net.keras no longer "
                                          r"holds that content either"):
        evaluation.evaluate_run(tmp_path / "run", "numpy", test_data=tiny_data[1])


# evaluate.py: the fallback to model.keras, and what it prints.

def test_evaluate_falls_back_to_model_keras_without_weights_npz(run_copy, tiny_data_dir,
                                                                 caplog):
    """Issue 21.4: "model.keras: array mymodel/dense_0/kernel is missing": a loaded model's
    variable paths lack the model's name, which the check compared."""
    _, test_data = experiment.load_datasets(runs.config(run_copy, tiny_data_dir))
    with_npz = evaluation.evaluate_run(run_copy, "numpy", test_data=test_data)
    (run_copy / names.WEIGHTS).unlink()
    with caplog.at_level(py_logging.INFO):
        without = evaluation.evaluate_run(run_copy, "numpy", test_data=test_data)
    assert without["confusion_matrix"] == with_npz["confusion_matrix"]
    assert without["test_loss"] == pytest.approx(with_npz["test_loss"], rel=1e-6)
    assert with_npz["test_accuracy"] == pytest.approx(history(run_copy)[-1]["test_accuracy"])
    # The console shows the per-class accuracy, not only the JSON.
    assert "Per-class accuracy:\nclass  images  correct  accuracy\n" in caplog.text
    counts = np.array(without["confusion_matrix"])
    for k, (name, accuracy) in enumerate(without["per_class_accuracy"].items()):
        row = f"{name:>5}  {counts[k].sum():>6}  {counts[k, k]:>7}  " + (
            "       -" if accuracy is None else f"{100 * accuracy:>7.2f}%")
        assert row in caplog.text.splitlines(), row


def test_per_class_table_by_hand():
    counts = evaluation.confusion_matrix(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]),
                                         3)
    assert evaluation.format_per_class(counts).splitlines() == [
        "class  images  correct  accuracy",
        "    0       2        1    50.00%",
        "    1       3        2    66.67%",
        "    2       0        0         -"]


def test_the_model_file_copy_is_one_of_the_runs_own_files():
    assert names.is_own_file(None, names.MODEL_FILE, backends.BACKENDS)


# Through train.py: the default directory, printed; the one-line clash.

@pytest.mark.integration
def test_the_readme_commands_no_longer_collide(tmp_path, tiny_data_dir):
    """Issue 20.1, with the default --model_dir (relative to the working directory)."""
    base = ("--backend=numpy", "--epochs=1", "--hidden_units=8")

    def train(*extra):
        return run_script("train.py", *base, *extra, cwd=tmp_path, data_dir=tiny_data_dir)

    first = train()
    assert first.returncode == 0, first.stderr[-3000:]
    assert "New run in runs/mymodel-mnist-numpy-hidden_units=8\n" in first.stderr
    other = train("--dtype=float64")
    assert other.returncode == 0, other.stderr[-3000:]
    assert "New run in runs/mymodel-mnist-numpy-hidden_units=8-dtype=float64\n" in other.stderr
    clash = train("--model_dir=runs/mymodel-mnist-numpy-hidden_units=8", "--learning_rate=0.5")
    assert_fails_with(clash, 4, "--learning_rate=0.001 -> 0.5", "--noresume",
                      "another --model_dir", "runs/mymodel-mnist-numpy-hidden_units=8-"
                      "learning_rate=0.5")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "mymodel-mnist-numpy-hidden_units=8", "mymodel-mnist-numpy-hidden_units=8-dtype=float64"]

