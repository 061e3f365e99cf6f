"""MNIST and SVHN as NumPy arrays, and a tf.data pipeline over them.

Importing this module imports neither TensorFlow nor SciPy: MNIST needs NumPy
only, SVHN imports `scipy.io` and `make_dataset` TensorFlow when called.

Loaders return uint8 images and int64 class labels; `make_dataset` scales the
pixels to [0, 1] per batch. SVHN (Stanford "cropped digits" format) stores
labels 1..10 where 10 stands for the digit 0; here they become classes
0..9 = label - 1, so class k is the digit k + 1 for k = 0..8 and class 9 is the
digit 0 (see `SVHN_CLASS_NAMES`).
"""

import hashlib
import os
import pathlib
import zlib

import numpy as np

from numpy_ref.mnist import DATA_DIR_ENV
from numpy_ref.mnist import DatasetError
from numpy_ref.mnist import check_mnist_arrays
from numpy_ref.mnist import find_mnist_files
from numpy_ref.mnist import read_mnist
from numpy_ref.mnist import resolve_data_dir
from numpy_ref.serialization import read_npz
from tfmodels import matfile

__all__ = ["DatasetError", "SVHN_CLASS_NAMES", "load_mnist", "load_mnist_npz",
           "load_svhn", "load_svhn_mat", "make_dataset"]

# Class index -> the digit it shows: SVHN label 10 (digit 0) is class 9.
SVHN_CLASS_NAMES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
SVHN_IMAGE_SHAPE = (32, 32, 3)
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Where Keras downloads MNIST from, and the file's SHA-256 (as Keras 3.15 pins it).
MNIST_NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def _first_file(directories, name):
    return next((d / name for d in directories if (d / name).is_file()), None)


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
        check_mnist_arrays(x, y, f"{path}[x_{split}]", f"{path}[y_{split}]")
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
    if data_dir is None and not os.environ.get(DATA_DIR_ENV):
        return _download_mnist()
    data_dir = resolve_data_dir(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"MNIST data directory not found: {data_dir}")
    try:
        find_mnist_files(data_dir)
    except DatasetError as idx_error:
        npz = _first_file((data_dir, data_dir / "mnist"), "mnist.npz")
        if npz is None:
            raise DatasetError(
                f"No MNIST data in {data_dir}. {idx_error} No mnist.npz there "
                "either. Nothing is downloaded when a directory is given."
            ) from idx_error
        return load_mnist_npz(npz)
    return _as_int64_labels(read_mnist(data_dir))


def _load_mat(path):
    """`scipy.io.loadmat` of X and y, with every read failure a DatasetError."""
    from scipy import io as sio  # pylint: disable=import-outside-toplevel

    matfile.check_mat5_file(path)
    # SciPy's reader raises a zoo of types for damaged or foreign files;
    # TypeError: an element of an unexpected type; MemoryError: a header that
    # claims more data than memory holds (scipy allocates before it reads).
    failures = (sio.matlab.MatReadError, ValueError, LookupError, OSError,
                EOFError, NotImplementedError, TypeError, MemoryError,
                zlib.error)
    try:
        return sio.loadmat(path, variable_names=("X", "y"))
    except failures as e:
        raise DatasetError(
            f"{path}: not a readable MATLAB (v4-v7.2) .mat file "
            f"({type(e).__name__}: {e}).") from e


def _check_svhn_labels(y, num_images, path):
    """Checks y: (N, 1), (1, N) or (N,), whole numbers in 1..10; returns (N,)."""
    if not isinstance(y, np.ndarray):  # e.g. a scipy.sparse matrix
        raise DatasetError(
            f"{path}: y must be a dense numeric array; got {type(y).__name__}.")
    if y.shape not in ((num_images, 1), (1, num_images), (num_images,)):
        raise DatasetError(
            f"{path}: y must have shape ({num_images}, 1) to match X's "
            f"{num_images} images; got {y.shape}.")
    y = y.reshape(-1)
    if not (np.issubdtype(y.dtype, np.integer)
            or np.issubdtype(y.dtype, np.floating)):
        raise DatasetError(f"{path}: y must be numeric; got {y.dtype}.")
    bad = (y < 1) | (y > 10) | (y != np.round(y))
    if bad.any():
        values = np.unique(y[bad])
        raise DatasetError(
            f"{path}: SVHN labels must be whole numbers in 1..10 (10 is the "
            f"digit 0); found {values[:5].tolist()} at {int(bad.sum())} "
            f"position(s), first at index {int(np.argmax(bad))}.")
    return y


def _images_first(x, chunk=4096):
    """(32, 32, 3, N) -> C-contiguous (N, 32, 32, 3), in place when it can be.

    `loadmat` returns X in MATLAB's column order: each image is one contiguous
    block of 3072 bytes, laid out (channel, column, row). Reordering the bytes
    inside each block, a chunk of images at a time, needs no second copy of
    the whole set (225 MB for SVHN's training file), unlike
    `np.ascontiguousarray(np.moveaxis(x, 3, 0))`. The result reuses x's
    memory, so x itself is scrambled: pass an array nobody else holds.
    """
    if not (x.flags.f_contiguous and x.flags.writeable):
        return np.ascontiguousarray(np.moveaxis(x, 3, 0))
    n = x.shape[3]
    flat = x.reshape(-1, order="F")  # a view: the file's byte order
    blocks = flat.reshape(n, 3, 32, 32)  # (N, channel, column, row)
    out = flat.reshape(n, 32, 32, 3)  # the same bytes as (N, row, column, channel)
    for start in range(0, n, chunk):
        # NumPy buffers the overlapping source, one chunk (12 MB) at a time.
        out[start:start + chunk] = blocks[start:start + chunk].transpose(0, 3, 2, 1)
    return out


def load_svhn_mat(path):
    """Loads one Stanford SVHN "cropped digits" file (`train_32x32.mat`).

    The file holds `X` (32, 32, 3, N) uint8, N >= 1, and `y` (N, 1) with
    labels 1..10.

    Returns:
      (x, y): x uint8 (N, 32, 32, 3), C-contiguous; y int64 (N,) classes
      0..9 = label - 1 (class 9 is the digit 0, see `SVHN_CLASS_NAMES`).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise DatasetError(f"SVHN file not found: {path}")
    mat = _load_mat(path)
    for key in ("X", "y"):
        if key not in mat:
            raise DatasetError(
                f"{path}: no variable '{key}' in the .mat file; expected X "
                "(32, 32, 3, N) uint8 and y (N, 1) labels 1..10.")
    x = mat["X"]
    if not isinstance(x, np.ndarray):  # e.g. a scipy.sparse matrix
        raise DatasetError(
            f"{path}: X must be a uint8 array; got {type(x).__name__}.")
    if x.ndim != 4 or x.shape[:3] != SVHN_IMAGE_SHAPE or x.dtype != np.uint8:
        raise DatasetError(
            f"{path}: X must be uint8 of shape (32, 32, 3, N); "
            f"got {x.dtype} {x.shape}.")
    if x.shape[3] == 0:
        raise DatasetError(f"{path}: X holds no images (N = 0).")
    y = _check_svhn_labels(mat["y"], x.shape[3], path)
    x = _images_first(x)  # (N, 32, 32, 3)
    return x, y.astype(np.int64) - 1


def load_svhn(data_dir=None):
    """Loads SVHN's `train_32x32.mat` and `test_32x32.mat`.

    Args:
      data_dir: directory holding both files (or an `svhn/` subfolder);
        defaults to `$TFMODELS_DATA_DIR`.

    Returns:
      ((x_train, y_train), (x_test, y_test)) as from `load_svhn_mat`.
    """
    data_dir = resolve_data_dir(data_dir)
    if not data_dir.is_dir():
        raise DatasetError(f"SVHN data directory not found: {data_dir}")
    search = (data_dir, data_dir / "svhn")
    names = ("train_32x32.mat", "test_32x32.mat")
    paths = [_first_file(search, name) for name in names]
    missing = [name for name, p in zip(names, paths) if p is None]
    if missing:
        raise DatasetError(
            f"Missing SVHN file(s) {', '.join(missing)}; looked in "
            f"{search[0]} and {search[1]}.")
    return tuple(load_svhn_mat(p) for p in paths)


def _check_positive_int(name, value):
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < 1:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}")


def make_dataset(x, y, batch_size=32, shuffle_buffer=1024, training=True,
                 seed=None):
    """A tf.data pipeline of (float32 images in [0, 1], int64 labels) batches.

    The uint8 images stay uint8 in memory; each batch is cast and divided by
    255 after batching, so there is never a float copy of the whole set.
    What is shuffled and batched are the sample indices; each batch of images
    is then gathered in one op. Shuffling indices with the same buffer and
    seed gives the same order as shuffling the images themselves, without
    moving every image through tf.data one at a time.

    Args:
      x: uint8 images (N, ...), e.g. (N, 28, 28) or (N, 32, 32, 3).
      y: integer class labels (N,).
      batch_size: samples per batch; the final partial batch is kept.
      shuffle_buffer: shuffle buffer size (used when `training`).
      training: shuffle, with a new order every epoch; else keep the order.
      seed: makes the sequence of shuffled orders reproducible.

    Returns:
      A `tf.data.Dataset` of `(x_batch, y_batch)`, prefetched.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("shuffle_buffer", shuffle_buffer)
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise ValueError(
            "x must hold uint8 pixels 0..255 (make_dataset scales them). "
            f"Received: x.dtype={x.dtype}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "y must be integer class labels of shape (N,). "
            f"Received: y.dtype={y.dtype}, y.shape={y.shape}")
    if x.ndim < 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            "x and y must hold the same, non-zero number of samples. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    images = tf.constant(x)  # TensorFlow's one copy of the set
    labels = tf.constant(y.astype(np.int64))

    def gather(indices):  # (B,) -> (B, ...) float32 in [0, 1], (B,) int64
        batch = tf.cast(tf.gather(images, indices), tf.float32) / 255.0
        return batch, tf.gather(labels, indices)

    ds = tf.data.Dataset.range(len(x))
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed,
                        reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    # tf.data's default graph rewrites serialise the pipeline, and with it a
    # second copy of every image (`images` already is one): for SVHN, 225 MB
    # more at the peak. This pipeline is already in the order they would give
    # it (batch indices, then one vectorised map, then prefetch).
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
