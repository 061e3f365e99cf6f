"""Argument checks shared by the project's Keras models, failing early, Keras-style."""

import numbers

import keras

from numpy_ref.layers import activations
from tfmodels import catalog


def twinnable_activations():
    """Activation names both Keras and numpy_ref know, sorted: those a twin can follow.

    ``catalog.HIDDEN_ACTIVATIONS`` holds them for the flags, without Keras; a test holds
    the two equal."""
    names = []
    for name in sorted(activations.ACTIVATIONS):
        try:
            keras.activations.get(name)
        except ValueError:
            continue
        names.append(name)
    return tuple(names)


HIDDEN_ACTIVATIONS = catalog.HIDDEN_ACTIVATIONS  # --activation's choices


def is_positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def check_regularization(dropout, weight_decay):
    """A dropout rate in [0, 1) and a non-negative L2 factor."""
    if not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be a rate in [0, 1). Received: dropout={dropout!r}")
    if not isinstance(weight_decay, numbers.Real) or weight_decay < 0:
        raise ValueError("`weight_decay` must be a number >= 0. "
                         f"Received: weight_decay={weight_decay!r}")


def check_args(hidden_units, activation, num_classes):
    """Fails early, Keras-style, naming the bad value."""
    if not all(is_positive_int(u) for u in hidden_units):
        raise ValueError("Every entry of `hidden_units` must be a positive integer. "
                         f"Received: hidden_units={list(hidden_units)}")
    if activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {HIDDEN_ACTIVATIONS}. "
                         f"Received: activation={activation!r}")
    if not is_positive_int(num_classes) or num_classes < 2:
        raise ValueError("`num_classes` must be an integer >= 2. "
                         f"Received: num_classes={num_classes!r}")
