"""Every name the project writes in a run directory (--model_dir), declared once.

The scripts create, replace and remove only these names (and their own
temporary files, see ``is_own_temporary``); anything else in the folder is
the user's and is left alone, even by ``--noresume``.
"""

import re

from tfmodels.files import temporary_target
from tfmodels.run.config import BACKENDS

LOCK = ".tfmodels.lock"
MANIFEST = "manifest.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
CURVES = "curves.png"
WEIGHTS = "weights.npz"
KERAS_MODEL = "model.keras"
CHECKPOINTS = "checkpoints"  # folder of ckpt-NNNN.npz
TENSORBOARD = "tensorboard"  # folder of TensorBoard event files (TensorFlow backend)


def evaluation(backend):
    return f"evaluation_{backend}.json"


def confusion(backend):
    return f"confusion_{backend}.png"


def checkpoint(epoch):
    """The name of epoch ``epoch``'s checkpoint inside CHECKPOINTS."""
    return f"ckpt-{epoch:04d}.npz"


CHECKPOINT = re.compile(r"^ckpt-(\d{4,})\.npz$")
EVENTS = re.compile(r"^events\.out\.tfevents\.[^/]+$")  # what tf.summary writers create
WORKER = re.compile(r"^worker-\d+$")  # a multi-worker run's other workers: their own run dirs
# backend_tf.save_keras_model's temporary file: .model.tmp-<pid>.keras
KERAS_TEMPORARY = re.compile(r"^\.model\.tmp-\d+\.keras$")

# The files at the top of a run directory (the lock aside): what a run leaves.
FILES = (MANIFEST, HISTORY_JSON, HISTORY_CSV, CURVES, WEIGHTS, KERAS_MODEL,
         *(evaluation(b) for b in BACKENDS), *(confusion(b) for b in BACKENDS))
# The folders, each with the pattern of the files the project writes inside.
FOLDERS = {CHECKPOINTS: CHECKPOINT, TENSORBOARD: EVENTS}


def is_own_file(folder, name):
    """Whether ``name`` in ``folder`` (None: the run directory itself, else one of
    FOLDERS) is a file the project writes, temporaries aside."""
    if folder is None:
        return name in FILES
    return bool(FOLDERS[folder].match(name))


def is_own_temporary(folder, name):
    """Whether ``name`` is a temporary file of one of the project's own writes there."""
    target = temporary_target(name)
    if folder is None:
        return bool(KERAS_TEMPORARY.match(name)) or target in FILES
    return target is not None and bool(FOLDERS[folder].match(target))
