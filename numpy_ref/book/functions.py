"""The book's ``common/functions.py``: activations, their derivatives, losses.

Note the book's ``mean_squared_error`` is 1/2 * sum((y - t)^2), numpy_ref's
``sum_squared_error`` (``numpy_ref.functions.mean_squared_error`` averages).
"""

import numpy as np

from numpy_ref.functions import (cross_entropy_error, identity_function, relu, sigmoid,
                                 softmax, step_function, sum_squared_error)

mean_squared_error = sum_squared_error


def sigmoid_grad(x):
    """d sigmoid(x) / dx = (1 - sigmoid(x)) * sigmoid(x)."""
    y = sigmoid(x)
    return (1.0 - y) * y


def relu_grad(x):
    """1 where x >= 0, else 0 (the book's convention at 0), in x's dtype."""
    x = np.asarray(x)
    return (x >= 0).astype(x.dtype)


def softmax_loss(X, t):
    """cross_entropy_error(softmax(X), t)."""
    return cross_entropy_error(softmax(X), t)


# np too: the book's scripts use the np a star import of its modules brings.
__all__ = ["np", "cross_entropy_error", "identity_function", "mean_squared_error", "relu",
           "relu_grad", "sigmoid", "sigmoid_grad", "softmax", "softmax_loss", "step_function",
           "sum_squared_error"]
