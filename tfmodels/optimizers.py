"""The optimizers: one registry from ``--optimizer``'s names to Keras and to numpy_ref.

Each entry of ``OPTIMIZERS`` names, for one flag value, the Keras class and its options
beyond the learning rate (from ``tfmodels.catalog.OPTIMIZER_INFO``, which the flags read
without Keras), and the ``Twin`` of that class: the ``numpy_ref.optim.optimizers`` class
that steps as it does, the Keras hyperparameters passed on to it as they are, and where
Keras keeps each of the twin's slots. ``TWINS`` (Keras class -> ``Twin``), which
``tfmodels.parity.twin_optimizer`` reads, derives from it. Adding an optimizer is one
``OPTIMIZER_INFO`` entry (and, for a new Keras class, its ``Twin`` here and its numpy_ref
class).
"""

import inspect
from typing import NamedTuple

import keras

from numpy_ref.optim import optimizers as numpy_optimizers
from tfmodels import catalog


class Twin(NamedTuple):
    """How a Keras optimizer class maps onto its numpy_ref twin."""

    cls: type  # the numpy_ref.optim.optimizers class
    hyperparameters: tuple  # attributes of the Keras optimizer passed on as they are
    slots: dict  # numpy_ref slot name -> Keras attribute: list of slot variables


class Optimizer(NamedTuple):
    """One ``--optimizer`` value: ``keras(learning_rate=..., **options)`` and its twin."""

    keras: type
    options: dict
    twin: Twin


_ADAM = ("beta_1", "beta_2", "epsilon", "amsgrad")
_ADAM_SLOTS = {"momentum": "_momentums", "velocity": "_velocities",
               "velocity_hat": "_velocity_hats"}
# The twin of each Keras class that catalog.OPTIMIZER_INFO names.
_TWINS = {
    "Adam": Twin(numpy_optimizers.Adam, _ADAM, _ADAM_SLOTS),
    "SGD": Twin(numpy_optimizers.SGD, ("momentum", "nesterov"), {"momentum": "momentums"}),
    "RMSprop": Twin(numpy_optimizers.RMSprop, ("rho", "momentum", "epsilon", "centered"),
                    {"velocity": "_velocities", "momentum": "_momentums",
                     "average_gradient": "_average_gradients"}),
    "Adagrad": Twin(numpy_optimizers.AdaGrad, ("initial_accumulator_value", "epsilon"),
                    {"accumulator": "_accumulators"}),
    "AdamW": Twin(numpy_optimizers.AdamW, _ADAM, _ADAM_SLOTS),
    "Adamax": Twin(numpy_optimizers.Adamax, ("beta_1", "beta_2", "epsilon"),
                   {"momentum": "_m", "norm": "_u"}),
    "Nadam": Twin(numpy_optimizers.Nadam, ("beta_1", "beta_2", "epsilon"),
                  {"momentum": "_momentums", "velocity": "_velocities"}),
    "Lion": Twin(numpy_optimizers.Lion, ("beta_1", "beta_2"), {"momentum": "_momentums"}),
    "Adadelta": Twin(numpy_optimizers.Adadelta, ("rho", "epsilon"),
                     {"accumulated_grad": "_accumulated_grads",
                      "accumulated_delta_var": "_accumulated_delta_vars"}),
}

OPTIMIZERS = {name: Optimizer(getattr(keras.optimizers, info.keras_class), dict(info.options),
                              _TWINS[info.keras_class])
              for name, info in catalog.OPTIMIZER_INFO.items()}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)
DEFAULT = catalog.DEFAULT_OPTIMIZER  # when neither --optimizer nor a model file names one
TWINS = {entry.keras: entry.twin for entry in OPTIMIZERS.values()}


def default_learning_rate(name):
    """The Keras class's own default learning rate."""
    return inspect.signature(OPTIMIZERS[name].keras).parameters["learning_rate"].default


def make_optimizer(name, learning_rate=None):
    """A fresh Keras optimizer for `--optimizer=<name>`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_NAMES}. Received: name={name!r}")
    entry = OPTIMIZERS[name]
    rate = default_learning_rate(name) if learning_rate is None else learning_rate
    return entry.keras(learning_rate=rate, **entry.options)


def describe(name):
    """'SGD(momentum=0.9)' for `--help`."""
    return catalog.OPTIMIZER_INFO[name].describe()
