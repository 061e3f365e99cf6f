"""A training run end to end, for either backend: what ``scripts/train.py`` calls.

``run(config, datasets_override=None)`` loads the data (or takes tiny arrays
from a test), trains epoch by epoch, logs the material's line per epoch, and
after every epoch writes the history, the curves and a checkpoint into
``config.model_dir`` (see ``tfmodels.run.rundir``: locked, checked against its
manifest). Rerunning with the same directory resumes after the last
completed epoch.
"""

import pathlib

from absl import logging
import numpy as np

from tfmodels import data
from tfmodels.run import names, rundir
from tfmodels.errors import ConfigError, RunDirError
from tfmodels.run.progress import ProgressBar

COLLAPSE_FRACTION = 0.9  # "essentially one class": at least 90% of predictions
COLLAPSE_SAMPLES = 2000  # test images looked at by the collapse detector


def load_datasets(config):
    """((x_train, y_train), (x_test, y_test)) for --dataset, uint8 images."""
    loader = data.load_mnist if config.dataset == "mnist" else data.load_svhn
    return loader(config.data_dir)


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
            "material's unscaled SVHN run stalled at ~19%% accuracy this way) or a learning "
            "rate too high (--learning_rate=%g).", epoch, collapsed[0], 100 * collapsed[1],
            len(probabilities), config.learning_rate)
    return collapsed


def _make_backend(config):
    """The backend object; TensorFlow is imported only for --backend=tensorflow."""
    if config.backend == "numpy":
        from tfmodels.run.backend_numpy import NumpyBackend  # pylint: disable=import-outside-toplevel
        return NumpyBackend(config), True, None
    from tfmodels import distribute  # pylint: disable=import-outside-toplevel
    from tfmodels.run.backend_tf import TensorflowBackend  # pylint: disable=import-outside-toplevel

    try:
        distribute.configure_device(config.device)
        distribute.set_mixed_precision(config.mixed_precision)
        strategy = distribute.make_strategy(config.distribution_strategy, config.device)
    except ValueError as e:  # no GPU for --device=gpu, no TF_CONFIG for multi-worker
        raise ConfigError(str(e)) from None
    return TensorflowBackend(config, strategy), _is_chief(strategy), strategy


def _is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                             and resolver.task_id == 0)


def _summaries(config, model_dir):
    """A TensorBoard writer for the TensorFlow backend, else None."""
    if config.backend != "tensorflow":
        return None
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.summary.create_file_writer(str(model_dir / names.TENSORBOARD))


def run(config, datasets_override=None):
    """Trains as ``config`` says; returns {"flags": ..., "epochs": [...]}.

    Args:
        config: a ``tfmodels.config.RunConfig``.
        datasets_override: ((x_train, y_train), (x_test, y_test)) uint8 images
            and integer labels to use instead of loading --dataset.
    """
    config.validate()
    model_dir = pathlib.Path(config.model_dir)
    rundir.check_writable(model_dir)
    (x_train, y_train), (x_test, y_test) = datasets_override or load_datasets(config)
    if config.max_train_examples:
        x_train, y_train = x_train[:config.max_train_examples], y_train[:config.max_train_examples]
    backend, is_chief, strategy = _make_backend(config)
    if not is_chief:  # another worker of a multi-worker run: keep its files apart
        model_dir = model_dir / f"worker-{strategy.cluster_resolver.task_id}"
    with rundir.opened(config, model_dir) as run_dir:  # locked; failures keep the last state
        completed, history = run_dir.start(backend)
        writer = _summaries(config, model_dir)
        steps = -(-len(x_train) // config.batch_size)
        for epoch in range(completed + 1, config.epochs + 1):
            bar = ProgressBar(steps, epoch)
            logs = backend.train_epoch(epoch, x_train, y_train, bar.update)
            bar.close()
            logs.update(backend.evaluate(x_test, y_test))
            logging.info("Epoch %d, Loss: %.4f, Accuracy: %.2f, Test Loss: %.4f, "
                         "Test Accuracy: %.2f", epoch, logs["train_loss"],
                         100 * logs["train_accuracy"], logs["test_loss"],
                         100 * logs["test_accuracy"])
            warn_if_collapsed(backend.predict_proba(x_test[:COLLAPSE_SAMPLES]), epoch, config)
            history.append({"epoch": epoch, **logs})
            run_dir.save_epoch(history, backend)
            if writer is not None:
                _write_summaries(writer, epoch, logs)
        if completed >= config.epochs:
            logging.info("All %d epochs were already done in %s", config.epochs, model_dir)
        run_dir.save_final(backend)
    return {"flags": config.to_dict(), "epochs": history}


def _write_summaries(writer, epoch, logs):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    with writer.as_default():
        for key, value in logs.items():
            split, metric = key.split("_", 1)
            tf.summary.scalar(f"{metric}/{split}", value, step=epoch)
    writer.flush()


__all__ = ["collapsed_class", "load_datasets", "run"]
