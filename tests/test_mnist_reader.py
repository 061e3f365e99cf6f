"""Tests for numpy_ref.book.dataset.idx, the idx reader and its errors, and the book's
loader on it (numpy_ref.book.dataset.mnist.load_mnist).

The idx files are written here with `struct`, independently of the reader.
"""

import contextlib
import gzip
import struct

import numpy as np
import pytest

from numpy_ref.book.dataset import idx as mnist
from numpy_ref.book.dataset import mnist as book_mnist
from numpy_ref.book.dataset.idx import MnistFileError
import procs


def idx_bytes(array, magic=None):
    """The idx encoding of a uint8 array (header from `struct`)."""
    array = np.asarray(array, np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def write_bytes(path, data):
    """Writes `data`, gzipped when `path` ends in .gz."""
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_mnist_dir(directory, n_train=5, n_test=3, ext=".gz", seed=0):
    """Writes four tiny, valid MNIST idx files; returns the arrays written."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_bytes(directory / f"{prefix}-images-idx3-ubyte{ext}",
                    idx_bytes(images))
        write_bytes(directory / f"{prefix}-labels-idx1-ubyte{ext}",
                    idx_bytes(labels))
        arrays[prefix] = (images, labels)
    return arrays


@contextlib.contextmanager
def raises_naming(path, problem):
    """Expects a MnistFileError whose message names `path` and matches `problem`."""
    with pytest.raises(MnistFileError, match=problem) as info:
        yield info
    assert str(path) in str(info.value)


def test_dataset_error_is_value_error():
    assert issubclass(MnistFileError, ValueError)


def test_read_idx_hand_written_labels(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01" b"\x00\x00\x00\x03" b"\x03\x01\x04")
    labels = mnist.read_idx(path, expected_ndim=1)
    np.testing.assert_array_equal(labels, [3, 1, 4])
    assert labels.dtype == np.uint8


@pytest.mark.parametrize("ext", [".gz", ""], ids=["gzip", "raw"])
@pytest.mark.parametrize("shape", [(7,), (4, 28, 28), (2, 3, 5)],
                         ids=["labels", "images", "odd-shape"])
def test_read_idx_round_trip(tmp_path, ext, shape):
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = write_bytes(tmp_path / ("f" + ext), idx_bytes(array))
    result = mnist.read_idx(path)
    np.testing.assert_array_equal(result, array)
    assert result.dtype == np.uint8 and result.flags.writeable


def _gzip_of(tmp_path, data):
    return write_bytes(tmp_path / "f.gz", data).read_bytes()


def _flip(data, start, stop):
    return data[:start] + bytes(b ^ 0xFF for b in data[start:stop]) + data[stop:]


GOOD = idx_bytes(np.random.default_rng(1).integers(0, 256, (6, 28, 28)))
BAD_FILES = {
    # name: (file name, bytes to write or a function of the gzip bytes, problem)
    "empty": ("f", b"", "too short for an idx header"),
    "wrong-magic": ("f", b"\x00\x00\x09\x03" + GOOD[4:], "bad idx magic number 0x00000903"),
    "magic-not-zero": ("f", b"\x08\x03\x00\x00" + GOOD[4:], "bad idx magic number 0x08030000"),
    "zero-dims": ("f", b"\x00\x00\x08\x00", "bad idx magic number"),
    "header-truncated": ("f", GOOD[:10], "idx header is truncated"),
    "payload-short": ("f", GOOD[:-1], "truncated payload"),
    "trailing-bytes": ("f", GOOD + b"\x00\x00", "2 trailing bytes"),
    "gzip-truncated": ("f.gz", lambda gz: gz[: len(gz) // 2], "truncated or corrupt gzip"),
    "gzip-no-end": ("f.gz", lambda gz: gz[:-8], "truncated or corrupt gzip"),
    "gzip-bad-header": ("f.gz", lambda gz: _flip(gz, 0, 2), "truncated or corrupt gzip"),
    "gzip-bad-deflate": ("f.gz", lambda gz: _flip(gz, 10, 14), "truncated or corrupt gzip"),
    "gzip-bad-crc": ("f.gz", lambda gz: _flip(gz, 40, 60), "truncated or corrupt gzip"),
    "not-gzip": ("f.gz", lambda gz: GOOD, "truncated or corrupt gzip"),
}


@pytest.mark.parametrize("name, data, problem", BAD_FILES.values(), ids=BAD_FILES)
def test_read_idx_rejects_bad_file(tmp_path, name, data, problem):
    if callable(data):
        data = data(gzip.compress(GOOD))
    path = tmp_path / name
    path.write_bytes(data)
    with raises_naming(path, problem):
        mnist.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with raises_naming(tmp_path / "nope.gz", "idx file not found"):
        mnist.read_idx(tmp_path / "nope.gz")


def test_read_idx_expected_ndim(tmp_path):
    path = write_bytes(tmp_path / "f", idx_bytes(np.zeros((2, 28, 28))))
    with raises_naming(path, r"3 dimension\(s\); expected 0x00000801"):
        mnist.read_idx(path, expected_ndim=1)


@pytest.mark.parametrize("sub", ["", "mnist"], ids=["top", "subdir"])
@pytest.mark.parametrize("ext", [".gz", ""], ids=["gzip", "raw"])
def test_find_and_read_mnist(tmp_path, sub, ext):
    written = write_mnist_dir(tmp_path / sub, ext=ext)
    files = mnist.find_mnist_files(tmp_path)
    assert set(files) == {"train_img", "train_label", "test_img", "test_label"}
    assert files["train_img"] == tmp_path / sub / ("train-images-idx3-ubyte" + ext)
    (x_train, t_train), (x_test, t_test) = mnist.read_mnist(tmp_path)
    np.testing.assert_array_equal(x_train, written["train"][0])
    np.testing.assert_array_equal(t_test, written["t10k"][1])
    assert x_test.shape == (3, 28, 28) and t_train.dtype == np.uint8


def test_find_prefers_gzip(tmp_path):
    write_mnist_dir(tmp_path, ext="")
    write_mnist_dir(tmp_path, ext=".gz")
    assert mnist.find_mnist_files(tmp_path)["test_label"].suffix == ".gz"


def test_find_missing_directory(tmp_path):
    with raises_naming(tmp_path / "absent", "MNIST data directory not found"):
        mnist.find_mnist_files(tmp_path / "absent")


def test_find_missing_files(tmp_path):
    write_mnist_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with raises_naming(tmp_path / "mnist", "Missing MNIST idx file.*t10k-labels"):
        mnist.find_mnist_files(tmp_path)


def test_read_mnist_count_mismatch(tmp_path):
    write_mnist_dir(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    write_bytes(labels, idx_bytes(np.zeros(4)))
    with raises_naming(labels, "has 5 images but .* has 4 labels"):
        mnist.read_mnist(tmp_path)


def test_read_mnist_label_out_of_range(tmp_path):
    write_mnist_dir(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_bytes(labels, idx_bytes([1, 10, 3]))
    with raises_naming(labels, "labels must be in 0..9; found 10 at index 1"):
        mnist.read_mnist(tmp_path)


def test_read_mnist_wrong_image_size(tmp_path):
    write_mnist_dir(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte.gz"
    write_bytes(images, idx_bytes(np.zeros((5, 27, 28))))
    with raises_naming(images, r"shape \(N, 28, 28\); got \(5, 27, 28\)"):
        mnist.read_mnist(tmp_path)


@pytest.mark.parametrize("normalize", [True, False], ids=["norm", "raw"])
@pytest.mark.parametrize("flatten", [True, False], ids=["flat", "nchw"])
@pytest.mark.parametrize("one_hot", [True, False], ids=["onehot", "int"])
def test_book_load_mnist_options(tmp_path, normalize, flatten, one_hot):
    written = write_mnist_dir(tmp_path)
    (x, t), (x_test, t_test) = book_mnist.load_mnist(
        normalize=normalize, flatten=flatten, one_hot_label=one_hot, data_dir=tmp_path)
    assert x.shape == ((5, 784) if flatten else (5, 1, 28, 28))
    assert x_test.shape[0] == t_test.shape[0] == 3
    images, labels = written["train"]
    if normalize:
        assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_allclose(x.reshape(images.shape), images / 255.0, rtol=1e-6)
    else:
        assert x.dtype == np.uint8
        np.testing.assert_array_equal(x.reshape(images.shape), images)
    if one_hot:
        assert t.shape == (5, 10) and t.dtype == np.float64  # the book's one-hot
        np.testing.assert_array_equal(t.argmax(axis=1), labels)
        np.testing.assert_array_equal(t.sum(axis=1), 1.0)
    else:
        assert t.dtype == np.uint8  # the book's labels
        np.testing.assert_array_equal(t, labels)


def test_book_load_mnist_float64(tmp_path):
    write_mnist_dir(tmp_path)
    (x, t), _ = book_mnist.load_mnist(data_dir=tmp_path, dtype=np.float64, one_hot_label=True)
    assert x.dtype == t.dtype == np.float64


def test_book_load_mnist_rejects_integer_dtype(tmp_path):
    with pytest.raises(ValueError, match="Received: dtype=int32"):
        book_mnist.load_mnist(data_dir=tmp_path, dtype=np.int32)


@pytest.mark.integration
def test_import_needs_neither_tensorflow_nor_scipy():
    assert procs.heavy_modules_after("import numpy_ref.book.dataset.idx") == "[]"


def test_real_mnist_book_style(mnist_dir):
    (x, t), (x_test, t_test) = book_mnist.load_mnist(one_hot_label=True, data_dir=mnist_dir)
    assert x.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert t.shape == (60000, 10) and t_test.shape == (10000, 10)
