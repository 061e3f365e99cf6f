"""Compares a saved Keras model with its NumPy twin, layer by layer.

    python scripts/compare.py --model_file=my_model.keras --dataset=mnist

Prints a table (per layer: output, dL/d output and weight-gradient differences),
writes compare.json and compare.png into --output_dir (and prints their paths), and
exits 0 when every layer agrees, 6 when the two part (the table names the first layer
that does).

NaN and inf: where both sides compute the same non-finite value in the same place (NaN
and NaN, or the same infinity) they agree, so a model whose weights hold NaN exits 0
when its twin computes exactly the same; "warning:" lines before the verdict name the
layer whose output first holds them and every layer whose weights do (with their
counts), and compare.json lists the same under "nonfinite". A NaN or inf on one side
only is a difference: exit 6, naming where.

The model file is a .keras file or a legacy .h5 one (loaded by Keras in safe mode; a
model holding Python code, such as a Lambda layer, is refused). A model whose inputs or
outputs do not fit --dataset (its images, its number of classes), --num_examples beyond
the data set's test images, an empty --output_dir or --data_dir and an argument that
is no flag are refused (exit 2).
Other exit codes: tfmodels/run/cli.py.
"""

import sys

from tfmodels.run import console

if __name__ == "__main__":  # first: TensorFlow reads its log settings when imported
    console.quiet_start(sys.argv)

from absl import app, flags  # pylint: disable=wrong-import-position

from tfmodels import data  # pylint: disable=wrong-import-position
from tfmodels.run import cli  # pylint: disable=wrong-import-position
from tfmodels.run.config import DTYPES  # no TensorFlow: --help prints in a moment

MODEL_FILE = flags.DEFINE_string("model_file", None, "A Keras model file (.keras, or a legacy "
                                 ".h5), loaded in safe mode.")
DATASET = flags.DEFINE_enum("dataset", "mnist", tuple(data.DATASETS), "Test images to run it on.")
NUM_EXAMPLES = flags.DEFINE_integer("num_examples", None, "How many test images (at most the "
                                    "data set's test set); default 64, or all of a smaller "
                                    "test set.", lower_bound=1)
DTYPE = flags.DEFINE_enum("dtype", "float64", DTYPES,
                          "Compare a copy of the model in this dtype (float64 shows only what "
                          "the twin gets wrong, not float32 rounding).")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None,
                                 "Where compare.json and compare.png go; default "
                                 "compare-<model file name>.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Data directory; default $TFMODELS_DATA_DIR.")
TRAINING = flags.DEFINE_bool("training", False, "Run both in training mode.")
flags.mark_flag_as_required("model_file")
cli.refuse_empty("output_dir", "--output_dir is empty: give a folder for compare.json and "
                 "compare.png (by default compare-<model file name>)")
cli.refuse_empty("data_dir", "--data_dir is empty: give the folder holding the data set (by "
                 "default $TFMODELS_DATA_DIR)")


def comparison():
    """``tfmodels.run.comparison``, which compares: it imports TensorFlow (seconds)."""
    from tfmodels.run import comparison as module  # pylint: disable=import-outside-toplevel
    return module


@cli.guarded
def main(argv):
    cli.refuse_arguments(argv)
    report, files = comparison().compare_model_file(
        MODEL_FILE.value, DATASET.value, NUM_EXAMPLES.value, DTYPE.value, OUTPUT_DIR.value,
        DATA_DIR.value, TRAINING.value)
    print(report)
    print("Files:", ", ".join(str(path) for path in files))
    return 0 if report.ok else cli.EXIT_DIVERGED


if __name__ == "__main__":
    # A run (and --helpfull) imports TensorFlow before absl parses, as it always has, so
    # that TensorFlow's own absl flags exist; --help lists only ours.
    if not console.asks_for_help(sys.argv):
        comparison()
    app.run(main, flags_parser=cli.parse_flags)
