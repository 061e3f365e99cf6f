"""Layers that move values without arithmetic: crop, pad, repeat, permute.

The twins of Keras's ``Cropping1D/2D/3D``, ``ZeroPadding1D/3D`` (and ``ZeroPadding2D``
with channels_first), ``UpSampling1D/3D`` and ``UpSampling2D`` with 'nearest',
``Permute`` and ``RepeatVector``. Each spatial layer takes one (before, after) pair or one
factor per spatial axis, so one class serves 1-D, 2-D and 3-D inputs; ``data_format``
says where the channels are: (N, *spatial, C) or (N, C, *spatial).

Every backward is the adjoint of its forward: a crop's gradient is dout set into zeros,
a pad's is the middle of dout, a repeat's sums the copies.

Shape letters: N batch, C channels, L steps, D features, n repeats.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.pooling import data_format_of


def _pairs(pairs, name):
    """((before, after), ...) of non-negative ints, one pair per spatial axis."""
    try:
        pairs = tuple((int(a), int(b)) for a, b in pairs)
        ok = all(a >= 0 and b >= 0 for a, b in pairs) and len(pairs) in (1, 2, 3)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one (before, after) pair of non-negative ints per "
                         f"spatial axis. Received: {name}={pairs!r}")
    return pairs


def _spatial_axes(rank, data_format, ndim, layer):
    if ndim != rank + 2:
        raise ValueError(f"{type(layer).__name__} expects inputs of rank {rank + 2} "
                         f"(N, {rank} spatial axes, C). Received: rank {ndim}")
    return tuple(range(1, rank + 1)) if data_format == "channels_last" else \
        tuple(range(2, rank + 2))


def _inner(shape, axes, pairs):
    """The index of the part of an array of ``shape`` left after cutting ``pairs`` off ``axes``."""
    index = [slice(None)] * len(shape)
    for axis, (before, after) in zip(axes, pairs):
        index[axis] = slice(before, shape[axis] - after)
    return tuple(index)


class Cropping(L.Layer):
    """y = x without ``cropping[k] = (before, after)`` cells at the ends of spatial axis k;
    dx = zeros with dout in the middle."""

    def __init__(self, cropping, data_format="channels_last"):
        super().__init__()
        self.cropping = _pairs(cropping, "cropping")
        self.data_format = data_format_of(data_format)

    def forward(self, x, training=False):
        axes = _spatial_axes(len(self.cropping), self.data_format, x.ndim, self)
        if any(sum(p) >= x.shape[a] for a, p in zip(axes, self.cropping)):
            raise ValueError(f"cropping {self.cropping} leaves nothing of the input of shape "
                             f"{x.shape}")
        self.x_shape, self._axes = x.shape, axes
        return x[_inner(x.shape, axes, self.cropping)]

    def backward(self, dout):
        dx = np.zeros(self.x_shape, dout.dtype)
        dx[_inner(self.x_shape, self._axes, self.cropping)] = dout
        return dx


class ZeroPadding(L.Layer):
    """y = x with ``padding[k] = (before, after)`` zeros added at the ends of spatial axis k;
    dx = the middle of dout."""

    def __init__(self, padding, data_format="channels_last"):
        super().__init__()
        self.padding = _pairs(padding, "padding")
        self.data_format = data_format_of(data_format)

    def forward(self, x, training=False):
        axes = _spatial_axes(len(self.padding), self.data_format, x.ndim, self)
        shape = list(x.shape)
        for axis, (before, after) in zip(axes, self.padding):
            shape[axis] += before + after
        self._axes = axes
        out = np.zeros(shape, x.dtype)
        out[_inner(shape, axes, self.padding)] = x
        return out

    def backward(self, dout):
        return dout[_inner(dout.shape, self._axes, self.padding)].copy()


class UpSampling(L.Layer):
    """Nearest-neighbour upsampling: each cell repeated ``size[k]`` times along spatial axis
    k (``np.repeat``, as Keras's ``ops.repeat``); dx sums each block of copies."""

    def __init__(self, size, data_format="channels_last"):
        super().__init__()
        self.size = tuple(int(s) for s in size)
        if not 1 <= len(self.size) <= 3 or min(self.size) < 1:
            raise ValueError(f"size must be one positive int per spatial axis. "
                             f"Received: size={size!r}")
        self.data_format = data_format_of(data_format)

    def forward(self, x, training=False):
        self._axes = _spatial_axes(len(self.size), self.data_format, x.ndim, self)
        for axis, factor in zip(self._axes, self.size):
            x = np.repeat(x, factor, axis=axis)
        return x

    def backward(self, dout):
        for axis, factor in zip(self._axes, self.size):
            # (..., L * s, ...) -> (..., L, s, ...), summed over the s copies
            shape = dout.shape[:axis] + (dout.shape[axis] // factor, factor) + dout.shape[axis + 1:]
            dout = dout.reshape(shape).sum(axis=axis + 1)
        return dout


class Permute(L.Layer):
    """y = x with its non-batch axes reordered: y.shape[1:] = x.shape[dims[0]], ... (``dims``
    counts from 1, as Keras's); dx: dout with the inverse order."""

    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(int(d) for d in dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"dims must be a permutation of 1..{len(self.dims)}. "
                             f"Received: dims={dims!r}")

    def forward(self, x, training=False):
        if x.ndim != len(self.dims) + 1:
            raise ValueError(f"Permute{self.dims} expects inputs of rank {len(self.dims) + 1}. "
                             f"Received: input shape {x.shape}")
        return x.transpose(0, *self.dims)

    def backward(self, dout):
        return dout.transpose(np.argsort((0, *self.dims)))


class RepeatVector(L.Layer):
    """(N, D) -> (N, n, D), each row repeated n times; dx = dout summed over the n copies."""

    def __init__(self, n):
        super().__init__()
        self.n = int(n)

    def forward(self, x, training=False):
        if x.ndim != 2:
            raise ValueError(f"RepeatVector expects (N, D) inputs. Received: input shape "
                             f"{x.shape}")
        return np.repeat(x[:, None, :], self.n, axis=1)

    def backward(self, dout):
        return dout.sum(axis=1)


__all__ = ["Cropping", "Permute", "RepeatVector", "UpSampling", "ZeroPadding"]
