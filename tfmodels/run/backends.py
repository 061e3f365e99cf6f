"""The backends ``--backend`` names: one registry of ``backend.Backend`` implementations.

Each builds the same Keras model (``keras_model.build_model``) and trains it or its twin;
adding a backend is one class and one entry here.
"""

import dataclasses

from tfmodels import distribute
from tfmodels.run import memory
from tfmodels.run.backend_numpy import NumpyBackend
from tfmodels.run.backend_tf import TensorflowBackend

# catalog.BACKEND_NAMES lists these names for the flags, without TensorFlow.
BACKENDS = {backend.name: backend for backend in (TensorflowBackend, NumpyBackend)}


def for_training(config, steps_per_epoch):
    """The backend ``config.backend`` names, with this process set up for it (device,
    precision, strategy); ``steps_per_epoch`` paces a decaying learning rate. A model
    that cannot fit in this machine's memory is refused before it is built
    (``memory.check_fits``: ConfigError naming --hidden_units)."""
    memory.check_fits(config)
    return BACKENDS[config.backend].create(config, steps_per_epoch)


def for_evaluation(config, name):
    """A fresh backend ``name`` for a run of ``config``, on one device, in the run's dtype."""
    config = dataclasses.replace(config, backend=name, mixed_precision=False,
                                 distribution_strategy="off", device="auto")
    distribute.set_mixed_precision(False)
    return BACKENDS[name](config)
