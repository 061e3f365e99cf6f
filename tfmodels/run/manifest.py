"""``manifest.json``: which epoch a run directory's files belong to, and whether it finished.

Written atomically and last, after the files it describes, so it only ever
names complete files. Resuming and ``evaluate.py`` trust nothing it does not
vouch for::

    {"format": 1,
     "flags": {...},          the settings of the session that wrote it
     "model_file": {"file": "model_file.keras", "sha256": "..."},   the run's copy of
                              --model_file, taken when it started; null without one
     "sessions": [{"started": "2025-01-02T10:00:00+01:00", "flags": {...}, "epochs": [1, 2]},
                  {"started": ..., "flags": {...}, "epochs": [3]}],
                              each session (process) that completed epochs, with its settings
                              (history.json holds the same list)
     "epoch": 3,              completed epochs
     "history": "<sha256>",   of those epochs' entries in history.json
     "checkpoint": {"file": "checkpoints/ckpt-0003.npz", "sha256": "...",
                    "arrays": {"param/W1": [[784, 16], "<f4"], ...}},   null at epoch 0
     "final": {"epoch": 3, "files": {"weights.npz": "<sha256>",
                                     "model.keras": "<sha256>"}},        null until saved
     "finished": true}        the final weights are those of the last completed epoch

The settings that define the run (``config.DEFINING``) are the same in every session;
the others (``config.SESSION``: the epochs to reach, the device, ...) are each session's
own, so "flags" holds the last session's and "sessions" every one's. Manifests written
before "model_file" and "sessions" existed have neither: read as null and [].
"""

import hashlib
import json
import pathlib

import numpy as np

from tfmodels import files
from tfmodels.errors import RunDirError, WeightsFileError
from tfmodels.run import artifacts, names

FORMAT = 1
RETRAIN = artifacts.RETRAIN  # what a user can do about a run directory that cannot be trusted


def history_digest(epochs):
    """SHA-256 of history entries, independent of how the JSON file is laid out."""
    return hashlib.sha256(json.dumps(epochs, sort_keys=True).encode()).hexdigest()


def array_record(arrays):
    """{name: [shape, dtype]} of arrays, as the manifest lists a checkpoint's."""
    return {name: [list(value.shape), value.dtype.str] for name, value in arrays.items()}


def new(flags, model_file=None):
    """The manifest of a run with no completed epoch; ``model_file``: the record of its
    copy of --model_file ({"file": ..., "sha256": ...}), if it has one."""
    return {"format": FORMAT, "flags": flags, "model_file": model_file, "sessions": [],
            "epoch": 0, "history": history_digest([]), "checkpoint": None, "final": None,
            "finished": False}


def model_file_record(manifest):
    """The record of the run's copy of --model_file, or None (none, or an older run)."""
    return manifest.get("model_file")


def sessions(manifest):
    """The sessions that trained the run's epochs, oldest first ([] for an older run)."""
    return manifest.get("sessions", [])


def sessions_through(sessions_, epoch):
    """``sessions_`` as they stood after epoch ``epoch``: later epochs left out, and the
    sessions that then trained none."""
    kept = ({**s, "epochs": [e for e in s["epochs"] if e <= epoch]} for s in sessions_)
    return [s for s in kept if s["epochs"]]


def after_epoch(manifest, flags, epochs, checkpoint_path, model_dir, arrays, sessions_):
    """``manifest`` advanced to the last of ``epochs``, saved in ``checkpoint_path``;
    ``sessions_``: the sessions so far, this one's epoch included (``with_epoch``).

    A final weights record of an earlier epoch is kept: it says the weights
    files are older than the history, so the run is not finished.
    """
    relative = pathlib.Path(checkpoint_path).relative_to(model_dir).as_posix()
    return {**manifest, "flags": flags, "epoch": epochs[-1]["epoch"], "sessions": sessions_,
            "history": history_digest(epochs),
            "checkpoint": {"file": relative, "sha256": files.sha256(checkpoint_path),
                           "arrays": array_record(arrays)},
            "finished": False}


def with_epoch(manifest, flags, epoch, started, first):
    """The sessions of ``manifest`` with ``epoch`` recorded as trained by the session
    started at ``started`` with ``flags``: a new one if ``first`` (its first epoch), else
    the last one. What manifest.json and history.json then record."""
    sessions_ = list(sessions(manifest))
    if first or not sessions_:
        sessions_.append({"started": started, "flags": flags, "epochs": []})
    sessions_[-1] = {**sessions_[-1], "flags": flags, "epochs": [*sessions_[-1]["epochs"], epoch]}
    return sessions_


def after_final(manifest, flags, model_dir):
    """``manifest`` recording the final weights files of its last completed epoch."""
    hashes = {name: files.sha256(pathlib.Path(model_dir) / name)
              for name in (names.WEIGHTS, names.KERAS_MODEL)}
    return {**manifest, "flags": flags,
            "final": {"epoch": manifest["epoch"], "files": hashes}, "finished": True}


def write(model_dir, manifest):
    artifacts.write_json(pathlib.Path(model_dir) / names.MANIFEST, manifest)


def _valid(manifest):
    """Whether a parsed manifest has the fields and types this module writes."""
    if not (isinstance(manifest, dict) and manifest.get("format") == FORMAT
            and isinstance(manifest.get("flags"), dict)
            and isinstance(manifest.get("history"), str)
            and isinstance(manifest.get("finished"), bool)):
        return False
    if not (_valid_model_file(manifest.get("model_file"))
            and artifacts.valid_sessions(manifest.get("sessions", []))):
        return False
    epoch, checkpoint, final = (manifest.get(k) for k in ("epoch", "checkpoint", "final"))
    if type(epoch) is not int or epoch < 0 or (checkpoint is None) != (epoch == 0):
        return False
    if checkpoint is not None and not (
            isinstance(checkpoint, dict) and isinstance(checkpoint.get("file"), str)
            and isinstance(checkpoint.get("sha256"), str)
            and isinstance(checkpoint.get("arrays"), dict)
            and all(_is_array_record(r) for r in checkpoint["arrays"].values())):
        return False
    if final is not None and not (
            isinstance(final, dict) and type(final.get("epoch")) is int
            and isinstance(final.get("files"), dict)
            and set(final["files"]) == {names.WEIGHTS, names.KERAS_MODEL}
            and all(isinstance(h, str) for h in final["files"].values())):
        return False
    return manifest["finished"] == (final is not None and final["epoch"] == epoch)


def _valid_model_file(record):
    """Whether ``record`` is None or the record of a copy of --model_file ``new`` takes."""
    return record is None or (isinstance(record, dict) and record.get("file") == names.MODEL_FILE
                              and isinstance(record.get("sha256"), str))


def _is_array_record(record):
    """Whether ``record`` is [shape, dtype] as ``array_record`` writes it."""
    return (isinstance(record, list) and len(record) == 2 and isinstance(record[0], list)
            and all(type(n) is int for n in record[0]) and isinstance(record[1], str))


def read(model_dir):
    """The run directory's manifest, or None when it has none; RunDirError if invalid."""
    path = pathlib.Path(model_dir) / names.MANIFEST
    if not path.exists():
        return None
    manifest = artifacts.read_json(path)
    if not _valid(manifest):
        raise RunDirError(f"{path}: not a manifest this project wrote (fields missing or "
                          f"of the wrong type); {RETRAIN}")
    return manifest


def check_arrays(path, arrays, expected, source, exact=True):
    """WeightsFileError naming ``path`` and the array unless ``arrays`` has every
    array of ``expected`` ({name: [shape, dtype]}, what ``source`` expects)
    with that shape and dtype; ``exact``: and no other array.
    """
    for name, (shape, dtype) in expected.items():
        if name not in arrays:
            raise WeightsFileError(f"{path}: array {name} is missing ({source} expects it)")
        value = arrays[name]
        if list(value.shape) != list(shape):
            raise WeightsFileError(f"{path}: array {name} has shape {tuple(value.shape)}, "
                                   f"but {source} expects {tuple(shape)}")
        if value.dtype.str != dtype:
            raise WeightsFileError(f"{path}: array {name} has dtype {value.dtype}, "
                                   f"but {source} expects {np.dtype(dtype)}")
    extra = sorted(set(arrays) - set(expected)) if exact else []
    if extra:
        raise WeightsFileError(f"{path}: array {extra[0]} is not one {source} expects")


def check_sha256(path, expected, what):
    """RunDirError unless ``path`` is the very file the manifest recorded."""
    if files.sha256(path) != expected:
        raise RunDirError(f"{path} is not the {what} this run wrote (its SHA-256 differs "
                          f"from {names.MANIFEST}'s record): changed or replaced since; "
                          f"{RETRAIN}")
