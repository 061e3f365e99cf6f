"""A training run end to end, for either backend: what ``scripts/train.py`` calls.

``run(config, datasets_override=None)`` loads the data (or takes tiny arrays
from a test), trains epoch by epoch in the one epoch loop
(``numpy_ref.training.run_epochs``), logs the Keras TF2 tutorial's line per epoch
(``Epoch 3, Loss: ..., Test Accuracy: ...``), and after every epoch writes the
history, the curves and a checkpoint into ``config.model_dir`` (see
``tfmodels.run.rundir``: locked, checked against its manifest). Rerunning with the
same directory resumes after the last completed epoch.
"""

import os
import pathlib
import time

from absl import logging
import numpy as np

from numpy_ref.training import epoch_summary, run_epochs
from tfmodels import data
from tfmodels.errors import ConfigError
from tfmodels.run import backends, cli, names, rundir
from tfmodels.run.progress import ProgressBar

COLLAPSE_FRACTION = 0.9  # "essentially one class": at least 90% of predictions
COLLAPSE_SAMPLES = 2000  # test images looked at by the collapse detector
EVAL_BATCH = 1000  # test batches (evaluation does not depend on the training batch size)


def load_datasets(config):
    """((x_train, y_train), (x_test, y_test)) for --dataset, uint8 images."""
    return data.DATASETS[config.dataset].load(config.data_dir)


def check_max_train_examples(config, available):
    """ConfigError naming --max_train_examples unless the training set (of ``available``
    examples) has that many: a larger limit would train on them all, in a run directory
    named for a limit that did nothing. Known only once the data is loaded, it is
    checked before anything is written."""
    if config.max_train_examples > available:
        where = f" in {config.data_dir}" if config.data_dir else ""
        raise ConfigError(f"--max_train_examples={config.max_train_examples} is more than the "
                          f"{available:,} examples of the {config.dataset} training set"
                          f"{where}; pass at most {available}, or leave the flag out to "
                          "train on all of them")


def collapsed_class(probabilities, threshold=COLLAPSE_FRACTION):
    """(class, fraction) when one class takes >= threshold of the predictions, else None."""
    counts = np.bincount(np.argmax(probabilities, axis=1), minlength=probabilities.shape[1])
    top = int(np.argmax(counts))
    fraction = counts[top] / counts.sum()
    return (top, float(fraction)) if fraction >= threshold else None


def warn_if_collapsed(probabilities, epoch, config):
    collapsed = collapsed_class(probabilities)
    if collapsed:
        logging.warning(
            "Epoch %d: the model predicts class %d for %.0f%% of %d test images; it has "
            "collapsed to one class. Likely causes: inputs not scaled to [0, 1] (the "
            "study notes' unscaled SVHN run stalled at ~19%% accuracy this way) or a learning "
            "rate too high (--learning_rate=%s).", epoch, collapsed[0], 100 * collapsed[1],
            len(probabilities),
            "not set: the model file's" if config.learning_rate is None
            else f"{config.learning_rate:g}")
    return collapsed


def run(config, datasets_override=None):
    """Trains as ``config`` says; returns {"flags": ..., "epochs": [...]}.

    Args:
        config: a ``tfmodels.run.config.RunConfig``.
        datasets_override: ((x_train, y_train), (x_test, y_test)) uint8 images
            and integer labels to use instead of loading --dataset.
    """
    started = time.monotonic()
    config.validate()
    model_dir = pathlib.Path(config.model_dir)
    rundir.check_writable(model_dir)
    (x_train, y_train), (x_test, y_test) = datasets_override or load_datasets(config)
    if config.max_train_examples:
        check_max_train_examples(config, len(x_train))
        x_train, y_train = x_train[:config.max_train_examples], y_train[:config.max_train_examples]
    steps = -(-len(x_train) // config.batch_size)  # the last batch may be partial
    # --model_file is read once: the model is built from those bytes, and the run's copy
    # holds (a new run) or is compared with (a resumed one) the same bytes.
    model_file = rundir.read_model_file(config.model_file) if config.model_file else None
    with rundir.building_from(config, model_file) as build_config:
        backend = backends.for_training(build_config, steps)
    if not backend.is_chief:  # another worker of a multi-worker run: keep its files apart
        model_dir = model_dir / names.worker(backend.worker_index)
    # Locked; failures keep the last state. The backend's compute in its thread setting.
    with rundir.opened(config, model_dir, model_file) as run_dir, backend.threads():
        completed, history = run_dir.start(backend)
        write_summaries = backend.summary_writer(model_dir / names.TENSORBOARD)
        train, test = backend.source(x_train, y_train), backend.source(x_test, y_test)
        bars = {}

        def train_batches(epoch):
            order = data.buffered_order(len(x_train), config.shuffle_buffer, config.seed, epoch)
            bars[epoch] = ProgressBar(steps, epoch)
            return train.batches(config.batch_size, order)

        def on_step(epoch, step, loss):
            bars[epoch].update(step, min(step * config.batch_size, len(x_train)), loss)

        def on_epoch(epoch, logs):
            bars.pop(epoch).close()
            logging.info("%s", epoch_summary(epoch, logs))
            warn_if_collapsed(backend.predict_proba(x_test[:COLLAPSE_SAMPLES], EVAL_BATCH),
                              epoch, config)
            history.append({"epoch": epoch, **logs})
            run_dir.save_epoch(history, backend)
            write_summaries(epoch, logs)

        run_epochs(backend.stepper, train_batches, lambda: test.batches(EVAL_BATCH),
                   config.epochs, initial_epoch=completed, on_step=on_step, on_epoch=on_epoch)
        run_dir.save_final(backend)  # run_dir.start said if every epoch was already done
        cli.work_complete()  # a Ctrl-C from here on finds the run complete: exit 0, said so
    log_summary(config, model_dir, history, time.monotonic() - started)
    return {"flags": config.to_dict(), "epochs": history}


def log_summary(config, model_dir, history, seconds):
    """The run's last lines: final and best test accuracy, wall time, where the files are,
    and the command that evaluates them (it works pasted in any folder and shell)."""
    if not history:
        return
    final = history[-1]
    best = max(history, key=lambda e: e["test_accuracy"])
    logging.info("Done: test accuracy %.2f%% after epoch %d (best %.2f%%, epoch %d); "
                 "%.0f s in this session", 100 * final["test_accuracy"], final["epoch"],
                 100 * best["test_accuracy"], best["epoch"], seconds)
    model_dir = os.path.abspath(model_dir)
    logging.info("Files: %s (%s)", model_dir, ", ".join(
        (names.WEIGHTS, names.KERAS_MODEL, names.HISTORY_JSON, names.CURVES)))
    other = next(b for b in backends.BACKENDS if b != config.backend)
    data_dir = [f"--data_dir={os.path.abspath(config.data_dir)}"] if config.data_dir else []
    logging.info("Evaluate them with: %s", cli.command_line(
        "evaluate.py", f"--model_dir={model_dir}", f"--backend={other}", *data_dir))


__all__ = ["collapsed_class", "load_datasets", "run"]
