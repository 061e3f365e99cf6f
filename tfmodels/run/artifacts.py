"""What a run leaves in its ``--model_dir``, each file written atomically.

    history.json   {"flags": {...}, "sessions": [{"started": .., "flags": {...},
                   "epochs": [1, 2]}, ..], "epochs": [{"epoch": 1, "train_loss": ..}, ..]}:
                   the last session's flags, and which epochs each session trained with
                   which settings (as manifest.json lists them; files written before
                   "sessions" existed have none)
    history.csv    the same epochs as a table
    curves.png     loss and accuracy (%), train and test, per epoch, titled with the run
    checkpoints/   ckpt-0001.npz ... after every epoch (weights, optimizer, epoch)
    weights.npz    final weights, loadable by numpy_ref.network.serialization.load_npz
    model.keras    final weights as a Keras model file (``keras_model.save_keras_model``)
    manifest.json  which epoch all of these belong to (``tfmodels.run.manifest``)

Every write goes to a temporary file in the same directory and is renamed
into place, so an interrupted run never leaves a half-written file behind.
The names are declared in ``tfmodels.run.names``.
"""

import csv
import io
import json
import pathlib

import numpy as np

from numpy_ref.network.serialization import read_npz
from tfmodels.errors import RunDirError, WeightsFileError
from tfmodels.files import atomic_write
from tfmodels.run import names

HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")
# What a user can do about a run directory that cannot be trusted.
RETRAIN = "train anew there with --noresume, or use another --model_dir"
# How deep the run's JSON files may nest: manifest.json's array records nest 5 levels
# (the manifest, "checkpoint", "arrays", a record, its shape), the sessions' flags as deep.
MAX_DEPTH = 16
KEEP_CHECKPOINTS = 3
# How every .npz (a zip archive) begins: a local file header, or the end
# record of an empty archive.
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")


def write_text(path, text):
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path):
    """The content of a JSON file the run wrote; RunDirError naming it if it cannot be
    read, or nests deeper than the run's files do (``MAX_DEPTH``): Python's JSON reader
    recurses per level, and so would every comparison of what it read."""
    path = pathlib.Path(path)
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: not a readable JSON file ({e})") from None
    except RecursionError:
        content = None
        depth = "deeper than Python's JSON reader can follow"
    else:
        depth = f"{MAX_DEPTH + 1} or more levels deep" if _deeper(content, MAX_DEPTH) else None
    if depth is not None:
        raise RunDirError(f"{path} does not match what the run wrote: it nests {depth}, the "
                          f"run's files at most {MAX_DEPTH}: edited or damaged since the run "
                          f"wrote it?; {RETRAIN}")
    return content


def _deeper(content, limit):
    """Whether the parsed JSON ``content`` nests more than ``limit`` lists and objects
    deep (looked at without recursion)."""
    pending = [(content, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (list, dict)):
            if depth > limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            pending.extend((item, depth + 1) for item in items)
    return False


def valid_sessions(sessions):
    """Whether ``sessions`` is a list of sessions as manifest.json and history.json hold
    them: each {"started": time, "flags": {...}, "epochs": [whole numbers]}."""
    return isinstance(sessions, list) and all(
        isinstance(s, dict) and isinstance(s.get("started"), str)
        and isinstance(s.get("flags"), dict) and isinstance(s.get("epochs"), list)
        and all(type(e) is int for e in s["epochs"]) for s in sessions)


def read_history(path):
    """(flags, epochs, sessions) of a history.json (sessions: None in a file written before
    they were recorded); RunDirError naming the first thing wrong."""
    saved = read_json(path)
    if not (isinstance(saved, dict) and isinstance(saved.get("flags"), dict)
            and isinstance(saved.get("epochs"), list)):
        raise RunDirError(f"{path}: not a history this project wrote (it needs a \"flags\" "
                          "object and an \"epochs\" list)")
    sessions = saved.get("sessions")
    if sessions is not None and not valid_sessions(sessions):
        raise RunDirError(f"{path}: \"sessions\" is not a list of sessions as this project "
                          "writes them (each with \"started\", \"flags\" and \"epochs\")")
    for number, entry in enumerate(saved["epochs"], start=1):
        where = f"{path}: entry {number} of \"epochs\""
        if not isinstance(entry, dict):
            raise RunDirError(f"{where} is not an object")
        missing = [key for key in HISTORY_FIELDS if key not in entry]
        unknown = sorted(set(entry) - set(HISTORY_FIELDS))
        if missing or unknown:
            raise RunDirError(f"{where} " + (f"has no {missing[0]!r}" if missing else
                                             f"has an unknown key {unknown[0]!r}"))
        if type(entry["epoch"]) is not int or entry["epoch"] != number:
            raise RunDirError(f"{where} has epoch {entry['epoch']!r}; expected {number}")
        for key in HISTORY_FIELDS[1:]:
            if type(entry[key]) not in (int, float):
                raise RunDirError(f"{where} has {key} {entry[key]!r}, not a number")
    return saved["flags"], saved["epochs"], sessions


def write_history(model_dir, flags, epochs, sessions):
    """history.json (with the last session's flags and every session's settings and
    epochs, ``sessions``), history.csv and curves.png."""
    model_dir = pathlib.Path(model_dir)
    write_json(model_dir / names.HISTORY_JSON,
               {"flags": flags, "sessions": sessions, "epochs": epochs})
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(epochs)
    write_text(model_dir / names.HISTORY_CSV, table.getvalue())
    if epochs:
        plot_curves(epochs, model_dir / names.CURVES, curves_title(flags, epochs))


def curves_title(flags, epochs):
    """What curves.png shows, in a line: the run (model or model file, data set, backend)
    and its last and best test accuracy."""
    model = flags.get("model_file") or flags.get("model") or "model"
    model = pathlib.Path(model).name if flags.get("model_file") else model
    final = epochs[-1]
    best = max(epochs, key=lambda e: e["test_accuracy"])
    return (f"{model} on {flags.get('dataset', '?')}, {flags.get('backend', '?')} backend: "
            f"test accuracy {100 * final['test_accuracy']:.2f}% after epoch {final['epoch']} "
            f"(best {100 * best['test_accuracy']:.2f}%, epoch {best['epoch']})")


def curves_figure(epochs, title=None):
    """Loss and accuracy per epoch, train and test, side by side; accuracy in percent as
    the console prints it, each legend entry with its last value; the loss axis from 0
    (unless a loss is negative). The epoch axis has ticks at whole epochs and half an
    epoch of margin each side: a one-epoch run is a point on a 0.5-1.5 axis ticked at 1
    (matplotlib alone would tick 0.96 to 1.04)."""
    from matplotlib.ticker import MaxNLocator  # pylint: disable=import-outside-toplevel

    x = [e["epoch"] for e in epochs]
    fig, axes = new_figure(1, 2, figsize=(10, 4.3))
    for ax, metric, scale, unit in zip(axes, ("loss", "accuracy"), (1, 100), ("", "%")):
        for split in ("train", "test"):
            y = [scale * e[f"{split}_{metric}"] for e in epochs]
            last = f"{y[-1]:.2f}%" if unit else f"{y[-1]:.4f}"
            ax.plot(x, y, marker="o", label=f"{split} ({last})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{metric} (%)" if unit else metric)
        ax.set_xlim(min(x) - 0.5, max(x) + 0.5)
        if metric == "loss" and min(min(line.get_ydata()) for line in ax.lines) >= 0:
            ax.set_ylim(bottom=0)  # a loss of 0 is the goal: show how far off it is
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_curves(epochs, path, title=None):
    """Writes ``curves_figure`` as a PNG to ``path``."""
    save_figure(curves_figure(epochs, title), path)


def new_figure(*args, **kwargs):
    """``plt.subplots`` on the file-only Agg backend (no display needed)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    return plt.subplots(*args, **kwargs)


def save_figure(fig, path):
    """Writes ``fig`` as a PNG atomically and frees it."""
    from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def checkpoint_paths(model_dir):
    """Existing checkpoints as {epoch: path}, oldest first."""
    folder = pathlib.Path(model_dir) / names.CHECKPOINTS
    found = {}
    for path in folder.iterdir() if folder.is_dir() else ():
        match = names.CHECKPOINT.match(path.name)
        if match and path.is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def save_checkpoint(model_dir, epoch, arrays):
    """Writes checkpoints/ckpt-<epoch>.npz; returns its path."""
    folder = pathlib.Path(model_dir) / names.CHECKPOINTS
    folder.mkdir(exist_ok=True)
    path = folder / names.checkpoint(epoch)
    with atomic_write(path) as f:
        np.savez(f, epoch=np.array(epoch), **arrays)
    return path


def prune_checkpoints(model_dir, keep_epoch):
    """Removes checkpoints but the newest KEEP_CHECKPOINTS up to ``keep_epoch``,
    and any of later epochs (left by a run that did not record them)."""
    found = checkpoint_paths(model_dir)
    kept = [e for e in found if e <= keep_epoch][-KEEP_CHECKPOINTS:]
    for epoch, path in found.items():
        if epoch not in kept:
            path.unlink(missing_ok=True)


def check_npz_signature(path, error=WeightsFileError):
    """``error`` naming ``path`` unless it starts as an .npz (zip) archive does.

    np.load takes any other file for a pickle, and so would call random
    bytes "pickled data".
    """
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    if head not in _ZIP_SIGNATURES:
        raise error(f"{path}: not an .npz archive (it does not begin with a zip "
                    "signature): damaged, or not a NumPy file")


def read_checkpoint(path):
    """(epoch, arrays) of a checkpoint; WeightsFileError naming it if unreadable."""
    check_npz_signature(path)
    arrays = read_npz(path, error=WeightsFileError)
    epoch = arrays.pop("epoch", None)
    if epoch is None or epoch.shape != () or epoch.dtype.kind not in "iu":
        raise WeightsFileError(f"{path}: array epoch is missing or not an integer")
    return int(epoch), arrays
