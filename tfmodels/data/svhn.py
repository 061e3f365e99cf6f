"""SVHN in the Stanford "cropped digits" format (``train_32x32.mat``, ``test_32x32.mat``).

SVHN stores labels 1..10 where 10 stands for the digit 0; here they become classes
0..9 = label - 1, so class k is the digit k + 1 for k = 0..8 and class 9 is the
digit 0 (see `SVHN_CLASS_NAMES`). Imports SciPy when a file is read.
"""

import pathlib
import zlib

import numpy as np

from tfmodels.data import matfile
from tfmodels.data.location import first_file, resolve_data_dir
from tfmodels.errors import DatasetError

# Class index -> the digit it shows: SVHN label 10 (digit 0) is class 9.
SVHN_CLASS_NAMES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")
SVHN_IMAGE_SHAPE = (32, 32, 3)


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
    paths = [first_file(search, name) for name in names]
    missing = [name for name, p in zip(names, paths) if p is None]
    if missing:
        raise DatasetError(
            f"Missing SVHN file(s) {', '.join(missing)}; looked in "
            f"{search[0]} and {search[1]}.")
    return tuple(load_svhn_mat(p) for p in paths)
