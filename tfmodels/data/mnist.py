"""MNIST from idx files, a Keras ``mnist.npz``, or Keras's download (internet).

Returns uint8 images (N, 28, 28) and int64 labels (N,).
"""

import contextlib
import hashlib
import pathlib

import numpy as np

from numpy_ref.book.dataset import idx
from numpy_ref.network.serialization import read_npz
from tfmodels.data.location import DATA_DIR_ENV, data_dir_from_env, first_file, resolve_data_dir
from tfmodels.errors import DatasetError

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Where Keras downloads MNIST from, and the file's SHA-256 (as Keras 3.15 pins it).
MNIST_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


@contextlib.contextmanager
def _as_dataset_error():
    """numpy_ref's idx reader errors, re-raised as the scripts' DatasetError."""
    try:
        yield
    except idx.MnistFileError as e:
        raise DatasetError(str(e)) from None


def _as_int64_labels(splits):
    return tuple((x, y.astype(np.int64)) for x, y in splits)


def load_mnist_npz(path):
    """Loads a Keras-style `mnist.npz` (x_train, y_train, x_test, y_test).

    Returns:
      ((x_train, y_train), (x_test, y_test)): uint8 (N, 28, 28), int64 (N,).
    """
    path = pathlib.Path(path)
    arrays = read_npz(path, error=DatasetError, keys=_NPZ_KEYS)
    missing = [k for k in _NPZ_KEYS if k not in arrays]
    if missing:
        raise DatasetError(
            f"{path}: missing array(s) {', '.join(missing)}; a Keras "
            f"mnist.npz holds {', '.join(_NPZ_KEYS)}.")
    splits = []
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.dtype != np.uint8 or not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(
                f"{path}: expected uint8 x_{split} and integer y_{split}; "
                f"got {x.dtype} and {y.dtype}.")
        with _as_dataset_error():
            idx.check_mnist_arrays(x, y, f"{path}[x_{split}]", f"{path}[y_{split}]")
        splits.append((x, y))
    return _as_int64_labels(splits)


def _download_mnist():
    """Keras's mnist.npz (from its cache, else the internet), its SHA-256
    verified before it is read, and read without pickle."""
    try:
        import keras  # pylint: disable=import-outside-toplevel
        path = keras.utils.get_file("mnist.npz", origin=MNIST_NPZ_URL,
                                    file_hash=MNIST_NPZ_SHA256)
    except Exception as e:  # pylint: disable=broad-except
        # Network, HTTP, hash and file errors all mean the same to the caller.
        raise DatasetError(
            f"No local MNIST data (pass data_dir or set {DATA_DIR_ENV}) and "
            f"the Keras download failed: {e}") from e
    digest = hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()
    if digest != MNIST_NPZ_SHA256:
        raise DatasetError(f"{path}: SHA-256 {digest} is not that of MNIST's mnist.npz "
                           f"({MNIST_NPZ_SHA256}); delete the file and retry.")
    return load_mnist_npz(path)


def load_mnist(data_dir=None):
    """Loads MNIST as ((x_train, y_train), (x_test, y_test)).

    Sources, in order: the four idx files in `data_dir` (or `data_dir/mnist`),
    then a Keras `mnist.npz` there. `data_dir` defaults to
    `$TFMODELS_DATA_DIR`; only when neither is set does it fall back to
    `keras.datasets.mnist.load_data()`, which may download. A directory that
    was given but holds no MNIST raises instead of downloading.

    Returns:
      Images uint8 (N, 28, 28) and labels int64 (N,): 60,000 train, 10,000
      test for the real set.
    """
    if data_dir is None and data_dir_from_env() is None:
        return _download_mnist()
    data_dir = resolve_data_dir(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"MNIST data directory not found: {data_dir}")
    try:
        idx.find_mnist_files(data_dir)
    except idx.MnistFileError as idx_error:
        npz = first_file((data_dir, data_dir / "mnist"), "mnist.npz")
        if npz is None:
            # idx's sentence names the folders; a path ending it (".") gets no second dot.
            raise DatasetError(
                f"No MNIST data in {data_dir}: {str(idx_error).rstrip('.')}; no mnist.npz "
                "there either. Nothing is downloaded when a directory is given."
            ) from idx_error
        return load_mnist_npz(npz)
    with _as_dataset_error():
        return _as_int64_labels(idx.read_mnist(data_dir))
