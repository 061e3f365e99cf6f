"""Run directories never mix, lose or misreport results (issue 10, cases 1-8).

Each case of the issue is a test here, through the scripts where the one
line and the exit code are the point. Most start from ``run_copy``, a copy
of a finished two-epoch NumPy run of ``runs.FLAGS`` on tiny digits.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import procs
import runs
from procs import assert_fails_with, run_script, run_with_fault
from tfmodels.errors import Interrupted, RunDirError, WeightsFileError
from tfmodels.run import (artifacts, backends, evaluation, experiment, keras_model, lock, manifest,
                          names, rundir)


def snapshot(folder):
    """{relative path: bytes} of every file under ``folder``, the lock aside."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != names.LOCK}


def history_epochs(model_dir):
    return [e["epoch"] for e in json.loads((model_dir / names.HISTORY_JSON).read_text())["epochs"]]


def rewrite_checkpoint(path, change):
    """Replaces the .npz at ``path`` by ``change(arrays)``'s arrays."""
    with np.load(path) as loaded:
        arrays = dict(loaded)
    change(arrays)
    np.savez(path, **arrays)


# Case 1: two processes on one --model_dir.

def test_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    with lock.held(tmp_path):
        with pytest.raises(RunDirError) as refused:
            with lock.held(tmp_path):
                pass
    message = str(refused.value)
    assert f"pid {os.getpid()} on {socket.gethostname()}" in message
    assert "started" in message and "another --model_dir" in message
    with lock.held(tmp_path):  # released by the first block
        pass


@pytest.mark.integration
def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tfmodels.run import lock\n"
         f"with lock.held({str(tmp_path)!r}):\n print('held', flush=True); time.sleep(60)"],
        env=procs.child_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"pid {holder.pid} "):
            with lock.held(tmp_path):
                pass
    finally:
        holder.kill()
        holder.communicate()
    with lock.held(tmp_path):  # the kernel released the killed process's lock
        pass


def test_a_lock_file_removed_under_a_waiting_process_is_not_trusted(tmp_path, monkeypatch):
    """A process that opened the lock file just before its holder removed it
    must not take the lock on the removed file: it retries on a new one."""
    path = tmp_path / names.LOCK
    path.touch()
    stale = os.open(path, os.O_RDWR)
    path.unlink()  # what a holder releasing a run that never began does
    real_open, opened = os.open, []

    def open_stale_first(*args, **kwargs):
        opened.append(args[0])
        return stale if len(opened) == 1 else real_open(*args, **kwargs)

    monkeypatch.setattr(lock.os, "open", open_stale_first)
    with lock.held(tmp_path):
        assert len(opened) == 2 and path.is_file()  # retried on a file of its own


@pytest.mark.integration
def test_a_second_run_on_the_same_model_dir_is_refused(tmp_path, tiny_data_dir):
    model_dir, flag = tmp_path / "run", tmp_path / "flag"
    paused, go = tmp_path / "flag.paused", tmp_path / "flag.go"
    first = subprocess.Popen(
        [sys.executable, str(procs.FAULT_RUNS), "pause_mid_epoch", "1", "2", str(flag), "--",
         *runs.flags(model_dir, "--epochs=1")], env=procs.script_env(tiny_data_dir),
        cwd=procs.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not paused.exists() and first.poll() is None:
            assert time.monotonic() < deadline, "the first run never reached epoch 1, step 2"
            time.sleep(0.05)
        assert first.poll() is None, first.stdout.read()[-3000:]
        # Case 2 too: a refused process touches nothing, not even a temporary
        # file of the running one's.
        in_flight = model_dir / ".history.json.a1b2c3d4.tmp"
        in_flight.write_text("being written by the first run")
        second = run_script("train.py", *runs.flags(model_dir, "--epochs=1",
                                                    "--learning_rate=0.01"),
                            data_dir=tiny_data_dir)
        line = assert_fails_with(second, 4, f"pid {first.pid} on {socket.gethostname()}",
                                 "train.py", "started", "in use")
        assert "Epoch 1," not in second.stderr and in_flight.exists(), line
        reader = run_script("evaluate.py", f"--model_dir={model_dir}", "--backend=numpy",
                            data_dir=tiny_data_dir)
        assert_fails_with(reader, 4, f"pid {first.pid}", "in use")
        in_flight.unlink()
    finally:
        go.touch()
        output = first.communicate(timeout=240)[0]
    assert first.returncode == 0, output[-3000:]
    # The directory holds the first run only, and evaluate reports it.
    assert manifest.read(model_dir)["flags"]["learning_rate"] == 0.001
    evaluated = run_script("evaluate.py", f"--model_dir={model_dir}", "--backend=numpy",
                           data_dir=tiny_data_dir)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    history = json.loads((model_dir / names.HISTORY_JSON).read_text())["epochs"]
    results = json.loads((model_dir / names.evaluation("numpy")).read_text())
    assert results["test_accuracy"] == pytest.approx(history[-1]["test_accuracy"])


# Case 2: cleaning up temporary files.

OWN_TEMPORARIES = (".history.json.a1b2c3d4.tmp", "checkpoints/.ckpt-0003.npz.x_9y8z7w.tmp",
                   ".model.tmp-4242.keras", ".manifest.json.qwertyui.tmp")
FOREIGN_FILES = (".notes.txt.a1b2c3d4.tmp", ".mydata.tmp", "checkpoints/.x.tmp",
                 "checkpoints/notes.txt", "notes.txt", "tensorboard/mine.txt")


def plant(model_dir, relative_paths):
    for relative in relative_paths:
        path = model_dir / relative
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"planted {relative}")


def test_only_own_temporaries_are_removed_and_only_by_a_run_that_goes_ahead(run_copy,
                                                                          tiny_data_dir):
    plant(run_copy, OWN_TEMPORARIES + FOREIGN_FILES)
    with pytest.raises(RunDirError, match="other settings"):
        experiment.run(runs.config(run_copy, tiny_data_dir, model="two_layer_net"))
    assert all((run_copy / p).exists() for p in OWN_TEMPORARIES + FOREIGN_FILES)

    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))
    assert not any((run_copy / p).exists() for p in OWN_TEMPORARIES)
    assert all((run_copy / p).read_text() == f"planted {p}" for p in FOREIGN_FILES)


def test_keras_temporary_pattern_matches_save_keras_model(tmp_path, monkeypatch):
    """names.KERAS_TEMPORARY must match what keras_model.save_keras_model creates."""

    class Model:  # records where save_keras_model asks it to save
        def save(self, path):
            self.path = path
            path.write_bytes(b"model")

    model = Model()
    keras_model.save_keras_model(model, tmp_path / names.KERAS_MODEL)
    assert names.is_own_temporary(None, model.path.name, backends.BACKENDS), model.path.name


def test_every_backends_evaluation_files_are_own_names_and_nothing_else_is():
    """The evaluation files of the backends there are, and no look-alike of the user's."""
    for backend in backends.BACKENDS:
        for name in (names.evaluation(backend), names.confusion(backend)):
            assert names.is_own_file(None, name, backends.BACKENDS)
            assert not names.is_own_file(None, f"my_{name}", backends.BACKENDS)
    for name in ("evaluation_notes.txt", "evaluation_mine.json", "confusion_mine.png"):
        assert not names.is_own_file(None, name, backends.BACKENDS)


def test_noresume_leaves_a_users_look_alike_evaluation_file(run_copy, tiny_data_dir):
    (run_copy / "evaluation_mine.json").write_text("{}")
    (run_copy / names.evaluation("numpy")).write_text("{}")
    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=1, resume=False))
    assert (run_copy / "evaluation_mine.json").read_text() == "{}"
    assert not (run_copy / names.evaluation("numpy")).exists()


# Case 3: --noresume.

def test_noresume_removes_only_the_projects_files_and_says_which(run_copy, tiny_data_dir,
                                                                  caplog):
    plant(run_copy, FOREIGN_FILES)
    (run_copy / "checkpoints" / "mine").mkdir()
    caplog.set_level("INFO")
    experiment.run(runs.config(run_copy, tiny_data_dir, epochs=1, resume=False))
    assert all((run_copy / p).read_text() == f"planted {p}" for p in FOREIGN_FILES)
    assert (run_copy / "checkpoints" / "mine").is_dir()
    removed = [r.getMessage() for r in caplog.records if "--noresume: removed" in r.getMessage()]
    assert len(removed) == 1
    for name in ("history.json", "weights.npz", "manifest.json", "checkpoints/ckpt-0002.npz"):
        assert name in removed[0]
    assert "notes.txt" not in removed[0] and "mine" not in removed[0]
    assert sorted(artifacts.checkpoint_paths(run_copy)) == [1]
    assert history_epochs(run_copy) == [1]


# Case 4: a finished run is never silently restarted.

@pytest.mark.parametrize("damage, code, fragments", [
    ("deleted", 4, ["ckpt-0002.npz is missing", "no matching checkpoint"]),
    ("unreadable", 3, ["ckpt-0002.npz", "not an .npz archive"]),
])
@pytest.mark.integration
def test_finished_run_without_usable_checkpoints_is_refused(run_copy, tiny_data_dir, damage,
                                                           code, fragments):
    if damage == "deleted":
        for path in artifacts.checkpoint_paths(run_copy).values():
            path.unlink()
    else:
        for path in artifacts.checkpoint_paths(run_copy).values():
            path.write_bytes(os.urandom(300))
    before = snapshot(run_copy)
    proc = run_script("train.py", *runs.flags(run_copy), data_dir=tiny_data_dir)
    assert_fails_with(proc, code, *fragments)
    assert "Epoch 1," not in proc.stderr and snapshot(run_copy) == before


@pytest.mark.parametrize("name", [names.CHECKPOINTS, names.TENSORBOARD])
@pytest.mark.integration
def test_a_file_taking_a_folder_name_is_refused_before_training(tmp_path, tiny_data_dir, name):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    (model_dir / name).write_text("mine")
    proc = run_script("train.py", *runs.flags(model_dir), data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, f"{model_dir / name} is not a folder")
    assert "Epoch 1," not in proc.stderr
    assert [p.name for p in model_dir.iterdir()] == [name]  # not even a lock file
    assert (model_dir / name).read_text() == "mine"


@pytest.mark.integration
def test_a_history_deleted_while_checkpoints_remain_is_refused(run_copy, tiny_data_dir):
    (run_copy / names.HISTORY_JSON).unlink()
    before = snapshot(run_copy)
    proc = run_script("train.py", *runs.flags(run_copy, "--epochs=4"), data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "history.json is missing", "2 completed epoch")
    assert snapshot(run_copy) == before


# Case 5: evaluate.py never scores weights the history does not describe.

@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.integration
def test_interrupted_continuation_is_one_line_and_evaluate_refuses_it(run_copy, tiny_data_dir,
                                                                      signame, code):
    proc = run_with_fault("signal_mid_epoch", [4, 1, signame], "train.py",
                          *runs.flags(run_copy, "--epochs=4"), data_dir=tiny_data_dir)
    assert_fails_with(proc, code, "interrupted in epoch 4; rerun the same command to resume")
    assert history_epochs(run_copy) == [1, 2, 3] and manifest.read(run_copy)["epoch"] == 3
    evaluated = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
                           data_dir=tiny_data_dir)
    assert_fails_with(evaluated, 4, "not finished", "3 of 4 epochs completed",
                      "hold epoch 2")
    assert not (run_copy / names.evaluation("numpy")).exists()
    if signame == "SIGINT":  # as the line says, the same command resumes and finishes
        result = experiment.run(runs.config(run_copy, tiny_data_dir, epochs=4))
        assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3, 4]
        assert manifest.read(run_copy)["finished"]


@pytest.mark.integration
def test_evaluate_after_an_interrupted_noresume_with_another_model(run_copy, tiny_data_dir):
    proc = run_with_fault("signal_mid_epoch", [2, 1, "SIGINT"], "train.py",
                          *runs.flags(run_copy, "--noresume", "--model=two_layer_net"),
                          data_dir=tiny_data_dir)
    assert_fails_with(proc, 130, "interrupted in epoch 2; rerun without --noresume to resume")
    assert not (run_copy / names.WEIGHTS).exists()  # the old model's weights went with it
    evaluated = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
                           data_dir=tiny_data_dir)
    assert_fails_with(evaluated, 4, "not finished", "1 of 2 epochs completed")


# Case 6: one line, never a traceback.

# The NumPy backend's checkpoint keys: the twin's variable paths and the optimizer's slots.
KERNEL, BIAS = "mymodel/dense_0/kernel", "mymodel/dense_0/bias"


def _wrong_shape(arrays, backend):
    key = f"param/{KERNEL}" if backend == "numpy" else "model/000"
    arrays[key] = np.zeros((3, 3), arrays[key].dtype)
    return key


def _missing_key(arrays, backend):
    key = f"optimizer/momentum/{KERNEL}" if backend == "numpy" else sorted(
        k for k in arrays if k.startswith("optimizer/"))[-1]
    del arrays[key]
    return key


def _wrong_dtype(arrays, backend):
    key = f"param/{BIAS}" if backend == "numpy" else "model/001"
    arrays[key] = arrays[key].astype(np.float64)
    return key


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
@pytest.mark.parametrize("damage, fragment", [(_wrong_shape, "has shape (3, 3)"),
                                              (_missing_key, "is missing"),
                                              (_wrong_dtype, "has dtype float64")],
                         ids=["shape", "missing", "dtype"])
def test_a_damaged_checkpoint_names_the_file_and_the_array(tmp_path, tiny_data_dir, backend,
                                                           damage, fragment):
    model_dir = tmp_path / "run"
    experiment.run(runs.config(model_dir, tiny_data_dir, backend=backend, epochs=1))
    path = artifacts.checkpoint_paths(model_dir)[1]
    keys = []
    rewrite_checkpoint(path, lambda arrays: keys.append(damage(arrays, backend)))
    with pytest.raises(WeightsFileError) as refused:
        experiment.run(runs.config(model_dir, tiny_data_dir, backend=backend, epochs=2))
    assert str(path) in str(refused.value) and f"array {keys[0]} " in str(refused.value)
    assert fragment in str(refused.value)
    assert history_epochs(model_dir) == [1]


@pytest.mark.integration
def test_a_checkpoint_missing_an_optimizer_slot_through_the_cli(run_copy, tiny_data_dir):
    path = artifacts.checkpoint_paths(run_copy)[2]
    key = "optimizer/velocity/mymodel/classifier/bias"
    rewrite_checkpoint(path, lambda arrays: arrays.pop(key))
    proc = run_script("train.py", *runs.flags(run_copy, "--epochs=3"), data_dir=tiny_data_dir)
    assert_fails_with(proc, 3, str(path), f"array {key} is missing")


def test_a_checkpoint_changed_in_place_is_refused(run_copy, tiny_data_dir):
    path = artifacts.checkpoint_paths(run_copy)[2]
    rewrite_checkpoint(path, lambda arrays: arrays[f"param/{KERNEL}"].__imul__(2))
    with pytest.raises(RunDirError, match="ckpt-0002.npz is not the checkpoint this run wrote"):
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))


def test_toggling_mixed_precision_on_resume_is_refused(tmp_path, tiny_data_dir):
    import keras  # pylint: disable=import-outside-toplevel

    model_dir = tmp_path / "run"
    experiment.run(runs.config(model_dir, tiny_data_dir, backend="tensorflow", epochs=1))
    try:
        with pytest.raises(RunDirError, match=r"--mixed_precision=False -> True; pass "
                                              r"--noresume"):
            experiment.run(runs.config(model_dir, tiny_data_dir, backend="tensorflow",
                                       epochs=2, mixed_precision=True))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert history_epochs(model_dir) == [1]


def test_settings_missing_from_a_saved_run_count_as_their_defaults():
    """Runs saved before a setting existed (dtype, say) resume under its default."""
    from tfmodels.run.config import RunConfig  # pylint: disable=import-outside-toplevel

    from tfmodels.run.config import changed_settings  # pylint: disable=import-outside-toplevel

    saved = RunConfig(backend="numpy").to_dict()
    del saved["mixed_precision"]
    assert changed_settings(saved, RunConfig(backend="numpy").to_dict()) == []
    now = RunConfig(backend="tensorflow", mixed_precision=True).to_dict()
    assert changed_settings(saved, now) == ["--backend='numpy' -> 'tensorflow'",
                                            "--mixed_precision=False -> True"]


def edit_history(model_dir, edit):
    path = model_dir / names.HISTORY_JSON
    saved = json.loads(path.read_text())
    edit(saved)
    path.write_text(json.dumps(saved))


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h["flags"].update(hidden_units=[64]), "--hidden_units=[64] in history.json, "
                                                     "[8] in manifest.json"),
    (lambda h: h["epochs"][1].update(extra=1.0), "entry 2 of \"epochs\" has an unknown key "
                                                 "'extra'"),
    (lambda h: h["epochs"][0].pop("test_loss"), "entry 1 of \"epochs\" has no 'test_loss'"),
    (lambda h: h["epochs"][1].update(epoch="2"), "entry 2 of \"epochs\" has epoch '2'; "
                                                 "expected 2"),
    (lambda h: h["epochs"][1].update(test_accuracy=1.0), "epochs 1-2 are not those the run "
                                                         "recorded"),
], ids=["hidden_units", "extra_key", "missing_key", "string_epoch", "edited_value"])
def test_an_edited_history_is_refused_by_train_and_evaluate(run_copy, tiny_data_dir, edit,
                                                            fragment):
    edit_history(run_copy, edit)
    before = snapshot(run_copy)
    with pytest.raises(RunDirError) as refused:
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))
    assert fragment in str(refused.value) and "history.json" in str(refused.value)
    with pytest.raises(RunDirError) as refused:
        evaluation.evaluate_run(run_copy, "numpy")
    assert fragment in str(refused.value)
    assert snapshot(run_copy) == before


@pytest.mark.integration
def test_evaluate_names_an_edited_history_through_the_cli(run_copy, tiny_data_dir):
    edit_history(run_copy, lambda h: h["flags"].update(hidden_units=[64]))
    proc = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
                      data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "history.json", "--hidden_units=[64]")


@pytest.mark.parametrize("errno_name, strerror", [("EROFS", "Read-only file system"),
                                                  ("ENOSPC", "No space left on device")])
@pytest.mark.integration
def test_evaluate_on_a_read_only_or_full_disk_is_one_line(run_copy, tiny_data_dir, errno_name,
                                                          strerror):
    proc = run_with_fault("fail_writes", [errno_name, "evaluation_"], "evaluate.py",
                          f"--model_dir={run_copy}", "--backend=numpy", data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "could not write evaluation_numpy.json", str(run_copy), strerror)


def test_evaluate_refuses_an_unwritable_model_dir_before_any_work(run_copy, monkeypatch):
    monkeypatch.setattr(rundir.os, "access", lambda path, mode: False)
    with pytest.raises(RunDirError, match="is not writable"):
        evaluation.evaluate_run(run_copy, "numpy", test_data="never used")


@pytest.mark.integration
def test_disk_full_at_the_final_save_keeps_the_last_checkpoint(tmp_path, tiny_data_dir):
    model_dir = tmp_path / "run"
    proc = run_with_fault("fail_writes", ["ENOSPC", names.WEIGHTS], "train.py",
                          *runs.flags(model_dir), data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "could not save the final weights", "No space left on device",
                      "the checkpoint of epoch 2 is kept")
    saved = manifest.read(model_dir)
    assert saved["epoch"] == 2 and not saved["finished"]
    assert not (model_dir / names.WEIGHTS).exists()
    experiment.run(runs.config(model_dir, tiny_data_dir))  # space freed: the same command
    assert manifest.read(model_dir)["finished"] and history_epochs(model_dir) == [1, 2]


def test_disk_full_while_saving_the_keras_file(tmp_path, tiny_data_dir, monkeypatch):
    def full(model, path):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rundir, "save_keras_model", full)
    model_dir = tmp_path / "run"
    with pytest.raises(RunDirError, match="final weights.*No space left"):
        experiment.run(runs.config(model_dir, tiny_data_dir, epochs=1))
    assert not manifest.read(model_dir)["finished"]
    with pytest.raises(RunDirError, match="not finished"):
        evaluation.evaluate_run(model_dir, "numpy")


# Case 7: files honour the umask.

def test_every_file_honours_the_umask(tmp_path, tiny_data_dir):
    model_dir = tmp_path / "run"
    old = os.umask(0o027)
    try:
        experiment.run(runs.config(model_dir, tiny_data_dir, epochs=1))
        evaluation.evaluate_run(model_dir, "numpy")
    finally:
        os.umask(old)
    modes = {p.relative_to(model_dir).as_posix(): p.stat().st_mode & 0o777
             for p in model_dir.rglob("*") if p.is_file()}
    assert {names.WEIGHTS, names.KERAS_MODEL, names.MANIFEST, names.CURVES,
            names.evaluation("numpy"), "checkpoints/ckpt-0001.npz"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o640)


# Case 8: messages that say what is wrong.

@pytest.mark.integration
def test_random_bytes_in_weights_are_not_called_pickled(run_copy, tiny_data_dir):
    (run_copy / names.WEIGHTS).write_bytes(os.urandom(1000))
    proc = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
                      data_dir=tiny_data_dir)
    assert_fails_with(proc, 3, str(run_copy / names.WEIGHTS), "not an .npz archive")
    assert "pickle" not in proc.stderr


@pytest.mark.integration
def test_a_truncated_keras_file_is_called_truncated(run_copy, tiny_data_dir):
    (run_copy / names.WEIGHTS).unlink()
    keras_file = run_copy / names.KERAS_MODEL
    keras_file.write_bytes(keras_file.read_bytes()[:2000])
    proc = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
                      data_dir=tiny_data_dir)
    assert_fails_with(proc, 3, str(keras_file), "truncated")
    assert "not found" not in proc.stderr.lower()


@pytest.mark.integration
def test_an_unknown_dataset_in_the_history_is_named(run_copy, tiny_data_dir):
    edit_history(run_copy, lambda h: h["flags"].update(dataset="cifar10"))
    proc = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
                      data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "history.json", "--dataset='cifar10'")
    assert "SVHN" not in proc.stderr


@pytest.mark.integration
def test_non_finite_loss_in_the_first_epoch_claims_no_checkpoint(tmp_path, tiny_data_dir):
    model_dir = tmp_path / "run"
    proc = run_script("train.py", *runs.flags(model_dir, "--optimizer=sgd",
                                              "--learning_rate=1e30"), data_dir=tiny_data_dir)
    assert_fails_with(proc, 5, "at epoch 1", "no epoch was completed, so no checkpoint")
    assert "last good checkpoint" not in proc.stderr
    assert artifacts.checkpoint_paths(model_dir) == {}


def test_a_run_interrupted_before_it_began_leaves_no_folder(tmp_path, tiny_data_dir,
                                                           monkeypatch):
    def ctrl_c(self, backend):
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir.RunDir, "start", ctrl_c)
    with pytest.raises(Interrupted, match="interrupted in epoch 1"):
        experiment.run(runs.config(tmp_path / "new" / "run", tiny_data_dir))
    assert list((tmp_path / "new").iterdir()) == []


@pytest.mark.integration
def test_an_empty_hidden_units_flag_is_refused(tmp_path):
    proc = run_script("train.py", "--hidden_units=", f"--model_dir={tmp_path / 'run'}")
    assert_fails_with(proc, 2, "--hidden_units")
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_a_tilde_in_model_dir_means_home(run_copy, tmp_path, tiny_data_dir):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = procs.script_env(tiny_data_dir, HOME=str(tmp_path))
    trained = run_script("train.py", *runs.flags("~/run"), cwd=cwd, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"The run in {run_copy} already has 2 epochs: nothing to train" in trained.stderr
    evaluated = run_script("evaluate.py", "--model_dir=~/run", "--backend=numpy", cwd=cwd,
                           env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert (run_copy / names.evaluation("numpy")).is_file()
    assert list(cwd.iterdir()) == []  # no folder called "~"


def test_disk_full_in_the_tensorboard_writer_is_one_line(tmp_path, tiny_data_dir, monkeypatch):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    def full(*_, **__):  # what TensorFlow's event writer raises on a full disk
        raise tf.errors.ResourceExhaustedError(
            None, None, "events.out.tfevents.1; No space left on device\n\tFailed to flush")

    monkeypatch.setattr(tf.summary, "scalar", full)
    model_dir = tmp_path / "run"
    with pytest.raises(RunDirError) as refused:
        experiment.run(runs.config(model_dir, tiny_data_dir, backend="tensorflow"))
    message = str(refused.value)
    assert "\n" not in message and "(No space left on device)" in message
    assert "the checkpoint of epoch 1 is kept" in message
    assert manifest.read(model_dir)["epoch"] == 1


def test_weights_of_another_model_are_named_with_the_array(run_copy):
    from numpy_ref.network.serialization import save_npz  # pylint: disable=import-outside-toplevel
    from tfmodels import models, parity  # pylint: disable=import-outside-toplevel

    other = models.build_model("mymodel", hidden_units=(16,), input_shape=(28, 28))
    save_npz(parity.twin(other), run_copy / names.WEIGHTS)
    with pytest.raises(WeightsFileError, match=r"weights.npz: array mymodel/dense_0/kernel has "
                                               r"shape \(784, 16\), but the model of the run's "
                                               r"settings expects \(784, 8\)"):
        evaluation.evaluate_run(run_copy, "numpy", test_data="never used")


def test_an_edited_manifest_is_refused_in_one_line(run_copy, tiny_data_dir):
    path = run_copy / names.MANIFEST
    saved = json.loads(path.read_text())
    del saved["final"]["files"][names.WEIGHTS]
    path.write_text(json.dumps(saved))
    with pytest.raises(RunDirError, match="manifest.json: not a manifest this project wrote"):
        evaluation.evaluate_run(run_copy, "numpy", test_data="never used")
    with pytest.raises(RunDirError, match="manifest.json: not a manifest this project wrote"):
        experiment.run(runs.config(run_copy, tiny_data_dir, epochs=3))


def test_an_interrupt_at_the_final_save_says_so_and_the_rerun_saves(tmp_path, tiny_data_dir,
                                                                     monkeypatch):
    def ctrl_c(model, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "save_keras_model", ctrl_c)
    model_dir = tmp_path / "run"
    with pytest.raises(Interrupted, match=r"after the last epoch \(1\), before the final "
                                          r"weights were saved; rerun the same command"):
        experiment.run(runs.config(model_dir, tiny_data_dir, epochs=1))
    monkeypatch.undo()
    experiment.run(runs.config(model_dir, tiny_data_dir, epochs=1))
    assert manifest.read(model_dir)["finished"] and history_epochs(model_dir) == [1]
