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

from tfmodels.run import backends, cli, evaluation
from tfmodels.run.config import expand_path

MODEL_DIR = flags.DEFINE_string("model_dir", None, "A directory written by scripts/train.py.")
BACKEND = flags.DEFINE_enum("backend", "tensorflow", tuple(backends.BACKENDS),
                            "Which implementation computes the predictions.")
DATA_DIR = flags.DEFINE_string("data_dir", None,
                               "Data directory; default: the run's, else $TFMODELS_DATA_DIR.")
flags.mark_flag_as_required("model_dir")


@cli.guarded
def main(argv):
    del argv  # unused
    evaluation.evaluate_run(expand_path(MODEL_DIR.value), BACKEND.value,
                            expand_path(DATA_DIR.value))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
