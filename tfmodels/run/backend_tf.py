"""The ``--backend=tensorflow`` side of a run: Keras model, custom loop, tf.data.

Each epoch gets its own shuffled dataset, seeded by (seed, epoch), so a run
resumed from a checkpoint sees the same batches an uninterrupted one would.
"""

import contextlib
import math
import os
import pathlib
import zipfile

import keras
import numpy as np
import tensorflow as tf

from tfmodels import data, models, parity, training
from tfmodels.errors import NonFiniteLossError, WeightsFileError

EVAL_BATCH = 1000


def make_optimizer(name, learning_rate):
    """The Keras optimizer behind --optimizer (momentum: SGD with momentum 0.9)."""
    if name == "momentum":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    classes = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop, "adagrad": keras.optimizers.Adagrad}
    return classes[name](learning_rate=learning_rate)


def keras_twin(config, net):
    """The configured Keras model, built, holding the numpy_ref ``net``'s weights."""
    model = models.build_model(config.model, config.hidden_units, config.activation)
    model(np.zeros((1, *config.input_shape), np.float32))
    return parity.numpy_to_keras(net, model)


def save_keras_model(model, path):
    """``model.save`` to a temporary ``.keras`` file, then rename it onto ``path``."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_keras_model(path):
    """A ``.keras`` file loaded in Keras's safe mode: code (a Lambda layer's
    function, say) is refused instead of being run."""
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as e:
        raise WeightsFileError(f"{path}: refused or unreadable Keras model file: "
                               f"{str(e).splitlines()[0] if str(e) else e!r}") from None


def epoch_seed(seed, epoch):
    """A distinct, reproducible shuffle seed per epoch."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


class TensorflowBackend:
    """Owns the Keras model, optimizer and the material's train/test steps."""

    name = "tensorflow"

    def __init__(self, config, strategy=None):
        self.config = config
        self.strategy = strategy
        keras.utils.set_random_seed(config.seed)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.model = models.build_model(config.model, config.hidden_units,
                                            config.activation)
            self.model(np.zeros((1, *config.input_shape), np.float32))  # build weights
            self.optimizer = training.maybe_wrap_for_mixed_precision(
                make_optimizer(config.optimizer, config.learning_rate))
            self.optimizer.build(self.model.trainable_variables)
        self.trainer = training.Trainer(self.model, self.optimizer, strategy=strategy)

    def _dataset(self, x, y, training_, seed=None, batch_size=None):
        ds = data.make_dataset(x, y, batch_size=batch_size or self.config.batch_size,
                               shuffle_buffer=self.config.shuffle_buffer,
                               training=training_, seed=seed)
        if self.strategy is not None:
            ds = self.strategy.experimental_distribute_dataset(ds)
        return ds

    def train_epoch(self, epoch, x, y, on_step):
        """One epoch; ``on_step(step, examples_seen, loss)`` after each batch."""
        self.trainer.train_loss.reset_state()
        self.trainer.train_accuracy.reset_state()
        batch = self.config.batch_size
        for step, (xb, yb) in enumerate(
                self._dataset(x, y, True, epoch_seed(self.config.seed, epoch)), start=1):
            loss = float(self.trainer.train_step(xb, yb))
            if not math.isfinite(loss):
                raise NonFiniteLossError(loss, epoch, step)
            on_step(step, min(step * batch, len(x)), loss)
        results = self.trainer.results()
        return {"train_loss": results["train_loss"],
                "train_accuracy": results["train_accuracy"]}

    def evaluate(self, x, y):
        self.trainer.test_loss.reset_state()
        self.trainer.test_accuracy.reset_state()
        for xb, yb in self._dataset(x, y, False, batch_size=EVAL_BATCH):
            self.trainer.test_step(xb, yb)
        results = self.trainer.results()
        return {"test_loss": results["test_loss"], "test_accuracy": results["test_accuracy"]}

    def predict_proba(self, x):
        ds = data.make_dataset(x, np.zeros(len(x), np.int64), batch_size=EVAL_BATCH,
                               training=False)
        return np.concatenate([self.model(xb, training=False).numpy() for xb, _ in ds])

    def state_arrays(self):
        """Model weights and optimizer variables, by position, for a checkpoint."""
        state = {f"model/{i:03d}": v.numpy() for i, v in enumerate(self.model.weights)}
        state.update({f"optimizer/{i:03d}": v.numpy()
                      for i, v in enumerate(self.optimizer.variables)})
        return state

    def restore(self, arrays):
        for prefix, variables in (("model", self.model.weights),
                                  ("optimizer", self.optimizer.variables)):
            for i, variable in enumerate(variables):
                value = arrays[f"{prefix}/{i:03d}"]
                if tuple(value.shape) != tuple(variable.shape):
                    raise ValueError(f"checkpoint {prefix}/{i:03d} has shape {value.shape}, "
                                     f"but {variable.path} has {tuple(variable.shape)}")
                variable.assign(value)

    def numpy_net(self):
        return parity.keras_to_numpy(self.model)

    def load_net(self, net):
        """Takes over the weights of a numpy_ref network (e.g. from weights.npz)."""
        parity.numpy_to_keras(net, self.model)

