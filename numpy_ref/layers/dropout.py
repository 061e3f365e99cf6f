"""Dropout twice: the book's (scaled at test time) and Keras's (inverted: scaled while training).

Book, ``Dropout(dropout_ratio)``:
    training   y = x * mask, mask = U[0, 1) > dropout_ratio;  dx = dout * mask
    inference  y = x * (1 - dropout_ratio)
Keras, ``KerasDropout(rate, noise_shape, seed)``, as TF's ``stateless_dropout``:
    training   y = where(keep, x * s, 0), keep = U[0, 1) >= rate, s = 1 / (1 - rate)
               rounded once to x's dtype;  dx = where(keep, dout, 0) * s
    inference  y = x

The two keep the same fraction of units on average and agree in expectation;
they differ in where the 1 / (1 - rate) correction sits.
"""

import numpy as np

from numpy_ref import layers as L


def training_mode(train_flg, training):
    """The mode of a call: ``training=`` (the protocol's name) wins over ``train_flg``."""
    return bool(train_flg if training is None else training)


class Dropout(L.Layer):
    """The book's dropout: drops units while training, scales by (1 - ratio) at test time.

    Random numbers come from ``np.random`` (so the book's ``np.random.seed(...)``
    reproduces them) unless a generator (``np.random.default_rng(...)``, or a
    ``RandomState``) is given as ``rng``. ``forward(x, train_flg)`` is the book's
    call; ``training=`` is accepted too, and the default is the book's (training).
    """

    def __init__(self, dropout_ratio=0.5, rng=None):
        super().__init__()
        self.dropout_ratio = dropout_ratio
        self.rng = rng
        self.mask = None
        self.train_flg = None  # the mode of the last forward pass

    def get_config(self):
        return {"dropout_ratio": self.dropout_ratio}  # a generator is not configuration

    def forward(self, x, train_flg=True, training=None):
        self.train_flg = training_mode(train_flg, training)
        if self.train_flg:
            source = np.random if self.rng is None else self.rng
            self.mask = source.random(x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        if self.train_flg:
            return dout * self.mask
        return dout * (1.0 - self.dropout_ratio)


def concrete_noise_shape(noise_shape, shape):
    """Keras's noise shape for an input of ``shape``: None entries take the input's size."""
    if noise_shape is None:
        return tuple(shape)
    if len(noise_shape) != len(shape):
        raise ValueError(f"noise_shape {tuple(noise_shape)} does not match the input's rank "
                         f"({len(shape)}). Received: input shape {tuple(shape)}")
    return tuple(size if want is None else want for want, size in zip(noise_shape, shape))


class KerasDropout(L.Layer):
    """The twin of ``keras.layers.Dropout`` (and of the spatial dropouts, via ``noise_shape``).

    In training mode it keeps a unit where a uniform draw is >= rate (a mask of
    ``noise_shape``, broadcast over the input) and scales the kept ones by
    1 / (1 - rate), computed in double precision and rounded to the input's
    dtype, as TensorFlow does. Its draws come from ``np.random.default_rng(seed)``;
    set ``fixed_mask`` (a boolean array broadcasting to the input) to use a given
    keep mask instead, e.g. the one Keras drew (``tfmodels.parity.compare`` does).
    ``mask`` is the keep mask of the last training pass.
    """

    def __init__(self, rate, noise_shape=None, seed=None):
        super().__init__()
        if not 0 <= rate <= 1:
            raise ValueError(f"rate must be in [0, 1]. Received: rate={rate}")
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self.rng = np.random.default_rng(None if seed is None else seed % 2**64)
        self.fixed_mask = None
        self.mask = None
        self.scale = None  # None: the last pass was the identity

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.scale = None
            return x
        if self.rate == 1:  # Keras returns zeros: nothing is kept
            self.mask, self.scale = np.zeros(x.shape, bool), x.dtype.type(0)
            return np.zeros_like(x)
        self.mask = self._keep_mask(x)
        self.scale = x.dtype.type(1 / (1 - self.rate))
        return np.where(self.mask, x * self.scale, x.dtype.type(0))

    def _keep_mask(self, x):
        if self.fixed_mask is not None:
            try:
                np.broadcast_shapes(np.shape(self.fixed_mask), x.shape)
            except ValueError:
                raise ValueError(f"fixed_mask of shape {np.shape(self.fixed_mask)} does not "
                                 f"broadcast to the input's shape {x.shape}") from None
            return np.asarray(self.fixed_mask, bool)
        shape = concrete_noise_shape(self.noise_shape, x.shape)
        draw_dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float32)
        return self.rng.random(shape, dtype=draw_dtype) >= draw_dtype.type(self.rate)

    def backward(self, dout):
        if self.scale is None:
            return dout * 1  # a fresh array, never the caller's
        return np.where(self.mask, dout, dout.dtype.type(0)) * self.scale


__all__ = ["Dropout", "KerasDropout", "concrete_noise_shape", "training_mode"]
