"""Evaluates a training run's final weights with either backend.

    python scripts/evaluate.py --model_dir=runs/mymodel-mnist-tensorflow --backend=numpy

Prints test loss, accuracy, per-class accuracy and the confusion matrix, and
writes evaluation_<backend>.json and confusion_<backend>.png to --model_dir.
"""

import sys

from tfmodels.run import console

if __name__ == "__main__":  # first: TensorFlow reads its log settings when imported
    console.quiet_start(sys.argv)

from absl import app, flags  # pylint: disable=wrong-import-position

from tfmodels import catalog  # pylint: disable=wrong-import-position
from tfmodels.run import cli  # pylint: disable=wrong-import-position
from tfmodels.run.config import expand_path  # no TensorFlow: --help prints in a moment

MODEL_DIR = flags.DEFINE_string("model_dir", None, "A directory written by scripts/train.py.")
BACKEND = flags.DEFINE_enum("backend", "tensorflow", catalog.BACKEND_NAMES,
                            "Which implementation computes the predictions.")
DATA_DIR = flags.DEFINE_string("data_dir", None,
                               "Data directory; default: the run's, else $TFMODELS_DATA_DIR.")
flags.mark_flag_as_required("model_dir")
cli.refuse_empty("model_dir", "--model_dir must name a training run's folder, not be empty")
cli.refuse_empty("data_dir", "--data_dir must name a folder, not be empty (leave the flag out "
                 "for the run's own, else $TFMODELS_DATA_DIR)")


def evaluation():
    """``tfmodels.run.evaluation``, which evaluates: it imports TensorFlow (seconds)."""
    from tfmodels.run import evaluation as module  # pylint: disable=import-outside-toplevel
    return module


def rundir():
    """``tfmodels.run.rundir`` (it imports Keras, as evaluation does)."""
    from tfmodels.run import rundir as module  # pylint: disable=import-outside-toplevel
    return module


@cli.guarded
def main(argv):
    cli.refuse_arguments(argv)
    model_dir = expand_path(MODEL_DIR.value)
    rundir().check_path(model_dir)  # a name too long, ...: one line, not a traceback
    evaluation().evaluate_run(model_dir, BACKEND.value, expand_path(DATA_DIR.value))


if __name__ == "__main__":
    # A run (and --helpfull) imports TensorFlow before absl parses, as it always has, so
    # that TensorFlow's own absl flags exist; --help lists only ours.
    if not console.asks_for_help(sys.argv):
        evaluation()
    app.run(main, flags_parser=cli.parse_flags)
