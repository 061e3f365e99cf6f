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
- 3-D max pooling (``MaxPool3DGrad``) is another kernel with another rule: every
  cell within 1e-5 of its window's maximum, |x - max| < 1e-5 computed in the
  input's dtype, gets the *whole* dout of that window (ties do not share; a
  near-maximum counts too). TF has no float64 MaxPool3D or AvgPool3D, so Keras's
  3-D pools run in float32 only (the twins accept float64 with the same rule).

1-D pools are the 2-D ones on (N, 1, L, C), as TensorFlow computes them. Every
pool and global pool takes ``data_format``: channels_first input is transposed to
channels_last first and the output back (Keras's TF backend does the same).

Shape letters: N batch, C channels, D x H x W volume (H x W image, L steps),
ph x pw pool window.
"""

import itertools

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


DATA_FORMATS = ("channels_last", "channels_first")


def data_format_of(data_format):
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}. "
                         f"Received: data_format={data_format!r}")
    return data_format


def to_channels_last(x, data_format):
    """(N, C, *spatial) -> (N, *spatial, C) for channels_first (a view); x itself else."""
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def from_channels_last(y, data_format):
    """The inverse of ``to_channels_last``."""
    return y if data_format == "channels_last" else np.moveaxis(y, -1, 1)


def _check_rank(layer, x, rank):
    if x.ndim != rank + 2:
        letters = {1: "L", 2: "H, W", 3: "D, H, W"}[rank]
        raise ValueError(f"{type(layer).__name__} expects (N, {letters}, C) inputs (channels "
                         f"last). Received: input shape {x.shape}")


def _check_images(layer, x):
    _check_rank(layer, x, 2)


class _ChannelsLastCore(L.Layer):
    """A layer computing on channels_last arrays in ``_forward``/``_backward``; with
    ``data_format='channels_first'`` its input is transposed in and its output back out."""

    data_format = "channels_last"

    def forward(self, x, training=False):
        return from_channels_last(self._forward(to_channels_last(x, self.data_format)),
                                  self.data_format)

    def backward(self, dout):
        return from_channels_last(self._backward(to_channels_last(dout, self.data_format)),
                                  self.data_format)


class _KerasPool(_ChannelsLastCore, I.WindowedLayer):
    """Keras's 2-D pooling options."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid",
                 data_format="channels_last"):
        super().__init__()
        self.pool_size = I.pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else I.pair(strides, "strides")
        self.padding = padding_of(padding)
        self.data_format = data_format_of(data_format)

    def _geometry(self, input_shape):
        pads = keras_pads(self.padding, input_shape[1:3], self.pool_size, self.strides)
        return I.Windows(input_shape, self.pool_size, self.strides, pads, channels_last=True)

    def _windows_of(self, x):
        _check_images(self, x)
        self.x_shape, self.dtype = x.shape, x.dtype
        return self.windows(x.shape)


class MaxPooling2D(_KerasPool):
    """Max over each window, the twin of ``keras.layers.MaxPooling2D``.

    strides default to pool_size; 'same' pads as TF does, with cells that never win.
    """

    def _forward(self, x):
        windows = self._windows_of(x)
        self._xp = windows.pad(x, -np.inf)
        self._out = max_over_windows(windows.view(self._xp))
        return self._out  # (N, oh, ow, C)

    def _backward(self, dout):
        windows = self.windows(self.x_shape)
        return windows.crop(route_to_max(windows, self._xp, self._out, dout, self.dtype))


class AveragePooling2D(_KerasPool):
    """Mean over each window, the twin of ``keras.layers.AveragePooling2D``.

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

    def _forward(self, x):
        windows = self._windows_of(x)
        cells = _cells(windows.view(windows.pad(x)))  # ph*pw of (N, oh, ow, C)
        total = cells[0].copy()
        for cell in cells[1:]:
            total += cell
        self._count = self._counts(windows).astype(x.dtype)
        total /= self._count
        return total

    def _backward(self, dout):
        windows = self.windows(self.x_shape)
        share = dout / self._count  # (N, oh, ow, C)
        dxp = windows.new_padded(self.dtype)
        for cell in _cells(windows.view(dxp, writeable=True)):
            cell += share
        return windows.crop(dxp)


class _GlobalPool(_ChannelsLastCore):
    """A reduction over the spatial axes of (N, *spatial, C): (N, C), or (N, 1.., C)
    with keepdims (channels_first: (N, C, *spatial) -> (N, C) or (N, C, 1..))."""

    rank = 2

    def __init__(self, keepdims=False, data_format="channels_last"):
        super().__init__()
        self.keepdims = bool(keepdims)
        self.data_format = data_format_of(data_format)

    @property
    def _axes(self):
        return tuple(range(1, self.rank + 1))

    def _check(self, x):
        _check_rank(self, x, self.rank)
        self.x_shape = x.shape

    def _kept(self, dout):
        """dout as (N, 1.., C), whatever keepdims was."""
        return dout.reshape(dout.shape[0], *(1,) * self.rank, dout.shape[-1])

    def forward(self, x, training=False):
        out = self._forward(to_channels_last(x, self.data_format))
        return from_channels_last(out, self.data_format) if self.keepdims else out

    def backward(self, dout):
        dout = to_channels_last(dout, self.data_format) if self.keepdims else dout
        return from_channels_last(self._backward(dout), self.data_format)


class GlobalAveragePooling2D(_GlobalPool):
    """mean over (H, W), ``keras.layers.GlobalAveragePooling2D``; dx = dout / (H*W) everywhere."""

    def _forward(self, x):
        self._check(x)
        return x.mean(axis=self._axes, keepdims=self.keepdims)

    def _backward(self, dout):
        dx = np.empty(self.x_shape, dout.dtype)
        dx[...] = self._kept(dout) / int(np.prod(self.x_shape[1:-1]))
        return dx


class GlobalMaxPooling2D(_GlobalPool):
    """max over (H, W), ``keras.layers.GlobalMaxPooling2D``; tied maxima share the
    gradient as TF's ``reduce_max`` gradient does: dx = (x == max) / count * dout."""

    def _forward(self, x):
        self._check(x)
        out = x.max(axis=self._axes, keepdims=True)  # (N, 1, 1, C)
        self._hits = x == out
        return out if self.keepdims else out.reshape(out.shape[0], out.shape[-1])  # (N, C)

    def _backward(self, dout):
        hits = self._hits.astype(dout.dtype)
        return hits / hits.sum(axis=self._axes, keepdims=True) * self._kept(dout)


class GlobalAveragePooling1D(GlobalAveragePooling2D):
    """mean over the steps L of (N, L, C), ``keras.layers.GlobalAveragePooling1D``.

    With a Keras mask (N, L) (an ``Embedding(mask_zero=True)`` upstream), the mean of the
    unmasked steps only: y = sum(where(mask, x, 0)) / count, count = sum(mask) per
    sample; dx = where(mask, dout / count, 0), as TensorFlow's gradients compute it.
    """

    rank = 1
    mask_arguments = ("mask",)

    def forward(self, x, training=False, mask=None):
        self.mask = None if mask is None else np.asarray(mask, bool)
        if self.mask is None:
            return super().forward(x, training=training)
        x = to_channels_last(x, self.data_format)  # (N, L, C)
        self._check(x)
        keep = self.mask[:, :, None]  # (N, L, 1)
        self.count = keep.sum(axis=1, keepdims=True).astype(x.dtype)  # (N, 1, 1)
        out = np.where(keep, x, x.dtype.type(0)).sum(axis=1, keepdims=True) / self.count
        return from_channels_last(out, self.data_format) if self.keepdims else out[:, 0]

    def backward(self, dout):
        if self.mask is None:
            return super().backward(dout)
        dout = to_channels_last(dout, self.data_format) if self.keepdims else dout
        share = self._kept(dout) / self.count  # (N, 1, C)
        dx = np.where(self.mask[:, :, None], share, dout.dtype.type(0))  # (N, L, C)
        return from_channels_last(dx, self.data_format)


class GlobalAveragePooling3D(GlobalAveragePooling2D):
    """mean over (D, H, W), ``keras.layers.GlobalAveragePooling3D``."""

    rank = 3


class GlobalMaxPooling1D(GlobalMaxPooling2D):
    """max over the steps L, ``keras.layers.GlobalMaxPooling1D``; ties share the gradient."""

    rank = 1


class GlobalMaxPooling3D(GlobalMaxPooling2D):
    """max over (D, H, W), ``keras.layers.GlobalMaxPooling3D``; ties share the gradient."""

    rank = 3


# -- 1-D pools: the 2-D ones on (N, 1, L, C)

class _Pool1D(_ChannelsLastCore):
    """Keras's 1-D pool as TensorFlow runs it: the 2-D pool with a 1 x pool_size window
    on (N, 1, L, C)."""

    pool_class = None

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format="channels_last"):
        super().__init__()
        self.pool_size = _single(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _single(strides, "strides")
        self.padding = padding_of(padding)
        self.data_format = data_format_of(data_format)
        self._pool = self.pool_class((1, self.pool_size), (1, self.strides), self.padding)

    def _forward(self, x):
        _check_rank(self, x, 1)
        return self._pool.forward(x[:, None])[:, 0]  # (N, 1, L, C) -> (N, out_l, C)

    def _backward(self, dout):
        return self._pool.backward(dout[:, None])[:, 0]


def _single(value, name):
    values = tuple(np.ravel(value))
    if len(values) != 1:
        raise ValueError(f"{name} must be one positive int. Received: {name}={value!r}")
    return I.pair(values[0], name)[0]


class MaxPooling1D(_Pool1D):
    """Max over windows of steps, ``keras.layers.MaxPooling1D``; the gradient goes to the
    first maximum of each window."""

    pool_class = MaxPooling2D


class AveragePooling1D(_Pool1D):
    """Mean over windows of steps, ``keras.layers.AveragePooling1D``; 'same' leaves the
    padding out of the mean."""

    pool_class = AveragePooling2D


# -- 3-D pools

def _triple(value, name):
    values = (value,) * 3 if np.ndim(value) == 0 else tuple(value)
    if len(values) != 3:
        raise ValueError(f"{name} must be a positive int or three of them. "
                         f"Received: {name}={value!r}")
    return tuple(I.pair(v, name)[0] for v in values)


class _Pool3D(_ChannelsLastCore):
    """Keras's 3-D pooling options on (N, D, H, W, C).

    Each window offset (i, j, k) of the pool reads one strided block of the padded volume,
    xp[:, i::sd, j::sh, k::sw] cut to (N, od, oh, ow, C); a pool reduces over those blocks
    (pd * ph * pw whole-array operations) and its backward adds onto the same blocks.
    """

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid",
                 data_format="channels_last"):
        super().__init__()
        self.pool_size = _triple(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else _triple(strides, "strides")
        self.padding = padding_of(padding)
        self.data_format = data_format_of(data_format)

    def _geometry(self, x):
        _check_rank(self, x, 3)
        self.x_shape, self.dtype = x.shape, x.dtype
        sizes = x.shape[1:4]
        if self.padding == "valid":
            self._pads = ((0, 0),) * 3
        else:
            self._pads = tuple(I.same_padding(*args)
                               for args in zip(sizes, self.pool_size, self.strides))
        self._out = tuple(I.out_size(size, k, s, sum(p)) for size, k, s, p in
                          zip(sizes, self.pool_size, self.strides, self._pads))
        if min(self._out) < 1:
            raise ValueError(f"a pool of {self.pool_size} does not fit in the input of shape "
                             f"{x.shape}")

    def _blocks(self):
        """For each window offset, the index of its (N, od, oh, ow, C) block of xp."""
        for offset in itertools.product(*(range(k) for k in self.pool_size)):
            yield (slice(None), *(slice(i, i + (o - 1) * s + 1, s) for i, o, s in
                                  zip(offset, self._out, self.strides)))

    def _padded(self, x, value):
        widths = ((0, 0), *self._pads, (0, 0))
        return np.pad(x, widths, constant_values=value) if any(map(any, self._pads)) else x

    def _crop(self, dxp):
        return dxp[(slice(None), *(slice(before, before + size) for (before, _), size in
                                   zip(self._pads, self.x_shape[1:4])))]

    def _new_padded(self):
        return np.zeros((self.x_shape[0], *(size + sum(p) for size, p in
                                            zip(self.x_shape[1:4], self._pads)),
                         self.x_shape[4]), self.dtype)


class MaxPooling3D(_Pool3D):
    """Max over each window, ``keras.layers.MaxPooling3D``.

    dx: every cell with |x - max| < 1e-5 (in x's dtype) gets its window's whole dout,
    summed over the windows it is in (TensorFlow's ``MaxPool3DGrad``); 'same' pads with
    cells that never win.
    """

    def _forward(self, x):
        self._geometry(x)
        self._xp = self._padded(x, -np.inf)
        blocks = [self._xp[b] for b in self._blocks()]
        out = blocks[0].copy()
        for block in blocks[1:]:
            np.maximum(out, block, out=out)
        self._max = out
        return out  # (N, od, oh, ow, C)

    def _backward(self, dout):
        dxp = self._new_padded()
        near = self.dtype.type(1e-5)
        for b in self._blocks():
            dxp[b] += dout * (np.abs(self._xp[b] - self._max) < near)
        return self._crop(dxp)


class AveragePooling3D(_Pool3D):
    """Mean over each window, ``keras.layers.AveragePooling3D``: sum / count, count the
    real cells of the window ('same' leaves the padding out); dx: dout / count to each."""

    def _counts(self):
        """(od, oh, ow, 1): how many real cells each window covers."""
        counts = []
        for size, (before, _), k, s, out in zip(self.x_shape[1:4], self._pads, self.pool_size,
                                                self.strides, self._out):
            start = np.arange(out) * s - before
            counts.append(np.minimum(start + k, size) - np.maximum(start, 0))
        d, h, w = counts
        return (d[:, None, None] * h[None, :, None] * w[None, None, :])[..., None]

    def _forward(self, x):
        self._geometry(x)
        xp = self._padded(x, 0)
        total = None
        for b in self._blocks():
            total = xp[b].copy() if total is None else total + xp[b]
        self._count = self._counts().astype(x.dtype)
        return total / self._count

    def _backward(self, dout):
        dxp = self._new_padded()
        share = dout / self._count
        for b in self._blocks():
            dxp[b] += share
        return self._crop(dxp)


__all__ = ["AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling1D", "MaxPooling2D",
           "MaxPooling3D", "Pooling", "first_max_masks", "from_channels_last",
           "max_over_windows", "route_to_max", "to_channels_last"]
