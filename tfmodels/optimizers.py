"""The optimizers `--optimizer` names: one registry, Keras classes and their options.

The NumPy backend trains with the twin of the same Keras optimizer
(`tfmodels.parity.twin_optimizer`), so a name is declared once, here.
"""

import inspect

import keras

# name -> (Keras optimizer class, its options beyond the learning rate)
OPTIMIZERS = {
    "adam": (keras.optimizers.Adam, {}),
    "sgd": (keras.optimizers.SGD, {}),
    "momentum": (keras.optimizers.SGD, {"momentum": 0.9}),
    "nesterov": (keras.optimizers.SGD, {"momentum": 0.9, "nesterov": True}),
    "rmsprop": (keras.optimizers.RMSprop, {}),
    "adagrad": (keras.optimizers.Adagrad, {}),
    "adamw": (keras.optimizers.AdamW, {}),
}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)


def default_learning_rate(name):
    """The Keras class's own default learning rate."""
    cls, _ = OPTIMIZERS[name]
    return inspect.signature(cls).parameters["learning_rate"].default


def make_optimizer(name, learning_rate=None):
    """A fresh Keras optimizer for `--optimizer=<name>`."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_NAMES}. Received: name={name!r}")
    cls, options = OPTIMIZERS[name]
    rate = default_learning_rate(name) if learning_rate is None else learning_rate
    return cls(learning_rate=rate, **options)


def describe(name):
    """'SGD(momentum=0.9)' for `--help`."""
    cls, options = OPTIMIZERS[name]
    return f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in options.items())})"
