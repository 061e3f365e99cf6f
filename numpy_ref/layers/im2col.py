"""Sliding windows over images: the book's ``im2col``/``col2im``, and the one core under them.

A convolution is one matrix product once every receptive field is a row of a
matrix ``col`` (N*out_h*out_w, C*FH*FW): ``out = col @ W_matrix``. ``im2col``
builds that matrix, ``col2im`` adds a matrix of the same shape back onto the
image (where windows overlap, their entries are summed): the gradient of
``im2col``. ``Windows`` is the geometry both use, for the book's (N, C, H, W)
layers and for Keras's (N, H, W, C) ones alike:

- every window is read through one strided view of the (padded) image
  (``sliding_window_view``), never a Python loop over output positions;
- the view's canonical axes are (N, out_h, out_w, C, kh, kw); the columns of
  the matrix are ordered (C, kh, kw) (the book's ``order="ckk"``) or
  (kh, kw, C) (Keras's kernel layout, ``order="kkc"``);
- the matrix is copied out of the view in whichever memory layout gives the
  longer contiguous runs (measured: up to 4x apart): row-major (each window one
  contiguous row) when the columns end in channels stored innermost
  (channels_last with C * kw > out_w), else column-major (each column, i.e.
  one (c, i, j) offset over all windows, contiguous: runs of out_w). Both are
  the same (M, K) matrix to NumPy and to BLAS;
- ``add_windows`` (col2im) loops over the kh * kw kernel offsets, as the book
  does: each offset adds one strided block of the matrix onto the image.

Shape letters: N batch, C channels, H x W image, FH x FW (kh x kw) window,
M = N*out_h*out_w rows, K = C*kh*kw columns.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numpy_ref import layers as L

ORDERS = ("ckk", "kkc")


def pair(value, name):
    """(a, b) from an int or a pair of ints."""
    values = (value, value) if np.ndim(value) == 0 else tuple(value)
    if len(values) != 2 or any(int(v) != v or v < 1 for v in values):
        raise ValueError(f"{name} must be a positive int or a pair of them. "
                         f"Received: {name}={value!r}")
    return tuple(int(v) for v in values)


def out_size(size, kernel, stride=1, pad_total=0, dilation=1):
    """Output length of a window sliding over ``size`` (+ padding): floor division, as
    the book's formula (H + 2*pad - FH) // stride + 1 and TF's VALID both do."""
    return (size + pad_total - (kernel - 1) * dilation - 1) // stride + 1


def same_padding(size, kernel, stride=1, dilation=1):
    """TensorFlow's SAME: out = ceil(size / stride) and
    pad_total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0),
    the smaller half before; returns (before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Windows:
    """Where each window of a 2-D sliding operation reads, for one input shape.

    Args:
        input_shape: (N, C, H, W), or (N, H, W, C) with ``channels_last``.
        kernel_size: (kh, kw).
        strides: (sh, sw).
        pads: ((top, bottom), (left, right)).
        dilation: (dh, dw): a window reads every dh-th row and dw-th column.
        channels_last: the layout of the images.
        order: column order of the matrix, "ckk" (the book's) or "kkc" (Keras's).
    """

    def __init__(self, input_shape, kernel_size, strides=(1, 1), pads=((0, 0), (0, 0)),
                 dilation=(1, 1), channels_last=False, order="ckk"):
        if len(input_shape) != 4:
            raise ValueError(f"expected a batch of images of rank 4. Received: input shape "
                             f"{tuple(input_shape)}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}. Received: order={order!r}")
        self.input_shape = tuple(input_shape)
        self.channels_last = channels_last
        self.spatial_axes = (1, 2) if channels_last else (2, 3)
        self.kernel_size, self.strides, self.dilation = kernel_size, strides, dilation
        self.pads = tuple(tuple(p) for p in pads)
        self.order = order
        n = input_shape[0]
        c = input_shape[3] if channels_last else input_shape[1]
        h, w = (input_shape[a] for a in self.spatial_axes)
        self.padded_hw = (h + sum(self.pads[0]), w + sum(self.pads[1]))
        self.out_hw = tuple(out_size(size, k, s, 0, d) for size, k, s, d in
                            zip(self.padded_hw, kernel_size, strides, dilation))
        if min(self.out_hw) < 1:
            raise ValueError(f"a {kernel_size[0]}x{kernel_size[1]} window (dilation "
                             f"{dilation}) does not fit in the padded {self.padded_hw[0]}x"
                             f"{self.padded_hw[1]} input of shape {tuple(input_shape)}")
        self.channels = c
        self.rows = n * self.out_hw[0] * self.out_hw[1]  # M
        self.columns = c * kernel_size[0] * kernel_size[1]  # K
        self.column_shape = ((c, *kernel_size) if order == "ckk" else (*kernel_size, c))
        self.row_shape = (n, *self.out_hw)
        run = kernel_size[1] * c if channels_last and dilation[1] == 1 else c
        self.row_major = order == "kkc" and channels_last and run > self.out_hw[1]

    @property
    def overlapping(self):
        """Whether some pixel lies in more than one window."""
        return any(s < (k - 1) * d + 1 for s, k, d in
                   zip(self.strides, self.kernel_size, self.dilation))

    @property
    def tiling(self):
        """Whether every padded pixel lies in exactly one window."""
        return self.dilation == (1, 1) and all(
            s == k and (size - k) % s == 0
            for s, k, size in zip(self.strides, self.kernel_size, self.padded_hw))

    # -- padding

    @property
    def padded(self):
        return any(any(p) for p in self.pads)

    @property
    def padded_shape(self):
        shape = list(self.input_shape)
        shape[self.spatial_axes[0]], shape[self.spatial_axes[1]] = self.padded_hw
        return tuple(shape)

    def new_padded(self, dtype, fill=0, like=None):
        """A new array of the padded input's shape, filled with ``fill`` (None: not
        filled). An input of the book's (N, C, H, W) layers stored channels-last (the
        transposed output of a convolution, as in the book) makes a gradient stored the
        same way, so the layers before it multiply arrays of one memory order."""
        if (self.channels_last or like is None or like.flags.c_contiguous
                or not like.transpose(0, 2, 3, 1).flags.c_contiguous):
            return self._filled(self.padded_shape, dtype, fill)
        n, c, h, w = self.padded_shape
        return self._filled((n, h, w, c), dtype, fill).transpose(0, 3, 1, 2)  # (N, C, H, W)

    @staticmethod
    def _filled(shape, dtype, fill):
        return np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)

    def pad(self, x, value=0):
        """x with its spatial borders padded by ``value`` (x itself without padding)."""
        if not self.padded:
            return x
        xp = np.full(self.padded_shape, value, dtype=x.dtype)
        self.crop(xp)[...] = x
        return xp

    def crop(self, xp):
        """The inverse of ``pad``: the unpadded part of a padded array (a view)."""
        if not self.padded:
            return xp
        (top, _), (left, _) = self.pads
        inner = [slice(None)] * 4
        ah, aw = self.spatial_axes
        inner[ah] = slice(top, top + self.input_shape[ah])
        inner[aw] = slice(left, left + self.input_shape[aw])
        return xp[tuple(inner)]

    # -- the view of every window

    def view(self, xp, writeable=False):
        """Every window of the padded images, a strided view (no copy):
        (N, out_h, out_w, C, kh, kw), whatever the layout of ``xp``."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation
        extent = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
        v = sliding_window_view(xp, extent, axis=self.spatial_axes, writeable=writeable)
        oh, ow = self.out_hw
        if self.channels_last:  # (N, H', W', C, kh', kw')
            v = v[:, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, :, ::dh, ::dw]
        else:  # (N, C, H', W', kh', kw') -> (N, H', W', C, kh', kw')
            v = v[:, :, :(oh - 1) * sh + 1:sh, :(ow - 1) * sw + 1:sw, ::dh, ::dw]
            v = v.transpose(0, 2, 3, 1, 4, 5)
        return v

    def _in_column_order(self, v):
        """A canonical (N, oh, ow, C, kh, kw) array with its last axes in column order."""
        return v if self.order == "ckk" else v.transpose(0, 1, 2, 4, 5, 3)

    # -- im2col and col2im

    def matrix(self, x, out=None, ones_column=False, dtype=None):
        """im2col: the (M, K) matrix whose row m is the window of output position m
        (rows ordered N, out_h, out_w), its columns in ``order``.

        ``ones_column``: append a column of ones, (M, K + 1), so that a product with a
        kernel matrix whose last row is the bias adds the bias (and the product of its
        transpose with dout sums dout for the bias gradient) inside the one matrix product.
        ``out``: a matrix an earlier call returned for this geometry and dtype, to be
        overwritten (saves allocating and faulting in a fresh one per batch); ignored
        when it does not fit.
        ``dtype``: the matrix's dtype, default x's (a wider one is filled by the same copy,
        so that a product with wider weights needs no converted copy of the matrix).
        """
        v = self._in_column_order(self.view(self.pad(x)))  # (N, oh, ow, *column_shape)
        k = self.columns + bool(ones_column)
        dtype = np.dtype(dtype or x.dtype)
        fits = (out is not None and out.shape == (self.rows, k) and out.dtype == dtype
                and (out.flags.c_contiguous if self.row_major else out.T.flags.c_contiguous))
        # The reshapes below split axes whose elements are evenly spaced: views, written through.
        if self.row_major:
            col = out if fits else np.empty((self.rows, k), dtype)
            col[:, :self.columns].reshape(v.shape)[...] = v  # (N, oh, ow, *column_shape)
            if ones_column:
                col[:, -1] = 1
            return col
        col_t = out.T if fits else np.empty((k, self.rows), dtype)  # (K', N*oh*ow)
        cells = col_t[:self.columns].reshape(self.column_shape + self.row_shape)
        cells[...] = v.transpose(3, 4, 5, 0, 1, 2)  # (K..., N, oh, ow)
        if ones_column:
            col_t[-1] = 1
        return col_t.T  # (M, K'), column-major

    def blocks(self, col):
        """An (M, K) matrix as a canonical (N, oh, ow, C, kh, kw) array, a view when
        ``col`` is row- or column-major."""
        if col.shape != (self.rows, self.columns):
            raise ValueError(f"expected a matrix of shape {(self.rows, self.columns)} for "
                             f"input shape {self.input_shape}. Received: {col.shape}")
        if col.flags.f_contiguous and not col.flags.c_contiguous:
            b = col.T.reshape(self.column_shape + self.row_shape)  # (K..., N, oh, ow)
            b = b.transpose(3, 4, 5, 0, 1, 2)  # (N, oh, ow, K...)
        else:
            b = col.reshape(self.row_shape + self.column_shape)  # (N, oh, ow, K...)
        return b if self.order == "ckk" else b.transpose(0, 1, 2, 5, 3, 4)

    def add_windows(self, blocks, dtype, like=None):
        """col2im: the padded-size image where each window position (n, p, q) adds
        ``blocks[n, p, q]`` (C, kh, kw) onto the pixels it read; overlaps sum.
        ``like``: the input, whose memory order the result takes (``new_padded``)."""
        xp = self.new_padded(dtype, like=like)
        target = self.view(xp, writeable=True)  # (N, oh, ow, C, kh, kw)
        for i in range(self.kernel_size[0]):
            for j in range(self.kernel_size[1]):
                # One offset: distinct windows hit distinct pixels, so += is exact.
                target[..., i, j] += blocks[..., i, j]
        return xp

    def image(self, col, dtype=None, like=None):
        """col2im of an (M, K) matrix: the image-shaped gradient of ``matrix``."""
        dtype = dtype or col.dtype
        return self.crop(self.add_windows(self.blocks(col), dtype, like))


class WindowedLayer(L.Layer):
    """A layer sliding a window; a subclass defines ``_geometry(input_shape)`` -> ``Windows``,
    which ``windows`` caches for the last input shape."""

    _cached = None

    def windows(self, input_shape):
        if self._cached is None or self._cached.input_shape != tuple(input_shape):
            self._cached = self._geometry(input_shape)  # pylint: disable=no-member
        return self._cached


def _book_windows(input_shape, filter_h, filter_w, stride, pad):
    stride, pad = int(stride), int(pad)
    return Windows(input_shape, (filter_h, filter_w), (stride, stride), ((pad, pad), (pad, pad)))


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """The book's im2col: images (N, C, H, W) -> col (N*out_h*out_w, C*filter_h*filter_w).

    out_h = (H + 2*pad - filter_h) // stride + 1 (likewise out_w); rows are ordered
    (N, out_h, out_w), columns (C, filter row, filter column); padding is zeros. The
    matrix keeps the input's float dtype (the book's is always float64).
    """
    x = np.asarray(input_data)
    return _book_windows(x.shape, filter_h, filter_w, stride, pad).matrix(x)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The book's col2im: adds each row of col (N*out_h*out_w, C*filter_h*filter_w) back
    onto the pixels its window read (overlaps summed); returns (N, C, H, W)."""
    col = np.asarray(col)
    return _book_windows(tuple(input_shape), filter_h, filter_w, stride, pad).image(col)
