"""Saving and loading ``numpy_ref`` networks as plain ``.npz`` files.

A file holds one array per parameter (``W1``, ``b1``, ...) and a JSON string
``__network__`` naming the network class and its constructor arguments, so
``load_npz`` can rebuild the network without pickle.
"""

import json
import pathlib
import zipfile
import zlib

import numpy as np

from numpy_ref import networks

FORMAT_VERSION = 1
_META_KEY = "__network__"
NETWORK_CLASSES = {cls.__name__: cls for cls in
                   (networks.TwoLayerNet, networks.MultiLayerNet, networks.DNN)}


class NpzFileError(ValueError):
    """An .npz file is missing, unreadable or not what it claims; the message names it."""


def save_npz(net, file, **extra_arrays):
    """Writes ``net``'s parameters and architecture to ``file`` (a path or a binary file).

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


def _layer_sizes(class_name, config):
    """The Affine layer sizes a saved config describes, [in, hidden..., out]."""
    if class_name == "TwoLayerNet":
        return [config["input_size"], config["hidden_size"], config["output_size"]]
    if class_name == "MultiLayerNet":
        return [config["input_size"], *config["hidden_size_list"], config["output_size"]]
    return ([config["num_input"]] + [config["num_neuron"]] * config["hidden_depth"]
            + [config["num_output"]])


def _check_shapes(path, arrays, sizes, error):
    """Every W{i}/b{i} the sizes imply is in the file with that shape.

    Checked before building the network, so a crafted config cannot make the
    loader allocate more than the file itself holds.
    """
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        for name, shape in ((f"W{i}", (fan_in, fan_out)), (f"b{i}", (fan_out,))):
            if name not in arrays:
                raise error(f"{path}: parameter {name} is missing")
            if arrays[name].shape != shape:
                raise error(f"{path}: {name} has shape {arrays[name].shape}, "
                                       f"expected {shape}")


def load_npz(path, error=None):
    """Rebuilds the network saved by ``save_npz``; returns ``(net, extra_arrays)``.

    Failures raise ``error`` (``NpzFileError`` by default), naming the file.
    """
    error = error or NpzFileError
    arrays = read_npz(path, error)
    try:
        meta = json.loads(str(arrays.pop(_META_KEY)))
        cls = NETWORK_CLASSES[meta["class"]]
        _check_shapes(path, arrays, _layer_sizes(meta["class"], meta["config"]), error)
        net = cls(**meta["config"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        if isinstance(e, error):
            raise
        raise error(f"{path}: not a numpy_ref network file "
                               f"(missing or bad {_META_KEY!r}: {e!r})") from None
    for name in net.params:
        net.params[name] = arrays.pop(name)
    return net, arrays
