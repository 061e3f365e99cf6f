"""Predicts the class of image files with a finished training run.

    python scripts/predict.py --model_dir=runs/mymodel-mnist-tensorflow digit.png more.jpg
    python scripts/predict.py --model_dir=RUN --backend=numpy --invert=no images.npy

Prints, for each image, the predicted digit, its probability and the probability of
every class (SVHN's class 9 is the digit 0: digits are printed).

Images are made into what the run trained on (tfmodels/run/predict.py):
  MNIST runs: greyscale; resized to 28x28 (bilinear; the aspect ratio is not kept);
    --invert=auto (the default) inverts a picture whose border is lighter than
    mid-grey, as a dark digit on white paper is, because MNIST's digits are white on
    black; transparent pixels count as white. Like MNIST's, a digit should be centred
    and fill about 20 of the 28 rows.
  SVHN runs: RGB, resized to 32x32; inverted only with --invert=yes.
  Pixels are then divided by 255, as in training.
  PNG and JPEG files are read with Pillow (installed with matplotlib). A .npy file
  holds one image or a stack of N, in the data set's shape ((28, 28), (784,) or
  (28, 28, 1); (32, 32, 3)), uint8 pixels or floats in [0, 1], used as they are (no
  resizing; inverted only with --invert=yes).

--backend=tensorflow reads the run's model.keras, --backend=numpy the NumPy twin of
weights.npz. Exit codes (tfmodels/run/cli.py): 2 bad flags (an empty --model_dir
included) or no image given, 3 an image or weights file missing, unreadable or not an
image of the run's data set (checked before decoding: a picture over 89.5 megapixels, a
.npy header declaring more data than its file holds, a stack of no images), 4
--model_dir not a finished run.
"""

import os
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
                            "Which implementation computes the predictions: tensorflow "
                            "(model.keras) or numpy (weights.npz).")
INVERT = flags.DEFINE_enum("invert", "auto", catalog.INVERT_CHOICES,
                           "Invert the pixels (255 - x): auto inverts MNIST pictures with a "
                           "light border (dark ink on white); yes every image; no none.")
flags.mark_flag_as_required("model_dir")
cli.refuse_empty("model_dir", "--model_dir must name a training run's folder, not be empty")


def predictor():
    """``tfmodels.run.predict``, which classifies: it imports TensorFlow (seconds)."""
    from tfmodels.run import predict as module  # pylint: disable=import-outside-toplevel
    return module


@cli.guarded
def main(argv):
    predict = predictor()
    program = os.path.basename(argv[0])
    if len(argv) < 2:
        cli.fail(program, cli.EXIT_USAGE, "no image given; usage: predict.py "
                                          "--model_dir=RUN IMAGE.png|IMAGE.npy ...")
    model_dir = expand_path(MODEL_DIR.value)
    _, config = predict.finished_run(model_dir)
    images = predict.read_images([expand_path(path) for path in argv[1:]], config.dataset,
                                 INVERT.value)
    outputs, source = predict.predict(model_dir, images, BACKEND.value)
    probabilities, softmaxed = predict.as_probabilities(outputs)
    print(f"{config.model} on {config.dataset} from {model_dir}, {BACKEND.value} backend "
          f"({source})" + ("; probabilities: the softmax of its outputs" if softmaxed else ""))
    print(predict.describe(config.dataset, INVERT.value))
    labels = predict.class_names(config.dataset, probabilities.shape[1])
    for image, row in zip(images, probabilities):
        print(predict.format_prediction(image, row, labels))


if __name__ == "__main__":
    # A run (and --helpfull) imports TensorFlow before absl parses, as it always has, so
    # that TensorFlow's own absl flags exist; --help lists only ours.
    if not console.asks_for_help(sys.argv):
        predictor()
    app.run(main, flags_parser=cli.parse_flags)
