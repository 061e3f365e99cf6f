"""Adaptive pooling: a pool whose windows are chosen to give a fixed output size.

The twins of Keras's ``AdaptiveAveragePooling1D/2D/3D`` and ``AdaptiveMaxPooling1D/2D/3D``.
Along a spatial axis of size S pooled to O outputs, output i reads the cells
[floor(i * S / O), ceil((i + 1) * S / O)) (neighbouring windows may share a cell).
Keras's TensorFlow backend pools one spatial axis at a time (D, then H, then W), each
axis a stride-1 pool of the two window lengths that occur, gathered; the twin does the
same stages, so a max picks its cell as TensorFlow does:

- 1-D and 2-D (``MaxPoolGrad``): each stage sends dout to the *first* maximum of its
  window along that axis. In 2-D the winning cell of an (h, w) window is therefore the
  first column w holding the window's maximum, and in it the first such row h.
- 3-D (``MaxPool3DGrad``): each stage sends the window's whole dout to every cell within
  1e-5 of its maximum (|x - max| < 1e-5 in x's dtype). TF has no float64 3-D pools, so
  Keras's 3-D adaptive pools run in float32 only.

An average stage is sum / count of the window; its dx spreads dout / count.

Shape letters: N batch, C channels, S size of one spatial axis, O its output size.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.pooling import data_format_of, from_channels_last, to_channels_last


def adaptive_windows(size, out):
    """[(start, end)] of the ``out`` windows over an axis of ``size`` cells."""
    i = np.arange(out)
    starts = i * size // out
    ends = -(-(i + 1) * size // out)
    return [(int(s), int(e)) for s, e in zip(starts, ends)]


def _along(axis, ndim, part):
    index = [slice(None)] * ndim
    index[axis] = part
    return tuple(index)


class _AdaptivePooling(L.Layer):
    """Pools (N, *spatial, C) (or channels_first) to (N, *output_size, C), axis by axis."""

    def __init__(self, output_size, data_format="channels_last"):
        super().__init__()
        self.output_size = tuple(int(o) for o in np.ravel(output_size))
        if not 1 <= len(self.output_size) <= 3 or min(self.output_size) < 1:
            raise ValueError("output_size must be one positive int per spatial axis. "
                             f"Received: output_size={output_size!r}")
        self.data_format = data_format_of(data_format)

    def forward(self, x, training=False):
        x = to_channels_last(x, self.data_format)
        rank = len(self.output_size)
        if x.ndim != rank + 2:
            raise ValueError(f"{type(self).__name__} expects inputs of rank {rank + 2}. "
                             f"Received: input shape {x.shape}")
        self._stages = []  # (axis, windows, stage input, stage output)
        for axis, out in zip(range(1, rank + 1), self.output_size):
            windows = adaptive_windows(x.shape[axis], out)
            y = np.concatenate([self._reduce(x[_along(axis, x.ndim, slice(s, e))], axis)
                                for s, e in windows], axis=axis)
            self._stages.append((axis, windows, x, y))
            x = y
        return from_channels_last(x, self.data_format)

    def backward(self, dout):
        dout = to_channels_last(dout, self.data_format)
        for axis, windows, x, y in reversed(self._stages):
            dx = np.zeros(x.shape, dout.dtype)
            for i, (s, e) in enumerate(windows):
                at = _along(axis, x.ndim, slice(i, i + 1))
                cells = _along(axis, x.ndim, slice(s, e))
                dx[cells] += self._spread(x[cells], y[at], dout[at], axis)
            dout = dx
        return from_channels_last(dout, self.data_format)


class AdaptiveAveragePooling(_AdaptivePooling):
    """Mean over each adaptive window, ``keras.layers.AdaptiveAveragePooling1D/2D/3D``."""

    @staticmethod
    def _reduce(block, axis):
        return block.sum(axis=axis, keepdims=True) / block.shape[axis]

    @staticmethod
    def _spread(block, y, dout, axis):
        return np.broadcast_to(dout / block.shape[axis], block.shape)


class AdaptiveMaxPooling(_AdaptivePooling):
    """Max over each adaptive window, ``keras.layers.AdaptiveMaxPooling1D/2D/3D``; the
    gradient goes where TensorFlow sends it (module docstring): the first maximum along
    each axis in 1-D and 2-D, every cell within 1e-5 of the maximum in 3-D."""

    @staticmethod
    def _reduce(block, axis):
        return block.max(axis=axis, keepdims=True)

    def _spread(self, block, y, dout, axis):
        if len(self.output_size) == 3:
            return dout * (np.abs(block - y) < block.dtype.type(1e-5))
        first = np.expand_dims(block.argmax(axis=axis), axis)
        positions = np.arange(block.shape[axis]).reshape(
            [-1 if a == axis else 1 for a in range(block.ndim)])
        return dout * (positions == first)


__all__ = ["AdaptiveAveragePooling", "AdaptiveMaxPooling", "adaptive_windows"]
