"""Twins of the layers ``keras.applications`` defines for itself.

Shape letters: N batch, C channels (the last axis); x is any shape (N, ..., C).

    LayerScale      (ConvNeXt) y = x * gamma, gamma (C,)
                    dx = dout * gamma;  dgamma = sum over all but C of (x * dout)
    StochasticDepth (ConvNeXt) inference: y = x.  Training, with keep = 1 - rate:
                    m = floor(keep + u), u ~ U[0, 1) of shape (N, 1, ..., 1): each
                    sample's branch is kept (m = 1) with probability keep;
                    y = (x / keep) * m;  dx = (dout * m) / keep
    CustomScale     (InceptionResNetV2) two inputs: y = x0 + x1 * scale
                    dx0 = dout;  dx1 = dout * scale

The draws u come from ``np.random.default_rng(seed)``; set ``fixed_noise`` to the
numbers Keras drew (``tfmodels.parity.compare`` does: ``noise_kind`` is "uniform")
and the twin drops the samples Keras dropped.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.merge import unbroadcast


class LayerScale(L.Layer):
    """y = x * gamma, one learned factor per channel.

    ``weight_name`` is the key of gamma in ``params``: the Keras weight's own name, which
    is "variable" in Keras's LayerScale (it names none).
    """

    def __init__(self, gamma, weight_name="gamma"):
        super().__init__()
        self.weight_name = weight_name
        self.params[weight_name] = np.asarray(gamma)

    def get_config(self):
        return {"weight_name": self.weight_name}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(params[config["weight_name"]], **config)

    def forward(self, x, training=False):
        self.x = x
        return x * self.params[self.weight_name].astype(x.dtype, copy=False)

    def backward(self, dout):
        gamma = self.params[self.weight_name]
        # (N, ..., C) -> (C,): summed over every axis but the channels
        self.grads[self.weight_name] = unbroadcast(self.x * dout, gamma.shape).astype(
            gamma.dtype, copy=False)
        return dout * gamma.astype(dout.dtype, copy=False)


class StochasticDepth(L.Layer):
    """Drops a whole sample's residual branch with probability ``rate`` in training."""

    noise_kind = "uniform"

    def __init__(self, rate, seed=None):
        super().__init__()
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1]. Received: rate={rate}")
        self.rate, self.seed = rate, seed
        self.rng = np.random.default_rng(None if seed is None else seed % 2**64)
        self.fixed_noise = None  # Keras's draw u, when given
        self.mask = None  # m of the last training pass; None: it was the identity

    def forward(self, x, training=False):
        self.mask = None
        if not training:
            return x
        keep = 1 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # (N, 1, ..., 1)
        u = self._draw(shape, x.dtype)
        self.mask = np.floor(np.asarray(keep, u.dtype) + u).astype(x.dtype, copy=False)
        self.keep = np.asarray(keep, x.dtype)
        return (x / self.keep) * self.mask

    def backward(self, dout):
        if self.mask is None:
            return dout * 1  # a fresh array, never the caller's
        return (dout * self.mask) / self.keep

    def _draw(self, shape, dtype):
        if self.fixed_noise is None:
            return self.rng.uniform(0.0, 1.0, shape).astype(dtype)
        u = np.asarray(self.fixed_noise)
        if u.shape != shape:
            raise ValueError(f"fixed_noise of shape {u.shape} does not match the draw "
                             f"shape {shape}")
        return u


class CustomScale(L.Layer):
    """y = x0 + x1 * scale: a residual x1, scaled by a constant, added to the shortcut x0."""

    multi_input = True

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, xs, training=False):
        if len(xs) != 2:
            raise ValueError(f"CustomScale takes 2 inputs. Received: {len(xs)}")
        x0, x1 = xs
        self.shapes = [x0.shape, x1.shape]
        self.factor = np.asarray(self.scale, x1.dtype)  # the scale in x1's dtype, as in TF
        return x0 + x1 * self.factor

    def backward(self, dout):
        return [unbroadcast(dout * 1, self.shapes[0]),
                unbroadcast(dout * self.factor, self.shapes[1])]


__all__ = ["CustomScale", "LayerScale", "StochasticDepth"]
