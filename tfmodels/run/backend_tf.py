"""``--backend=tensorflow``: the Keras model trained by the Keras TF2 tutorial-style custom loop.

The loop's steps are ``tfmodels.training.Trainer``'s (``train_step``/``test_step`` in
``tf.function``, as the TF2 tutorial and the project's study notes write them); batches
come from the per-epoch order both backends share (``tfmodels.data.buffered_order``)
through tf.data, distributed under a ``tf.distribute`` strategy if one is set.
"""

import os

import numpy as np
import tensorflow as tf

from tfmodels import data, distribute, parity, training, xla
from tfmodels.errors import ConfigError
from tfmodels.run.backend import Backend
from tfmodels.run.keras_model import (batch_shape, build_model, checked_twin, compiled,
                                      training_setup)


def _is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker run."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                             and resolver.task_id == 0)


class _Source:
    """One split's images in TensorFlow, batched in a given order (distributed if need be)."""

    def __init__(self, x, y, dtype, strategy, shape=None):
        self.images, self.strategy = data.ImageBatches(x, y, dtype, shape), strategy

    def batches(self, batch_size, order=None):
        """The batches in ``order``: ``OrderedBatches`` (a multi-step Trainer gathers them in
        its compiled loop; iterated, the tf.data pipeline), or under a strategy the
        distributed tf.data pipeline."""
        if self.strategy is None:
            return self.images.ordered(batch_size, order)
        ds = self.images.dataset(batch_size, order)
        return self.strategy.experimental_distribute_dataset(ds)


class TensorflowBackend(Backend):
    """The Keras model, its optimizer and the custom loop's train/test steps (``Trainer``)."""

    name = "tensorflow"

    def __init__(self, config, strategy=None, steps_per_epoch=None):
        self.config, self.strategy = config, strategy
        with distribute.scope(strategy):
            self.model = build_model(config)
            optimizer, self.loss = training_setup(config, self.model, steps_per_epoch)
            self.optimizer = distribute.maybe_wrap_for_mixed_precision(optimizer)
            self.optimizer.build(self.model.trainable_variables)
        self.shape = batch_shape(config, self.model)
        # weights.npz will need the twin: fail now, not after training.
        checked_twin(config, self.model, self.loss)
        self.stepper = training.Trainer(
            self.model, self.optimizer, self.loss, strategy=strategy,
            jit_compile=xla.resolve_jit_compile(config.trainer_jit_compile, self.model,
                                                strategy, config.batch_size),
            steps_per_execution=config.steps_per_execution)
        self.is_chief = _is_chief(strategy)
        self.worker_index = None if self.is_chief else strategy.cluster_resolver.task_id

    @classmethod
    def create(cls, config, steps_per_epoch=None):
        """Sets up the device, mixed precision and strategy, then the backend."""
        try:
            distribute.configure_device(config.device)
            distribute.set_mixed_precision(config.mixed_precision)
            strategy = distribute.make_strategy(config.distribution_strategy, config.device)
        except ValueError as e:  # no GPU for --device=gpu, no TF_CONFIG for multi-worker
            raise ConfigError(str(e)) from None
        return cls(config, strategy, steps_per_epoch)

    def source(self, x, y):
        return _Source(x, y, self.config.dtype, self.strategy, self.shape)

    def predict_proba(self, x, batch_size):
        ds = data.ImageBatches(x, np.zeros(len(x), np.int64), self.config.dtype, self.shape)
        return np.concatenate([self.model(xb, training=False).numpy()
                               for xb, _ in ds.dataset(batch_size)])

    def state_arrays(self):
        """Model weights and optimizer variables, by position."""
        state = {f"model/{i:03d}": v.numpy() for i, v in enumerate(self.model.weights)}
        state.update({f"optimizer/{i:03d}": v.numpy()
                      for i, v in enumerate(self.optimizer.variables)})
        return state

    def restore(self, arrays):
        for prefix, variables in (("model", self.model.weights),
                                  ("optimizer", self.optimizer.variables)):
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}/{i:03d}"])

    def numpy_net(self):
        return parity.twin(self.model, loss=self.loss)

    def keras_model(self):
        """The model, compiled with the run's optimizer (and its state) and loss."""
        with distribute.scope(self.strategy):
            return compiled(self.model, self.stepper.optimizer, self.stepper.loss_object)

    def load_net(self, net):
        parity.to_keras(net, self.model)

    def summary_writer(self, folder):
        """Loss and accuracy per split, as ``<metric>/<split>`` scalars, in TensorBoard files.

        The folder and the writer are made at the first epoch's write, the folder by us:
        TensorFlow makes folders 0755 whatever the umask (its event files do honour it),
        and a run stopped before its first epoch leaves no folder behind."""
        writer = None

        def write(epoch, logs):
            nonlocal writer
            if writer is None:
                os.makedirs(folder, exist_ok=True)  # 0777 less the umask, as every folder
                writer = tf.summary.create_file_writer(str(folder))
            with writer.as_default():
                for key, value in logs.items():
                    split, metric = key.split("_", 1)
                    tf.summary.scalar(f"{metric}/{split}", value, step=epoch)
            writer.flush()

        return write
