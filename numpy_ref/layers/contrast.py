"""Twins of Keras's image layers that stretch an image's values: ``AutoContrast`` (in
both modes) and ``Equalization`` (histogram equalisation in training, the identity in
inference). Images are (N, H, W, C) (or (N, C, H, W) for Equalization's channels_first),
their values in ``value_range``.

AutoContrast, per image and per channel (the min and max over axes 1 and 2, as Keras
takes them; with value_range [lo, hi] other than [0, 255], x is first mapped to
z = (x - lo) / (hi - lo) * 255, and the result back):

    low, high = min z, max z
    scale = 255 / (high - low),  offset = -low * scale
    r = clip(z * scale + offset, 0, 255)
    y = r, or x where r is NaN (a constant channel: high == low)

Its backward is TensorFlow's gradient of those operations, the paths through ``low``
and ``high`` included (a min or max passes its gradient to the values equal to it,
shared equally among ties; the clip passes it where 0 <= z * scale + offset <= 255).
Where a channel is constant, TensorFlow's gradient is NaN (0 * inf inside the chain
rule), and so is the twin's.
"""

import numpy as np

from numpy_ref import layers as L


def to_range(x, source, target):
    """Keras's ``_transform_value_range``: (x - s0) / (s1 - s0) * (t1 - t0) + t0."""
    s0, s1, t0, t1 = (x.dtype.type(v) for v in (*source, *target))
    return (x - s0) / (s1 - s0) * (t1 - t0) + t0


def range_scale(source, target, dtype):
    """d to_range / dx as TensorFlow's gradient forms it: dy * (t1 - t0) / (s1 - s0)."""
    s0, s1, t0, t1 = (dtype.type(v) for v in (*source, *target))
    return lambda g: g * (t1 - t0) / (s1 - s0)


def _spread(g, values, extreme):
    """TensorFlow's gradient of a min or max over axes (1, 2): g shared among the ties."""
    hits = (values == extreme).astype(values.dtype)
    return hits / np.sum(hits, axis=(1, 2), keepdims=True) * g


class AutoContrast(L.Layer):
    """The twin of ``keras.layers.AutoContrast`` (module docstring).

    Args:
        value_range: [lo, hi], the values' range (sorted).
        dtype: the layer's compute dtype.
    """

    def __init__(self, value_range=(0, 255), dtype="float32"):
        super().__init__()
        self.value_range = sorted(float(v) for v in value_range)
        self.dtype = np.dtype(dtype).name

    def _rescales(self):
        return list(self.value_range) != [0.0, 255.0]

    def forward(self, x, training=False):
        x = np.asarray(x).astype(self.dtype)
        z = to_range(x, self.value_range, (0, 255)) if self._rescales() else x
        with np.errstate(divide="ignore", invalid="ignore"):
            low = z.min(axis=(1, 2), keepdims=True)
            high = z.max(axis=(1, 2), keepdims=True)
            scale = x.dtype.type(255.0) / (high - low)
            offset = -low * scale
            pre = z * scale + offset
            r = np.clip(pre, 0, 255)
            if self._rescales():
                r = to_range(r, (0, 255), self.value_range)
        self.cache = z, low, high, scale, pre
        self.nan = np.isnan(r)
        return np.where(self.nan, x, r)

    def backward(self, dout):
        z, low, high, scale, pre = self.cache
        zero = dout.dtype.type(0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            g = np.where(self.nan, zero, dout)
            if self._rescales():
                g = range_scale((0, 255), self.value_range, dout.dtype)(g)
            g = np.where((pre <= 255) & (pre >= 0), g, zero)  # the clip
            g_z = g * scale
            g_offset = np.sum(g, axis=(1, 2), keepdims=True)
            g_scale = np.sum(g * z, axis=(1, 2), keepdims=True) + g_offset * -low
            g_low = -(g_offset * scale)
            g_width = g_scale * (-dout.dtype.type(255.0) / (high - low) / (high - low))
            g_z = g_z + _spread(g_width, z, high) + _spread(g_low - g_width, z, low)
            if self._rescales():
                g_z = range_scale(self.value_range, (0, 255), dout.dtype)(g_z)
        return g_z + np.where(self.nan, dout, zero)


class Equalization(L.Layer):
    """The twin of ``keras.layers.Equalization``: the identity in inference; in training,
    each channel equalised over the whole batch, as Keras does it:

        c = x * s + o                 (value_range -> [0, 255]; s = 255 / (hi - lo))
        hist = counts of int(float32(c) * (bins - 1) / 255), clipped to 0..bins-1
        cdf = cumsum(hist), cdf_min = its first nonzero entry
        lut = clip(round((cdf - cdf_min) * 255 / (cdf[-1] - cdf_min or 1)), 0, 255)
        e = lut[int(clip(c / 255 * (bins - 1), 0, bins - 1))]   (float64)
        y = (e, or c where hist has <= 1 nonzero bin) * s' + o'  ([0, 255] -> value_range)

    computed in float64 from ``e`` on and cast to ``dtype``, as TensorFlow promotes it.
    A lookup passes no gradient; only the channels left unchanged (<= 1 nonzero bin)
    pass dout * s' * s.

    Args:
        value_range: [lo, hi]; bins: the histogram's bins; data_format: where the
        channels are; dtype: the compute dtype.
    """

    def __init__(self, value_range=(0, 255), bins=256, data_format="channels_last",
                 dtype="float32"):
        super().__init__()
        self.value_range = sorted(float(v) for v in value_range)
        self.bins, self.data_format = int(bins), data_format
        self.dtype = np.dtype(dtype).name

    def _affine(self, source, target):
        """Keras's ``_scale_values``: (scale, offset) computed in Python floats."""
        scale = (target[1] - target[0]) / (source[1] - source[0])
        return scale, target[0] - source[0] * scale

    def forward(self, x, training=False):
        x = np.asarray(x)
        self.training = training
        if not training:
            return x
        x = x.astype(self.dtype)
        axis = -3 if self.data_format == "channels_first" else -1
        channels = np.moveaxis(x, axis, 0)
        s, o = self._affine(self.value_range, (0, 255))
        s2, o2 = self._affine((0, 255), self.value_range)
        self.passes = []
        out = []
        for channel in channels:
            c = channel * x.dtype.type(s) + x.dtype.type(o)
            e, unchanged = self._equalize(c)
            self.passes.append(unchanged)
            out.append(np.where(unchanged, c.astype(e.dtype), e) * s2 + o2)
        self.scales = s, s2
        return np.moveaxis(np.stack(out), 0, axis).astype(self.dtype)

    def _equalize(self, c):
        """(the looked-up values, float64; whether the histogram has <= 1 nonzero bin)."""
        f32, top = np.float32, self.bins - 1
        scaled = (c.astype(f32) - f32(0)) * f32(top) / (f32(255) - f32(0))
        indices = np.clip(scaled.astype(np.int32), 0, top)
        # int32 counts, as TensorFlow's: (cdf - cdf_min) * 255 wraps past 2**31 alike
        hist = np.bincount(indices.reshape(-1), minlength=self.bins).astype(np.int32)
        cdf = np.cumsum(hist, dtype=np.int32)
        cdf_min = cdf[np.nonzero(cdf)[0][0]]
        denominator = cdf[-1:] - cdf_min
        denominator = np.where(denominator == 0, np.int32(1), denominator)
        lut = np.clip(np.round((cdf - cdf_min) * np.int32(255) / denominator), 0, 255)
        at = (c / c.dtype.type(255.0)) * c.dtype.type(top)
        e = lut[np.clip(at, 0, top).astype(np.int32)]
        return e, np.count_nonzero(hist) <= 1

    def backward(self, dout):
        if not self.training:
            return dout * 1
        axis = -3 if self.data_format == "channels_first" else -1
        s, s2 = self.scales
        grads = [(g.astype(np.float64) * s2).astype(dout.dtype) * dout.dtype.type(s)
                 if unchanged else np.zeros_like(g)
                 for g, unchanged in zip(np.moveaxis(dout, axis, 0), self.passes)]
        return np.moveaxis(np.stack(grads), 0, axis)


__all__ = ["AutoContrast", "Equalization", "range_scale", "to_range"]
