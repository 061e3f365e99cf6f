"""Evaluates a finished run's weights with either backend.

A ``--model_dir`` written by ``experiment.run`` holds the run's settings and
what its files hold (manifest.json), its final weights (weights.npz, and
model.keras) and, for a ``--model_file`` run, its own copy of that file, from
which the model is rebuilt: a run directory is evaluable on its own. Either
backend can load them, whichever trained them: the NumPy file is the common
format. Evaluation holds the run directory's lock, so it never reads a run that
train.py is changing.
"""

import dataclasses
import pathlib

from absl import logging
import numpy as np

from numpy_ref.network.serialization import load_npz
from tfmodels import data, parity
from tfmodels.errors import RunDirError, WeightsFileError
from tfmodels.run import artifacts, backends, experiment, lock, manifest, names, rundir
from tfmodels.run.keras_model import build_model, load_keras_model


def load_run(model_dir):
    """(RunConfig, numpy_ref network) of the finished run saved in ``model_dir``
    (``load_finished_run`` without the manifest)."""
    _, config, net = load_finished_run(model_dir)
    return config, net


def load_finished_run(model_dir):
    """(manifest, RunConfig, numpy_ref network) of the finished run saved in ``model_dir``.

    The settings come from the manifest (a ``--model_file`` then names the run's own
    copy, ``rundir.own_model_file``); history.json and the final weights must be the
    files it records (RunDirError otherwise). The weights come from weights.npz, or,
    when only the Keras file is there, from model.keras loaded in safe mode; a damaged
    file, or one whose arrays do not fit the run's model, is a WeightsFileError naming
    the file and the array.
    """
    model_dir = pathlib.Path(model_dir)
    saved = manifest.read(model_dir)
    if saved is None:
        raise _not_a_run(model_dir)
    config = rundir.own_model_file(model_dir, saved, rundir.config_of(saved, model_dir))
    rundir.checked_history(model_dir, saved)
    if not saved["finished"]:
        raise RunDirError(f"--model_dir={model_dir}: the run is not finished ({_progress(saved)}); "
                          "rerun train.py with its flags (without --noresume) to finish it")
    name, net = _final_net(model_dir, config)
    manifest.check_sha256(model_dir / name, saved["final"]["files"][name], "file")
    return saved, config, net


def _not_a_run(model_dir):
    return RunDirError(f"--model_dir={model_dir} has no {names.MANIFEST}: not a training run "
                       "(or one written before runs had a manifest)")


def _progress(saved):
    """Where an unfinished run stands, for a message."""
    done = f"{saved['epoch']} of {saved['flags'].get('epochs')} epochs completed"
    final = saved["final"]
    if final is None:
        return f"{done}, no final weights recorded"
    return f"{done}, but {names.WEIGHTS} and {names.KERAS_MODEL} hold epoch {final['epoch']}"


def _final_net(model_dir, config):
    """(file name, numpy_ref network) of the final weights, checked against ``config``."""
    weights, keras_file = model_dir / names.WEIGHTS, model_dir / names.KERAS_MODEL
    model = build_model(config)
    if weights.is_file():
        artifacts.check_npz_signature(weights)
        path, (net, _) = weights, load_npz(weights, error=WeightsFileError)
    elif keras_file.is_file():
        path, net = keras_file, _keras_file_net(keras_file, model)
    else:
        raise RunDirError(f"{weights} is missing, but {names.MANIFEST} says the run finished; "
                          f"{manifest.RETRAIN}")
    expected = manifest.array_record(parity.twin(model).params)
    manifest.check_arrays(path, net.params, expected, "the model of the run's settings")
    return path.name, net


def _keras_file_net(path, model):
    """The twin of ``model`` (the run's, freshly built) holding the weights of the Keras file
    ``path``.

    A loaded model's variable paths start at its layers (``dense_0/kernel``), a built one's
    at the model (``mymodel/dense_0/kernel``), so the weights are taken in order, as Keras
    saved them, each checked for shape and dtype against the run's model.
    """
    loaded = load_keras_model(path).weights
    if len(loaded) != len(model.weights):
        raise WeightsFileError(f"{path}: holds {len(loaded)} weights, but the model of the "
                               f"run's settings has {len(model.weights)}")
    for theirs, mine in zip(loaded, model.weights):
        for what, value, expected in (("shape", tuple(theirs.shape), tuple(mine.shape)),
                                      ("dtype", theirs.dtype, mine.dtype)):
            if value != expected:
                raise WeightsFileError(f"{path}: array {theirs.path} has {what} {value}, but "
                                       f"the model of the run's settings expects {expected} "
                                       f"(its {mine.path})")
    for theirs, mine in zip(loaded, model.weights):
        mine.assign(theirs)
    return parity.from_keras(parity.twin(model), model)


def confusion_matrix(labels, predictions, num_classes=10):
    """counts[true, predicted], (C, C) int64."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def per_class_accuracy(counts):
    """Fraction of each true class predicted correctly; None for an absent class."""
    totals = counts.sum(axis=1)
    return [float(counts[k, k] / totals[k]) if totals[k] else None for k in range(len(counts))]


def class_names(dataset, num_classes):
    """What each class index of ``dataset`` stands for (SVHN's class 9 is the digit "0"),
    as ``data.DATASETS`` names them; the index itself past the names it has."""
    known = data.DATASETS[dataset].class_names if dataset in data.DATASETS else ()
    return [known[k] if k < len(known) else str(k) for k in range(num_classes)]


def _names(counts, names_):
    return [str(k) for k in range(len(counts))] if names_ is None else list(names_)


def format_per_class(counts, names_=None):
    """Per-class accuracy as a small table: class (its name, e.g. SVHN's "0" for index 9),
    test images, correct, accuracy."""
    rows = ["class  images  correct  accuracy"]
    for k, (name, row, accuracy) in enumerate(zip(_names(counts, names_), counts,
                                                  per_class_accuracy(counts))):
        shown = "-" if accuracy is None else f"{100 * accuracy:.2f}%"
        rows.append(f"{name:>5}  {row.sum():>6}  {row[k]:>7}  {shown:>8}")
    return "\n".join(rows)


def format_confusion(counts, names_=None):
    """The matrix as text: rows are true classes, columns predictions, each headed by the
    class's name."""
    names_ = _names(counts, names_)
    width = max(5, len(str(counts.max())) + 1, *(len(n) + 1 for n in names_))
    header = "true\\pred" + "".join(f"{name:>{width}}" for name in names_)
    rows = [f"{name:>9}" + "".join(f"{n:>{width}}" for n in row)
            for name, row in zip(names_, counts)]
    return "\n".join([header, *rows])


def plot_confusion(counts, path, title, names_=None):
    """The matrix as a figure, its rows and columns labelled with the classes' names."""
    names_ = _names(counts, names_)
    fig, ax = artifacts.new_figure(figsize=(6, 5))
    image = ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                color="white" if n > counts.max() / 2 else "black")
    ax.set(xlabel="predicted class", ylabel="true class", title=title,
           xticks=range(len(counts)), yticks=range(len(counts)))
    ax.set_xticklabels(names_)
    ax.set_yticklabels(names_)
    fig.colorbar(image)
    artifacts.save_figure(fig, path)


def test_loss(runner, x, y):
    """The test loss as the custom loop reports it (the mean of the batch losses) of
    ``runner`` on (x, y)."""
    runner.stepper.reset_metrics()
    for xb, yb in runner.source(x, y).batches(experiment.EVAL_BATCH):
        runner.stepper.test_step(xb, yb)
    return float(runner.stepper.results()["test_loss"])


def evaluate_run(model_dir, backend="tensorflow", data_dir=None, test_data=None):
    """Test loss, accuracy, per-class accuracy and confusion matrix of a run.

    Writes ``evaluation_<backend>.json`` (with the epoch whose weights it evaluated, and
    the classes' names: the per-class accuracies are keyed by them, the confusion
    matrix's rows and columns are in their order) and ``confusion_<backend>.png`` into
    ``model_dir`` and returns the JSON's content. A later training session that changes
    the weights removes both (``rundir``): they would describe older weights.

    Args:
        test_data: (x_test, y_test) uint8 images and labels to use instead of
            loading the run's data set (from ``data_dir`` or the run's setting).
    """
    model_dir = pathlib.Path(model_dir)
    rundir.check_path(model_dir)  # a name the system refuses: one line, not an OSError
    if not (model_dir / names.MANIFEST).is_file():  # create no lock file in a stranger's folder
        raise _not_a_run(model_dir)
    rundir.check_writable(model_dir)
    with lock.held(model_dir):
        return _evaluate_locked(model_dir, backend, data_dir, test_data)


def _evaluate_locked(model_dir, backend, data_dir, test_data):
    saved, config, net = load_finished_run(model_dir)
    if test_data is None:
        if data_dir is not None:
            config = dataclasses.replace(config, data_dir=data_dir)
        _, test_data = experiment.load_datasets(config)
    x_test, y_test = test_data
    runner = backends.for_evaluation(config, backend)
    runner.load_net(net)
    with runner.threads():
        loss = test_loss(runner, x_test, y_test)
        predictions = np.argmax(runner.predict_proba(x_test, experiment.EVAL_BATCH), axis=1)
    counts = confusion_matrix(np.asarray(y_test), predictions, config.num_classes)
    classes = class_names(config.dataset, len(counts))
    # Accuracy from the counts, not a float32 metric: both backends then report
    # the identical number whenever they agree on every prediction.
    results = {"backend": backend, "epoch": saved["final"]["epoch"],
               "num_examples": int(len(y_test)),
               "test_loss": loss,
               "test_accuracy": float(np.trace(counts) / counts.sum()),
               "class_names": classes,
               "per_class_accuracy": dict(zip(classes, per_class_accuracy(counts))),
               "confusion_matrix": counts.tolist()}
    logging.info("%s on %d test images, the weights of epoch %d: loss %.4f, accuracy %.2f%%\n"
                 "Per-class accuracy:\n%s\nConfusion matrix (rows: true class, columns: "
                 "predicted):\n%s", backend, len(y_test), results["epoch"],
                 results["test_loss"], 100 * results["test_accuracy"],
                 format_per_class(counts, classes), format_confusion(counts, classes))
    try:
        artifacts.write_json(model_dir / names.evaluation(backend), results)
        plot_confusion(counts, model_dir / names.confusion(backend),
                       f"{config.model} on {config.dataset} ({backend}), epoch "
                       f"{results['epoch']}", classes)
    except OSError as e:
        raise RunDirError(f"could not write {names.evaluation(backend)} and "
                          f"{names.confusion(backend)} in --model_dir={model_dir} "
                          f"({e.strerror or e})") from None
    return results
