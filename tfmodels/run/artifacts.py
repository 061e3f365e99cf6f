"""What a run leaves in its ``--model_dir``, each file written atomically.

    history.json   {"flags": {...}, "epochs": [{"epoch": 1, "train_loss": ..}, ..]}
    history.csv    the same epochs as a table
    curves.png     loss and accuracy, train and test, per epoch
    checkpoints/   ckpt-0001.npz ... after every epoch (weights, optimizer, epoch)
    weights.npz    final weights, loadable by numpy_ref.serialization.load_npz
    model.keras    final weights as a Keras model file

Every write goes to a temporary file in the same directory and is renamed
into place, so an interrupted run never leaves a half-written file behind.
"""

import csv
import io
import json
import pathlib
import re

from absl import logging
import numpy as np

from numpy_ref.serialization import read_npz
from tfmodels.errors import RunDirError
from tfmodels.files import atomic_write

HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")
CHECKPOINT_DIR = "checkpoints"
KEEP_CHECKPOINTS = 3
_CKPT = re.compile(r"^ckpt-(\d{4,})\.npz$")


def write_text(path, text):
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path):
    path = pathlib.Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirError(f"{path}: not a readable JSON file ({e})") from None


def write_history(model_dir, flags, epochs):
    """history.json (with the run's flags), history.csv and curves.png."""
    model_dir = pathlib.Path(model_dir)
    write_json(model_dir / "history.json", {"flags": flags, "epochs": epochs})
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(epochs)
    write_text(model_dir / "history.csv", table.getvalue())
    if epochs:
        plot_curves(epochs, model_dir / "curves.png")


def plot_curves(epochs, path):
    """Loss and accuracy per epoch, train and test, side by side."""
    x = [e["epoch"] for e in epochs]
    fig, axes = new_figure(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for split in ("train", "test"):
            ax.plot(x, [e[f"{split}_{metric}"] for e in epochs], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    save_figure(fig, path)


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
    folder = pathlib.Path(model_dir) / CHECKPOINT_DIR
    found = {}
    for path in folder.glob("ckpt-*.npz") if folder.is_dir() else ():
        match = _CKPT.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def save_checkpoint(model_dir, epoch, arrays):
    """Writes checkpoints/ckpt-<epoch>.npz and keeps the newest few."""
    folder = pathlib.Path(model_dir) / CHECKPOINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / f"ckpt-{epoch:04d}.npz") as f:
        np.savez(f, epoch=np.array(epoch), **arrays)
    for _, path in list(checkpoint_paths(model_dir).items())[:-KEEP_CHECKPOINTS]:
        path.unlink(missing_ok=True)


def load_latest_checkpoint(model_dir):
    """(epoch, arrays) of the newest readable checkpoint, or (0, None) if none.

    A checkpoint that cannot be read is skipped, with a warning, in favour of
    an older one.
    """
    for epoch, path in reversed(checkpoint_paths(model_dir).items()):
        try:
            arrays = read_npz(path)
        except ValueError as e:
            logging.warning("Skipping unreadable checkpoint: %s", e)
            continue
        if int(arrays.pop("epoch", -1)) == epoch:
            return epoch, arrays
        logging.warning("Skipping checkpoint %s: it does not hold epoch %d", path, epoch)
    return 0, None


def remove_temporaries(model_dir):
    """Deletes the temporary files of writes that a killed process never renamed."""
    model_dir = pathlib.Path(model_dir)
    for folder in (model_dir, model_dir / CHECKPOINT_DIR):
        for path in folder.glob(".*.tmp*") if folder.is_dir() else ():
            path.unlink(missing_ok=True)
