"""Convolutions over 1, 2 or 3 spatial axes: the twins of Keras's ``Conv1D``, ``Conv2D``
(with groups or channels_first), ``Conv3D``, ``DepthwiseConv1D/2D`` and
``SeparableConv1D/2D``, on one windowing core.

The core is im2col for any number of spatial axes. ``Windows`` knows, for one input
shape (N, *S, C) (channels last), where every window reads: the input is zero-padded,
one strided view (``sliding_window_view``) holds every window at once, and

    blocks[n, *p, *i, c] = xp[n, *(p * stride + i * dilation), c]      (N, *out, *k, C)

is a copy of it; ``add_blocks`` is its gradient (col2im): each window adds its block
back onto the pixels it read, overlaps summed, one kernel offset at a time.

A convolution with ``groups`` G splits the channels into G groups of Cg = C / G and the
filters into G groups of Fg = F / G; group g's filters see only group g's channels:

    cols[g]  = blocks[..., g*Cg:(g+1)*Cg]  as a matrix  (M, kp*Cg)   kp = prod(k)
    z[:, g]  = cols[g] @ W[g] + bias[g]                 (M, Fg)
    dW[g]    = cols[g]^T @ dz[:, g],  dbias = sum(dz),  dcols[g] = dz[:, g] @ W[g]^T

and dx = add_blocks(dcols). ``groups=1`` is the plain convolution; a depthwise
convolution is the grouped one with G = C and Fg = depth_multiplier; a separable one
is a depthwise one followed by a 1x1 convolution (a matrix product on the channels).

channels_first inputs (N, C, *S) are moved to channels last on the way in and back on
the way out (a transposition: nothing is rounded); the activation acts on the output
in the layer's own layout, as Keras's does (a softmax's last axis is the last axis),
and so does the bias (``bias_axis``: where Keras's TensorFlow backend adds it).

Shape letters: N batch, S spatial sizes, C input channels, F filters, G groups,
k kernel size, M = N * prod(out) output positions.
"""

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numpy_ref import layers as L
from numpy_ref.layers import activations, core
from numpy_ref.layers.im2col import out_size, same_padding

PADDINGS = ("valid", "same", "causal")
DATA_FORMATS = ("channels_last", "channels_first")


def set_spatial_kernel(layer, kernel, bias, channels, strides, dilation_rate):
    """Stores a kernel (*k, *channels) with 1 to 3 spatial axes and its bias (F,), one per
    filter F, in ``layer.params``, and ``layer.rank``, ``layer.strides``,
    ``layer.dilation_rate`` as tuples of that rank; returns the rank."""
    rank = np.ndim(kernel) - 2
    if rank not in (1, 2, 3):
        raise ValueError(f"{type(layer).__name__} needs a kernel (*k, {', '.join(channels)}) "
                         f"with 1 to 3 spatial axes. Received: kernel.shape={np.shape(kernel)}")
    L.set_kernel_and_bias(layer, kernel, bias, layout=(*("k",) * rank, *channels), units="F")
    layer.rank = rank
    layer.strides = tuple_of(strides, rank, "strides")
    layer.dilation_rate = tuple_of(dilation_rate, rank, "dilation_rate")
    return rank

def tuple_of(value, rank, name, minimum=1):
    """(v,) * rank from an int, or the given ``rank`` ints; each >= ``minimum``."""
    values = (value,) * rank if np.ndim(value) == 0 else tuple(value)
    if len(values) != rank or any(int(v) != v or v < minimum for v in values):
        raise ValueError(f"{name} must be an int >= {minimum} or {rank} of them. "
                         f"Received: {name}={value!r}")
    return tuple(int(v) for v in values)


def choice(value, choices, name):
    """``value`` (lower case) if it is one of ``choices``; a ValueError otherwise."""
    lowered = str(value).lower()
    if lowered not in choices:
        raise ValueError(f"{name} must be one of {choices}. Received: {name}={value!r}")
    return lowered


def pads_for(padding, sizes, kernel_size, strides, dilation):
    """((before, after), ...) per spatial axis: none for 'valid'; TensorFlow's SAME
    (out = ceil(size / stride), the smaller half before); 'causal' pads only before,
    by the dilated kernel's reach (k - 1) * d, as Keras's Conv1D does."""
    if padding == "valid":
        return ((0, 0),) * len(sizes)
    if padding == "causal":
        return tuple(((k - 1) * d, 0) for k, d in zip(kernel_size, dilation))
    return tuple(same_padding(*args) for args in zip(sizes, kernel_size, strides, dilation))


def to_channels_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, 1, -1)


def from_channels_last(x, data_format):
    return x if data_format == "channels_last" else np.moveaxis(x, -1, 1)


def bias_axis(shape, data_format):
    """The axis along which Keras (TensorFlow backend) adds a convolution's bias to an
    output of this shape: the channel axis, except for a channels_first output whose
    last axis has as many entries as there are filters (N, F, ..., F). Keras reshapes
    the bias to (1, F, 1, ...) and its ``ops.add`` turns that into ``tf.nn.bias_add``,
    which picks the LAST axis whenever that axis has F entries
    (keras/src/backend/tensorflow/numpy.py ``add``). The twin adds it where Keras does."""
    if data_format == "channels_last" or shape[-1] != shape[1]:
        return 1 if data_format == "channels_first" else len(shape) - 1
    return len(shape) - 1


def add_bias(z, bias, data_format):
    """z + bias along ``bias_axis``, in place; returns z."""
    shape = [1] * z.ndim
    shape[bias_axis(z.shape, data_format)] = -1
    z += bias.reshape(shape)
    return z


def bias_grad(dz, data_format):
    """dL/dbias: dz summed over every axis but ``bias_axis``."""
    axis = bias_axis(dz.shape, data_format)
    return dz.sum(axis=tuple(a for a in range(dz.ndim) if a != axis))


class Windows:
    """Where each window of an r-dimensional sliding operation reads.

    Args:
        input_shape: (N, *S, C), channels last, r = len(S).
        kernel_size, strides, dilation: r ints each.
        pads: r pairs (before, after) of zeros around each spatial axis.
    """

    def __init__(self, input_shape, kernel_size, strides, pads, dilation):
        self.rank = len(kernel_size)
        if len(input_shape) != self.rank + 2:
            raise ValueError(f"a {self.rank}-d window needs inputs of rank {self.rank + 2}. "
                             f"Received: input shape {tuple(input_shape)}")
        self.input_shape = tuple(input_shape)
        self.kernel_size, self.strides, self.dilation = kernel_size, strides, dilation
        self.pads = tuple(tuple(p) for p in pads)
        n, *sizes, c = input_shape
        padded = [size + sum(p) for size, p in zip(sizes, self.pads)]
        self.padded_shape = (n, *padded, c)
        self.out_shape = tuple(out_size(size, k, s, 0, d) for size, k, s, d in
                               zip(padded, kernel_size, strides, dilation))
        if min(self.out_shape) < 1:
            raise ValueError(f"a window of size {kernel_size} (dilation {dilation}) does not "
                             f"fit in the padded input {tuple(padded)} of shape "
                             f"{self.input_shape}")
        self.rows = n * math.prod(self.out_shape)  # M

    def _view(self, xp, writeable=False):
        """Every window of the padded xp at once: a (N, *out, C, *k) view."""
        extent = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation)]
        spatial = tuple(range(1, self.rank + 1))
        v = sliding_window_view(xp, extent, axis=spatial, writeable=writeable)
        every = slice(None)
        return v[(every,
                  *(slice(0, (o - 1) * s + 1, s) for o, s in zip(self.out_shape, self.strides)),
                  every,
                  *(slice(None, None, d) for d in self.dilation))]

    def blocks(self, x):
        """The window at each output position, (N, *out, *k, C): a view onto a padded copy."""
        xp = np.pad(x, ((0, 0), *self.pads, (0, 0)))
        r = self.rank
        return self._view(xp).transpose(0, *range(1, r + 1), *range(r + 2, 2 * r + 2), r + 1)

    def add_blocks(self, blocks, dtype):
        """col2im: the input-shaped array onto which each block (N, *out, *k, C) is added
        where its window read; padding is dropped."""
        xp = np.zeros(self.padded_shape, dtype)
        target = self._view(xp, writeable=True)  # (N, *out, C, *k)
        positions = (slice(None),) * (self.rank + 1)
        for offset in np.ndindex(*self.kernel_size):
            # One offset: distinct windows read distinct pixels, so += adds each once.
            target[(Ellipsis, *offset)] += blocks[positions + offset]
        return xp[(slice(None),
                   *(slice(before, before + size) for (before, _), size in
                     zip(self.pads, self.input_shape[1:-1])),
                   slice(None))]


# -- the grouped product, on the matrices of ``Windows``

def grouped_columns(windows, x, groups, dtype):
    """The windows of x as G matrices (G, M, kp*Cg): one copy of the blocks."""
    blocks = windows.blocks(x)  # (N, *out, *k, C)
    split = blocks.reshape(*blocks.shape[:-1], groups, -1)  # (N, *out, *k, G, Cg): a view
    return np.ascontiguousarray(np.moveaxis(split, -2, 0), dtype).reshape(
        groups, windows.rows, -1)


def grouped_kernel(kernel, groups):
    """(*k, Cg, F) -> (G, kp*Cg, Fg): group g's filters, as the matrix for its columns."""
    return kernel.reshape(-1, groups, kernel.shape[-1] // groups).transpose(1, 0, 2)


def kernel_from_groups(grouped, kernel_shape):
    """The inverse of ``grouped_kernel``: (G, kp*Cg, Fg) -> (*k, Cg, F)."""
    return grouped.transpose(1, 0, 2).reshape(kernel_shape)


def to_groups(z, groups):
    """(M, F) -> (G, M, Fg)."""
    return z.reshape(z.shape[0], groups, -1).transpose(1, 0, 2)


def from_groups(z):
    """(G, M, Fg) -> (M, F), filters of group g at g*Fg:(g+1)*Fg."""
    return z.transpose(1, 0, 2).reshape(z.shape[1], -1)


def image_from_columns(windows, dcols, dtype):
    """col2im of the G matrices (G, M, kp*Cg): the gradient of ``grouped_columns``."""
    groups = dcols.shape[0]
    blocks = dcols.reshape(groups, windows.input_shape[0], *windows.out_shape,
                           *windows.kernel_size, -1)  # (G, N, *out, *k, Cg)
    blocks = np.moveaxis(blocks, 0, -2).reshape(*blocks.shape[1:-1], -1)  # (N, *out, *k, C)
    return windows.add_blocks(blocks, dtype)


class ActivationConfig:
    """get_config/from_config for a layer whose weights are its first constructor
    arguments (``WEIGHTS``) and whose activation is saved by name."""

    WEIGHTS = ("kernel", "bias")
    OPTIONS = ()

    def get_config(self):
        return {**{name: getattr(self, name) for name in self.OPTIONS},
                **core.activation_config(self.activation)}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        config = dict(config)
        options = {name: config.pop(name) for name in cls.OPTIONS}
        weights = [(params or {}).get(name) for name in cls.WEIGHTS]
        return cls(*weights, activation=core.activation_from_config(config), **options)


def activation_of(activation):
    return activation if isinstance(activation, L.Layer) else activations.get(activation)


class Conv(ActivationConfig, L.Layer):
    """y = activation(conv(x) + bias), the twin of ``keras.layers.Conv1D``, ``Conv2D``,
    ``Conv3D`` (every option but LoRA):

        z[n, *p, f] = sum_{*i, c in group(f)} xp[n, *(p*strides + i*dilation), c]
                      * kernel[*i, c - Cg*group(f), f] + bias[f]

    with group(f) = f // (F / groups) and xp the zero-padded input (``pads_for``).

    Args:
        kernel: (*k, C / groups, F), Keras's layout, used as given; its rank - 2 is the
            number of spatial axes (1, 2 or 3).
        bias: (F,), or None (``use_bias=False``).
        strides, dilation_rate: an int or one per spatial axis.
        padding: 'valid', 'same' or 'causal' (one spatial axis only, as in Keras).
        groups: the number of channel groups; C and F are multiples of it.
        data_format: 'channels_last' (N, *S, C) or 'channels_first' (N, C, *S).
        activation: a name from ``numpy_ref.layers.activations`` or an activation layer.
    """

    OPTIONS = ("strides", "padding", "dilation_rate", "groups", "data_format")

    def __init__(self, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
                 groups=1, data_format="channels_last", activation="linear"):
        super().__init__()
        rank = set_spatial_kernel(self, kernel, bias, ("Cg", "F"), strides, dilation_rate)
        self.padding = choice(padding, PADDINGS if rank == 1 else PADDINGS[:2], "padding")
        self.data_format = choice(data_format, DATA_FORMATS, "data_format")
        self.groups = int(groups)
        if self.groups < 1 or np.shape(kernel)[-1] % self.groups:
            raise ValueError(f"groups must divide the {np.shape(kernel)[-1]} filters. "
                             f"Received: groups={groups!r}")
        self.activation = activation_of(activation)
        self._windows = None

    def _kernel(self):
        """The kernel as (*k, Cg, F) (a depthwise layer stores another layout)."""
        return self.params["kernel"]

    def _store_kernel_grad(self, grad):
        self.grads["kernel"] = grad

    def windows(self, input_shape):
        """The ``Windows`` of a channels-last input shape, kept for the last one."""
        if self._windows is None or self._windows.input_shape != tuple(input_shape):
            kernel_size = self._kernel().shape[:-2]
            self._windows = Windows(input_shape, kernel_size, self.strides,
                                    pads_for(self.padding, input_shape[1:-1], kernel_size,
                                             self.strides, self.dilation_rate),
                                    self.dilation_rate)
        return self._windows

    def forward(self, x, training=False):
        z = self.convolve(x)
        return self.activation.forward(z, training=training)

    def convolve(self, x):
        """conv(x) + bias, before the activation; keeps the columns for the backward."""
        x = to_channels_last(x, self.data_format)
        kernel = self._kernel()
        channels = kernel.shape[-2] * self.groups
        if x.ndim != self.rank + 2 or x.shape[-1] != channels:
            raise ValueError(f"{type(self).__name__} expects inputs with {self.rank} spatial "
                             f"axes and {channels} channels ({self.data_format}). Received: "
                             f"input shape {from_channels_last(x, self.data_format).shape}")
        self.x_dtype = x.dtype
        windows = self.windows(x.shape)
        self.cols = grouped_columns(windows, x, self.groups, np.result_type(x, kernel))
        z = from_groups(self.cols @ grouped_kernel(kernel, self.groups))  # (M, F)
        z = from_channels_last(z.reshape(x.shape[0], *windows.out_shape, -1), self.data_format)
        if "bias" in self.params:
            add_bias(z, self.params["bias"], self.data_format)
        return z  # (N, *out, F) or (N, F, *out)

    def backward(self, dout):
        return self.input_grad(self.backward_weights(dout))

    def backward_weights(self, dout):
        """Stores dkernel and dbias; returns dL/dz per group, (G, M, Fg)."""
        dz = self.activation.backward(dout)
        if "bias" in self.params:
            self.grads["bias"] = bias_grad(dz, self.data_format)  # (F,)
        dz = to_channels_last(dz, self.data_format)
        return self.kernel_grad(dz.reshape(-1, dz.shape[-1]))

    def kernel_grad(self, dz):
        """Stores dkernel from dL/dz (M, F); returns dz per group, (G, M, Fg)."""
        dz = to_groups(dz, self.groups)
        kernel = self._kernel()
        self._store_kernel_grad(kernel_from_groups(self.cols.transpose(0, 2, 1) @ dz,
                                                   kernel.shape))
        return dz

    def input_grad(self, dz):
        """dL/dx from dL/dz per group (G, M, Fg), in the input's layout."""
        windows = self._windows
        dcols = dz @ grouped_kernel(self._kernel(), self.groups).transpose(0, 2, 1)
        dx = image_from_columns(windows, dcols, self.x_dtype)
        return from_channels_last(dx, self.data_format)


class DepthwiseConv(Conv):
    """The twin of ``keras.layers.DepthwiseConv1D`` and ``DepthwiseConv2D``: each channel
    c is convolved with its own ``depth_multiplier`` D filters,

        z[n, *p, c*D + d] = sum_{*i} xp[n, *(p*strides + i*dilation), c] * kernel[*i, c, d]
                            + bias[c*D + d],

    the grouped convolution with C groups of one channel and D filters each (its
    kernel (*k, C, D) is, element for element, the grouped kernel (*k, 1, C*D)).

    Args:
        kernel: (*k, C, D), Keras's layout (its weight is named ``kernel``).
        bias: (C*D,), or None. The others as ``Conv``'s ('valid' or 'same' padding).
    """

    OPTIONS = ("strides", "padding", "dilation_rate", "data_format")

    def __init__(self, kernel, bias=None, strides=1, padding="valid", dilation_rate=1,
                 data_format="channels_last", activation="linear"):
        kernel = np.asarray(kernel)
        if kernel.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__} needs a kernel (*k, C, D) with 1 or 2 "
                             f"spatial axes. Received: kernel.shape={kernel.shape}")
        channels, multiplier = kernel.shape[-2:]
        flat = kernel.reshape(*kernel.shape[:-2], 1, channels * multiplier)
        super().__init__(flat, bias, strides, choice(padding, PADDINGS[:2], "padding"),
                         dilation_rate, channels, data_format, activation)
        self.params["kernel"] = kernel

    def _kernel(self):
        kernel = self.params["kernel"]
        return kernel.reshape(*kernel.shape[:-2], 1, -1)  # (*k, 1, C*D)

    def _store_kernel_grad(self, grad):
        self.grads["kernel"] = grad.reshape(self.params["kernel"].shape)


class SeparableConv(ActivationConfig, L.Layer):
    """The twin of ``keras.layers.SeparableConv1D`` and ``SeparableConv2D``: a depthwise
    convolution (no bias) followed by a 1x1 convolution, then bias and activation:

        h = depthwise(x, depthwise_kernel)                       (N, *out, C*D)
        z = h @ pointwise_kernel + bias                          (N, *out, F)

    Args:
        depthwise_kernel: (*k, C, D).
        pointwise_kernel: (*1, C*D, F).
        bias: (F,), or None. The others as ``DepthwiseConv``'s.
    """

    WEIGHTS = ("depthwise_kernel", "pointwise_kernel", "bias")
    OPTIONS = ("strides", "padding", "dilation_rate", "data_format")

    def __init__(self, depthwise_kernel, pointwise_kernel, bias=None, strides=1,
                 padding="valid", dilation_rate=1, data_format="channels_last",
                 activation="linear"):
        super().__init__()
        self.depthwise = DepthwiseConv(depthwise_kernel, None, strides, padding, dilation_rate)
        pointwise_kernel = np.asarray(pointwise_kernel)
        inner = self.depthwise.params["kernel"]
        rank = inner.ndim - 2
        if pointwise_kernel.shape[:-1] != (1,) * rank + (inner.shape[-2] * inner.shape[-1],):
            raise ValueError(f"SeparableConv needs a pointwise_kernel (*1, C*D, F) for the "
                             f"depthwise_kernel of shape {inner.shape}. Received: "
                             f"pointwise_kernel.shape={pointwise_kernel.shape}")
        L.set_kernel_and_bias(self, pointwise_kernel, bias, names=("pointwise_kernel", "bias"),
                              layout=(*("1",) * rank, "CD", "F"), units="F")
        self.params["pointwise_kernel"] = self.params.pop("kernel")
        self.params["depthwise_kernel"] = inner
        self.strides, self.padding = self.depthwise.strides, self.depthwise.padding
        self.dilation_rate = self.depthwise.dilation_rate
        self.data_format = choice(data_format, DATA_FORMATS, "data_format")
        self.activation = activation_of(activation)

    def _pointwise(self):
        kernel = self.params["pointwise_kernel"]
        return kernel.reshape(kernel.shape[-2:])  # (C*D, F)

    def forward(self, x, training=False):
        self.depthwise.params["kernel"] = self.params["depthwise_kernel"]  # the one given now
        self.h = self.depthwise.forward(to_channels_last(x, self.data_format))  # (N, *out, C*D)
        z = from_channels_last(self.h @ self._pointwise(), self.data_format)
        if "bias" in self.params:
            add_bias(z, self.params["bias"], self.data_format)
        return self.activation.forward(z, training)

    def backward(self, dout):
        dx = self.depthwise.input_grad(self.backward_weights(dout))
        return from_channels_last(dx, self.data_format)

    def backward_weights(self, dout):
        """Stores the three weight gradients; returns the depthwise part's dL/dz per
        group (its ``input_grad`` takes it)."""
        dz = self.activation.backward(dout)
        if "bias" in self.params:
            self.grads["bias"] = bias_grad(dz, self.data_format)
        dz = to_channels_last(dz, self.data_format)
        dz2 = dz.reshape(-1, dz.shape[-1])  # (M, F)
        pointwise = self._pointwise()
        self.grads["pointwise_kernel"] = (self.h.reshape(-1, pointwise.shape[0]).T @ dz2
                                          ).reshape(self.params["pointwise_kernel"].shape)
        dh = dz @ pointwise.T  # (N, *out, C*D)
        dh_groups = self.depthwise.backward_weights(dh)
        self.grads["depthwise_kernel"] = self.depthwise.grads["kernel"]
        return dh_groups


__all__ = ["Conv", "DepthwiseConv", "SeparableConv", "Windows", "pads_for", "tuple_of"]
