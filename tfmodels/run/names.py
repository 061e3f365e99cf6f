"""Every name the project writes in a run directory (--model_dir), declared once.

The scripts create, replace and remove only these names (and their own
temporary files, see ``is_own_temporary``); anything else in the folder is
the user's and is left alone, even by ``--noresume``. A name that depends on
something (an epoch, a backend) is a function; the backends' names are given by the
caller (``backends.BACKENDS``), so that this module depends on nothing.
"""

import re

from tfmodels.files import temporary_target

LOCK = ".tfmodels.lock"
MANIFEST = "manifest.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
CURVES = "curves.png"
WEIGHTS = "weights.npz"
KERAS_MODEL = "model.keras"
MODEL_FILE = "model_file.keras"  # the run's own copy of --model_file, taken when it starts
CHECKPOINTS = "checkpoints"  # folder of ckpt-NNNN.npz
TENSORBOARD = "tensorboard"  # folder of TensorBoard event files (TensorFlow backend)


def evaluation(backend):
    """What ``evaluate.py --backend=<backend>`` writes: the numbers."""
    return f"evaluation_{backend}.json"


def confusion(backend):
    """What ``evaluate.py --backend=<backend>`` writes: the confusion matrix as a figure."""
    return f"confusion_{backend}.png"


def checkpoint(epoch):
    """The name of epoch ``epoch``'s checkpoint inside CHECKPOINTS."""
    return f"ckpt-{epoch:04d}.npz"


def keras_temporary(pid):
    """The temporary file ``model.keras`` is saved to first (Keras picks the format by suffix)."""
    return f".model.tmp-{pid}.keras"


def worker(index):
    """The run directory of a multi-worker run's worker ``index`` (not the chief), inside
    the chief's."""
    return f"worker-{index}"


CHECKPOINT = re.compile(r"^ckpt-(\d{4,})\.npz$")
KERAS_TEMPORARY = re.compile(r"^\.model\.tmp-\d+\.keras$")
EVENTS = re.compile(r"^events\.out\.tfevents\.[^/]+$")  # what tf.summary writers create

# The folders, each with the pattern of the files the project writes inside.
FOLDERS = {CHECKPOINTS: CHECKPOINT, TENSORBOARD: EVENTS}


def evaluations(backends):
    """What ``evaluate.py`` writes for each of ``backends`` (their ``--backend`` names):
    files that describe the final weights of one epoch, stale once training goes on."""
    return (*map(evaluation, backends), *map(confusion, backends))


def files(backends):
    """The files at the top of a run directory (the lock aside): what a run leaves, the
    evaluations of each of ``backends`` included."""
    return (MANIFEST, HISTORY_JSON, HISTORY_CSV, CURVES, WEIGHTS, KERAS_MODEL, MODEL_FILE,
            *evaluations(backends))


def is_own_file(folder, name, backends):
    """Whether ``name`` in ``folder`` (None: the run directory itself, else one of
    FOLDERS) is a file the project writes, temporaries aside."""
    if folder is None:
        return name in files(backends)
    return bool(FOLDERS[folder].match(name))


def is_own_temporary(folder, name, backends):
    """Whether ``name`` is a temporary file of one of the project's own writes there."""
    target = temporary_target(name)
    if folder is None:
        return bool(KERAS_TEMPORARY.match(name)) or (target is not None
                                                     and is_own_file(None, target, backends))
    return target is not None and bool(FOLDERS[folder].match(target))
