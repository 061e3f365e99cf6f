"""The scripts as a user runs them: subprocesses, exit codes, files written."""

import json
import subprocess
import sys

import numpy as np
import pytest

import procs
from numpy_ref.network.serialization import load_npz
from procs import assert_fails_with, run_script, script_env

pytestmark = pytest.mark.integration  # every test runs a script in a subprocess

TRAIN = str(procs.ROOT / "scripts" / "train.py")


@pytest.mark.parametrize("args, fragments", [
    (["--epochs=0"], ["--epochs"]),
    (["--optimizer=lbfgs"], ["--optimizer", "lbfgs"]),
    (["--hidden_units=512,x"], ["--hidden_units"]),
    (["--learning_rate=-0.1"], ["--learning_rate must be > 0"]),
    (["--model=two_layer_net", "--hidden_units=5,5"], ["exactly 1 hidden layer"]),
    (["--backend=numpy", "--distribution_strategy=mirrored"], ["--backend=numpy"]),
    (["--no_such_flag"], ["no_such_flag"]),
], ids=["epochs", "optimizer", "hidden_units", "learning_rate", "two_layer_units",
        "numpy_strategy", "unknown_flag"])
def test_train_rejects_bad_flags_with_one_line(tmp_path, args, fragments):
    proc = run_script("train.py", *args, f"--model_dir={tmp_path / 'run'}")
    assert_fails_with(proc, 2, *fragments)
    assert not (tmp_path / "run").exists()  # nothing written


def test_gpu_device_without_a_gpu_is_an_error(tmp_path, tiny_data_dir):
    proc = run_script("train.py", "--device=gpu", f"--model_dir={tmp_path / 'run'}",
                      data_dir=tiny_data_dir)
    if "sees no GPU" not in proc.stderr and proc.returncode == 0:
        pytest.skip("this machine has a GPU")
    assert_fails_with(proc, 2, "--device=gpu", "no GPU")


def test_train_names_missing_data(tmp_path):
    proc = run_script("train.py", f"--data_dir={tmp_path / 'nowhere'}",
                      f"--model_dir={tmp_path / 'run'}")
    assert_fails_with(proc, 3, "nowhere")


def test_evaluate_needs_a_training_run(tmp_path):
    proc = run_script("evaluate.py", f"--model_dir={tmp_path}")
    assert_fails_with(proc, 4, "manifest.json", "not a training run")
    assert list(tmp_path.iterdir()) == []  # not even a lock file in a stranger's folder


@pytest.mark.slow
def test_train_then_evaluate_on_real_mnist(tmp_path, mnist_dir):
    """The CLI end to end on real data: a short NumPy run, evaluated by TensorFlow."""
    model_dir = tmp_path / "run"
    proc = run_script("train.py", "--backend=numpy", "--epochs=2",
                      "--max_train_examples=6000", f"--model_dir={model_dir}",
                      data_dir=mnist_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Epoch 2, Loss:" in proc.stderr
    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert history[-1]["test_accuracy"] > 0.90
    proc = run_script("evaluate.py", f"--model_dir={model_dir}", "--backend=tensorflow",
                      data_dir=mnist_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluation = json.loads((model_dir / "evaluation_tensorflow.json").read_text())
    assert evaluation["test_accuracy"] == pytest.approx(history[-1]["test_accuracy"])
    assert "true\\pred" in proc.stderr  # the confusion matrix as text


def test_mixed_precision_run_through_the_cli(tmp_path, tiny_data_dir):
    model_dir = tmp_path / "run"
    proc = run_script("train.py", "--mixed_precision", "--epochs=2", "--hidden_units=32",
                      f"--model_dir={model_dir}", data_dir=tiny_data_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert all(np.isfinite(e["train_loss"]) for e in history)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    net, _ = load_npz(model_dir / "weights.npz")
    assert net.dtype == np.float32  # variables stay float32 under mixed_float16


def test_multi_worker_mirrored_through_the_cli(tmp_path, tiny_data_dir):
    """Two train.py workers on 127.0.0.1 finish with identical weights; the
    chief writes --model_dir, the other worker its own worker-1/ inside it."""
    ports = procs.free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    model_dir = tmp_path / "run"
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            [sys.executable, TRAIN, "--distribution_strategy=multi_worker_mirrored",
             "--epochs=2", "--hidden_units=16", "--batch_size=32", f"--model_dir={model_dir}"],
            env=script_env(tiny_data_dir, TF_CONFIG=tf_config), cwd=procs.ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    procs.wait_all(workers, 240, "train.py workers")
    chief, _ = load_npz(model_dir / "weights.npz")
    other, _ = load_npz(model_dir / "worker-1" / "weights.npz")
    for key in chief.params:
        np.testing.assert_array_equal(chief.params[key], other.params[key], err_msg=key)
    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]


def test_train_names_a_corrupt_data_file(tmp_path, tiny_data_dir):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "mnist.npz").write_bytes((tiny_data_dir / "mnist.npz").read_bytes()[:500])
    proc = run_script("train.py", f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'run'}")
    assert_fails_with(proc, 3, "mnist.npz")
    assert not (tmp_path / "run").exists()


def test_train_refuses_an_unusable_model_dir(tmp_path, tiny_data_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    proc = run_script("train.py", f"--model_dir={blocker / 'run'}", data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "a_file is a file")
    assert blocker.read_text() == "not a directory"


def test_train_refuses_a_model_dir_of_another_run_and_changes_nothing(tmp_path,
                                                                      tiny_data_dir):
    model_dir = tmp_path / "run"
    first = run_script("train.py", "--backend=numpy", "--epochs=1", "--hidden_units=8",
                       f"--model_dir={model_dir}", data_dir=tiny_data_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    proc = run_script("train.py", "--backend=numpy", "--model=two_layer_net",
                      f"--model_dir={model_dir}", data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, "--model='mymodel'", "two_layer_net", "--noresume")
    after = {p: p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    assert after == before


def test_evaluate_refuses_pickled_weights(run_copy):
    np.savez(run_copy / "weights.npz", W1=np.array([{"a": 1}], dtype=object))
    proc = run_script("evaluate.py", f"--model_dir={run_copy}")
    assert_fails_with(proc, 3, "weights.npz", "allow_pickle=False")


def test_evaluate_refuses_a_keras_file_with_code(run_copy):
    """A Lambda layer holds Python code; safe mode will not deserialise it."""
    import keras  # pylint: disable=import-outside-toplevel

    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(10)])
    (run_copy / "weights.npz").unlink()  # so that evaluate loads model.keras
    model.save(run_copy / "model.keras")
    proc = run_script("evaluate.py", f"--model_dir={run_copy}")
    assert_fails_with(proc, 3, "model.keras", "refused")
    assert "safe_mode" in proc.stderr or "lambda" in proc.stderr.lower()
