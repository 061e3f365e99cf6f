"""The ``--backend=numpy`` side of a run: the twin of the same Keras model, trained by numpy_ref.

The Keras model is declared once (``tfmodels.models``) and built exactly as
the TensorFlow backend builds it; this backend trains its twin
(``tfmodels.parity.twin``) with the twin of the same Keras optimizer. Images
stay uint8 in memory and are scaled one batch at a time, with the same two
operations as the tf.data pipeline, in the run's dtype.
"""

from absl import logging
import numpy as np

from numpy_ref import training as np_training
from numpy_ref.fast import threads
from tfmodels import data, distribute, parity
from tfmodels.run.backend import Backend
from tfmodels.run.keras_model import (batch_shape, build_model, checked_twin, compiled,
                                      training_setup)


class _Source:
    """One split's uint8 images, batched in a given order, scaled (and reshaped to
    ``shape`` when given) per batch."""

    def __init__(self, x, y, dtype, shape=None):
        self.x, self.y, self.dtype = x, np.asarray(y, np.int64), np.dtype(dtype)
        self.shape = shape

    def scaled(self, images):
        images = data.scale_images(images, self.dtype)
        return images if self.shape is None else images.reshape(len(images), *self.shape)

    def batches(self, batch_size, order=None):
        return np_training.array_batches(self.x, self.y, batch_size, order, self.scaled)


def blas_threads():
    """``numpy_ref.fast.threads.blas_threads()``: one BLAS thread unless the environment sets a
    count (see there for the measurements), with the choice in the log."""
    chosen = threads.chosen_by_environment()
    if chosen:
        logging.info("NumPy backend: BLAS threads as the environment sets them (%s)",
                     ", ".join(f"{k}={v}" for k, v in chosen.items()))
    else:
        logging.info("NumPy backend: BLAS on one thread (set OPENBLAS_NUM_THREADS to choose)")
    return threads.blas_threads()


class NumpyBackend(Backend):
    """A numpy_ref twin network and optimizer; the numpy_ref stepper."""

    name = "numpy"

    def __init__(self, config, steps_per_epoch=None):
        self.config = config
        self.model = build_model(config)
        self.keras_optimizer, self.loss = training_setup(config, self.model, steps_per_epoch)
        self.net = checked_twin(config, self.model, self.loss)
        self.optimizer = parity.twin_optimizer(self.keras_optimizer,
                                               self.model.trainable_variables)
        self.shape = batch_shape(config, self.model)
        self.stepper = np_training.Stepper(self.net, self.optimizer)

    @classmethod
    def create(cls, config, steps_per_epoch=None):
        distribute.set_mixed_precision(False)  # the twin's model: the plain dtype policy
        return cls(config, steps_per_epoch)

    def source(self, x, y):
        return _Source(x, y, self.config.dtype, self.shape)

    def threads(self):
        """BLAS on one thread unless the environment chooses (``blas_threads``)."""
        return blas_threads()

    def predict_proba(self, x, batch_size):
        source = self.source(x, np.zeros(len(x), np.int64))
        return np.concatenate([self.net.predict(xb) for xb, _ in source.batches(batch_size)])

    def state_arrays(self):
        """Weights, non-trainable state (moving statistics) and optimizer state, by name."""
        state = {f"param/{k}": np.array(v) for k, v in self.net.params.items()}
        state.update({f"state/{k}": np.array(v) for k, v in self.net.state.items()})
        state.update({f"optimizer/{k}": v for k, v in self.optimizer.get_state().items()})
        return state

    def restore(self, arrays):
        for kind, view in (("param", self.net.params), ("state", self.net.state)):
            for key in view:
                view[key] = arrays[f"{kind}/{key}"]
        prefix = "optimizer/"
        self.optimizer.set_state({k[len(prefix):]: v for k, v in arrays.items()
                                  if k.startswith(prefix)})

    def numpy_net(self):
        return self.net

    def keras_model(self):
        """The Keras model holding the twin's weights, compiled with the Keras optimizer
        the twin follows, holding the twin's state (its configuration only, with a
        warning, should the state not fit), and the loss."""
        model = parity.to_keras(self.net, self.model)
        optimizer = self.keras_optimizer
        try:
            if not optimizer.built:
                optimizer.build(model.trainable_variables)
            parity.optimizer_state_to_keras(self.optimizer, optimizer)
        except ValueError as e:
            logging.warning("model.keras keeps the optimizer's configuration but not its "
                            "state: %s", e)
            optimizer = type(optimizer).from_config(optimizer.get_config())
            optimizer.build(model.trainable_variables)
        return compiled(model, optimizer, self.loss)

    def load_net(self, net):
        for mine, theirs in ((self.net.params, net.params), (self.net.state, net.state)):
            for key in mine:
                mine[key] = theirs[key]
