"""Tests for tfmodels.data: MNIST (idx / npz / Keras), SVHN .mat, make_dataset."""

import contextlib
import gzip
import hashlib
import struct
import sys
import types

import numpy as np
import pytest
import scipy.io

import procs
from tfmodels import data
from tfmodels.data import DatasetError


@contextlib.contextmanager
def raises_naming(path, problem):
    """Expects a DatasetError whose message names `path` and matches `problem`."""
    with pytest.raises(DatasetError, match=problem) as info:
        yield info
    assert str(path) in str(info.value)


def write_mnist_idx(directory, n_train=5, n_test=3):
    """Four tiny gzipped idx files; returns the train (images, labels)."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            header = struct.pack(f">I{array.ndim}I", 0x800 + array.ndim, *array.shape)
            path = directory / f"{prefix}-{kind}-ubyte.gz"
            path.write_bytes(gzip.compress(header + array.tobytes()))
        if prefix == "train":
            train = (images, labels)
    return train


def mnist_npz_arrays(n_train=4, n_test=2):
    rng = np.random.default_rng(1)
    return {"x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
            "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "y_test": rng.integers(0, 10, n_test, dtype=np.uint8)}


def svhn_mat(path, n=3, labels=None, **overrides):
    """Writes a .mat in the Stanford layout: X (32, 32, 3, N), y (N, 1)."""
    x = np.arange(32 * 32 * 3 * n).reshape(32, 32, 3, n).astype(np.uint8)
    y = np.array([10, 1, 2, 5, 7][:n] if labels is None else labels, np.uint8)
    variables = {"X": x, "y": y.reshape(-1, 1)}
    variables.update(overrides)
    scipy.io.savemat(path, {k: v for k, v in variables.items() if v is not None})
    return path


# --- MNIST ------------------------------------------------------------------

def test_idx_errors_become_dataset_errors(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    for name in ("train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"")
    with raises_naming(tmp_path / "train-images-idx3-ubyte", "too short for an idx header"):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("sub", ["", "mnist"], ids=["top", "subdir"])
def test_load_mnist_from_idx(tmp_path, sub):
    images, labels = write_mnist_idx(tmp_path / sub)
    (x, y), (x_test, y_test) = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)
    assert x.dtype == np.uint8 and y.dtype == y_test.dtype == np.int64
    assert x_test.shape == (3, 28, 28)


@pytest.mark.parametrize("sub", ["", "mnist"], ids=["top", "subdir"])
def test_load_mnist_from_npz(tmp_path, sub):
    arrays = mnist_npz_arrays()
    (tmp_path / sub).mkdir(exist_ok=True)
    np.savez(tmp_path / sub / "mnist.npz", **arrays)
    (x, y), (x_test, y_test) = data.load_mnist(str(tmp_path))
    np.testing.assert_array_equal(x, arrays["x_train"])
    np.testing.assert_array_equal(y_test, arrays["y_test"])
    assert y.dtype == np.int64 and x_test.shape == (2, 28, 28)


NPZ_DEFECTS = {
    "no-y_test": (dict(y_test=None), "missing array.*y_test"),
    "float-images": (dict(x_train=np.zeros((4, 28, 28), np.float32)), "expected uint8 x_train"),
    "wrong-shape": (dict(x_test=np.zeros((2, 28, 27), np.uint8)), r"\[x_test\]: images must have shape"),
    "count-mismatch": (dict(y_train=np.zeros(3, np.uint8)), "has 4 images but .* has 3 labels"),
    "label-12": (dict(y_test=np.array([0, 12], np.int64)), r"\[y_test\]: labels must be in 0..9; found 12"),
}


@pytest.mark.parametrize("change, problem", NPZ_DEFECTS.values(), ids=NPZ_DEFECTS)
def test_load_mnist_npz_rejects(tmp_path, change, problem):
    arrays = {**mnist_npz_arrays(), **change}
    path = tmp_path / "mnist.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    with raises_naming(path, problem):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("content", [b"not a zip", b"PK\x03\x04broken"], ids=["text", "zip"])
def test_load_mnist_npz_corrupt(tmp_path, content):
    path = tmp_path / "mnist.npz"
    path.write_bytes(content)
    with raises_naming(path, "not a readable .npz file"):
        data.load_mnist_npz(path)


def _no_download():
    pytest.fail("load_mnist downloaded although a directory was given")


def test_given_empty_directory_does_not_download(tmp_path, monkeypatch):
    monkeypatch.setattr(data.mnist, "_download_mnist", _no_download)
    with raises_naming(tmp_path, "No MNIST data in .*Nothing is downloaded"):
        data.load_mnist(tmp_path)
    monkeypatch.setenv("TFMODELS_DATA_DIR", str(tmp_path))
    with raises_naming(tmp_path, "No MNIST data"):
        data.load_mnist()


def test_given_partial_idx_set_names_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(data.mnist, "_download_mnist", _no_download)
    write_mnist_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with raises_naming(tmp_path, "train-labels-idx1-ubyte"):
        data.load_mnist(tmp_path)


def test_missing_directory(tmp_path):
    with raises_naming(tmp_path / "absent", "directory not found"):
        data.load_mnist(tmp_path / "absent")


def test_no_directory_falls_back_to_keras(monkeypatch):
    monkeypatch.delenv("TFMODELS_DATA_DIR", raising=False)
    monkeypatch.setattr(data.mnist, "_download_mnist", lambda: "downloaded")
    assert data.load_mnist() == "downloaded"


def fake_keras_get_file(monkeypatch, get_file):
    """Puts a stand-in `keras` (only `utils.get_file`) in place: no TF, no network."""
    fake_keras = types.SimpleNamespace(utils=types.SimpleNamespace(get_file=get_file))
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    monkeypatch.delenv("TFMODELS_DATA_DIR", raising=False)


def test_failed_download_is_a_dataset_error(monkeypatch):
    def get_file(*args, **kwargs):
        raise OSError("network unreachable")

    fake_keras_get_file(monkeypatch, get_file)
    with pytest.raises(DatasetError, match="No local MNIST data.*download failed: network"):
        data.load_mnist()


def test_download_is_checked_against_the_sha256(monkeypatch, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, **mnist_npz_arrays())
    requested = {}

    def get_file(fname, origin, file_hash):
        requested.update(fname=fname, origin=origin, file_hash=file_hash)
        return str(path)

    fake_keras_get_file(monkeypatch, get_file)
    with pytest.raises(DatasetError, match="SHA-256 .* is not that of MNIST"):
        data.load_mnist()  # a file that is not the real mnist.npz
    assert requested["file_hash"] == data.MNIST_NPZ_SHA256  # Keras checks it too
    monkeypatch.setattr(data.mnist, "MNIST_NPZ_SHA256",
                        hashlib.sha256(path.read_bytes()).hexdigest())
    (x, y), _ = data.load_mnist()  # the expected bytes load, without pickle
    assert x.dtype == np.uint8 and y.dtype == np.int64


# --- SVHN -------------------------------------------------------------------

def test_svhn_class_names():
    assert data.SVHN_CLASS_NAMES == tuple("1234567890")


def test_load_svhn_mat_layout_and_labels(tmp_path):
    path = svhn_mat(tmp_path / "s.mat", n=5)
    raw = scipy.io.loadmat(path)["X"]
    x, y = data.load_svhn_mat(path)
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.uint8
    assert x.flags.c_contiguous
    assert x[4, 1, 2, 0] == raw[1, 2, 0, 4] and x[2, 31, 0, 2] == raw[31, 0, 2, 2]
    np.testing.assert_array_equal(x[3], raw[..., 3])
    np.testing.assert_array_equal(y, [9, 0, 1, 4, 6])  # 10 -> 9 (digit 0), 1 -> 0
    assert y.dtype == np.int64
    assert [data.SVHN_CLASS_NAMES[k] for k in y] == ["0", "1", "2", "5", "7"]


@pytest.mark.parametrize("y", [np.array([[10.0, 1.0]]), np.array([[3], [4]], np.int32)],
                         ids=["row-double", "col-int32"])
def test_load_svhn_mat_accepts_label_variants(tmp_path, y):
    x, labels = data.load_svhn_mat(svhn_mat(tmp_path / "s.mat", n=2, y=y))
    np.testing.assert_array_equal(labels, y.reshape(-1) - 1)


SVHN_DEFECTS = {
    "no-X": (dict(X=None), "no variable 'X'"),
    "no-y": (dict(y=None), "no variable 'y'"),
    "28x28": (dict(X=np.zeros((28, 28, 3, 3), np.uint8)), r"got uint8 \(28, 28, 3, 3\)"),
    "channels-first": (dict(X=np.zeros((3, 32, 32, 3), np.uint8)), "shape .32, 32, 3, N."),
    "float-X": (dict(X=np.zeros((32, 32, 3, 3))), "X must be uint8"),
    "y-count": (dict(y=np.ones((4, 1), np.uint8)), r"y must have shape \(3, 1\).*got \(4, 1\)"),
    "label-0": (dict(y=np.array([[0], [1], [2]], np.uint8)), r"found \[0\] at 1 position"),
    "label-11": (dict(y=np.array([[11], [12], [2]], np.uint8)), r"1..10.*found \[11, 12\]"),
    "label-2.5": (dict(y=np.array([[2.5], [1], [2]])), r"whole numbers.*found \[2.5\]"),
}


@pytest.mark.parametrize("change, problem", SVHN_DEFECTS.values(), ids=SVHN_DEFECTS)
def test_load_svhn_mat_rejects(tmp_path, change, problem):
    path = svhn_mat(tmp_path / "bad.mat", n=3, **change)
    with raises_naming(path, problem):
        data.load_svhn_mat(path)


@pytest.mark.parametrize("cut", [0, 50, 300, None], ids=["empty", "cut50", "cut300", "garbage"])
def test_load_svhn_mat_corrupt(tmp_path, cut):
    path = svhn_mat(tmp_path / "bad.mat")
    content = path.read_bytes()
    path.write_bytes(bytes(range(256)) * 4 if cut is None else content[:cut])
    with raises_naming(path, "not a readable MATLAB"):
        data.load_svhn_mat(path)


@pytest.mark.parametrize("sub", ["", "svhn"], ids=["top", "subdir"])
def test_load_svhn_directory(tmp_path, sub, monkeypatch):
    (tmp_path / sub).mkdir(exist_ok=True)
    svhn_mat(tmp_path / sub / "train_32x32.mat", n=5)
    svhn_mat(tmp_path / sub / "test_32x32.mat", n=2)
    monkeypatch.setenv("TFMODELS_DATA_DIR", str(tmp_path))
    (x, y), (x_test, y_test) = data.load_svhn()
    assert x.shape == (5, 32, 32, 3) and x_test.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(y_test, [9, 0])


def test_load_svhn_missing(tmp_path, monkeypatch):
    svhn_mat(tmp_path / "train_32x32.mat")
    with raises_naming(tmp_path / "svhn", "Missing SVHN file.*test_32x32.mat"):
        data.load_svhn(tmp_path)
    with raises_naming(tmp_path / "absent", "SVHN data directory not found"):
        data.load_svhn(tmp_path / "absent")
    with raises_naming(tmp_path / "absent.mat", "SVHN file not found"):
        data.load_svhn_mat(tmp_path / "absent.mat")
    monkeypatch.delenv("TFMODELS_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match=r"pass data_dir \(--data_dir\) or set TFMODELS_DATA_DIR"):
        data.load_svhn()


# --- make_dataset -------------------------------------------------------------

def _tiny(n=10):
    """Image i is filled with the value i, and its label is i: order is visible."""
    x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None], (n, 28, 28)).copy()
    return x, np.arange(n)


def _labels(ds):
    return np.concatenate([y.numpy() for _, y in ds]).tolist()


def test_make_dataset_batches():
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    x, y = _tiny(10)
    ds = data.make_dataset(x, y, batch_size=4, training=False)
    assert ds.element_spec == (tf.TensorSpec((None, 28, 28), tf.float32),
                               tf.TensorSpec((None,), tf.int64))
    batches = list(ds)
    assert [len(b[1]) for b in batches] == [4, 4, 2]  # partial batch kept
    for xb, yb in batches:
        assert xb.dtype == tf.float32 and yb.dtype == tf.int64
        np.testing.assert_allclose(xb.numpy()[:, 0, 0], yb.numpy() / 255.0, rtol=1e-6)
    assert _labels(ds) == list(range(10))  # not shuffled


def test_make_dataset_shuffles_reproducibly():
    x, y = _tiny(64)
    ds = data.make_dataset(x, y, batch_size=16, seed=3)
    first, second = _labels(ds), _labels(ds)
    assert sorted(first) == list(range(64))
    assert first != list(range(64)) and second != first  # reshuffled per epoch
    again = data.make_dataset(x, y, batch_size=16, seed=3)
    assert [_labels(again), _labels(again)] == [first, second]


def test_a_cursor_gives_blocks_of_full_batches_then_the_rest():
    x, y = _tiny(11)
    order = np.random.default_rng(0).permutation(11)
    cursor = data.ImageBatches(x, y).ordered(3, order).cursor()
    assert (cursor.full_batches, cursor.remaining, cursor.batch_size) == (3, 11, 3)
    block, n = cursor.block(2, 5)  # (rows, batch_size), never more than `rows` batches
    assert n == 2
    np.testing.assert_array_equal(block, order[:6].reshape(2, 3))
    assert cursor.remaining == 11  # nothing is taken until `advance`
    cursor.advance(1)  # e.g. a loop that stopped after its first step
    block, n = cursor.block(2, 1)
    assert n == 1
    np.testing.assert_array_equal(block, [order[3:6], [0, 0, 0]])  # the same shape
    cursor.advance(2)
    block, n = cursor.block(2, 2)
    assert (n, block.shape, block.any()) == (0, (2, 3), False)
    assert cursor.remaining == 2  # the last, smaller batch
    np.testing.assert_array_equal(cursor.rest(), order[9:])
    assert cursor.remaining == 0


BAD_ARGS = {
    "batch-0": (dict(batch_size=0), ValueError, "Received: batch_size=0"),
    "batch-float": (dict(batch_size=2.0), ValueError, "Received: batch_size=2.0"),
    "batch-bool": (dict(batch_size=True), ValueError, "Received: batch_size=True"),
    "buffer-0": (dict(shuffle_buffer=0), ValueError, "Received: shuffle_buffer=0"),
    "float-x": (dict(x=np.zeros((3, 2), np.float32)), ValueError, "Received: x.dtype=float32"),
    "2d-y": (dict(y=np.zeros((3, 10), np.int64)), ValueError, r"y.shape=\(3, 10\)"),
    "length": (dict(y=np.zeros(2, np.int64)), ValueError, r"x.shape=\(3, 2\), y.shape=\(2,\)"),
}


@pytest.mark.parametrize("change, error, problem", BAD_ARGS.values(), ids=BAD_ARGS)
def test_make_dataset_validates(change, error, problem):
    args = {"x": np.zeros((3, 2), np.uint8), "y": np.zeros(3, np.int64), **change}
    with pytest.raises(error, match=problem):
        data.make_dataset(**args)


@pytest.mark.integration
def test_import_needs_neither_tensorflow_nor_scipy():
    assert procs.heavy_modules_after("import tfmodels.data") == "[]"


# --- real data (skipped unless TFMODELS_DATA_DIR holds it) ----------------------

def test_real_mnist(mnist_dir):
    (x, y), (x_test, y_test) = data.load_mnist(mnist_dir)
    assert x.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x.dtype == x_test.dtype == np.uint8 and x.max() == 255
    for labels in (y, y_test):
        assert labels.dtype == np.int64
        assert set(np.unique(labels).tolist()) == set(range(10))


def test_real_svhn_sample(svhn_sample_file):
    x, y = data.load_svhn_mat(svhn_sample_file)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, [9, 0, 1, 4])
    raw = scipy.io.loadmat(svhn_sample_file)["X"]
    np.testing.assert_array_equal(x[2, 5, 7], raw[5, 7, :, 2])
    (xb, yb), = list(data.make_dataset(x, y, batch_size=32, training=False))
    assert xb.shape == (4, 32, 32, 3) and xb.dtype.name == "float32"
    assert 0.0 <= float(xb.numpy().min()) and float(xb.numpy().max()) <= 1.0
    np.testing.assert_allclose(xb.numpy(), x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(yb.numpy(), [9, 0, 1, 4])
