"""Transposed convolutions: the twins of Keras's ``Conv1DTranspose``, ``Conv2DTranspose``
and ``Conv3DTranspose``.

A transposed convolution is the gradient of a convolution with respect to its input.
Take the convolution ``conv`` from an image of the *output's* shape (N, *o, F) to one
of the input's shape (N, *S, C), with the layer's kernel (*k, F, C), strides, dilation
and padding (``conv_nd.Windows``); then

    y = conv^T(x):   cols = x @ W^T  (M, kp*F),  y = add_blocks(cols) + bias   (col2im)

and its own gradients are that convolution:

    dx = blocks(dy) @ W,   dW = blocks(dy)^T @ x,   dbias = sum(dy)             (im2col)

with W the kernel as a (kp*F, C) matrix and M = N * prod(S) input positions.

The output size per spatial axis is Keras's rule (keras/src/backend/common/
backend_utils.py), with ke = (k - 1) * dilation + 1:

    'valid': (size - 1) * stride + ke + output_padding, output_padding default
             max(ke, stride) - ke;
    'same':  size * stride without output_padding, else
             (size - 1) * stride + ke % 2 + output_padding;

and the convolution pads an output-sized image as TensorFlow's SAME/VALID would.

Shape letters: N batch, S input spatial sizes, o output spatial sizes, C input
channels, F filters, k kernel size.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import conv_nd as C

PADDINGS = ("valid", "same")


def output_size(size, kernel, stride, padding, output_padding, dilation):
    """Keras's output length of a transposed convolution along one axis."""
    reach = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(reach, stride) - reach if output_padding is None else output_padding
        return (size - 1) * stride + reach + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + reach % 2 + output_padding


class ConvTranspose(C.ActivationConfig, L.Layer):
    """y = activation(conv^T(x) + bias), see the module docstring.

    Args:
        kernel: (*k, F, C), Keras's layout (filters before input channels), used as
            given; 1 to 3 spatial axes.
        bias: (F,), or None.
        strides, dilation_rate: an int or one per spatial axis.
        padding: 'valid' or 'same'.
        output_padding: None, or an int or one per axis, each below its stride.
        data_format: 'channels_last' or 'channels_first'.
        activation: a name from ``numpy_ref.layers.activations`` or an activation layer.
    """

    OPTIONS = ("strides", "padding", "output_padding", "dilation_rate", "data_format")

    def __init__(self, kernel, bias=None, strides=1, padding="valid", output_padding=None,
                 dilation_rate=1, data_format="channels_last", activation="linear"):
        super().__init__()
        rank = C.set_spatial_kernel(self, kernel, bias, ("F", "C"), strides, dilation_rate)
        self.padding = C.choice(padding, PADDINGS, "padding")
        self.output_padding = (None if output_padding is None else
                               C.tuple_of(output_padding, rank, "output_padding", minimum=0))
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"output_padding must be below the strides {self.strides}. "
                             f"Received: output_padding={output_padding!r}")
        self.data_format = C.choice(data_format, C.DATA_FORMATS, "data_format")
        self.activation = C.activation_of(activation)
        self._windows = None

    def output_shape(self, input_shape):
        """(N, *o, F) of a channels-last input shape (N, *S, C)."""
        kernel = self.params["kernel"]
        pads = self.output_padding or (None,) * self.rank
        sizes = (output_size(*args, self.padding, pad, dilation) for *args, pad, dilation in
                 zip(input_shape[1:-1], kernel.shape[:-2], self.strides, pads,
                     self.dilation_rate))
        return (input_shape[0], *sizes, kernel.shape[-2])

    def windows(self, input_shape):
        """The convolution from the output's shape to the input's (``conv_nd.Windows``)."""
        if self._windows is None or self._input_shape != tuple(input_shape):
            shape = self.output_shape(input_shape)
            kernel_size = self.params["kernel"].shape[:-2]
            windows = C.Windows(shape, kernel_size, self.strides,
                                C.pads_for(self.padding, shape[1:-1], kernel_size,
                                           self.strides, self.dilation_rate),
                                self.dilation_rate)
            if windows.out_shape != tuple(input_shape[1:-1]):
                raise ValueError(f"no convolution maps the output {shape} back onto the input "
                                 f"{tuple(input_shape)} (TensorFlow refuses it too)")
            self._windows, self._input_shape = windows, tuple(input_shape)
        return self._windows

    def _w_matrix(self):
        kernel = self.params["kernel"]
        return kernel.reshape(-1, kernel.shape[-1])  # (kp*F, C)

    def forward(self, x, training=False):
        x = C.to_channels_last(x, self.data_format)
        channels = self.params["kernel"].shape[-1]
        if x.ndim != self.rank + 2 or x.shape[-1] != channels:
            raise ValueError(f"ConvTranspose expects inputs with {self.rank} spatial axes and "
                             f"{channels} channels ({self.data_format}). Received: input "
                             f"shape {C.from_channels_last(x, self.data_format).shape}")
        windows = self.windows(x.shape)
        self.x_rows = x.reshape(-1, channels)  # (M, C)
        cols = self.x_rows @ self._w_matrix().T  # (M, kp*F)
        z = C.image_from_columns(windows, cols[np.newaxis], cols.dtype)  # (N, *o, F)
        z = C.from_channels_last(z, self.data_format)
        if "bias" in self.params:
            C.add_bias(z, self.params["bias"], self.data_format)
        return self.activation.forward(z, training=training)

    def backward(self, dout):
        dcols = self.backward_weights(dout)
        dx = dcols @ self._w_matrix()  # (M, C)
        dx = dx.reshape(*self._input_shape[:-1], -1)  # (N, *S, C)
        return C.from_channels_last(dx, self.data_format)

    def backward_weights(self, dout):
        """Stores dkernel and dbias; returns the windows of dL/dz, (M, kp*F)."""
        dz = self.activation.backward(dout)
        if "bias" in self.params:
            self.grads["bias"] = C.bias_grad(dz, self.data_format)  # (F,)
        dz = C.to_channels_last(dz, self.data_format)
        dtype = np.result_type(dz, self.x_rows)
        dcols = C.grouped_columns(self._windows, dz, 1, dtype)[0]  # (M, kp*F)
        self.grads["kernel"] = (dcols.T @ self.x_rows).reshape(self.params["kernel"].shape)
        return dcols


__all__ = ["ConvTranspose", "output_size"]
