"""The optimizers: one registry from ``--optimizer``'s names to Keras and to numpy_ref.

Each entry of ``OPTIMIZERS`` names, for one flag value, the Keras class and its options
beyond the learning rate, and the ``Twin`` of that class: the ``numpy_ref.optim.optimizers``
class that steps as it does, the Keras hyperparameters passed on to it as they are, and
where Keras keeps each of the twin's slots. ``TWINS`` (Keras class -> ``Twin``), which
``tfmodels.parity.twin_optimizer`` reads, derives from it. Adding an optimizer is one entry
(and, for a new Keras class, its numpy_ref class).
"""

import inspect
from typing import NamedTuple

import keras

from numpy_ref.optim import optimizers as numpy_optimizers


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


_SGD = Twin(numpy_optimizers.SGD, ("momentum", "nesterov"), {"momentum": "momentums"})
_ADAM = ("beta_1", "beta_2", "epsilon", "amsgrad")
_ADAM_SLOTS = {"momentum": "_momentums", "velocity": "_velocities",
               "velocity_hat": "_velocity_hats"}

OPTIMIZERS = {
    "adam": Optimizer(keras.optimizers.Adam, {},
                      Twin(numpy_optimizers.Adam, _ADAM, _ADAM_SLOTS)),
    "sgd": Optimizer(keras.optimizers.SGD, {}, _SGD),
    "momentum": Optimizer(keras.optimizers.SGD, {"momentum": 0.9}, _SGD),
    "nesterov": Optimizer(keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}, _SGD),
    "rmsprop": Optimizer(keras.optimizers.RMSprop, {}, Twin(
        numpy_optimizers.RMSprop, ("rho", "momentum", "epsilon", "centered"),
        {"velocity": "_velocities", "momentum": "_momentums",
         "average_gradient": "_average_gradients"})),
    "adagrad": Optimizer(keras.optimizers.Adagrad, {}, Twin(
        numpy_optimizers.AdaGrad, ("initial_accumulator_value", "epsilon"),
        {"accumulator": "_accumulators"})),
    "adamw": Optimizer(keras.optimizers.AdamW, {},
                       Twin(numpy_optimizers.AdamW, _ADAM, _ADAM_SLOTS)),
    "adamax": Optimizer(keras.optimizers.Adamax, {}, Twin(
        numpy_optimizers.Adamax, ("beta_1", "beta_2", "epsilon"),
        {"momentum": "_m", "norm": "_u"})),
    "nadam": Optimizer(keras.optimizers.Nadam, {}, Twin(
        numpy_optimizers.Nadam, ("beta_1", "beta_2", "epsilon"),
        {"momentum": "_momentums", "velocity": "_velocities"})),
    "lion": Optimizer(keras.optimizers.Lion, {}, Twin(
        numpy_optimizers.Lion, ("beta_1", "beta_2"), {"momentum": "_momentums"})),
    "adadelta": Optimizer(keras.optimizers.Adadelta, {}, Twin(
        numpy_optimizers.Adadelta, ("rho", "epsilon"),
        {"accumulated_grad": "_accumulated_grads",
         "accumulated_delta_var": "_accumulated_delta_vars"})),
}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)
DEFAULT = "adam"  # when neither --optimizer nor a model file names one
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
    entry = OPTIMIZERS[name]
    return f"{entry.keras.__name__}({', '.join(f'{k}={v}' for k, v in entry.options.items())})"
