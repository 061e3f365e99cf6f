"""Numerical differentiation: the slow, obviously-correct reference for backprop.

The central difference (f(x + h) - f(x - h)) / 2h with h = 1e-4 has error
O(h^2). A forward difference with a tiny h such as 1e-50 fails: in float32
``np.float32(1e-50)`` is 0.0, so x + h == x and the "derivative" is 0.
"""

import numpy as np

H = 1e-4


def numerical_diff(f, x):
    """Derivative of a scalar function f at the scalar x (central difference)."""
    return (f(x + H) - f(x - H)) / (2 * H)


def numerical_gradient(f, x):
    """Gradient of the scalar function f at the array x, any shape.

    Each element is nudged by +/- h in turn and f is called with the array.
    For a float array the nudge happens in place (so an ``f`` that ignores its
    argument and reads the same array, as the book's ``lambda w: net.loss(x, t)``
    does, still works) and every element is restored bit for bit afterwards.
    An integer array cannot hold x + 1e-4, so it is differentiated on a float64
    copy and ``f`` receives that copy; the caller's array is never changed.

    Returns:
        An array of x's shape: x's dtype for floats, float64 for integers.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)  # a copy: the caller's integer array is untouched
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        original = x[idx]
        x[idx] = original + H
        f_plus = f(x)
        x[idx] = original - H
        f_minus = f(x)
        x[idx] = original  # exact restore: no accumulated rounding
        grad[idx] = (f_plus - f_minus) / (2 * H)
    return grad


def gradient_descent(f, init_x, lr=0.01, step_num=100):
    """Minimises f by x <- x - lr * numerical_gradient(f, x), step_num times.

    Too large a learning rate diverges; too small a one barely moves.

    Returns:
        (x, history): the final point, and every visited point as an array of
        shape (step_num + 1, *init_x.shape), float64: history[0] is init_x and
        history[-1] equals x. ``init_x`` itself is not modified.
    """
    x = np.array(init_x, dtype=np.float64)
    history = [x.copy()]
    for _ in range(step_num):
        x -= lr * numerical_gradient(f, x)
        history.append(x.copy())
    return x, np.array(history)
