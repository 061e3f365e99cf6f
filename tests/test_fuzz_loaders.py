"""Fuzzing the data loaders with damaged files.

Truncated, bit-flipped, overwritten, extended and random files take the place
of each MNIST idx file (gzipped and raw), of a Keras `mnist.npz` and of an SVHN
`.mat`. A loader must then do one of two things: return exactly what a correct
decoding of the bytes gives, or raise `DatasetError`. Never another exception,
a crash, a hang, or a silently wrong array. Hand-picked cases follow the fuzzing.
"""

import contextlib
import dataclasses
import gzip
import io
import math
import pathlib
import pickle
import signal
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from numpy_ref.book.dataset import idx as mnist
from tfmodels import data
from tfmodels.data import DatasetError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SEED = 20240601
TRAIN, TEST = 3, 2  # images per MNIST split: tiny files, thousands of loads a second
SVHN_LABELS = np.array([10, 1, 5], np.uint8)  # label 10 is the digit 0
PER_LOAD_LIMIT_S = 1.0  # a tiny file that takes longer is a hang in the making
FUZZ_LIMIT_S = 120  # the whole fuzz loop; past it the test fails instead of hanging CI


# --- tiny valid files -----------------------------------------------------------------


def idx_bytes(array, magic=None):
    """The idx encoding of a uint8 array, header from `struct`."""
    array = np.asarray(array, np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def mnist_arrays(rng):
    """{file stem: array} for the four MNIST idx files."""
    arrays = {}
    for prefix, n in (("train", TRAIN), ("t10k", TEST)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    return arrays


def npz_bytes(arrays, compressed):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def mat_bytes(variables, **kwargs):
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, **kwargs)
    return buffer.getvalue()


# --- the expected outcome of a load ---------------------------------------------------


@dataclasses.dataclass
class Expect:
    """`value`: what the load must return (nested tuples of arrays), or None when it
    must raise DatasetError. `may_fail`: damage no independent decoder here can
    judge (a header, a zip directory) may also be refused, but never mis-decoded."""
    value: object
    may_fail: bool = False


def decode_idx(raw, ndim):
    """Reference idx decoder (independent of numpy_ref.book.dataset.idx): the array, or None."""
    header = 4 + 4 * ndim
    if len(raw) < header or raw[:4] != bytes([0, 0, 0x08, ndim]):
        return None
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        return None
    return np.frombuffer(raw[header:], np.uint8).reshape(dims)


def expected_mnist(raw_files):
    """What load_mnist must return for these idx contents (stem -> bytes), or None."""
    splits = []
    for prefix in ("train", "t10k"):
        x = decode_idx(raw_files[f"{prefix}-images-idx3-ubyte"], 3)
        y = decode_idx(raw_files[f"{prefix}-labels-idx1-ubyte"], 1)
        if (x is None or y is None or x.shape[1:] != (28, 28) or len(x) != len(y)
                or len(x) == 0 or np.any(y > 9)):
            return None
        splits.append((x, y.astype(np.int64)))
    return tuple(splits)


def svhn_result(X, labels):
    """load_svhn_mat's documented result for X (32, 32, 3, N) and labels 1..10."""
    return np.ascontiguousarray(np.moveaxis(X, 3, 0)), labels.astype(np.int64) - 1


def assert_documented_mnist(result):
    for x, y in result:
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[1:] == (28, 28)
        assert y.dtype == np.int64 and y.shape == (len(x),) and len(x) >= 1
        assert np.all((y >= 0) & (y <= 9))


def assert_documented_svhn(result):
    x, y = result
    assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and x.flags.c_contiguous
    assert y.dtype == np.int64 and y.shape == (len(x),) and len(x) >= 1
    assert np.all((y >= 0) & (y <= 9))


def assert_same(got, want):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    else:
        np.testing.assert_array_equal(got, want, strict=True)


# --- mutations ------------------------------------------------------------------------

BOUNDARY_WORDS = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def mutate(rng, raw, header_size):
    """(kind, damaged copy of raw): one of seven ways a file gets damaged."""
    kind = rng.choice(["truncate", "flip", "flips", "bytes", "word", "append", "random"],
                      p=[0.15, 0.3, 0.1, 0.1, 0.15, 0.1, 0.1])
    out = bytearray(raw)
    if kind == "truncate":
        return kind, bytes(out[:rng.integers(len(out))])
    if kind in ("flip", "flips"):
        for _ in range(1 if kind == "flip" else rng.integers(2, 9)):
            out[rng.integers(len(out))] ^= 1 << rng.integers(8)
    elif kind == "bytes":
        for _ in range(rng.integers(1, 5)):
            out[rng.integers(len(out))] = rng.integers(256)
    elif kind == "word":  # a boundary value over a size field in the header
        at = 4 * rng.integers(min(len(out), header_size) // 4)
        order = rng.choice([">", "<"])
        out[at:at + 4] = struct.pack(order + "I", rng.choice(BOUNDARY_WORDS))
    elif kind == "append":
        out += rng.bytes(rng.integers(1, 17))
    else:
        return kind, rng.bytes(rng.integers(0, 2 * len(raw)))
    return kind, bytes(out)


# --- the fuzz loop --------------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds):
    """Fails the test, rather than hanging CI, when a loader never returns.

    pytest.fail raises an exception that the loaders' `except` clauses do not catch.
    """
    if not hasattr(signal, "setitimer"):  # Windows: PER_LOAD_LIMIT_S still applies
        yield
        return

    def on_alarm(signum, frame):
        pytest.fail(f"the fuzz loop ran past {seconds} s: a loader hangs")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Fuzzer:
    """Runs loads, checks each against its Expect, and keeps the statistics."""

    def __init__(self):
        self.cases, self.loaded, self.slowest = 0, 0, (0.0, "")

    def check(self, what, load, expect, documented):
        start = time.perf_counter()
        try:
            got = load()
        except DatasetError:
            got = None
        except Exception as e:  # pylint: disable=broad-except
            raise AssertionError(f"{what}: {type(e).__name__} escaped: {e}") from e
        elapsed = time.perf_counter() - start
        self.slowest = max(self.slowest, (elapsed, what))
        self.cases += 1
        if got is None:
            assert expect.value is None or expect.may_fail, f"{what}: refused a valid file"
            return
        self.loaded += 1
        assert expect.value is not None, f"{what}: loaded a file that must be refused"
        documented(got)
        try:
            assert_same(got, expect.value)
        except AssertionError as e:
            raise AssertionError(f"{what}: silently wrong result") from e


def fuzz_mnist_idx(fuzzer, rng, tmp_path, cases_per_file):
    """Each idx file in turn damaged; raw, gzipped (the compressed bytes damaged),
    and gzipped after damaging the content."""
    arrays = mnist_arrays(rng)
    raw = {stem: idx_bytes(array) for stem, array in arrays.items()}
    original = expected_mnist(raw)
    for ext in ("", ".gz"):
        directory = tmp_path / f"mnist{ext or '-raw'}"
        directory.mkdir()
        stored = {stem: gzip.compress(content, mtime=0) if ext else content
                  for stem, content in raw.items()}
        for stem, content in stored.items():
            (directory / (stem + ext)).write_bytes(content)
        for stem in raw:
            path = directory / (stem + ext)
            for i in range(cases_per_file):
                damage_content = not ext or i % 3 == 0  # gzip: 1/3 content, 2/3 stream
                kind, damaged = mutate(rng, raw[stem] if damage_content else stored[stem],
                                       header_size=16)
                if damage_content:
                    expect = Expect(expected_mnist({**raw, stem: damaged}))
                    damaged = gzip.compress(damaged, mtime=0) if ext else damaged
                else:  # the CRC-32 catches a changed payload; damage elsewhere may be harmless
                    expect = Expect(original, may_fail=True)
                path.write_bytes(damaged)
                fuzzer.check(f"{path.name} {kind} #{i}", lambda: data.load_mnist(directory),
                             expect, assert_documented_mnist)
            path.write_bytes(stored[stem])


def fuzz_npz(fuzzer, rng, tmp_path, cases):
    arrays = {"x_train": rng.integers(0, 256, (TRAIN, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, TRAIN, dtype=np.uint8),
              "x_test": rng.integers(0, 256, (TEST, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, TEST, dtype=np.uint8)}
    original = tuple((arrays[f"x_{s}"], arrays[f"y_{s}"].astype(np.int64))
                     for s in ("train", "test"))
    path = tmp_path / "mnist.npz"
    for compressed in (False, True):
        raw = npz_bytes(arrays, compressed)
        for i in range(cases):
            kind, damaged = mutate(rng, raw, header_size=len(raw))
            path.write_bytes(damaged)
            # Every zip entry carries a CRC-32 that np.load checks (the entries are
            # read to their end): a successful load must give the original arrays.
            fuzzer.check(f"npz (compressed={compressed}) {kind} #{i}",
                         lambda: data.load_mnist_npz(path), Expect(original, may_fail=True),
                         assert_documented_mnist)


def svhn_payload_expectation(damaged, base, X, x_at, y_at):
    """Expect for an uncompressed .mat: pixels and labels decoded from their bytes.

    Damage confined to the pixel and label bytes must load as exactly those bytes
    (or be refused for an out-of-range label); damage to a header may be refused.
    """
    x_end, n = x_at + X.size, X.shape[3]
    # (A cut into the padding after the labels counts as damage: scipy reads the
    # labels' small data element, padding included, as one 8-byte unit.)
    payload_only = (len(damaged) >= len(base) and damaged[:x_at] == base[:x_at]
                    and damaged[x_end:y_at] == base[x_end:y_at])
    if len(damaged) < y_at + n:  # cut into the labels
        return Expect(None)
    pixels = np.frombuffer(damaged[x_at:x_end], np.uint8).reshape(X.shape, order="F")
    labels = np.frombuffer(damaged[y_at:y_at + n], np.uint8)
    if np.any((labels < 1) | (labels > 10)):
        return Expect(None)
    return Expect(svhn_result(pixels, labels), may_fail=not payload_only)


def fuzz_svhn_mat(fuzzer, rng, tmp_path, cases):
    X = rng.integers(0, 256, (32, 32, 3, len(SVHN_LABELS)), dtype=np.uint8)
    variables = {"X": X, "y": SVHN_LABELS.reshape(-1, 1)}
    base = mat_bytes(variables)
    x_at = base.find(X.tobytes(order="F"))  # MATLAB stores X in column order
    y_at = base.find(SVHN_LABELS.tobytes(), x_at + X.size)
    assert 128 < x_at < y_at, "the test's own .mat layout assumption broke"
    compressed = mat_bytes(variables, do_compression=True)
    original = svhn_result(X, SVHN_LABELS)
    path = tmp_path / "train_32x32.mat"

    def run(what, damaged, expect):
        path.write_bytes(damaged)
        fuzzer.check(what, lambda: data.load_svhn_mat(path), expect, assert_documented_svhn)

    # Every single-bit flip outside the pixels: the damage that once segfaulted scipy.
    structure = [i for i in range(len(base)) if not x_at <= i < x_at + X.size]
    for at in structure:
        for bit in range(8):
            damaged = bytearray(base)
            damaged[at] ^= 1 << bit
            run(f".mat byte {at} bit {bit}", bytes(damaged),
                svhn_payload_expectation(bytes(damaged), base, X, x_at, y_at))
    for i in range(cases):
        kind, damaged = mutate(rng, base, header_size=x_at)
        run(f".mat {kind} #{i}", damaged,
            svhn_payload_expectation(damaged, base, X, x_at, y_at))
        kind, damaged = mutate(rng, compressed, header_size=len(compressed))
        # zlib's Adler-32, which scipy verifies, guards the compressed variables.
        run(f"compressed .mat {kind} #{i}", damaged, Expect(original, may_fail=True))


@pytest.mark.integration
def test_fuzz_loaders(tmp_path):
    rng = np.random.default_rng(SEED)
    fuzzer = Fuzzer()
    with time_limit(FUZZ_LIMIT_S):
        fuzz_mnist_idx(fuzzer, rng, tmp_path, cases_per_file=100)  # 800 loads
        fuzz_npz(fuzzer, rng, tmp_path, cases=150)  # 300
        fuzz_svhn_mat(fuzzer, rng, tmp_path, cases=200)  # ~2000 bit flips + 400
    assert fuzzer.cases >= 3000, fuzzer.cases
    assert fuzzer.loaded >= 300, "too few damaged files still load: the oracle went untested"
    slowest_s, slowest_case = fuzzer.slowest
    assert slowest_s < PER_LOAD_LIMIT_S, f"{slowest_case} took {slowest_s:.2f} s"


# --- hand-picked cases: MNIST idx -----------------------------------------------------

GOOD_IMAGES = np.random.default_rng(1).integers(0, 256, (TRAIN, 28, 28), dtype=np.uint8)
GOOD_LABELS = np.array([3, 1, 4], np.uint8)


def with_header(magic, dims, payload=b""):
    return struct.pack(f">I{len(dims)}I", magic, *dims) + payload


IDX_CASES = {
    # name: (images file content, labels file content, problem)
    "empty": (b"", None, "too short for an idx header"),
    "header-only": (with_header(0x803, (3, 28, 28)), None, "truncated payload"),
    "magic-only": (struct.pack(">I", 0x803), None, "idx header is truncated"),
    "2**31-images": (with_header(0x803, (2**31, 28, 28), GOOD_IMAGES.tobytes()), None,
                     "truncated payload"),
    "max-u32-dims": (with_header(0x803, (2**32 - 1,) * 3), None, "truncated payload"),
    "minus-one-images": (with_header(0x803, (2**32 - 1, 28, 28), GOOD_IMAGES.tobytes()), None,
                         "truncated payload"),  # -1 read as a signed int32
    "zero-images": (with_header(0x803, (0, 28, 28)), with_header(0x801, (0,)),
                    "holds no images"),
    "zero-rows": (with_header(0x803, (3, 0, 28)), None, r"shape \(N, 28, 28\)"),
    "ndim-0": (with_header(0x800, ()), None, "bad idx magic number 0x00000800"),
    "images-ndim-1": (idx_bytes(GOOD_IMAGES.reshape(-1)), None, r"says 1 dimension\(s\)"),
    "images-ndim-4": (idx_bytes(GOOD_IMAGES[..., None]), None, r"says 4 dimension\(s\)"),
    "labels-ndim-3": (None, idx_bytes(GOOD_LABELS[:, None, None]), r"says 3 dimension\(s\)"),
    "ndim-255": (with_header(0x8FF, (1,) * 255, b"\x00"), None, r"says 255 dimension\(s\)"),
    "int8-dtype": (idx_bytes(GOOD_IMAGES, magic=0x0903), None, "bad idx magic number 0x00000903"),
    "int32-dtype": (idx_bytes(GOOD_IMAGES, magic=0x0C03), None, "bad idx magic number 0x00000c03"),
    "float64-dtype": (idx_bytes(GOOD_IMAGES, magic=0x0E03), None,
                      "bad idx magic number 0x00000e03"),
    "label-10": (None, idx_bytes([3, 10, 4]), "labels must be in 0..9; found 10"),
}


@pytest.mark.parametrize("ext", ["", ".gz"], ids=["raw", "gzip"])
@pytest.mark.parametrize("images, labels, problem", IDX_CASES.values(), ids=IDX_CASES)
def test_hand_picked_idx_files(tmp_path, ext, images, labels, problem):
    contents = {"train-images-idx3-ubyte": idx_bytes(GOOD_IMAGES),
                "train-labels-idx1-ubyte": idx_bytes(GOOD_LABELS),
                "t10k-images-idx3-ubyte": idx_bytes(GOOD_IMAGES),
                "t10k-labels-idx1-ubyte": idx_bytes(GOOD_LABELS)}
    damaged = {"train-images-idx3-ubyte": images, "train-labels-idx1-ubyte": labels}
    contents.update({stem: content for stem, content in damaged.items() if content is not None})
    for stem, content in contents.items():
        (tmp_path / (stem + ext)).write_bytes(gzip.compress(content) if ext else content)
    named = tmp_path / ("train-images-idx3-ubyte" + ext if images is not None
                        else "train-labels-idx1-ubyte" + ext)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(DatasetError, match=problem) as info:
            data.load_mnist(tmp_path)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(named) in str(info.value)
    # A header claiming 2**31 images (or 2**96 pixels) is refused from its numbers,
    # without allocating: nothing near that size is ever asked for.
    assert elapsed < PER_LOAD_LIMIT_S and peak < 10 * 2**20, (elapsed, peak)


def test_idx_with_more_dimensions_than_numpy_allows(tmp_path):
    path = tmp_path / "many-dims"
    path.write_bytes(with_header(0x800 + 65, (1,) * 65, b"\x07"))
    with pytest.raises(mnist.MnistFileError, match="65 dimensions do not fit") as info:
        mnist.read_idx(path)  # no expected_ndim: any number of dimensions is read
    assert str(path) in str(info.value)


GZIP_CASES = {
    "gzip-of-garbage": gzip.compress(np.random.default_rng(2).bytes(500)),
    "garbage-named-gz": np.random.default_rng(3).bytes(500),
    "gzip-of-nothing": gzip.compress(b""),
    "gzip-header-only": gzip.compress(idx_bytes(GOOD_IMAGES))[:10],
    "gzip-of-gzip": gzip.compress(gzip.compress(idx_bytes(GOOD_IMAGES))),
}


@pytest.mark.parametrize("content", GZIP_CASES.values(), ids=GZIP_CASES)
def test_hand_picked_gzip_files(tmp_path, content):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(mnist.MnistFileError) as info:
        mnist.read_idx(path, expected_ndim=3)
    assert str(path) in str(info.value)


# --- hand-picked cases: mnist.npz -----------------------------------------------------


def good_npz_arrays():
    return {"x_train": GOOD_IMAGES, "y_train": GOOD_LABELS,
            "x_test": GOOD_IMAGES[:2], "y_test": GOOD_LABELS[:2]}


class LeavesAMark:
    """Unpickling this creates a file: proof that a pickle was (not) loaded."""

    def __init__(self, mark):
        self.mark = mark

    def __reduce__(self):
        return (open, (str(self.mark), "w"))


def zip_of(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def npy_header(shape, descr="|u1"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def central_directory_patched(raw, offset, value):
    """raw with a 2-byte little-endian field of every central directory entry set."""
    out, at = bytearray(raw), raw.find(b"PK\x01\x02")
    while at >= 0:
        out[at + offset:at + offset + 2] = struct.pack("<H", value)
        at = raw.find(b"PK\x01\x02", at + 4)
    return bytes(out)


NPZ_CASES = {
    # name: (arrays to np.savez, or a function of the tmp dir giving the bytes, problem)
    "missing-keys": (lambda d: npz_bytes({"x_train": GOOD_IMAGES}, False), "missing array"),
    "float-images": ({"x_train": GOOD_IMAGES.astype(np.float32)}, "expected uint8 x_train"),
    "int16-images": ({"x_test": GOOD_IMAGES[:2].astype(np.int16)}, "expected uint8 x_test"),
    "float-labels": ({"y_train": GOOD_LABELS.astype(np.float64)}, "integer y_train"),
    "bool-labels": ({"y_test": np.array([True, False])}, "integer y_test"),
    "string-labels": ({"y_test": np.array(["3", "1"])}, "integer y_test"),
    "negative-label": ({"y_test": np.array([3, -1], np.int8)}, "labels must be in 0..9"),
    "no-images": ({"x_test": GOOD_IMAGES[:0], "y_test": GOOD_LABELS[:0]}, "holds no images"),
    "scalar-labels": ({"y_train": np.int64(3)}, r"labels must have shape \(N,\)"),
    "object-array": (lambda d: npz_bytes({**good_npz_arrays(), "y_train": np.array(
        [LeavesAMark(d / "unpickled"), 1, 2], dtype=object)}, False),
        "Object arrays cannot be loaded when allow_pickle=False"),
    "a-pickle": (lambda d: pickle.dumps(LeavesAMark(d / "unpickled")),
                 r"contains pickled \(object\) data"),
    "a-plain-npy": (lambda d: npy_header((3, 28, 28)) + GOOD_IMAGES.tobytes(), "single .npy array, not an .npz"),
    "entry-not-npy": (lambda d: zip_of({f"{k}.npy": b"not an array" for k in good_npz_arrays()}),
                      "not .npy data"),
    "huge-shape": (lambda d: zip_of({f"{k}.npy": npy_header((2**40, 28, 28)) + b"\0" * 64
                                     for k in good_npz_arrays()}), "not a readable .npz file"),
    "unknown-method": (lambda d: central_directory_patched(npz_bytes(good_npz_arrays(), False),
                                                            10, 99), "not a readable .npz file"),
    "encrypted": (lambda d: central_directory_patched(npz_bytes(good_npz_arrays(), False),
                                                       8, 1), "not a readable .npz file"),
    "empty": (lambda d: b"", "not a readable .npz file"),
}


def assert_refused_quickly(load, path, problem):
    """`load()` raises DatasetError matching `problem` and naming `path`, within the limit."""
    start = time.perf_counter()
    with pytest.raises(DatasetError, match=problem) as info:
        load()
    assert str(path) in str(info.value)
    assert time.perf_counter() - start < PER_LOAD_LIMIT_S


@pytest.mark.parametrize("change, problem", NPZ_CASES.values(), ids=NPZ_CASES)
def test_hand_picked_npz_files(tmp_path, change, problem):
    path = tmp_path / "mnist.npz"
    if callable(change):
        path.write_bytes(change(tmp_path))
    else:
        path.write_bytes(npz_bytes({**good_npz_arrays(), **change}, False))
    # No idx files in tmp_path: load_mnist reads the .npz.
    assert_refused_quickly(lambda: data.load_mnist(tmp_path), path, problem)
    assert not (tmp_path / "unpickled").exists(), "a pickle was loaded"


# --- hand-picked cases: SVHN .mat -----------------------------------------------------

GOOD_X = np.random.default_rng(4).integers(0, 256, (32, 32, 3, 3), dtype=np.uint8)
CELL = np.empty((1, 1), object)  # a MATLAB cell array holding the images
CELL[0, 0] = GOOD_X


def svhn_variables(**changes):
    variables = {"X": GOOD_X, "y": SVHN_LABELS.reshape(-1, 1), **changes}
    return {k: v for k, v in variables.items() if v is not None}


def data_type_patched(raw, variable, new_type):
    """raw with the type code of `variable`'s data element (little-endian file) set."""
    name_at = raw.find(b"\x01\x00\x01\x00" + variable.encode())  # its name, a small element
    out = bytearray(raw)
    out[name_at + 8:name_at + 10] = struct.pack("<H", new_type)
    return bytes(out)


def v4_header_claiming(rows, cols):
    return struct.pack("<5i", 0, rows, cols, 0, 2) + b"X\x00" + b"\x01" * 64


def matlab_v73(path):
    """A MATLAB v7.3 file: HDF5 behind a 512-byte block that starts with the MAT header."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w", userblock_size=512) as f:
        f["X"] = np.moveaxis(GOOD_X, [0, 1, 2, 3], [3, 2, 1, 0])
        f["y"] = SVHN_LABELS[None].astype(np.float64)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116)
    with open(path, "r+b") as f:
        f.write(header + b"\0" * 8 + b"\x00\x02IM")  # version 0x0200, little-endian
    return path.read_bytes()


MAT_CASES = {
    # name: (variables for savemat, or a function of the tmp dir giving the bytes, problem)
    "text-file": (lambda d: b"X = rand(32, 32, 3, 3);\ny = [10; 1; 5];\n" * 4,
                  "not a readable MATLAB"),
    "short-text": (lambda d: b"hello", "not a readable MATLAB"),
    "empty": (lambda d: b"", "not a readable MATLAB"),
    "header-only": (lambda d: mat_bytes(svhn_variables())[:128], "no variable 'X'"),
    "v7.3-hdf5": (lambda d: matlab_v73(d / "v73.mat"), "MATLAB v7.3 \\(HDF5\\) file"),
    "unknown-data-type": (lambda d: data_type_patched(mat_bytes(svhn_variables()), "X", 10),
                          "unknown element type 10"),
    "label-type-0": (lambda d: data_type_patched(mat_bytes(svhn_variables()), "y", 0),
                     "unknown element type 0"),
    "v4-huge-dims": (lambda d: v4_header_claiming(2**20, 2**20), "not a readable MATLAB"),
    "v4-negative-dims": (lambda d: v4_header_claiming(-1, 2), "not a readable MATLAB"),
    "complex-X": ({"X": GOOD_X + 1j}, "must be a real numeric array"),
    "cell-X": ({"X": CELL}, "must be a real numeric array"),
    "char-y": ({"y": "abc"}, "must be a real numeric array"),
    "struct-y": ({"y": {"labels": SVHN_LABELS}}, "must be a real numeric array"),
    "sparse-y": ({"y": scipy.sparse.csc_matrix(SVHN_LABELS.reshape(-1, 1).astype(float))},
                 "must be a real numeric array"),
    "no-images": ({"X": GOOD_X[..., :0], "y": np.zeros((0, 1), np.uint8)}, "holds no images"),
}


@pytest.mark.parametrize("change, problem", MAT_CASES.values(), ids=MAT_CASES)
def test_hand_picked_mat_files(tmp_path, change, problem):
    path = tmp_path / "train_32x32.mat"
    if callable(change):
        path.write_bytes(change(tmp_path))
    else:
        scipy.io.savemat(path, svhn_variables(**change))
    assert_refused_quickly(lambda: data.load_svhn_mat(path), path, problem)


@pytest.mark.integration
def test_unknown_data_types_do_not_crash_the_interpreter(tmp_path):
    # scipy's reader looks a data element's type code up in a 20-entry table
    # without a bounds check; before the loader checked the codes, these files
    # killed Python with a segmentation fault. A child process keeps a
    # regression a test failure instead of the end of the test session.
    good = mat_bytes(svhn_variables())
    codes = [0, 8, 10, 11, 14, 15, 19, 20, 255, 4095, 65535]
    for code in codes:
        for variable in ("X", "y"):
            (tmp_path / f"{variable}-{code}.mat").write_bytes(
                data_type_patched(good, variable, code))
    script = (
        "import pathlib, sys\n"
        "from tfmodels import data\n"
        "for path in sorted(pathlib.Path(sys.argv[1]).glob('*.mat')):\n"
        "    try:\n"
        "        data.load_svhn_mat(path)\n"
        "        print(path.name, 'loaded')\n"
        "    except data.DatasetError:\n"
        "        print(path.name, 'DatasetError')\n")
    result = subprocess.run([sys.executable, "-X", "faulthandler", "-c", script, str(tmp_path)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, f"the child died ({result.returncode}): {result.stderr[-2000:]}"
    outcomes = dict(line.split() for line in result.stdout.splitlines())
    assert len(outcomes) == 2 * len(codes)
    assert set(outcomes.values()) == {"DatasetError"}, outcomes
