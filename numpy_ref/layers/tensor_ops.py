"""Tensor operations a custom layer's own code applies between its sublayers.

A Keras user writes ``self.norm(x + self.attention(x))`` or
``ops.reshape(h, (-1, T, H, K))`` in a layer's ``call``; these are not layers but
array operations, each with a forward pass and a backward pass like any layer here.
The element-wise ones (``+ - * /``, max, min) are ``elementwise``'s; this module holds
the rest, each computing what TensorFlow's operation of that name computes and the
gradient TensorFlow's gradient function computes:

    Constant      y = c, whatever comes in             nothing flows back
    OpSquare      y = x * x                           dx = dout * (x * 2)
    OpSqrt        y = sqrt(x)                         dx = 0.5 * dout / y
    OpRsqrt       y = 1 / sqrt(x)                     dx = -0.5 * (dout * y) * (y * y)
    OpExp         y = exp(x)                          dx = dout * y
    OpLog         y = log(x)                          dx = dout * (1 / x)
    OpReshape     y = x.reshape(shape)                dx = dout.reshape(x.shape)
    OpTranspose   y = x.transpose(perm)               dx = dout.transpose(inverse perm)
    OpSqueeze     y = x without size-1 axes           dx = dout.reshape(x.shape)
    OpSlice       y = x[index]                        dx = zeros, dout set at index
    OpSum         y = sum(x, axes)                    dx = dout broadcast back
    OpMean        y = mean(x, axes)                   dx = dout broadcast back / n
    OpMatMul      y = a @ b (either transposed)       da = dout @ b^T, db = a^T @ dout
    OpBiasAdd     y = x + b along the channel axis    db = dout summed over the rest

(``relu``, ``sigmoid``, ``tanh`` and ``softmax`` are the activation layers; a
concatenation is ``merge.Concatenate``; a new axis is ``core.ExpandDims``.)

A ``Constant`` is a value that depends on no input and no weight, such as the
positions ``arange(T)`` a position embedding looks up: a network node must read some
value, so it reads the network's first input and ignores it.

Shape letters: N batch; the other axes are whatever the operation is given.
"""

import math

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.merge import unbroadcast


class Constant(L.Layer):
    """y = value (a fixed array of ``dtype``), whatever the input; no gradient flows back."""

    def __init__(self, value, dtype=None):
        super().__init__()
        self.value = np.asarray(value, dtype)
        self.dtype = self.value.dtype.name

    def forward(self, x, training=False):
        return self.value

    def backward(self, dout):
        return None  # the value does not depend on the input

    def get_config(self):
        return {"value": self.value.tolist(), "dtype": self.dtype}


class OpSquare(L.Layer):
    """y = x * x; dx = dout * (x * 2)."""

    def forward(self, x, training=False):
        self.x = x
        return x * x

    def backward(self, dout):
        return dout * (self.x * 2)


class OpSqrt(L.Layer):
    """y = sqrt(x); dx = 0.5 * dout / y."""

    def forward(self, x, training=False):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, dout):
        with np.errstate(divide="ignore", invalid="ignore"):  # y = 0 gives inf, as in TF
            return 0.5 * dout / self.out


class OpRsqrt(L.Layer):
    """y = 1 / sqrt(x); dx = -0.5 * (dout * y) * (y * y)."""

    def forward(self, x, training=False):
        with np.errstate(divide="ignore"):
            self.out = 1 / np.sqrt(x)
        return self.out

    def backward(self, dout):
        y = self.out
        return -0.5 * (dout * y) * (y * y)


class OpExp(L.Layer):
    """y = exp(x); dx = dout * y."""

    def forward(self, x, training=False):
        self.out = np.exp(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


class OpLog(L.Layer):
    """y = log(x); dx = dout * (1 / x)."""

    def forward(self, x, training=False):
        self.x = x
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    def backward(self, dout):
        with np.errstate(divide="ignore"):
            return dout * (1 / self.x)


class OpReshape(L.Layer):
    """y = x.reshape(shape), the whole shape, batch axis included (one entry may be -1)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = [int(d) for d in shape]

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, dout):
        return dout.reshape(self.x_shape)


class OpTranspose(L.Layer):
    """y = x with its axes in the order ``perm`` (batch axis included); dx = dout with the
    inverse order."""

    def __init__(self, perm):
        super().__init__()
        self.perm = [int(p) for p in perm]

    def forward(self, x, training=False):
        return x.transpose(self.perm)

    def backward(self, dout):
        return dout.transpose(np.argsort(self.perm))


class OpSqueeze(L.Layer):
    """y = x without the size-1 axes listed in ``axes`` (every size-1 axis when empty);
    dx = dout with them back."""

    def __init__(self, axes=()):
        super().__init__()
        self.axes = [int(a) for a in axes]

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return np.squeeze(x, axis=tuple(self.axes) if self.axes else None)

    def backward(self, dout):
        return dout.reshape(self.x_shape)


class OpSlice(L.Layer):
    """y = x[index], NumPy's basic indexing: ``index`` lists, per entry, ``[start, stop,
    step]`` (a slice; None for an open end), an int (that position, the axis dropped),
    ``"newaxis"`` or ``"..."``; dx = zeros with dout where y was taken from."""

    def __init__(self, index):
        super().__init__()
        self.index = [list(i) if isinstance(i, (list, tuple)) else i for i in index]

    def _key(self):
        special = {"newaxis": np.newaxis, "...": Ellipsis}
        return tuple(slice(*i) if isinstance(i, list) else special.get(i, i)
                     for i in self.index)

    def forward(self, x, training=False):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self._key()]

    def backward(self, dout):
        dx = np.zeros(self.x_shape, self.x_dtype)
        dx[self._key()] = dout
        return dx


class OpSum(L.Layer):
    """y = the sum of x over ``axes`` (kept as size 1 with ``keepdims``); every summed
    element receives dout: dx = dout broadcast back to x's shape."""

    def __init__(self, axes, keepdims=False):
        super().__init__()
        self.axes = [int(a) for a in np.ravel(axes)]
        self.keepdims = bool(keepdims)

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return np.sum(x, axis=tuple(self.axes), keepdims=self.keepdims)

    def _spread(self, dout):
        """dout with the reduced axes back (size 1), broadcast to x's shape."""
        kept = [1 if i in self._positive_axes() else n for i, n in enumerate(self.x_shape)]
        return np.broadcast_to(np.reshape(dout, kept), self.x_shape)

    def _positive_axes(self):
        return {a % len(self.x_shape) for a in self.axes} if self.x_shape else set()

    def backward(self, dout):
        return np.array(self._spread(dout))


class OpMean(OpSum):
    """y = the mean of x over ``axes``; dx = dout broadcast back, divided by the number n
    of elements each mean took."""

    def forward(self, x, training=False):
        self.x_shape = x.shape
        return np.mean(x, axis=tuple(self.axes), keepdims=self.keepdims)

    def backward(self, dout):
        n = math.prod(self.x_shape[a] for a in self._positive_axes())
        return self._spread(dout) / np.asarray(n, dout.dtype)


def _swap(x, transpose):
    """x with its last two axes swapped when ``transpose``."""
    return np.swapaxes(x, -1, -2) if transpose else x


class OpMatMul(L.Layer):
    """y = op(a) @ op(b), op transposing the last two axes where asked; leading (batch)
    axes broadcast as in ``np.matmul``. The gradients follow TensorFlow's four cases:

        a @ b        da = dout @ b^T        db = a^T @ dout
        a @ b^T      da = dout @ b          db = dout^T @ a
        a^T @ b      da = b @ dout^T        db = a @ dout
        a^T @ b^T    da = b^T @ dout^T      db = dout^T @ a^T

    and a broadcast batch axis sums its gradient back.
    """

    multi_input = True

    def __init__(self, transpose_a=False, transpose_b=False):
        super().__init__()
        self.transpose_a, self.transpose_b = bool(transpose_a), bool(transpose_b)

    def forward(self, xs, training=False):
        a, b = xs
        self.a, self.b = a, b
        return np.matmul(_swap(a, self.transpose_a), _swap(b, self.transpose_b))

    def backward(self, dout):
        a, b, T = self.a, self.b, lambda x: np.swapaxes(x, -1, -2)
        if not self.transpose_a and not self.transpose_b:
            da, db = dout @ T(b), T(a) @ dout
        elif not self.transpose_a:
            da, db = dout @ b, T(dout) @ a
        elif not self.transpose_b:
            da, db = b @ T(dout), a @ dout
        else:
            da, db = T(b) @ T(dout), T(dout) @ T(a)
        return [_batch_unbroadcast(da, a.shape), _batch_unbroadcast(db, b.shape)]


def _batch_unbroadcast(grad, shape):
    """A matmul operand's gradient summed over the batch axes it was broadcast along."""
    return unbroadcast(grad, shape).reshape(shape)


class OpBiasAdd(L.Layer):
    """y = x + b, b (C,) added along the channel axis: the last one, or axis 1 when
    ``channels_first``; db = dout summed over every other axis."""

    multi_input = True

    def __init__(self, channels_first=False):
        super().__init__()
        self.channels_first = bool(channels_first)

    def forward(self, xs, training=False):
        x, b = xs
        self.x_ndim = x.ndim
        return x + self._along_channels(b, x.ndim)

    def _along_channels(self, b, ndim):
        if self.channels_first:
            return b.reshape(-1, *[1] * (ndim - 2))
        return b

    def _other_axes(self):
        channel = 1 if self.channels_first else self.x_ndim - 1
        return tuple(i for i in range(self.x_ndim) if i != channel)

    def backward(self, dout):
        return [dout, np.sum(dout, axis=self._other_axes())]


__all__ = ["Constant", "OpBiasAdd", "OpExp", "OpLog", "OpMatMul", "OpMean", "OpReshape",
           "OpRsqrt", "OpSlice", "OpSqrt", "OpSquare", "OpSqueeze", "OpSum", "OpTranspose"]
