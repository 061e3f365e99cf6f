"""What a backend is: the one interface ``experiment``, ``rundir`` and ``evaluation`` use.

A backend trains one model of the run's settings (``keras_model.build_model``): the
Keras model itself (``backend_tf``) or its numpy_ref twin (``backend_numpy``). It
gives the one epoch loop (``numpy_ref.training.run_epochs``) a stepper and batch
sources; the run directory its state for checkpoints and its final weights in both
file formats. ``backends.BACKENDS`` lists the backends by their ``--backend`` name.
"""

import contextlib
from typing import ClassVar, Protocol


class Backend(Protocol):
    """One backend of a run, made by ``create(config)`` (training) or ``Backend(config)``
    (evaluation, on the current device).

    Attributes:
        name: its ``--backend`` value.
        stepper: what ``run_epochs`` steps: ``train_step(x, y)``, ``test_step(x, y)``,
            ``results()``, ``reset_metrics()`` (a ``training.Trainer`` or a numpy_ref
            ``Stepper``).
        is_chief: False in a worker of a multi-worker run other than the chief: its files
            go to its own folder (``names.worker(worker_index)``).
        worker_index: that worker's index, None for the chief.
    """

    name: ClassVar[str]
    stepper: object
    is_chief: bool = True
    worker_index: int = None

    def __init__(self, config):
        """The backend for ``config`` (a ``RunConfig``), on the current device."""

    @classmethod
    def create(cls, config):
        """Sets up this process for ``config`` (device, precision, strategy), then the backend."""

    def source(self, x, y):
        """One split's uint8 images and labels as an object whose ``batches(batch_size,
        order=None)`` yields scaled (x, y) batches in ``order`` (default: as stored)."""

    def predict_proba(self, x, batch_size):
        """Class probabilities (N, classes) of uint8 images ``x``."""

    def state_arrays(self):
        """{name: array} of everything a checkpoint holds: weights, moving statistics,
        optimizer state."""

    def restore(self, arrays):
        """Takes over the state ``state_arrays`` gave (read back from a checkpoint)."""

    def numpy_net(self):
        """The numpy_ref network holding the current weights (what weights.npz holds)."""

    def keras_model(self):
        """The Keras model holding the current weights (what model.keras holds)."""

    def load_net(self, net):
        """Takes over the weights and state of a numpy_ref twin (e.g. from weights.npz)."""

    def threads(self):
        """The context its compute runs in (default: as the process is)."""
        return contextlib.nullcontext()

    def summary_writer(self, folder):
        """``write(epoch, logs)``, which records an epoch's metrics for TensorBoard in
        ``folder``; the default records nothing and creates no folder."""
        del folder  # unused
        return lambda epoch, logs: None
