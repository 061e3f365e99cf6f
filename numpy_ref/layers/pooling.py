"""Pooling layers: the book's ``Pooling`` (N, C, H, W), and Keras's pooling twins (N, H, W, C).

Every window is read through the strided view of ``numpy_ref.layers.im2col.Windows``;
a pool reduces it with a loop over the ph * pw offsets of the window (4 for
2x2), each step one whole-array operation, never a loop over output positions.

Gradients, as TensorFlow computes them (measured on TF 2.21, float32 and
float64, oneDNN on):

- max pooling (``MaxPoolGrad``): each output's gradient goes to the *first*
  maximum of its window in row-major order (the book's ``argmax`` picks the
  same one), summed where windows overlap. SAME padding never wins: the
  padded cells count as -inf.
- average pooling: SAME divides by the number of real cells in the window,
  the padding excluded (a corner window of a 3x3 image with 2x2 SAME pooling
  averages one cell); the gradient spreads dout / count the same way.
- global max pooling (``reduce_max``): ties *share* the gradient equally,
  dx = (x == max) / count * dout.

Shape letters: N batch, C channels, H x W image, ph x pw pool window.
"""

import numpy as np

from numpy_ref.layers import im2col as I
from numpy_ref import layers as L
from numpy_ref.layers.conv import keras_pads, padding_of


def _cells(view):
    """The window cells of a (..., ph, pw) window view, in row-major order: ph*pw views."""
    ph, pw = view.shape[-2:]
    return [view[..., k // pw, k % pw] for k in range(ph * pw)]


def max_over_windows(view):
    """max over the last two axes of a (..., ph, pw) window view (a new array)."""
    cells = _cells(view)
    out = cells[0].copy() if len(cells) == 1 else np.maximum(cells[0], cells[1])
    for cell in cells[2:]:
        np.maximum(out, cell, out=out)
    return out


def first_max_masks(view, out):
    """For each window cell in row-major order, where it holds the first maximum of its
    window (later equal values lose, as with ``np.argmax``): one boolean array per cell."""
    taken = None
    for cell in _cells(view):
        hit = cell == out
        if taken is None:
            taken = hit.copy()
        else:
            hit = np.greater(hit, taken)  # hit and not taken
            taken |= hit
        yield hit


def route_to_max(windows, xp, out, dout, dtype, like=None):
    """The gradient of ``max_over_windows(windows.view(xp))``, padded size, in the memory
    order of ``like`` (``Windows.new_padded``): each dout goes to the first maximum of
    its window (summed where windows overlap)."""
    # Every pixel written exactly once needs no zeros first.
    dxp = windows.new_padded(dtype, fill=None if windows.tiling else 0, like=like)
    target = _cells(windows.view(dxp, writeable=True))
    for cell, hit in zip(target, first_max_masks(windows.view(xp), out)):
        if windows.overlapping:
            cell += dout * hit
        else:  # each pixel is in one window at most: write, no read
            np.multiply(dout, hit, out=cell)
    return dxp


class Pooling(I.WindowedLayer):
    """The book's max pooling on (N, C, H, W) images.

    out[n, c, p, q] = max over the window xp[n, c, p*stride : p*stride + pool_h,
    q*stride : q*stride + pool_w], xp padded with ``pad`` zeros as the book's ``im2col``
    pads; out_h = (H + 2*pad - pool_h) // stride + 1. The gradient goes to the first
    maximum of each window (``arg_max``, as the book's ``np.argmax``).

    Args:
        pool_h, pool_w: the window; stride, pad: ints. The book's default stride is 1.
    """

    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        super().__init__()
        self.pool_h, self.pool_w = I.pair((pool_h, pool_w), "pool size")
        self.stride, self.pad = int(stride), int(pad)

    def _geometry(self, input_shape):
        pad = (self.pad, self.pad)
        return I.Windows(input_shape, (self.pool_h, self.pool_w), (self.stride, self.stride),
                         (pad, pad))

    def forward(self, x, training=False):
        self.x = x
        windows = self.windows(x.shape)
        self._xp = windows.pad(x)
        self._out = max_over_windows(windows.view(self._xp))  # (N, oh, ow, C)
        return self._out.transpose(0, 3, 1, 2)  # (N, C, oh, ow)

    @property
    def arg_max(self):
        """The book's attribute: the window index of each maximum (row-major in the
        window), ordered (N, oh, ow, C) like the rows of the book's pooling matrix."""
        arg = np.zeros(self._out.shape, np.intp)
        for k, hit in enumerate(first_max_masks(self.windows(self.x.shape).view(self._xp),
                                                self._out)):
            arg[hit] = k
        return arg.reshape(-1)  # (N*oh*ow*C,)

    def backward(self, dout):
        windows = self.windows(self.x.shape)
        dxp = route_to_max(windows, self._xp, self._out, dout.transpose(0, 2, 3, 1),
                           self.x.dtype, like=self.x)
        return windows.crop(dxp)


def _check_images(layer, x):
    if x.ndim != 4:
        raise ValueError(f"{type(layer).__name__} expects images (N, H, W, C). "
                         f"Received: input shape {x.shape}")


class _KerasPool(I.WindowedLayer):
    """Keras's 2-D pooling options on channels_last images."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid"):
        super().__init__()
        self.pool_size = I.pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else I.pair(strides, "strides")
        self.padding = padding_of(padding)

    def _geometry(self, input_shape):
        pads = keras_pads(self.padding, input_shape[1:3], self.pool_size, self.strides)
        return I.Windows(input_shape, self.pool_size, self.strides, pads, channels_last=True)

    def _windows_of(self, x):
        _check_images(self, x)
        self.x_shape, self.dtype = x.shape, x.dtype
        return self.windows(x.shape)


class MaxPooling2D(_KerasPool):
    """Max over each window, the twin of ``keras.layers.MaxPooling2D`` (channels_last).

    strides default to pool_size; 'same' pads as TF does, with cells that never win.
    """

    def forward(self, x, training=False):
        windows = self._windows_of(x)
        self._xp = windows.pad(x, -np.inf)
        self._out = max_over_windows(windows.view(self._xp))
        return self._out  # (N, oh, ow, C)

    def backward(self, dout):
        windows = self.windows(self.x_shape)
        return windows.crop(route_to_max(windows, self._xp, self._out, dout, self.dtype))


class AveragePooling2D(_KerasPool):
    """Mean over each window, the twin of ``keras.layers.AveragePooling2D`` (channels_last).

    out = sum(window) / count, count the number of cells of the window inside the image
    (with 'same', TF leaves the padding out of the mean); dx: dout / count to every cell.
    """

    def _counts(self, windows):
        """(oh, ow, 1): how many real cells each window covers."""
        counts = []
        for size, (before, _), k, s, out in zip(windows.input_shape[1:3], windows.pads,
                                                windows.kernel_size, windows.strides,
                                                windows.out_hw):
            start = np.arange(out) * s - before  # first row (column) of each window
            counts.append(np.minimum(start + k, size) - np.maximum(start, 0))
        return (counts[0][:, None] * counts[1][None, :])[:, :, None]

    def forward(self, x, training=False):
        windows = self._windows_of(x)
        cells = _cells(windows.view(windows.pad(x)))  # ph*pw of (N, oh, ow, C)
        total = cells[0].copy()
        for cell in cells[1:]:
            total += cell
        self._count = self._counts(windows).astype(x.dtype)
        total /= self._count
        return total

    def backward(self, dout):
        windows = self.windows(self.x_shape)
        share = dout / self._count  # (N, oh, ow, C)
        dxp = windows.new_padded(self.dtype)
        for cell in _cells(windows.view(dxp, writeable=True)):
            cell += share
        return windows.crop(dxp)


class _GlobalPool(L.Layer):
    """A reduction over the two spatial axes of (N, H, W, C): (N, C), or (N, 1, 1, C)."""

    def __init__(self, keepdims=False):
        super().__init__()
        self.keepdims = bool(keepdims)

    def _check(self, x):
        _check_images(self, x)
        self.x_shape = x.shape

    def _kept(self, dout):
        """dout as (N, 1, 1, C), whatever keepdims was."""
        return dout.reshape(dout.shape[0], 1, 1, dout.shape[-1])


class GlobalAveragePooling2D(_GlobalPool):
    """mean over (H, W), ``keras.layers.GlobalAveragePooling2D``; dx = dout / (H*W) everywhere."""

    def forward(self, x, training=False):
        self._check(x)
        return x.mean(axis=(1, 2), keepdims=self.keepdims)

    def backward(self, dout):
        dx = np.empty(self.x_shape, dout.dtype)
        dx[...] = self._kept(dout) / (self.x_shape[1] * self.x_shape[2])
        return dx


class GlobalMaxPooling2D(_GlobalPool):
    """max over (H, W), ``keras.layers.GlobalMaxPooling2D``; tied maxima share the
    gradient as TF's ``reduce_max`` gradient does: dx = (x == max) / count * dout."""

    def forward(self, x, training=False):
        self._check(x)
        out = x.max(axis=(1, 2), keepdims=True)  # (N, 1, 1, C)
        self._hits = x == out
        return out if self.keepdims else out.reshape(out.shape[0], out.shape[-1])  # (N, C)

    def backward(self, dout):
        hits = self._hits.astype(dout.dtype)
        return hits / hits.sum(axis=(1, 2), keepdims=True) * self._kept(dout)


__all__ = ["AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
           "MaxPooling2D", "Pooling", "first_max_masks", "max_over_windows", "route_to_max"]
