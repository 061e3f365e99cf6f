"""Tests for `tfmodels.distribute` and the `Trainer` under strategies and mixed precision.

Runs that configure TensorFlow's devices (logical CPUs, hidden GPUs, a worker cluster) happen
in fresh processes running `tests/distribute_runs.py`; the rest run here.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import procs
from tfmodels import distribute
from tfmodels.models import Mymodel
from tfmodels.distribute import maybe_wrap_for_mixed_precision
from tfmodels.training import Trainer, fit

RUNS_SCRIPT = procs.ROOT / "tests" / "distribute_runs.py"
TIMEOUT_S = 120


def _start(run, out_dir, **env):
    return subprocess.Popen([sys.executable, str(RUNS_SCRIPT), run, str(out_dir)],
                            env=procs.child_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(processes):
    procs.wait_all(processes, TIMEOUT_S, RUNS_SCRIPT.name)


def _run(run, out_dir):
    _finish([_start(run, out_dir)])


def _weights(npz, prefix):
    return [npz[f"{prefix}_{i}"] for i in range(4)]  # hidden kernel, bias, classifier ...


# -- in this process: arguments, errors, one-device and mixed precision


@pytest.mark.parametrize("call, match", [
    (lambda: distribute.make_strategy("horovod"), r"`name` must be one of .*horovod"),
    (lambda: distribute.make_strategy("mirrored", device="tpu"), "Received: device='tpu'"),
    (lambda: distribute.configure_device("tpu"), "Received: device='tpu'"),
    (lambda: distribute.set_logical_cpus(0), "Received: n=0"),
], ids=["strategy_name", "strategy_device", "device", "logical_cpus"])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("tf_config", [None, "", "{not json", '{"cluster": {}}',
                                       '{"cluster": {"worker": ["a:1"]}, "task": {}}'],
                         ids=["missing", "empty", "not_json", "no_task", "empty_task"])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        distribute.make_strategy("multi_worker_mirrored")


def test_off_is_no_strategy():
    assert distribute.make_strategy("off") is None


def test_trainer_rejects_an_optimizer_made_outside_the_scope():
    strategy = distribute.make_strategy("one_device", device="cpu")
    with strategy.scope():
        model = Mymodel(hidden_units=(8,))
    with pytest.raises(ValueError, match="inside `strategy.scope\\(\\)`"):
        Trainer(model, tf.keras.optimizers.SGD(), strategy=strategy)


def test_fit_under_a_strategy_needs_tf_data():
    strategy = distribute.make_strategy("one_device", device="cpu")
    with strategy.scope():
        model = Mymodel(hidden_units=(8,))
    batches = [(np.zeros((2, 4), "float32"), np.zeros(2, "int32"))]
    with pytest.raises(ValueError, match="takes `tf.data.Dataset`s"):
        fit(model, batches, batches, epochs=1, strategy=strategy)


def test_one_device_fit_equals_plain_fit_float64():
    rng = np.random.default_rng(0)
    images, labels = rng.random((20, 6)), rng.integers(0, 10, 20)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)  # 8, 8, 4
    strategy = distribute.make_strategy("one_device", device="cpu")
    with strategy.scope():
        model = Mymodel(hidden_units=(16,), dtype="float64")
        model(images[:1])
        trainer = Trainer(model, tf.keras.optimizers.Adam(1e-2), strategy=strategy)
    plain = Mymodel(hidden_units=(16,), dtype="float64")
    plain(images[:1])
    plain.set_weights(model.get_weights())

    history = fit(model, dataset, dataset, epochs=2, trainer=trainer)
    plain_history = fit(plain, dataset, dataset, epochs=2,
                        optimizer=tf.keras.optimizers.Adam(1e-2))
    assert trainer.tracing_counts() == {"train_step": 1, "test_step": 1}
    for key, values in plain_history.items():
        np.testing.assert_allclose(history[key], values, rtol=1e-6, err_msg=key)
    for w, want in zip(model.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(w, want, rtol=0, atol=1e-12)


@pytest.fixture
def mixed_precision():
    previous = tf.keras.config.dtype_policy()
    distribute.set_mixed_precision(True)
    try:
        yield
    finally:
        tf.keras.config.set_dtype_policy(previous)


def test_mixed_precision_trains_on_cpu(mixed_precision):
    rng = np.random.default_rng(1)
    images, labels = rng.random((32, 8, 8)).astype("float32"), rng.integers(0, 10, 32)
    model = Mymodel(hidden_units=(32,))
    trainer = Trainer(model, tf.keras.optimizers.Adam(learning_rate=1e-2))
    losses = [float(trainer.train_step(images, labels)) for _ in range(15)]

    assert isinstance(trainer.optimizer, tf.keras.optimizers.LossScaleOptimizer)
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
    hidden = model.hidden[0]
    assert hidden.kernel.dtype == "float32" and hidden.compute_dtype == "float16"
    assert hidden(tf.zeros((1, 64))).dtype == tf.float16
    assert trainer.train_loss.result().dtype == tf.float32


def test_classifier_outputs_float32_under_mixed_precision(mixed_precision):
    model = Mymodel(hidden_units=(8,))
    assert model(tf.zeros((2, 4, 4))).dtype == tf.float32


def test_maybe_wrap_only_wraps_for_float16_compute(mixed_precision):
    sgd = tf.keras.optimizers.SGD()
    wrapped = maybe_wrap_for_mixed_precision(sgd)  # the global policy: mixed_float16
    assert isinstance(wrapped, tf.keras.optimizers.LossScaleOptimizer)
    assert wrapped.inner_optimizer is sgd
    assert maybe_wrap_for_mixed_precision(wrapped) is wrapped
    for policy in ("float32", "float64", "mixed_bfloat16"):
        assert maybe_wrap_for_mixed_precision(sgd, policy) is sgd


# -- in fresh processes


@pytest.mark.integration
def test_configure_device_and_logical_cpus(tmp_path):
    _run("devices", tmp_path)
    report = json.loads((tmp_path / "devices.json").read_text())
    if report["gpus"] == 0:
        assert report["gpu_error"] == (
            "--device=gpu but TensorFlow sees no GPU "
            "(install tensorflow[and-cuda] and check nvidia-smi)")
    assert report["logical_gpus"] == 0  # hidden by configure_device("cpu")
    assert report["one_device"] == ["/job:localhost/replica:0/task:0/device:CPU:0"]
    assert [d[-5:] for d in report["mirrored"]] == ["CPU:0", "CPU:1"]
    assert "before TensorFlow runs its first op" in report["late_error"]


@pytest.fixture(scope="module")
def mirrored_run(tmp_path_factory):
    """The outputs of `distribute_runs.py mirrored`: 2 logical CPUs, one process."""
    out_dir = tmp_path_factory.mktemp("mirrored")
    _run("mirrored", out_dir)
    return np.load(out_dir / "mirrored.npz")


@pytest.mark.integration
def test_mirrored_fit_on_two_cpus_reports_global_metrics(mirrored_run):
    history = json.loads(str(mirrored_run["history"]))
    assert int(mirrored_run["replicas"]) == 2
    assert json.loads(str(mirrored_run["tracing"])) == {"train_step": 1, "test_step": 1}
    assert history["train_loss"][1] < history["train_loss"][0]
    # Global counts: 256 / 32 = 8 train batches; 97 = 3 x 32 + 1 test examples.
    np.testing.assert_array_equal(mirrored_run["counts"], [8, 256, 4, 97])
    # The epoch-2 test pass equals a plain evaluation of the final weights.
    np.testing.assert_allclose([history["test_loss"][1], history["test_accuracy"][1]],
                               mirrored_run["plain_eval"], rtol=0, atol=1e-5)


@pytest.mark.integration
def test_mirrored_step_equals_one_device_step_float64(mirrored_run):
    # Batches of 7 (4 + 3 per replica), then 1 (1 + 0): as on one device only if each
    # replica divides its summed losses by the global batch size.
    losses = mirrored_run["step_losses"]
    np.testing.assert_allclose(losses[:, 0], losses[:, 1], rtol=0, atol=1e-12)
    for w, want in zip(_weights(mirrored_run, "step_weights"),
                       _weights(mirrored_run, "plain_weights")):
        np.testing.assert_allclose(w, want, rtol=0, atol=1e-12)
    metrics = mirrored_run["step_metrics"]  # (train_loss, train_accuracy) x (mirrored, plain)
    np.testing.assert_allclose(metrics[:, 0], metrics[:, 1], rtol=1e-6)


@pytest.mark.integration
def test_mirrored_steps_per_execution_equals_one_step_per_call_float64(mirrored_run):
    # The distributed iterator read in the graph, 3 steps a call (the last batch of 4 ragged).
    one, chunked = json.loads(str(mirrored_run["chunk_histories"]))
    assert json.loads(str(mirrored_run["chunk_tracing"]))["train_steps"] == 1
    for key in one:
        np.testing.assert_allclose(chunked[key], one[key], rtol=1e-13, err_msg=key)
    for w, want in zip(_weights(mirrored_run, "chunk3_weights"),
                       _weights(mirrored_run, "chunk1_weights")):
        np.testing.assert_allclose(w, want, rtol=0, atol=1e-13)
    assert one["train_loss"][1] < one["train_loss"][0]


@pytest.mark.integration
def test_mirrored_mixed_precision_skips_a_non_finite_step_on_every_replica(mirrored_run):
    assert str(mirrored_run["mixed_optimizer"]) == "LossScaleOptimizer"
    losses, scales = mirrored_run["mixed_losses"], mirrored_run["mixed_scales"]
    # Step 1 trains; step 2 has inf inputs on replica 2 only: skipped there and on replica 1,
    # and the loss scale halves.
    assert np.isfinite(losses[0]) and not np.isfinite(losses[1])
    np.testing.assert_array_equal(mirrored_run["mixed_changed"], [True, False])
    assert bool(mirrored_run["mixed_finite"])
    assert scales[2] == scales[1] / 2


@pytest.mark.integration
def test_multi_worker_mirrored_two_local_workers(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in procs.free_ports(2)]
    _finish([_start("multi_worker", tmp_path, TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        for index in range(2)])
    runs = [np.load(tmp_path / f"worker{index}.npz") for index in range(2)]
    for run in runs:
        assert int(run["replicas"]) == 2
        # Metrics read the global totals: 72 examples in 5 batches, on both workers.
        np.testing.assert_array_equal(run["counts"], [5, 72, 5, 72])
        # Same as one device on the whole batches, up to float32 rounding.
        history, plain = json.loads(str(run["history"])), json.loads(str(run["plain_history"]))
        for key in history:
            np.testing.assert_allclose(history[key], plain[key], rtol=1e-5, err_msg=key)
        for w, want in zip(_weights(run, "weights"), _weights(run, "plain_weights")):
            np.testing.assert_allclose(w, want, rtol=0, atol=1e-6)
    assert runs[0]["history"] == runs[1]["history"]
    for w0, w1 in zip(_weights(runs[0], "weights"), _weights(runs[1], "weights")):
        np.testing.assert_array_equal(w0, w1)
