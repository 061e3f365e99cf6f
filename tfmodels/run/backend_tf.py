"""The ``--backend=tensorflow`` side of a run: the Keras model, the material's custom loop.

The model is the one ``tfmodels.models`` declares; batches come from the
shared per-epoch order (``tfmodels.data.buffered_order``) through tf.data.
"""

import contextlib
import os
import pathlib
import warnings
import zipfile

import keras
import numpy as np

from tfmodels import data, distribute, models, optimizers, parity, training
from tfmodels.errors import ConfigError, WeightsFileError
from tfmodels.run import user_model


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
        with warnings.catch_warnings():  # an optimizer state it cannot restore: irrelevant here
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as e:
        raise WeightsFileError(f"{path}: refused or unreadable Keras model file: "
                               f"{str(e).splitlines()[0] if str(e) else e!r}") from None


def build_model(config):
    """The configured Keras model, built, with weights drawn from ``config.seed`` (or
    those of ``--model_file``).

    Both backends call this, so for the same seed they start from the same weights.
    """
    keras.utils.set_random_seed(config.seed)
    if config.model_file is not None:
        return user_model.load(config)
    dtype = None if config.dtype == "float32" else config.dtype  # None: the global policy
    return models.build_model(config.model, config.hidden_units, config.activation,
                              config.num_classes, dtype=dtype, input_shape=config.input_shape,
                              **config.model_options())


def training_setup(config, model):
    """(Keras optimizer, Keras loss or None for the default) of the run."""
    if config.model_file is not None:
        return user_model.optimizer_for(model, config), user_model.loss_for(model)
    return optimizers.make_optimizer(config.optimizer, config.learning_rate), None


def checked_twin(config, model, loss=None):
    """``parity.twin(model)``; for a model file, a layer or loss without a twin is the
    file's one-line error (exit 3), before any training."""
    try:
        return parity.twin(model, loss=loss)
    except ValueError as e:
        if config.model_file is None:
            raise
        raise WeightsFileError(f"--model_file={config.model_file}: "
                               f"{str(e).splitlines()[0]}") from None


def batch_shape(config, model):
    """The shape batches are given to the model in: a model file's own input shape (e.g.
    (28, 28, 1) or (784,) for MNIST's (28, 28) images), else the data's."""
    return user_model.input_shape(model) if config.model_file is not None else None


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


class TensorflowBackend:
    """The Keras model, its optimizer and the material's train/test steps (``Trainer``)."""

    name = "tensorflow"

    def __init__(self, config, strategy=None):
        self.config, self.strategy = config, strategy
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            self.model = build_model(config)
            optimizer, loss = training_setup(config, self.model)
            self.optimizer = training.maybe_wrap_for_mixed_precision(optimizer)
            self.optimizer.build(self.model.trainable_variables)
        self.shape = batch_shape(config, self.model)
        self.loss = loss
        checked_twin(config, self.model, loss)  # weights.npz will need it: fail now, not then
        self.stepper = training.Trainer(
            self.model, self.optimizer, loss, strategy=strategy,
            jit_compile=training.resolve_jit_compile(config.trainer_jit_compile, self.model,
                                                     strategy, config.batch_size),
            steps_per_execution=config.steps_per_execution)
        self.is_chief = _is_chief(strategy)
        self.worker_index = None if self.is_chief else strategy.cluster_resolver.task_id

    @staticmethod
    def threads():
        """The context its compute runs in: TensorFlow sets its own thread pools."""
        return contextlib.nullcontext()

    @classmethod
    def create(cls, config):
        """Sets up the device, mixed precision and strategy, then the backend."""
        try:
            distribute.configure_device(config.device)
            distribute.set_mixed_precision(config.mixed_precision)
            strategy = distribute.make_strategy(config.distribution_strategy, config.device)
        except ValueError as e:  # no GPU for --device=gpu, no TF_CONFIG for multi-worker
            raise ConfigError(str(e)) from None
        return cls(config, strategy)

    def source(self, x, y):
        return _Source(x, y, self.config.dtype, self.strategy, self.shape)

    def predict_proba(self, x, batch_size):
        ds = data.ImageBatches(x, np.zeros(len(x), np.int64), self.config.dtype, self.shape)
        return np.concatenate([self.model(xb, training=False).numpy()
                               for xb, _ in ds.dataset(batch_size)])

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
                variable.assign(arrays[f"{prefix}/{i:03d}"])

    def numpy_net(self):
        """The NumPy twin of the current model (what weights.npz holds)."""
        return parity.twin(self.model, loss=self.loss)

    def keras_model(self):
        return self.model

    def load_net(self, net):
        """Takes over the weights of a numpy_ref twin (e.g. from weights.npz)."""
        parity.to_keras(net, self.model)
