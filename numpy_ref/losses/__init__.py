"""Keras 3's losses in NumPy, each the twin of the ``keras.losses`` class of the same name.

The protocol, dtype and reductions are ``base.Loss``'s: ``forward(y_pred, y_true)
-> loss``, ``backward(dout=1) -> dL/dy_pred``. The losses live by kind:
``crossentropy`` (sparse, categorical, binary, focal), ``regression`` (MSE, MAE,
Huber, log-cosh), ``divergence`` (KL, Poisson) and ``hinge``; ``regularizers``
holds the penalties a network adds to its loss. The registry names them:

    LOSSES["sparse_categorical_crossentropy"]    the class, by Keras's name
    get("mse")                                   a fresh loss, also by alias
    get("categorical_crossentropy", from_logits=True)
"""

from numpy_ref.losses.crossentropy import (BinaryCrossentropy, BinaryFocalCrossentropy,
                                           CategoricalCrossentropy,
                                           CategoricalFocalCrossentropy,
                                           SparseCategoricalCrossentropy)
from numpy_ref.losses.divergence import KLDivergence, Poisson
from numpy_ref.losses.hinge import CategoricalHinge, Hinge, SquaredHinge
from numpy_ref.losses.regression import Huber, LogCosh, MeanAbsoluteError, MeanSquaredError

# Keras's snake_case names (keras.losses.get) and its lowercase aliases.
LOSSES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "bce": BinaryCrossentropy,
    "categorical_focal_crossentropy": CategoricalFocalCrossentropy,
    "binary_focal_crossentropy": BinaryFocalCrossentropy,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
    "huber": Huber,
    "log_cosh": LogCosh,
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "poisson": Poisson,
    "hinge": Hinge,
    "squared_hinge": SquaredHinge,
    "categorical_hinge": CategoricalHinge,
}


def get(name, **kwargs):
    """A fresh loss by Keras's snake_case name or alias, with the class's arguments
    (an argument the class does not take is Python's TypeError)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}. Received: loss={name!r}")
    return LOSSES[name](**kwargs)


__all__ = ["LOSSES", "BinaryCrossentropy", "BinaryFocalCrossentropy", "CategoricalCrossentropy",
           "CategoricalFocalCrossentropy", "CategoricalHinge", "Hinge", "Huber", "KLDivergence",
           "LogCosh", "MeanAbsoluteError", "MeanSquaredError", "Poisson",
           "SparseCategoricalCrossentropy", "SquaredHinge", "get"]
