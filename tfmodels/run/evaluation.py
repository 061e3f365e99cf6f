"""Evaluates a finished run's weights with either backend.

A ``--model_dir`` written by ``experiment.run`` holds the run's settings
(history.json) and its final weights (weights.npz). Either backend can load
them, whichever trained them: the NumPy file is the common format.
"""

import dataclasses
import pathlib

from absl import logging
import numpy as np

from numpy_ref.serialization import load_npz
from tfmodels.errors import RunDirError, WeightsFileError
from tfmodels.run import artifacts, experiment
from tfmodels.run.config import RunConfig


def load_run(model_dir):
    """(RunConfig, numpy_ref network) of the run saved in ``model_dir``.

    The weights come from weights.npz, or, when only the Keras file is there,
    from model.keras loaded in safe mode.
    """
    model_dir = pathlib.Path(model_dir)
    if not (model_dir / "history.json").is_file():
        raise RunDirError(
            f"--model_dir={model_dir} has no history.json: not a training run")
    saved = artifacts.read_json(model_dir / "history.json")
    try:
        config = RunConfig.from_dict(saved["flags"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{model_dir / 'history.json'}: no valid run settings "
                                     f"({e})") from None
    if (model_dir / "weights.npz").is_file():
        net, _ = load_npz(model_dir / "weights.npz", error=WeightsFileError)
    elif (model_dir / "model.keras").is_file():
        from tfmodels import parity  # pylint: disable=import-outside-toplevel
        from tfmodels.run import backend_tf  # pylint: disable=import-outside-toplevel
        net = parity.twin(backend_tf.load_keras_model(model_dir / "model.keras"))
    else:
        raise RunDirError(f"--model_dir={model_dir} has neither weights.npz nor "
                                     "model.keras: the run did not finish")
    return config, net


def confusion_matrix(labels, predictions, num_classes=10):
    """counts[true, predicted], (C, C) int64."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def per_class_accuracy(counts):
    """Fraction of each true class predicted correctly; None for an absent class."""
    totals = counts.sum(axis=1)
    return [float(counts[k, k] / totals[k]) if totals[k] else None for k in range(len(counts))]


def format_confusion(counts):
    """The matrix as text: rows are true classes, columns predictions."""
    width = max(5, len(str(counts.max())) + 1)
    header = "true\\pred" + "".join(f"{k:>{width}}" for k in range(len(counts)))
    rows = [f"{k:>9}" + "".join(f"{n:>{width}}" for n in row) for k, row in enumerate(counts)]
    return "\n".join([header, *rows])


def plot_confusion(counts, path, title):
    fig, ax = artifacts.new_figure(figsize=(6, 5))
    image = ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                color="white" if n > counts.max() / 2 else "black")
    ax.set(xlabel="predicted class", ylabel="true class", title=title,
           xticks=range(len(counts)), yticks=range(len(counts)))
    fig.colorbar(image)
    artifacts.save_figure(fig, path)


def make_backend(config, backend):
    """A fresh backend of the given kind for ``config``, on one device, in the run's dtype."""
    from tfmodels import distribute  # pylint: disable=import-outside-toplevel
    from tfmodels.run.backends import BACKENDS  # pylint: disable=import-outside-toplevel

    config = dataclasses.replace(config, backend=backend, mixed_precision=False,
                                 distribution_strategy="off", device="auto")
    distribute.set_mixed_precision(False)
    return BACKENDS[backend](config)


def test_loss(runner, x, y):
    """The material's test loss (mean of the batch losses) of ``runner`` on (x, y)."""
    runner.stepper.reset_metrics()
    for xb, yb in runner.source(x, y).batches(experiment.EVAL_BATCH):
        runner.stepper.test_step(xb, yb)
    return float(runner.stepper.results()["test_loss"])


def evaluate_run(model_dir, backend="tensorflow", data_dir=None, test_data=None):
    """Test loss, accuracy, per-class accuracy and confusion matrix of a run.

    Writes ``evaluation_<backend>.json`` and ``confusion_<backend>.png`` into
    ``model_dir`` and returns the JSON's content.

    Args:
        test_data: (x_test, y_test) uint8 images and labels to use instead of
            loading the run's data set (from ``data_dir`` or the run's setting).
    """
    model_dir = pathlib.Path(model_dir)
    config, net = load_run(model_dir)
    if test_data is None:
        if data_dir is not None:
            config = dataclasses.replace(config, data_dir=data_dir)
        _, test_data = experiment.load_datasets(config)
    x_test, y_test = test_data
    runner = make_backend(config, backend)
    runner.load_net(net)
    loss = test_loss(runner, x_test, y_test)
    predictions = np.argmax(runner.predict_proba(x_test, experiment.EVAL_BATCH), axis=1)
    counts = confusion_matrix(np.asarray(y_test), predictions)
    # Accuracy from the counts, not a float32 metric: both backends then report
    # the identical number whenever they agree on every prediction.
    results = {"backend": backend, "num_examples": int(len(y_test)),
               "test_loss": loss,
               "test_accuracy": float(np.trace(counts) / counts.sum()),
               "per_class_accuracy": per_class_accuracy(counts),
               "confusion_matrix": counts.tolist()}
    logging.info("%s on %d test images: loss %.4f, accuracy %.2f%%\n%s", backend,
                 len(y_test), results["test_loss"], 100 * results["test_accuracy"],
                 format_confusion(counts))
    artifacts.write_json(model_dir / f"evaluation_{backend}.json", results)
    plot_confusion(counts, model_dir / f"confusion_{backend}.png",
                   f"{config.model} on {config.dataset} ({backend})")
    return results
