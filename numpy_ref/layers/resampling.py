"""Image resizing as TensorFlow's ``tf.image.resize`` computes it (half-pixel centres).

The twins of ``keras.layers.UpSampling2D(interpolation='bilinear')``, ``Resizing`` and
``CenterCrop`` (which resizes an image smaller than its target). Along an axis of ``S``
input cells resized to ``O``, output i samples the input at

    p = (i + 0.5) * scale - 0.5,   scale = S / O          (float32, as TF computes it)

- bilinear (``ResizeBilinear``): from cells lower = max(floor(p), 0) and
  upper = min(ceil(p), S - 1) with weight lerp = p - floor(p), rows then columns:
  top = tl + (tr - tl) * x_lerp, bottom = bl + (br - bl) * x_lerp,
  out = top + (bottom - top) * y_lerp. TF computes all of it in float32, whatever the
  input's dtype (a float64 image gives a float32 result). The gradient
  (``ResizeBilinearGrad``) gives each of the four cells dout * (1 - y_lerp) * (1 - x_lerp)
  (and so on), that product in float32, then added in the input's dtype.
- nearest (``ResizeNearestNeighbor``): the cell min(floor((i + 0.5) * scale), S - 1), in
  the input's dtype; the gradient sums dout onto the cells read.

Shape letters: N batch, H x W input image, OH x OW output image, C channels.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.pooling import data_format_of, from_channels_last, to_channels_last

F32 = np.float32
INTERPOLATIONS = ("bilinear", "nearest")


def _scale(size, out):
    return F32(size) / F32(out)


def bilinear_taps(size, out):
    """(lower, upper, lerp) for each of ``out`` outputs over ``size`` cells."""
    p = (np.arange(out, dtype=F32) + F32(0.5)) * _scale(size, out) - F32(0.5)
    below = np.floor(p)
    lower = np.maximum(below.astype(np.int64), 0)
    upper = np.minimum(np.ceil(p).astype(np.int64), size - 1)
    return lower, upper, p - below  # lerp, float32


def nearest_taps(size, out):
    """The input cell each of ``out`` outputs copies."""
    p = (np.arange(out, dtype=F32) + F32(0.5)) * _scale(size, out)
    return np.clip(np.floor(p).astype(np.int64), 0, size - 1)


class Resize(L.Layer):
    """Resizes (N, H, W, C) images (or channels_first) to (N, height, width, C).

    Args:
        height, width: the output size.
        interpolation: 'bilinear' (float32 result) or 'nearest' (the input's dtype).
        data_format: 'channels_last' or 'channels_first'.
    """

    def __init__(self, height, width, interpolation="bilinear", data_format="channels_last"):
        super().__init__()
        self.height, self.width = int(height), int(width)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}. "
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = interpolation
        self.data_format = data_format_of(data_format)

    def forward(self, x, training=False):
        x = to_channels_last(x, self.data_format)
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects images (N, H, W, C). Received: "
                             f"input shape {x.shape}")
        self.x_shape, self.x_dtype = x.shape, x.dtype
        h, w = x.shape[1:3]
        if self.interpolation == "nearest":
            self._rows, self._cols = nearest_taps(h, self.height), nearest_taps(w, self.width)
            out = x[:, self._rows][:, :, self._cols]
        else:
            self._ys, self._xs = bilinear_taps(h, self.height), bilinear_taps(w, self.width)
            out = self._bilinear(x.astype(F32, copy=False))
        return from_channels_last(out, self.data_format)

    def _bilinear(self, x):
        (top, bottom, y_lerp), (left, right, x_lerp) = self._ys, self._xs
        x_lerp, y_lerp = x_lerp[:, None], y_lerp[:, None, None]
        upper_rows, lower_rows = x[:, top], x[:, bottom]  # (N, OH, W, C)
        tl, tr = upper_rows[:, :, left], upper_rows[:, :, right]  # (N, OH, OW, C)
        bl, br = lower_rows[:, :, left], lower_rows[:, :, right]
        upper = tl + (tr - tl) * x_lerp
        lower = bl + (br - bl) * x_lerp
        return upper + (lower - upper) * y_lerp

    def backward(self, dout):
        dout = to_channels_last(dout, self.data_format)
        dx = np.zeros(self.x_shape, self.x_dtype)
        if self.interpolation == "nearest":
            np.add.at(dx, (slice(None), self._rows[:, None], self._cols[None, :]), dout)
        else:
            (top, bottom, y_lerp), (left, right, x_lerp) = self._ys, self._xs
            g = dout.astype(F32, copy=False)[:, :, :, None, :]  # (N, OH, OW, 1, C)
            wy = np.stack([1 - y_lerp, 1 - y_lerp, y_lerp, y_lerp], -1)[:, None, :, None]
            wx = np.stack([1 - x_lerp, x_lerp, 1 - x_lerp, x_lerp], -1)[None, :, :, None]
            # one weighted copy per corner, (N, OH, OW, 4, C): (dout * y weight) * x weight
            shares = ((g * wy) * wx).astype(self.x_dtype)
            rows = np.stack([top, top, bottom, bottom], -1)[:, None, :]  # (OH, 1, 4)
            cols = np.stack([left, right, left, right], -1)[None, :, :]  # (1, OW, 4)
            np.add.at(dx, (slice(None), rows, cols), shares)
        return from_channels_last(dx, self.data_format)


class UpSampling2D(Resize):
    """``keras.layers.UpSampling2D`` with interpolation 'bilinear': a ``Resize`` to
    (size[0] * H, size[1] * W)."""

    def __init__(self, size=(2, 2), interpolation="bilinear", data_format="channels_last"):
        self.size = tuple(int(s) for s in size)
        super().__init__(1, 1, interpolation, data_format)

    def get_config(self):
        return {"size": self.size, "interpolation": self.interpolation,
                "data_format": self.data_format}

    def forward(self, x, training=False):
        h, w = to_channels_last(x, self.data_format).shape[1:3]
        self.height, self.width = h * self.size[0], w * self.size[1]
        return super().forward(x, training)


def _as(y, dtype):
    """y cast to ``dtype`` as Keras's Resizing casts its result back: integers rounded
    (half to even) and clipped to the dtype's range first."""
    if y.dtype == dtype:
        return y
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        y = np.clip(np.round(y), info.min, info.max)
    return y.astype(dtype)


class Resizing(L.Layer):
    """The twin of ``keras.layers.Resizing``: optional crop or pad to the target's aspect
    ratio, then ``Resize``, the result cast back to the input's dtype (``_as``).

    A float input is first cast to ``dtype`` (the layer's compute dtype), as Keras does.
    crop_to_aspect_ratio: the centred (crop_h, crop_w) box, crop_h = int(f32(W * height)
    / f32(width)) clipped to [1, H] (likewise crop_w), starting at int(f32(H - crop_h) / 2).
    pad_to_aspect_ratio: pad_h = max(H, int(f32(W * height) / f32(width))) (likewise pad_w);
    b = int(f32(pad_h - H) / 2) rows of ``fill_value`` are added on *each* side (Keras adds
    b twice, so an odd difference gives one row fewer than pad_h), then the same for columns.
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_value=0.0, data_format="channels_last",
                 dtype="float32"):
        super().__init__()
        self.height, self.width = int(height), int(width)
        self.interpolation = interpolation
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        if self.crop_to_aspect_ratio and self.pad_to_aspect_ratio:
            raise ValueError("Only one of crop_to_aspect_ratio and pad_to_aspect_ratio can "
                             "be True.")
        self.fill_value = float(fill_value)
        self.data_format = data_format_of(data_format)
        self.dtype = np.dtype(dtype).name
        self._resize = Resize(height, width, interpolation)

    def _box(self, h, w):
        """((top, bottom), (left, right)): rows and columns to crop off, or (negative) add."""
        th, tw = self.height, self.width
        if self.crop_to_aspect_ratio:
            ch = max(min(h, int(F32(w * th) / F32(tw))), 1)
            cw = max(min(w, int(F32(h * tw) / F32(th))), 1)
            top, left = int(F32(h - ch) / F32(2)), int(F32(w - cw) / F32(2))
            return (top, h - ch - top), (left, w - cw - left)
        if self.pad_to_aspect_ratio:
            ph = max(h, int(F32(w * th) / F32(tw)))
            pw = max(w, int(F32(h * tw) / F32(th)))
            top, left = int(F32(ph - h) / F32(2)), int(F32(pw - w) / F32(2))
            return (-top, -top), (-left, -left)
        return (0, 0), (0, 0)

    def forward(self, x, training=False):
        x = to_channels_last(x, self.data_format)
        if np.issubdtype(x.dtype, np.floating):
            x = x.astype(self.dtype, copy=False)
        self.x_dtype = x.dtype
        self._cut = self._box(*x.shape[1:3])
        (top, bottom), (left, right) = self._cut
        self.x_shape = x.shape
        if min(top, left) >= 0:  # crop (or nothing)
            x = x[:, top:x.shape[1] - bottom, left:x.shape[2] - right]
        else:  # pad with fill_value
            x = np.pad(x, ((0, 0), (-top, -bottom), (-left, -right), (0, 0)),
                       constant_values=self.fill_value)
        return from_channels_last(_as(self._resize.forward(x), self.x_dtype), self.data_format)

    def backward(self, dout):
        if not np.issubdtype(self.x_dtype, np.floating):
            raise ValueError(f"Resizing has no gradient for images of {self.x_dtype}")
        dx = self._resize.backward(to_channels_last(dout, self.data_format))
        (top, bottom), (left, right) = self._cut
        h, w = self.x_shape[1:3]
        if min(top, left) >= 0:
            full = np.zeros(self.x_shape, dx.dtype)
            full[:, top:h - bottom, left:w - right] = dx
            dx = full
        else:
            dx = dx[:, -top:-top + h, -left:-left + w]
        return from_channels_last(dx, self.data_format)


class CenterCrop(L.Layer):
    """The twin of ``keras.layers.CenterCrop``: the input cast to ``dtype``, then the centred
    height x width box, rows from (H - height) // 2; an image smaller than the target on
    either side is instead cropped to the target's aspect ratio (crop_h = int(W * height /
    width) in float64, clipped to [1, H], from int((H - crop_h) / 2)) and resized
    bilinearly, which gives float32 (Keras's ``smart_resize``)."""

    def __init__(self, height, width, data_format="channels_last", dtype="float32"):
        super().__init__()
        self.height, self.width = int(height), int(width)
        self.data_format = data_format_of(data_format)
        self.dtype = np.dtype(dtype).name
        self._resize = Resize(height, width, "bilinear")

    def forward(self, x, training=False):
        x = to_channels_last(x, self.data_format).astype(self.dtype, copy=False)
        self.x_shape = x.shape
        h, w = x.shape[1:3]
        th, tw = self.height, self.width
        self._resized = h < th or w < tw
        if self._resized:
            ch = max(min(h, int(float(w * th) / tw)), 1)
            cw = max(min(w, int(float(h * tw) / th)), 1)
            top, left = int(float(h - ch) / 2), int(float(w - cw) / 2)
            self._box = (top, top + ch), (left, left + cw)
        else:
            top, left = (h - th) // 2, (w - tw) // 2
            self._box = (top, top + th), (left, left + tw)
        (top, bottom), (left, right) = self._box
        y = x[:, top:bottom, left:right]
        if self._resized:
            y = self._resize.forward(y)
        return from_channels_last(y, self.data_format)

    def backward(self, dout):
        dout = to_channels_last(dout, self.data_format)
        if self._resized:
            dout = self._resize.backward(dout)
        dx = np.zeros(self.x_shape, dout.dtype)
        (top, bottom), (left, right) = self._box
        dx[:, top:bottom, left:right] = dout
        return from_channels_last(dx, self.data_format)


__all__ = ["INTERPOLATIONS", "CenterCrop", "Resize", "Resizing", "UpSampling2D",
           "bilinear_taps", "nearest_taps"]
