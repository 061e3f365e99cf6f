"""Crashes, full disks and reruns: a run's files survive and resuming is exact."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import procs
from tfmodels import files
from numpy_ref.network.serialization import load_npz
from tfmodels.run import artifacts, experiment, manifest, names
from tfmodels.run.config import RunConfig

BACKENDS = ("numpy", "tensorflow")
FAULT_RUNS = str(procs.FAULT_RUNS)
TRAIN = str(procs.ROOT / "scripts" / "train.py")


def flags(model_dir, backend):
    return [f"--backend={backend}", "--epochs=3", "--hidden_units=16", "--batch_size=32",
            "--seed=5", f"--model_dir={model_dir}"]


def launch(argv, data_dir):
    env = procs.child_env(TFMODELS_DATA_DIR=str(data_dir))
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True,
                          timeout=300, cwd=procs.ROOT)


def weights(model_dir):
    net, _ = load_npz(model_dir / "weights.npz")
    return {k: np.array(v) for k, v in net.params.items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_data_dir):
    """Final weights of uninterrupted runs, per backend, through the same CLI."""
    out = {}
    for backend in BACKENDS:
        model_dir = tmp_path_factory.mktemp(f"straight-{backend}")
        proc = launch([TRAIN, *flags(model_dir, backend)], tiny_data_dir)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out[backend] = weights(model_dir)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fault, args", [("kill_mid_epoch", ["2", "5"]),
                                         ("kill_mid_checkpoint", ["2"])])
@pytest.mark.integration
def test_sigkill_then_rerun_resumes_and_matches(tmp_path, tiny_data_dir, uninterrupted,
                                                backend, fault, args):
    model_dir = tmp_path / "run"
    killed = launch([FAULT_RUNS, fault, *args, "--", *flags(model_dir, backend)],
                    tiny_data_dir)
    assert killed.returncode == -9, killed.stderr[-3000:]
    # Epoch 1 is complete and loadable; nothing of epoch 2 passes for a checkpoint.
    assert sorted(artifacts.checkpoint_paths(model_dir)) == [1]
    assert manifest.read(model_dir)["epoch"] == 1
    assert (model_dir / names.LOCK).exists()  # the killed run's lock, released by the kernel
    assert not (model_dir / "weights.npz").exists()
    if fault == "kill_mid_checkpoint":  # the interrupted write stayed a temporary file
        assert list((model_dir / "checkpoints").glob(".ckpt-0002.npz.*.tmp"))

    rerun = launch([TRAIN, *flags(model_dir, backend)], tiny_data_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming" in rerun.stderr and "after epoch 1" in rerun.stderr
    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3]
    assert not list(model_dir.rglob(".*.tmp*"))
    assert_same_weights(weights(model_dir), uninterrupted[backend])


@pytest.mark.parametrize("backend", BACKENDS)
def test_disk_full_while_saving_keeps_the_last_good_checkpoint(tmp_path, tiny_data_dir,
                                                               monkeypatch, backend):
    cfg = RunConfig(backend=backend, epochs=3, hidden_units=(16,), seed=5,
                    data_dir=str(tiny_data_dir), model_dir=str(tmp_path / "run"))
    disk_full = {"on": False}
    write_history, fsync = artifacts.write_history, files.os.fsync

    def write_history_fills_disk(model_dir, flags_, epochs, *rest):
        disk_full["on"] = len(epochs) == 2  # the disk fills up while saving epoch 2
        write_history(model_dir, flags_, epochs, *rest)

    def fsync_or_enospc(fd):
        if disk_full["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(artifacts, "write_history", write_history_fills_disk)
    monkeypatch.setattr(files.os, "fsync", fsync_or_enospc)
    with pytest.raises(artifacts.RunDirError,
                       match="could not save epoch 2.*No space left.*epoch 1 is kept"):
        experiment.run(cfg)
    model_dir = tmp_path / "run"
    saved = json.loads((model_dir / "history.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == [1]  # the old file, intact
    assert manifest.read(model_dir)["epoch"] == 1
    assert not list(model_dir.rglob(".*.tmp*"))  # the failed writes cleaned up

    monkeypatch.undo()  # space freed: the same command finishes the run
    result = experiment.run(cfg)
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3]


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_gives_identical_histories_and_weights(tmp_path, tiny_data_dir, backend):
    runs = []
    for name in ("a", "b"):
        cfg = RunConfig(backend=backend, epochs=2, hidden_units=(16,), seed=11,
                        data_dir=str(tiny_data_dir), model_dir=str(tmp_path / name))
        runs.append((experiment.run(cfg)["epochs"], weights(tmp_path / name)))
    assert runs[0][0] == runs[1][0]  # every loss and accuracy, bit for bit
    assert_same_weights(runs[0][1], runs[1][1])


def test_the_tensorboard_folder_honours_the_umask(tmp_path, tiny_data_dir):
    """TensorFlow makes its folders 0755 whatever the umask: the run makes its own."""
    model_dir = tmp_path / "run"
    old = os.umask(0o002)
    try:
        experiment.run(RunConfig(backend="tensorflow", epochs=1, hidden_units=(8,),
                                 data_dir=str(tiny_data_dir), model_dir=str(model_dir)))
    finally:
        os.umask(old)
    entries = [model_dir, *model_dir.rglob("*")]
    folders = {p.relative_to(model_dir).as_posix(): p.stat().st_mode & 0o777
               for p in entries if p.is_dir()}
    assert set(folders) == {".", names.CHECKPOINTS, names.TENSORBOARD}
    assert folders == dict.fromkeys(folders, 0o775)
    events = list((model_dir / names.TENSORBOARD).glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_mode & 0o777 == 0o664


@pytest.mark.integration
def test_ctrl_c_while_a_finished_run_exits_means_exit_0(tmp_path, tiny_data_dir):
    """The run's last line printed, the process still exiting (Python's and TensorFlow's
    teardown, most of a second here): SIGINT there is no failure."""
    model_dir = tmp_path / "run"
    env = procs.child_env(TFMODELS_DATA_DIR=str(tiny_data_dir))
    proc = subprocess.Popen([sys.executable, TRAIN, "--epochs=1", "--hidden_units=8",
                             f"--model_dir={model_dir}"], env=env, cwd=procs.ROOT,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("Evaluate them with: "):  # log_summary's last line
                break
        time.sleep(0.05)  # main has returned
        proc.send_signal(signal.SIGINT)
        lines += proc.stderr.readlines()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    stderr = "".join(lines)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and ": error: " not in stderr, stderr[-3000:]
    assert [line for line in lines if "interrupted" in line] in (
        [], ["train.py: interrupted (SIGINT) after it had finished: its work is complete, "
             "nothing was lost\n"])
    assert manifest.read(model_dir)["finished"]
