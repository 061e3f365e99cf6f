"""End-to-end runs of tfmodels.experiment.run and evaluation on tiny data."""

import json
import logging as py_logging
import re

from absl import flags
import keras
import numpy as np
import pytest

from numpy_ref.network.serialization import load_npz
from tfmodels.errors import NonFiniteLossError
from tfmodels.run import artifacts, config as run_config, evaluation, experiment, manifest
from fakes import tiny_digits
from tfmodels.errors import ConfigError, RunDirError
from tfmodels.run.config import RunConfig

BACKENDS = ("numpy", "tensorflow")


@pytest.fixture(scope="module")
def tiny_data():
    return tiny_digits(320, seed=0), tiny_digits(100, seed=1)


def config(tmp_path, backend, **overrides):
    settings = dict(backend=backend, hidden_units=(16,), epochs=2, batch_size=32,
                    model_dir=str(tmp_path / f"run-{backend}"), seed=3)
    settings.update(overrides)
    return RunConfig(**settings)


def final_weights(model_dir):
    net, _ = load_npz(model_dir / "weights.npz")
    return {k: np.array(v) for k, v in net.params.items()}


@pytest.mark.parametrize("backend", BACKENDS)
def test_run_writes_every_output(tmp_path, tiny_data, backend):
    cfg = config(tmp_path, backend)
    result = experiment.run(cfg, datasets_override=tiny_data)
    model_dir = tmp_path / f"run-{backend}"
    saved = json.loads((model_dir / "history.json").read_text())
    assert saved["flags"] == cfg.to_dict() == result["flags"]
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2]
    for entry in saved["epochs"]:
        assert set(entry) == set(artifacts.HISTORY_FIELDS)
        assert all(np.isfinite(entry[k]) for k in artifacts.HISTORY_FIELDS)
    assert saved["epochs"][-1]["test_accuracy"] > 0.5  # the bars are easy to learn
    csv_lines = (model_dir / "history.csv").read_text().splitlines()
    assert csv_lines[0] == ",".join(artifacts.HISTORY_FIELDS) and len(csv_lines) == 3
    assert (model_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(artifacts.checkpoint_paths(model_dir)) == [1, 2]
    assert (model_dir / "tensorboard").is_dir() == (backend == "tensorflow")
    # The two final files hold the same weights.
    net, _ = load_npz(model_dir / "weights.npz")
    model = keras.models.load_model(model_dir / "model.keras")
    x = tiny_data[1][0][:5].astype(np.float32) / 255
    np.testing.assert_allclose(model(x).numpy(), net.predict(x), rtol=1e-5, atol=1e-6)
    assert not list(model_dir.glob(".*tmp*"))  # no temporary files left behind


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_continues_and_matches_an_uninterrupted_run(tmp_path, tiny_data, backend,
                                                           caplog):
    experiment.run(config(tmp_path, backend, epochs=3, model_dir=str(tmp_path / "straight")),
                   datasets_override=tiny_data)
    split = str(tmp_path / "split")
    experiment.run(config(tmp_path, backend, epochs=2, model_dir=split),
                   datasets_override=tiny_data)
    # A later session may change how (not what) it computes: the steps per call.
    with caplog.at_level(py_logging.INFO):
        result = experiment.run(config(tmp_path, backend, epochs=3, model_dir=split,
                                       steps_per_execution=1), datasets_override=tiny_data)
    assert "Resuming" in caplog.text and "after epoch 2" in caplog.text
    assert "--epochs=2 -> 3, --steps_per_execution=100 -> 1" in caplog.text
    assert [e["epoch"] for e in result["epochs"]] == [1, 2, 3]
    sessions = manifest.read(split)["sessions"]
    assert [(s["flags"]["steps_per_execution"], s["epochs"]) for s in sessions] == [
        (100, [1, 2]), (1, [3])]
    straight, resumed = final_weights(tmp_path / "straight"), final_weights(tmp_path / "split")
    for key in straight:
        # Same seed, same per-epoch batches, optimizer state restored: the same
        # float32 arithmetic in the same order, so the weights are identical.
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


def test_noresume_starts_anew(tmp_path, tiny_data):
    experiment.run(config(tmp_path, "numpy", epochs=2), datasets_override=tiny_data)
    result = experiment.run(config(tmp_path, "numpy", epochs=1, resume=False),
                            datasets_override=tiny_data)
    assert [e["epoch"] for e in result["epochs"]] == [1]
    assert sorted(artifacts.checkpoint_paths(tmp_path / "run-numpy")) == [1]


def test_a_run_with_other_settings_is_refused_and_left_alone(tmp_path, tiny_data):
    experiment.run(config(tmp_path, "numpy", epochs=1), datasets_override=tiny_data)
    before = (tmp_path / "run-numpy" / "history.json").read_bytes()
    with pytest.raises(RunDirError, match=r"--model='mymodel'.*'two_layer_net'"):
        experiment.run(config(tmp_path, "numpy", model="two_layer_net"),
                       datasets_override=tiny_data)
    assert (tmp_path / "run-numpy" / "history.json").read_bytes() == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_data,
                                                                  monkeypatch):
    experiment.run(config(tmp_path, "numpy", epochs=1, optimizer="sgd"),
                   datasets_override=tiny_data)
    real_run_epochs = experiment.run_epochs

    def nan_images_in_epoch_2(stepper, train_batches, *args, **kwargs):
        def batches(epoch):
            for x, y in train_batches(epoch):
                yield (x * np.nan if epoch == 2 else x), y
        return real_run_epochs(stepper, batches, *args, **kwargs)

    # The resumed session (a resume may not change the learning rate) meets a NaN loss.
    monkeypatch.setattr(experiment, "run_epochs", nan_images_in_epoch_2)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step \d+"), \
            np.errstate(over="ignore", invalid="ignore"):
        experiment.run(config(tmp_path, "numpy", epochs=2, optimizer="sgd"),
                       datasets_override=tiny_data)
    model_dir = tmp_path / "run-numpy"
    saved = manifest.read(model_dir)
    assert saved["epoch"] == 1
    epoch, arrays = artifacts.read_checkpoint(model_dir / saved["checkpoint"]["file"])
    assert epoch == 1 and all(np.isfinite(v).all() for v in arrays.values())
    saved = json.loads((model_dir / "history.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == [1]


def test_collapse_to_one_class_is_reported(tmp_path, caplog):
    (x, _), (x_test, _) = tiny_digits(128, 0), tiny_digits(64, 1)
    one_class = ((x, np.full(len(x), 7)), (x_test, np.full(len(x_test), 7)))
    with caplog.at_level(py_logging.WARNING):
        experiment.run(config(tmp_path, "numpy", epochs=1), datasets_override=one_class)
    assert re.search(r"predicts class 7 for (9\d|100)% of 64 test images", caplog.text)
    assert "not scaled to [0, 1]" in caplog.text and "learning rate too high" in caplog.text


def test_collapsed_class_threshold():
    probs = np.eye(10)[[3] * 95 + [1] * 5]
    assert experiment.collapsed_class(probs) == (3, 0.95)
    assert experiment.collapsed_class(np.eye(10)[[3] * 80 + [1] * 20]) is None


@pytest.mark.parametrize("trained_by", BACKENDS)
def test_evaluate_gives_the_same_accuracy_on_both_backends(tmp_path, tiny_data, trained_by):
    cfg = config(tmp_path, trained_by)
    experiment.run(cfg, datasets_override=tiny_data)
    model_dir = tmp_path / f"run-{trained_by}"
    results = {b: evaluation.evaluate_run(model_dir, b, test_data=tiny_data[1])
               for b in BACKENDS}
    assert results["numpy"]["test_accuracy"] == results["tensorflow"]["test_accuracy"]
    assert results["numpy"]["confusion_matrix"] == results["tensorflow"]["confusion_matrix"]
    # float32 on both sides, different summation orders: ~1e-7 relative.
    np.testing.assert_allclose(results["numpy"]["test_loss"], results["tensorflow"]["test_loss"],
                               rtol=1e-5)
    history = json.loads((model_dir / "history.json").read_text())["epochs"]
    assert results[trained_by]["test_accuracy"] == pytest.approx(history[-1]["test_accuracy"])
    for backend in BACKENDS:
        saved = json.loads((model_dir / f"evaluation_{backend}.json").read_text())
        assert set(saved) >= {"test_loss", "test_accuracy", "per_class_accuracy",
                              "confusion_matrix"}
        counts = np.array(saved["confusion_matrix"])
        assert counts.shape == (10, 10) and counts.sum() == len(tiny_data[1][1])
        assert (model_dir / f"confusion_{backend}.png").is_file()


def test_per_class_accuracy_and_confusion_by_hand():
    counts = evaluation.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [0, 1, 0]])
    assert evaluation.per_class_accuracy(counts) == [0.5, 1.0, 0.0]
    assert evaluation.per_class_accuracy(np.zeros((2, 2), int)) == [None, None]


@pytest.mark.parametrize("bad, message", [
    (dict(model="two_layer_net", hidden_units=(5, 5)), "exactly 1 hidden layer"),
    (dict(epochs=0), "--epochs must be >= 1"),
    (dict(learning_rate=-1.0), "--learning_rate must be > 0"),
    (dict(mixed_precision=True), "--backend=numpy"),
    (dict(optimizer="lbfgs"), "--optimizer must be one of"),
])
def test_bad_settings_fail_before_any_work(tmp_path, bad, message):
    cfg = config(tmp_path, "numpy", **bad)
    with pytest.raises(ConfigError, match=message):
        experiment.run(cfg, datasets_override="never used")
    assert not (tmp_path / "run-numpy").exists()


def command_line(*args):
    """The RunConfig train.py makes of the command line ``args`` (on a fresh set of flags)."""
    flag_values = flags.FlagValues()
    run_config.define_flags(flag_values)
    flag_values(["train.py", *args])
    return run_config.from_flags(flag_values)


def test_a_flag_not_given_leaves_the_settings_default():
    assert command_line() == RunConfig()
    assert command_line("--model=two_layer_net", "--hidden_units=100", "--optimizer=sgd",
                        "--noresume") == RunConfig(model="two_layer_net", hidden_units=(100,),
                                                   optimizer="sgd", resume=False)
    assert command_line("--model_file=m.keras").optimizer is None  # the file's own
    assert command_line("--model_file=m.keras", "--optimizer=sgd").optimizer == "sgd"


def test_a_model_file_refuses_the_flags_of_the_architecture_it_replaces():
    with pytest.raises(ConfigError, match="--model_file brings its own architecture; drop "
                                          "--model, --hidden_units, --weight_decay$"):
        command_line("--model_file=m.keras", "--weight_decay=0", "--hidden_units=3",
                     "--model=mymodel", "--epochs=3")
    assert run_config.ARCHITECTURE == ("model", "hidden_units", "activation", "dropout",
                                       "batchnorm", "weight_decay")


def test_a_resumed_run_keeps_the_settings_that_define_it():
    """Issue 21: what changes the numbers defines the run (a resume keeps it); the rest a
    later session may change. --model_file's content is compared, not its path."""
    assert run_config.DEFINING == ("dataset", "model", "hidden_units", "activation", "dropout",
                                   "batchnorm", "weight_decay", "backend", "batch_size",
                                   "shuffle_buffer", "optimizer", "learning_rate",
                                   "learning_rate_decay", "seed",
                                   "mixed_precision", "dtype", "max_train_examples")
    assert run_config.SESSION == ("model_file", "epochs", "data_dir", "device",
                                  "distribution_strategy", "jit_compile", "steps_per_execution")


@pytest.mark.slow
def test_real_mnist_few_epochs_tensorflow(tmp_path, mnist_dir):
    """A short real run of the default recipe: 2 epochs on 12,000 examples."""
    cfg = RunConfig(data_dir=str(mnist_dir), epochs=2, max_train_examples=12_000,
                    model_dir=str(tmp_path / "run"))
    result = experiment.run(cfg)
    assert result["epochs"][-1]["test_accuracy"] > 0.92  # measured 0.930
    evaluated = evaluation.evaluate_run(tmp_path / "run", "numpy")
    assert evaluated["test_accuracy"] == pytest.approx(result["epochs"][-1]["test_accuracy"],
                                                       abs=1e-6)
    assert evaluated["num_examples"] == 10_000


def _run_both_backends(tmp_path, **settings):
    """The same RunConfig trained by each backend; {backend: (history entries, weights)}."""
    runs = {}
    for backend in BACKENDS:
        cfg = RunConfig(backend=backend, model_dir=str(tmp_path / backend), **settings)
        runs[backend] = experiment.run(cfg)["epochs"], final_weights(tmp_path / backend)
    return runs


def _assert_backends_agree(runs, history_atol, weights_atol):
    (tf_history, tf_weights), (np_history, np_weights) = runs["tensorflow"], runs["numpy"]
    assert [e["epoch"] for e in tf_history] == [e["epoch"] for e in np_history]
    for tf_entry, np_entry in zip(tf_history, np_history):
        for key in artifacts.HISTORY_FIELDS:
            assert np_entry[key] == pytest.approx(tf_entry[key], rel=0, abs=history_atol), key
    assert list(tf_weights) == list(np_weights)
    for key, weight in tf_weights.items():
        np.testing.assert_allclose(np_weights[key], weight, rtol=0, atol=weights_atol,
                                   err_msg=key)


def test_float64_backends_train_alike_from_the_same_start(tmp_path, tiny_data):
    """--dtype=float64: the same initial weights, batches and optimizer arithmetic on both
    backends; only summation order inside matrix products differs (~1e-16 relative).
    Over 2 epochs of 10 Adam steps, measured: histories within 4.4e-16, weights within
    3.3e-16; the bounds leave a factor of 20 to 300."""
    runs = {}
    for backend in BACKENDS:
        cfg = config(tmp_path, backend, dtype="float64")
        runs[backend] = experiment.run(cfg, datasets_override=tiny_data)["epochs"], \
            final_weights(tmp_path / f"run-{backend}")
    _assert_backends_agree(runs, history_atol=1e-14, weights_atol=1e-13)


@pytest.mark.slow
def test_float64_backends_train_alike_on_real_mnist(tmp_path, mnist_dir):
    """2 epochs, 6,000 real images, Mymodel with Adam in float64: 376 steps on each backend.
    Measured: histories within 2.2e-16, weights within 6.2e-15 (weights up to 0.36);
    rounding compounds with the steps, hence the looser weight bound."""
    runs = _run_both_backends(tmp_path, data_dir=str(mnist_dir), dtype="float64", epochs=2,
                              max_train_examples=6000)
    _assert_backends_agree(runs, history_atol=1e-13, weights_atol=1e-11)
    assert runs["numpy"][0][-1]["test_accuracy"] > 0.85


def test_the_numpy_backend_runs_blas_on_one_thread_unless_told(monkeypatch):
    import threadpoolctl  # pylint: disable=import-outside-toplevel

    from numpy_ref.fast import threads  # pylint: disable=import-outside-toplevel
    from tfmodels.run import backend_numpy  # pylint: disable=import-outside-toplevel

    def blas_threads():
        return {lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                if lib["user_api"] == "blas"}

    for name in threads.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    before = blas_threads()
    with backend_numpy.blas_threads():
        assert blas_threads() == {1}
    assert blas_threads() == before  # restored afterwards
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with backend_numpy.blas_threads():  # the user's choice stands
        assert blas_threads() == before


@pytest.mark.parametrize("rate, shown", [(None, "not set: the model file's"), (0.5, "0.5")])
def test_the_collapse_warning_names_the_learning_rate_or_its_absence(caplog, rate, shown):
    """A --model_file run leaves --learning_rate unset: the warning says so (it failed to
    format a None before)."""
    with caplog.at_level(py_logging.WARNING):
        experiment.warn_if_collapsed(np.eye(10)[[4] * 10], 1,
                                     RunConfig(model_file="net.keras", learning_rate=rate))
    assert f"(--learning_rate={shown})" in caplog.text
