"""Shared fixtures: the real data directory, tiny data and runs, quiet TensorFlow logs."""

import os
import pathlib
import shutil

import numpy as np
import pytest

import runs
from fakes import tiny_digits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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
