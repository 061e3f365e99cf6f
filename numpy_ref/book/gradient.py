"""The book's ``common/gradient.py``: numerical gradients (numpy_ref's central difference)."""

import numpy as np

from numpy_ref.gradient import numerical_gradient


def numerical_gradient_2d(f, X):
    """For a 2-D X, the gradient of f at each row (f is called with one row);
    for a 1-D X, ``numerical_gradient(f, X)``."""
    X = np.asarray(X)
    if X.ndim == 1:
        return numerical_gradient(f, X)
    return np.array([numerical_gradient(f, row) for row in X])


# np too: the book's scripts use the np a star import of its modules brings.
__all__ = ["np", "numerical_gradient", "numerical_gradient_2d"]
