"""Twins of Keras's layers that turn values into categories: ``Discretization`` (a float
into the index of its bucket) and ``CategoryEncoding`` (an integer into a one-hot,
multi-hot or count vector).

Neither is differentiable: a bucket index or a one-hot vector does not move when the
input moves a little, and TensorFlow registers no gradient for them (Keras's gradient
with respect to their input is None). Their ``backward`` returns zeros shaped like the
input, which is what a None gradient amounts to: a network upstream of them learns
nothing through them.

Shape letters: N batch, T values per sample, K depth (number of categories).
"""

import numpy as np

from numpy_ref import layers as L

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


def encode(indices, output_mode, depth, dtype):
    """Keras's ``encode_categorical_inputs`` for dense outputs, as TensorFlow runs it.

    - ``int``: the indices as ``dtype``.
    - ``one_hot``: a trailing axis of size ``depth`` (a last axis of size 1 is replaced
      by it); an index outside [0, depth) gets a row of zeros (``tf.one_hot``).
    - ``multi_hot`` / ``count``: per sample, whether / how often each index occurs among
      the values of axis 1 (axis 0 for a rank-1 input: the whole batch is one sample,
      as in Keras). For inputs of rank <= 2, TensorFlow counts with ``bincount``, which
      drops indices >= depth and fails on negative ones: so does this.
    """
    indices = np.asarray(indices)
    if output_mode == "int":
        return indices.astype(dtype)
    if indices.ndim == 0:
        indices = indices.reshape(1)
    if not np.issubdtype(indices.dtype, np.integer):
        indices = indices.astype(np.int64)  # TensorFlow's cast: truncates toward zero
    if output_mode == "one_hot":
        if indices.ndim > 1 and indices.shape[-1] == 1:
            indices = indices[..., 0]
        return one_hot(indices, depth, dtype)
    if indices.ndim <= 2 and np.any(indices < 0):
        raise ValueError(f"{output_mode} encoding counts non-negative indices only (as "
                         f"TensorFlow's bincount). Received: min index {indices.min()}")
    hot = one_hot(indices, depth, dtype)  # (N, T, ..., K)
    axis = 1 if indices.ndim > 1 else 0
    return hot.max(axis=axis) if output_mode == "multi_hot" else hot.sum(axis=axis)


def one_hot(indices, depth, dtype):
    """(..., K): 1 where the last axis equals the index, else 0."""
    return (indices[..., None] == np.arange(depth)).astype(dtype)


class _NoGradient(L.Layer):
    """A layer whose output does not depend differentiably on its input."""

    def backward(self, dout):
        """No gradient passes (Keras's is None): zeros of the input's shape."""
        return np.zeros(self.x_shape, dout.dtype)


class Discretization(_NoGradient):
    """The twin of ``keras.layers.Discretization``: each value's bucket, then encoded.

    bucket(x) = the number of boundaries b with b <= x (TensorFlow's ``Bucketize``: an
    upper bound), in 0..len(boundaries). TensorFlow holds the boundaries as float32
    numbers, so they are rounded to float32 before the comparison, which a float64 input
    makes in float64.

    Args:
        bin_boundaries: the sorted boundaries (given, or what ``adapt`` found).
        output_mode: "int" (the bucket, as ``dtype`` int32), "one_hot", "multi_hot" or
            "count" (see ``encode``; depth = len(bin_boundaries) + 1).
        dtype: the output dtype: "int32" for "int", else the layer's compute dtype.
    """

    def __init__(self, bin_boundaries, output_mode="int", dtype="int32"):
        super().__init__()
        if output_mode not in OUTPUT_MODES:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES}. "
                             f"Received: output_mode={output_mode!r}")
        self.bin_boundaries = [float(b) for b in bin_boundaries]
        self.output_mode, self.dtype = output_mode, np.dtype(dtype).name

    def forward(self, x, training=False):
        x = np.asarray(x)
        self.x_shape = x.shape
        work = np.float64 if x.dtype == np.float64 else np.float32
        boundaries = np.asarray(self.bin_boundaries, np.float32).astype(work)
        buckets = np.searchsorted(boundaries, x.astype(work), side="right").astype(np.int32)
        return encode(buckets, self.output_mode, len(boundaries) + 1, self.dtype)


class CategoryEncoding(_NoGradient):
    """The twin of ``keras.layers.CategoryEncoding``: integer indices in [0, num_tokens)
    as one-hot, multi-hot or count vectors of ``dtype`` (see ``encode``). A float input
    is truncated to integers first, as Keras's cast does.

    It takes the list of tensors Keras's call was given (``multi_input``), so that a
    ``count_weights`` tensor, which the twin does not follow, is refused rather than
    dropped."""

    multi_input = True

    def __init__(self, num_tokens, output_mode="multi_hot", dtype="float32"):
        super().__init__()
        if output_mode not in OUTPUT_MODES[1:]:
            raise ValueError(f"output_mode must be one of {OUTPUT_MODES[1:]}. "
                             f"Received: output_mode={output_mode!r}")
        self.num_tokens, self.output_mode = int(num_tokens), output_mode
        self.dtype = np.dtype(dtype).name

    def forward(self, xs, training=False):
        if isinstance(xs, (list, tuple)):
            if len(xs) != 1:
                raise ValueError("CategoryEncoding's twin takes the indices alone; "
                                 "count_weights has no NumPy twin")
            xs = xs[0]
        x = np.asarray(xs)
        self.x_shape = x.shape
        return encode(x, self.output_mode, self.num_tokens, self.dtype)

    def backward(self, dout):
        return [super().backward(dout)]


__all__ = ["CategoryEncoding", "Discretization", "encode", "one_hot"]
