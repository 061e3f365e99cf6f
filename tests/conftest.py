"""Shared fixtures: the real data directory, tiny data and runs, quiet TensorFlow logs;
and what the fast tier leaves to the integration tier (`pytest_collection_modifyitems`).
"""

import collections
import os
import pathlib
import shutil

import numpy as np
import pytest
from _pytest.mark.expression import Expression  # how -m reads its expression
from hypothesis import settings

import runs
from fakes import tiny_digits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The fast tier (`make test-fast`: -m "not slow and not integration") is the full suite
# less what takes time without adding a kind of check: besides the tests marked slow or
# integration, the cases below and most of each property test's examples. The cases it
# leaves out get the integration marker here; `make test` runs them all.

# Parametrised tests whose every case trains or compiles a TensorFlow model (a second or
# more each): the fast tier runs the first case.
FIRST_CASE_ONLY = {
    "test_experiment.py": ("test_resume_continues_and_matches_an_uninterrupted_run",),
    "test_faults.py": ("test_disk_full_while_saving_keeps_the_last_good_checkpoint",
                       "test_same_seed_gives_identical_histories_and_weights"),
    "test_rundir.py": ("test_a_damaged_checkpoint_names_the_file_and_the_array",),
    "test_train_models.py": ("test_convnets_train_alike_on_both_backends",
                             "test_every_optimizer_trains_alike_on_both_backends",
                             "test_svhn_shaped_colour_images",
                             "test_mlp_options_on_both_backends",
                             "test_a_users_model_file_trains_on_both_backends",
                             "test_every_model_trains_on_svhn_files"),
    "test_training_speed_options.py": (
        "test_chunks_train_exactly_as_one_step_per_call",
        "test_max_steps_is_exact_across_chunks_and_epochs",
        "test_a_nan_mid_chunk_stops_at_that_step_with_its_update_done",
        "test_xla_trains_like_the_graph_to_rounding",
        "test_ordered_batches_in_the_graph_train_exactly_as_one_step_per_call"),
    "test_twin_compiled.py": ("test_twin_optimizer_continues_a_fit",),
}
# Keras-parity grids over a `dtype`: the fast tier runs their float64 cases, where a twin
# must agree with Keras to rounding, so that a wrong formula shows; the float32 cases
# (the same configurations at float32's tolerance) wait for the full run.
FLOAT64_ONLY = {
    "test_parity.py": ("test_forward_outputs_match", "test_loss_and_gradients_match"),
    "test_parity_optimizers.py": ("test_twin_steps_like_keras",),
    "test_twin_layers.py": ("test_activation_layers", "test_dense", "test_merge_layers",
                            "test_shape_layers", "test_layer_normalization"),
    "test_twin_regularization.py": ("test_compare_in_training_mode_is_exact_with_dropout",
                                    "test_batch_normalization"),
}
# Examples per property test in a run that leaves the integration tier out; a run that
# keeps it tries all each test asks for. Derandomized: the same few on every run.
FAST_TIER_EXAMPLES = 5


def selects(config, marker):
    """Whether this run's ``-m`` expression keeps a test that carries only `marker`."""
    expression = config.getoption("markexpr")
    return not expression or Expression.compile(expression).evaluate(
        lambda name, **_: name == marker)


def left_to_the_full_run(item, seen):
    """Whether the fast tier leaves this case out (FIRST_CASE_ONLY, FLOAT64_ONLY)."""
    name = getattr(item, "originalname", item.name)
    if name in FIRST_CASE_ONLY.get(item.path.name, ()):
        seen[item.path.name, name] += 1
        return seen[item.path.name, name] > 1
    if name in FLOAT64_ONLY.get(item.path.name, ()):
        return np.dtype(item.callspec.params["dtype"]) != np.float64
    return False


@pytest.hookimpl(tryfirst=True)  # before -m reads the markers
def pytest_collection_modifyitems(config, items):
    """Marks the cases the fast tier leaves out `integration`; without the integration
    tier, cuts every property test to FAST_TIER_EXAMPLES."""
    seen = collections.Counter()
    for item in items:
        if left_to_the_full_run(item, seen):
            item.add_marker(pytest.mark.integration)
    if selects(config, "integration"):
        return
    for item in items:
        test = getattr(item, "obj", None)
        if getattr(test, "is_hypothesis_test", False):
            chosen = test._hypothesis_internal_use_settings  # pylint: disable=protected-access
            test._hypothesis_internal_use_settings = settings(  # read when the test runs
                chosen, max_examples=min(chosen.max_examples, FAST_TIER_EXAMPLES))


def _data_root():
    root = os.environ.get("TFMODELS_DATA_DIR")
    return pathlib.Path(root) if root else None


@pytest.fixture(scope="session")
def data_dir():
    """`$TFMODELS_DATA_DIR`, or a skip that says why."""
    root = _data_root()
    if root is None or not root.is_dir():
        pytest.skip("TFMODELS_DATA_DIR is not set to an existing directory; "
                    "real-data tests need the MNIST idx files / SVHN samples")
    return root


@pytest.fixture(scope="session")
def mnist_dir(data_dir):
    """Directory with the four real MNIST idx files, or a skip."""
    for candidate in (data_dir / "mnist", data_dir):
        if (candidate / "train-images-idx3-ubyte.gz").exists() or (
                candidate / "train-images-idx3-ubyte").exists():
            return candidate
    pytest.skip(f"no MNIST idx files under {data_dir}")


@pytest.fixture(scope="session")
def svhn_sample_file(data_dir):
    """The four real SVHN crops (`svhn_samples_32x32.mat`), or a skip."""
    for candidate in (data_dir / "svhn_samples", data_dir / "svhn", data_dir):
        path = candidate / "svhn_samples_32x32.mat"
        if path.exists():
            return path
    pytest.skip(f"no svhn_samples_32x32.mat under {data_dir}")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """A data directory holding a Keras-style mnist.npz of tiny learnable digits."""
    folder = tmp_path_factory.mktemp("data")
    (x_train, y_train), (x_test, y_test) = tiny_digits(256, 0), tiny_digits(64, 1)
    np.savez(folder / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test,
             y_test=y_test)
    return folder


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_data_dir):
    """A finished run of runs.FLAGS (trained once per session); copy it, never change it."""
    from tfmodels.run import experiment  # pylint: disable=import-outside-toplevel

    model_dir = tmp_path_factory.mktemp("finished") / "run"
    experiment.run(runs.config(model_dir, tiny_data_dir))
    return model_dir


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of ``finished_run`` of the test's own, at tmp_path / "run"."""
    return pathlib.Path(shutil.copytree(finished_run, tmp_path / "run"))
