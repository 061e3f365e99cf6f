"""Convolution layers: the book's ``Convolution`` (N, C, H, W) and Keras's ``Conv2D`` (N, H, W, C).

Both are one matrix product on the windows ``numpy_ref.layers.im2col`` extracts:

    out = im2col(x) @ W_matrix + b        (N*out_h*out_w, F)
    dW_matrix = im2col(x)^T @ dout,  db = sum(dout),  dx = col2im(dout @ W_matrix^T)

The book's layer keeps its names (``W``, ``b``, ``dW``, ``db``, ``x``, ``col``,
``col_W``) as views onto ``params`` and ``grads`` (keys ``kernel``/``bias``);
Keras's keeps the kernel in Keras's layout (kh, kw, C_in, F) and has an
activation, like ``numpy_ref.layers.core.Dense``. ``ZeroPadding2D`` pads the spatial axes.

Shape letters: N batch, C input channels, H x W image, F (FN) filters,
FH x FW (kh x kw) kernel, M = N*out_h*out_w output positions.
"""

import numpy as np

from numpy_ref.layers import activations, core
from numpy_ref.layers import im2col as I
from numpy_ref import layers as L

PADDINGS = ("valid", "same")


class _MatrixConv(I.WindowedLayer):
    """What the two convolutions share: the product, and its three gradients."""

    _col = None  # im2col of the last input, with a column of ones when there is a bias

    @property
    def col(self):
        """im2col of the last input, (M, K) (the book's attribute)."""
        return None if self._col is None else self._col[:, :self.windows(self.x.shape).columns]

    # Keras's twin adds the bias inside the product, [col 1] @ [W; b] (one pass less); the
    # book's layer adds it after, col @ W + b, and sums dout for db, rounding as the book.
    bias_in_product = True

    def _product(self, x, w_matrix):
        """z = im2col(x) @ w_matrix + bias, (M, F) (with ``bias_in_product`` as one product
        [col 1] @ [w; bias]); keeps x and the columns for the backward."""
        self.x = x
        bias = self.params.get("bias")
        inside = bias is not None and self.bias_in_product
        # The last batch's buffer is reused: a fresh 5.8 MB one per SimpleConvNet step
        # cost 0.5 ms (of 16) in page faults. Images narrower than the weights (the book's
        # float32 MNIST, float64 filters) give columns of the weights' dtype: a product of
        # mixed dtypes would convert the whole matrix first, forward and backward.
        self._col = self.windows(x.shape).matrix(x, out=self._col, ones_column=inside,
                                                 dtype=np.result_type(x.dtype, w_matrix.dtype))
        if inside:
            w_matrix = np.concatenate([w_matrix, bias.reshape(1, -1)])  # (K + 1, F)
        z = self._col @ w_matrix  # (M, F)
        if bias is None or inside:
            return z
        if z.dtype == np.result_type(z, bias):
            z += bias  # the same sums as z + bias, without a second (M, F) array
            return z
        return z + bias

    def _weight_grads(self, dz):
        """dW_matrix = col^T dz (K, F), and dbias = sum(dz) over the rows (with
        ``bias_in_product`` from the same product, the column of ones), stored."""
        grads = self._col.T @ dz  # (K [+ 1], F)
        if "bias" in self.params:
            if self.bias_in_product:
                self.grads["bias"] = grads[-1]  # (F,)
                grads = grads[:-1]
            else:
                self.grads["bias"] = np.sum(dz, axis=0)  # (F,)
        return grads

    def _input_grad(self, dz, w_matrix):
        """dx = col2im(dz @ w_matrix^T), built in the memory layout im2col chose."""
        windows = self.windows(self.x.shape)
        dcol = dz @ w_matrix.T if windows.row_major else (w_matrix @ dz.T).T  # (M, K)
        return windows.image(dcol, self.x.dtype, like=self.x)


class Convolution(L.BookWeightNames, _MatrixConv):
    """The book's convolution layer on (N, C, H, W) images.

    out[n, f, p, q] = sum_{c, i, j} xp[n, c, p*stride + i, q*stride + j] * W[f, c, i, j] + b[f]
    with xp the input zero-padded by ``pad`` on every side;
    out_h = (H + 2*pad - FH) // stride + 1 (likewise out_w).

    Args:
        W: filters (FN, C, FH, FW), used as given.
        b: bias (FN,), or None.
        stride, pad: ints, as in the book.
    """

    bias_in_product = False  # out = col @ col_W + b and db = sum(dout), as the book computes

    def __init__(self, W, b=None, stride=1, pad=0):
        super().__init__()
        L.set_kernel_and_bias(self, W, b, names=("W", "b"), layout=("FN", "C", "FH", "FW"),
                              units="FN")
        self.stride, self.pad = int(stride), int(pad)

    col_W = property(lambda self: self.W.reshape(self.W.shape[0], -1).T)  # (C*FH*FW, FN)

    def get_config(self):
        return {"stride": self.stride, "pad": self.pad}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(params["kernel"], params.get("bias"), **config)

    def _geometry(self, input_shape):
        fh, fw = self.W.shape[2:]
        pad = (self.pad, self.pad)
        return I.Windows(input_shape, (fh, fw), (self.stride, self.stride), (pad, pad))

    def forward(self, x, training=False):
        if x.ndim != 4 or x.shape[1] != self.W.shape[1]:
            raise ValueError(f"Convolution expects images (N, {self.W.shape[1]}, H, W). "
                             f"Received: input shape {x.shape}")
        windows = self.windows(x.shape)
        z = self._product(x, self.col_W)  # (M, FN)
        return z.reshape(*windows.row_shape, -1).transpose(0, 3, 1, 2)  # (N, FN, oh, ow)

    def _dz(self, dout):
        return dout.transpose(0, 2, 3, 1).reshape(-1, self.W.shape[0])  # (M, FN)

    def backward(self, dout):
        dz = self.backward_weights(dout)
        return self._input_grad(dz, self.col_W)

    def backward_weights(self, dout):
        dz = self._dz(dout)
        self.grads["kernel"] = self._weight_grads(dz).T.reshape(self.W.shape)  # (FN, C, FH, FW)
        return dz


def padding_of(padding):
    """'valid' or 'same' from any case; a ValueError otherwise."""
    name = str(padding).lower()
    if name not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}. Received: padding={padding!r}")
    return name


def keras_pads(padding, hw, kernel_size, strides, dilation=(1, 1)):
    """((top, bottom), (left, right)) for Keras's 'valid' (none) or 'same' (TF's rule)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    return tuple(I.same_padding(*args) for args in zip(hw, kernel_size, strides, dilation))


class Conv2D(_MatrixConv):
    """y = activation(conv(x) + bias), the twin of ``keras.layers.Conv2D`` (channels_last).

    z[n, p, q, f] = sum_{i, j, c} xp[n, p*sh + i*dh, q*sw + j*dw, c] * kernel[i, j, c, f]
                    + bias[f]
    with xp zero-padded: none for 'valid'; for 'same' out = ceil(in / stride) and
    TensorFlow's rule (``im2col.same_padding``, the smaller half before).

    Args:
        kernel: (kh, kw, C, F), Keras's layout, used as given.
        bias: (F,), or None (``use_bias=False``).
        strides, dilation_rate: an int or a pair.
        padding: 'valid' or 'same'.
        activation: a name from ``numpy_ref.layers.activations`` or an activation layer.

    Input shape (N, H, W, C); output shape (N, out_h, out_w, F).
    """

    def __init__(self, kernel, bias=None, strides=(1, 1), padding="valid",
                 dilation_rate=(1, 1), activation="linear"):
        super().__init__()
        L.set_kernel_and_bias(self, kernel, bias, layout=("kh", "kw", "C", "F"), units="F")
        self.strides = I.pair(strides, "strides")
        self.dilation_rate = I.pair(dilation_rate, "dilation_rate")
        self.padding = padding_of(padding)
        self.activation = (activation if isinstance(activation, L.Layer)
                           else activations.get(activation))

    def get_config(self):
        return {"strides": self.strides, "padding": self.padding,
                "dilation_rate": self.dilation_rate, **core.activation_config(self.activation)}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        config = dict(config)
        own = {key: config.pop(key) for key in ("strides", "padding", "dilation_rate")}
        return cls(params["kernel"], params.get("bias"),
                   activation=core.activation_from_config(config), **own)

    def _geometry(self, input_shape):
        kernel_size = self.params["kernel"].shape[:2]
        pads = keras_pads(self.padding, input_shape[1:3], kernel_size, self.strides,
                          self.dilation_rate)
        return I.Windows(input_shape, kernel_size, self.strides, pads, self.dilation_rate,
                         channels_last=True, order="kkc")

    def _w_matrix(self):
        kernel = self.params["kernel"]
        return kernel.reshape(-1, kernel.shape[3])  # (kh*kw*C, F)

    def forward(self, x, training=False):
        channels = self.params["kernel"].shape[2]
        if x.ndim != 4 or x.shape[3] != channels:
            raise ValueError(f"Conv2D expects images (N, H, W, {channels}). "
                             f"Received: input shape {x.shape}")
        z = self._product(x, self._w_matrix())  # (M, F)
        z = z.reshape(*self.windows(x.shape).row_shape, -1)  # (N, oh, ow, F)
        return self.activation.forward(z, training=training)

    def backward(self, dout):
        dz = self.backward_weights(dout)
        return self._input_grad(dz, self._w_matrix())

    def backward_weights(self, dout):
        """Stores dkernel and dbias; returns dL/dz as an (M, F) matrix."""
        dz = self.activation.backward(dout)
        dz = dz.reshape(-1, dz.shape[-1])  # (M, F)
        kernel_shape = self.params["kernel"].shape
        self.grads["kernel"] = self._weight_grads(dz).reshape(kernel_shape)  # (kh, kw, C, F)
        return dz


class ZeroPadding2D(L.Layer):
    """Zeros around the spatial axes of (N, H, W, C) images, ``keras.layers.ZeroPadding2D``.

    Args:
        padding: an int (all four sides), (h, w) (top and bottom h, left and right w),
            or ((top, bottom), (left, right)).
    """

    def __init__(self, padding=(1, 1)):
        super().__init__()
        self.padding = zero_padding(padding)

    def forward(self, x, training=False):
        (top, bottom), (left, right) = self.padding
        self.x_shape = x.shape
        out = np.zeros((x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right,
                        *x.shape[3:]), x.dtype)
        out[:, top:top + x.shape[1], left:left + x.shape[2]] = x
        return out

    def backward(self, dout):
        (top, _), (left, _) = self.padding
        return dout[:, top:top + self.x_shape[1], left:left + self.x_shape[2]]


def zero_padding(padding):
    """((top, bottom), (left, right)) from an int, (h, w), or the pairs themselves."""
    def is_int(value):
        return isinstance(value, (int, np.integer))

    try:
        pairs = tuple((p, p) if is_int(p) else tuple(p)
                      for p in ((padding, padding) if is_int(padding) else padding))
        ok = len(pairs) == 2 and all(len(p) == 2 and all(is_int(v) and v >= 0 for v in p)
                                     for p in pairs)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError("padding must be an int, (h, w), or ((top, bottom), (left, right)) "
                         f"of non-negative ints. Received: padding={padding!r}")
    return tuple(tuple(int(v) for v in p) for p in pairs)


__all__ = ["Conv2D", "Convolution", "ZeroPadding2D", "keras_pads", "padding_of"]
