"""Saving and loading ``numpy_ref`` networks as plain ``.npz`` files.

A file holds one array per parameter (``W1``, ``b1``, ...) and a JSON string
``__network__`` naming the network class and its constructor arguments, so
``load_npz`` can rebuild the network without pickle. Files are written
atomically: a crash mid-write leaves any earlier file at that path intact.
"""

import contextlib
import json
import os
import pathlib
import tempfile

import numpy as np

from numpy_ref import networks

FORMAT_VERSION = 1
_META_KEY = "__network__"
NETWORK_CLASSES = {cls.__name__: cls for cls in
                   (networks.TwoLayerNet, networks.MultiLayerNet, networks.DNN)}


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Opens a temporary file next to ``path``; renames it onto ``path`` on success.

    The data is flushed to disk before the rename, and the temporary file is
    removed if the block raises, so ``path`` holds either the old or the new
    complete content, never a partial one.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_npz(net, path, **extra_arrays):
    """Writes ``net``'s parameters and architecture to ``path`` (atomically).

    ``extra_arrays`` (e.g. optimizer state) are stored alongside under their
    own names; they must not clash with parameter names.
    """
    name = type(net).__name__
    if name not in NETWORK_CLASSES:
        raise ValueError(f"save_npz supports {sorted(NETWORK_CLASSES)}. Received: {name}")
    clash = set(extra_arrays) & (set(net.params) | {_META_KEY})
    if clash:
        raise ValueError(f"extra array names clash with parameters: {sorted(clash)}")
    meta = {"format": FORMAT_VERSION, "class": name, "config": net.config}
    arrays = {key: np.asarray(value) for key, value in net.params.items()}
    with atomic_write(path) as f:
        np.savez(f, **arrays, **extra_arrays, **{_META_KEY: np.array(json.dumps(meta))})


def read_npz(path):
    """All arrays of an ``.npz`` file as a dict, refusing pickled object arrays."""
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (ValueError, OSError, EOFError) as e:  # incl. object arrays, bad zip
        raise ValueError(f"{path}: not a readable .npz of plain arrays ({e})") from None


def load_npz(path):
    """Rebuilds the network saved by ``save_npz``; returns ``(net, extra_arrays)``."""
    arrays = read_npz(path)
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
        cls = NETWORK_CLASSES[meta["class"]]
        net = cls(**meta["config"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a numpy_ref network file "
                         f"(missing or bad {_META_KEY!r}: {e!r})") from None
    for name in net.params:
        if name not in arrays:
            raise ValueError(f"{path}: parameter {name} is missing")
        value = arrays.pop(name)
        if value.shape != net.params[name].shape:
            raise ValueError(f"{path}: {name} has shape {value.shape}, "
                             f"expected {net.params[name].shape}")
        net.params[name] = value
    return net, arrays
