"""The book's ``common/util.py``: curve smoothing, shuffling, convolution sizes, im2col."""

import numpy as np

from numpy_ref.layers.im2col import col2im, im2col

SMOOTH_WINDOW = 11  # the book's Kaiser window: 11 points, beta 2


def smooth_curve(x):
    """x smoothed by a normalised Kaiser window (11 points, beta 2), same length.

    Each output is the weighted mean of the 11 inputs centred on it; past the
    first point the curve is mirrored without repeating it, past the last point
    with it repeated (as the book pads).
    """
    x = np.asarray(x, dtype=np.float64)
    half = SMOOTH_WINDOW // 2
    padded = np.concatenate([x[half:0:-1], x, x[:-half - 1:-1]])
    window = np.kaiser(SMOOTH_WINDOW, 2)
    return np.convolve(padded, window / window.sum(), mode="valid")


def shuffle_dataset(x, t):
    """x and t in one random order (NumPy's global generator, as the book's)."""
    order = np.random.permutation(x.shape[0])
    return x[order], t[order]


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """(input_size + 2*pad - filter_size) / stride + 1, a true division as in the book."""
    return (input_size + 2 * pad - filter_size) / stride + 1


# np too: the book's scripts use the np a star import of its modules brings.
__all__ = ["np", "col2im", "conv_output_size", "im2col", "shuffle_dataset", "smooth_curve"]
