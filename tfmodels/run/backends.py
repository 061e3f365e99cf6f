"""The backends `--backend` names: one registry. Each builds the same Keras model and
provides the same phases (a stepper for the one epoch loop, batch sources, state for
checkpoints, the NumPy twin for weights.npz)."""

from tfmodels.run.backend_numpy import NumpyBackend
from tfmodels.run.backend_tf import TensorflowBackend

BACKENDS = {backend.name: backend for backend in (TensorflowBackend, NumpyBackend)}


def make_backend(config):
    """The backend ``config.backend`` names, set up (device, strategy) for ``config``."""
    return BACKENDS[config.backend].create(config)
