"""Saving and loading ``numpy_ref`` networks as plain ``.npz`` files, without pickle.

A file holds one array per parameter and state entry, under its public name
(``W1``, or a Keras variable path such as ``dense_1/kernel``), and a JSON
string ``__network__``: the network's class and ``get_config()``, i.e. its
graph (each node's layer class, layer config and wiring). ``load_npz``
rebuilds the layers around the file's own arrays, so nothing is allocated
beyond what the file holds, and only layer classes already defined are used.
"""

import json
import pathlib
import zipfile
import zlib

import numpy as np

from numpy_ref import layers as L
from numpy_ref.network.arrays import gathered
from numpy_ref.network.config import network_class

FORMAT_VERSION = 2
_META_KEY = "__network__"


class NpzFileError(ValueError):
    """An .npz file is missing, unreadable or not what it claims; the message names it."""


def save_npz(net, file, **extra_arrays):
    """Writes ``net``'s parameters, state and graph to ``file`` (a path or a binary file).

    ``extra_arrays`` (e.g. optimizer state) are stored alongside under their
    own names; they must not clash with the network's names.
    """
    arrays = {**gathered(net.params), **gathered(net.state)}
    clash = set(extra_arrays) & (set(arrays) | {_META_KEY})
    if clash:
        raise ValueError(f"extra array names clash with the network's: {sorted(clash)}")
    meta = {"format": FORMAT_VERSION, "class": L.class_key(type(net)),
            "config": net.get_config()}
    np.savez(file, **arrays, **extra_arrays, **{_META_KEY: np.array(json.dumps(meta))})


# What np.load raises for a damaged or hostile .npz: ValueError (object arrays
# under allow_pickle=False, bad headers), zip and zlib errors,
# NotImplementedError / RuntimeError (a zip entry claiming an unknown method or
# encryption), MemoryError (a header claiming a huge shape).
NPZ_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error,
                   NotImplementedError, RuntimeError, MemoryError)


def read_npz(path, error=None, keys=None):
    """The arrays of an ``.npz`` file as a dict (only ``keys``, when given,
    that are present); never unpickles anything.

    Every way a damaged or crafted file fails becomes ``error`` (an exception
    class, ``NpzFileError`` by default) with a message naming the file.
    """
    error = error or NpzFileError
    path = pathlib.Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            raise error(f"{path}: a single .npy array, not an .npz archive")
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files if keys is None or key in keys}
    except NPZ_READ_ERRORS as e:
        if isinstance(e, error):
            raise
        raise error(f"{path}: not a readable .npz file "
                    f"({type(e).__name__}: {e})") from None
    # An entry without the .npy magic number comes back as raw bytes.
    not_arrays = sorted(key for key, value in arrays.items() if not isinstance(value, np.ndarray))
    if not_arrays:
        raise error(f"{path}: {', '.join(not_arrays)}: not .npy data")
    return arrays


def load_npz(path, error=None):
    """Rebuilds the network saved by ``save_npz``; returns ``(net, extra_arrays)``.

    Failures raise ``error`` (``NpzFileError`` by default), naming the file.
    """
    error = error or NpzFileError
    arrays = read_npz(path, error)
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT_VERSION}")
        cls = network_class(meta["class"])
        net = cls.from_config(meta["config"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not a numpy_ref network file this version reads "
                    f"({type(e).__name__}: {e})") from None
    used = set(net.params) | set(net.state)
    return net, {name: array for name, array in arrays.items() if name not in used}
