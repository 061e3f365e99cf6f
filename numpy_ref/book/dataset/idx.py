"""Read MNIST from the four LeCun idx files with NumPy alone.

The idx format: a 4-byte magic number (two zero bytes, a dtype byte, 0x08 for
uint8, and the number of dimensions), one big-endian uint32 per dimension, then
the payload in C order. Labels are idx1 (magic 0x00000801), images idx3
(0x00000803). Files may be gzipped (``.gz``) or raw.

``read_mnist(data_dir)`` returns the four arrays as the files store them; the
book's ``load_mnist`` (``numpy_ref.book.dataset.mnist``) prepares them as the book does.
"""

import gzip
import math
import pathlib
import zlib

import numpy as np

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
# The book's keys -> the standard file names (each may also end in ".gz").
MNIST_FILES = {
    "train_img": "train-images-idx3-ubyte",
    "train_label": "train-labels-idx1-ubyte",
    "test_img": "t10k-images-idx3-ubyte",
    "test_label": "t10k-labels-idx1-ubyte",
}
_IDX_UINT8 = 0x08


class MnistFileError(ValueError):
    """An MNIST file or directory is missing or malformed; the message names it."""


def _read_bytes(path):
    """The whole (decompressed, for `.gz`) content of `path`."""
    if not path.is_file():
        raise MnistFileError(f"idx file not found: {path}")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        # EOFError: truncated stream; zlib.error / BadGzipFile: damaged bytes.
        raise MnistFileError(
            f"{path}: truncated or corrupt gzip data ({e}).") from e
    except OSError as e:
        raise MnistFileError(f"{path}: cannot read the file ({e}).") from e


def _parse_header(raw, path, expected_ndim):
    """Checks the magic number; returns (dims, payload offset)."""
    if len(raw) < 4:
        raise MnistFileError(
            f"{path}: {len(raw)} bytes is too short for an idx header "
            "(truncated file?).")
    magic = int.from_bytes(raw[:4], "big")
    ndim = raw[3]
    if raw[:2] != b"\x00\x00" or raw[2] != _IDX_UINT8 or ndim == 0:
        raise MnistFileError(
            f"{path}: bad idx magic number 0x{magic:08x}; expected "
            "0x00000801 (labels) or 0x00000803 (images): two zero bytes, "
            "0x08 for uint8 data, then the number of dimensions.")
    if expected_ndim is not None and ndim != expected_ndim:
        raise MnistFileError(
            f"{path}: idx magic number 0x{magic:08x} says {ndim} "
            f"dimension(s); expected 0x{0x800 + expected_ndim:08x} "
            f"({expected_ndim} dimension(s)).")
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise MnistFileError(
            f"{path}: idx header is truncated: {ndim} dimension sizes need "
            f"{offset} bytes, the file has {len(raw)}.")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    return dims, offset


def read_idx(path, expected_ndim=None):
    """Reads one idx file (gzipped or raw) into a uint8 array.

    Args:
      path: the file; a name ending in `.gz` is decompressed.
      expected_ndim: if given, the number of dimensions the file must have
        (1 for labels, 3 for images).

    Returns:
      A writable uint8 array with the shape stored in the header.

    Raises:
      MnistFileError: naming the file, when it is missing, truncated, corrupt,
        has a wrong magic number, more dimensions than NumPy allows, or its
        payload is not exactly prod(dims).
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    dims, offset = _parse_header(raw, path, expected_ndim)
    # Sizes are compared before anything is allocated: a header claiming
    # 2**31 images fails here, at once.
    expected, actual = math.prod(dims), len(raw) - offset
    if actual != expected:
        problem = ("truncated payload" if actual < expected
                   else f"{actual - expected} trailing bytes")
        raise MnistFileError(
            f"{path}: {problem}: the header's shape {dims} needs exactly "
            f"{expected} payload bytes, the file has {actual}.")
    try:
        array = np.frombuffer(raw, np.uint8, expected, offset).reshape(dims)
    except ValueError as e:  # more dimensions than NumPy allows (64 in NumPy 2)
        raise MnistFileError(
            f"{path}: the idx header's {len(dims)} dimensions do not fit in "
            f"a NumPy array ({e}).") from e
    return array.copy()  # frombuffer over `bytes` is read-only


def find_mnist_files(data_dir):
    """Finds the four MNIST idx files in `data_dir` or `data_dir/mnist`.

    Each file may be gzipped or raw; the `.gz` one wins when both exist (its
    CRC catches a damaged copy).

    Returns:
      A dict from the book's keys (`train_img`, `train_label`, `test_img`,
      `test_label`) to paths.
    """
    data_dir = pathlib.Path(data_dir)
    if not data_dir.is_dir():
        raise MnistFileError(f"MNIST data directory not found: {data_dir}")
    search = (data_dir, data_dir / "mnist")
    found, missing = {}, []
    for key, name in MNIST_FILES.items():
        candidates = [d / (name + ext) for d in search for ext in (".gz", "")]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(name)
        else:
            found[key] = path
    if missing:
        raise MnistFileError(
            f"Missing MNIST idx file(s) {', '.join(missing)} (gzipped or "
            f"not); looked in {search[0]} and {search[1]}.")
    return found


def check_mnist_arrays(images, labels, images_source, labels_source):
    """Checks one MNIST split: (N, 28, 28) images, N >= 1 labels in 0..9.

    `images_source` / `labels_source` name where the arrays came from (a file
    path) and appear in every error message.
    """
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise MnistFileError(
            f"{images_source}: images must have shape (N, 28, 28); "
            f"got {images.shape}.")
    if labels.ndim != 1:
        raise MnistFileError(
            f"{labels_source}: labels must have shape (N,); "
            f"got {labels.shape}.")
    if len(images) == 0:
        raise MnistFileError(f"{images_source}: holds no images (N = 0).")
    if len(images) != len(labels):
        raise MnistFileError(
            f"Image/label count mismatch: {images_source} has {len(images)} "
            f"images but {labels_source} has {len(labels)} labels.")
    bad = (labels < 0) | (labels >= NUM_CLASSES)
    if bad.any():
        index = int(np.argmax(bad))
        raise MnistFileError(
            f"{labels_source}: labels must be in 0..9; found "
            f"{labels[index]} at index {index} "
            f"({int(bad.sum())} bad label(s) in all).")


def read_mnist(data_dir):
    """Reads and checks the raw MNIST arrays from the idx files in `data_dir`.

    Returns:
      ((x_train, t_train), (x_test, t_test)): images uint8 (N, 28, 28) and
      labels uint8 (N,), exactly as stored in the files.
    """
    files = find_mnist_files(data_dir)
    splits = []
    for split in ("train", "test"):
        img_path, label_path = files[split + "_img"], files[split + "_label"]
        images = read_idx(img_path, expected_ndim=3)    # (N, 28, 28)
        labels = read_idx(label_path, expected_ndim=1)  # (N,)
        check_mnist_arrays(images, labels, img_path, label_path)
        splits.append((images, labels))
    return tuple(splits)
