"""Fast stand-ins for ``Conv2D`` and the ``MaxPooling2D`` after it: the layers' numbers, bit
for bit, in fewer passes over the (large) convolution output.

- ``ConvKernel``: ``Conv2D`` whose product is written into the buffer of its last call
  (no fresh array to fault in per batch), with a plain ReLU applied in place on its own
  output (its mask read off the output, y > 0 where z > 0), or left to the max pooling
  that alone reads the output (``fused``);
- ``MaxPoolKernel``: that max pooling, taking the ReLU in: max(relu(z)) = relu(max(z))
  (both are maxima, no rounding), so it pools z itself and applies the ReLU to its
  output, a quarter of the size for 2x2 windows. Its gradient goes to the first maximum
  of each window of z, times (max > 0), written into the convolution's own output
  buffer, which nothing reads any more: dz, with no ReLU pass over the full size.

Why the gradient is the plain one, sign of zero included: where max > 0, the first
maximum of relu(z) and of z is the same cell, and the plain ReLU mask is 1 there; where
max <= 0 (or NaN), the plain path gives every cell of the window dout * 0, a zero with
dout's sign, and so does this one (the routed value is dout * 0 already). The plain
forward's zeros are +0.0 (``np.maximum(z, 0)``), as are those of relu(max(z)).

The pair is used when the convolution's output feeds the pooling alone and the windows
tile the image (2x2 pools of an even-sized output, 'valid'); other shapes run the plain
ReLU and pooling inside ``MaxPoolKernel``.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.fast.kernels import _Kernel, is_plain_relu
from numpy_ref.layers import conv, pooling


def _reused(buffer, shape, dtype):
    """``buffer`` when it is a C-contiguous array of ``shape`` and ``dtype``, else None."""
    if (buffer is not None and buffer.shape == shape and buffer.dtype == dtype
            and buffer.flags.c_contiguous):
        return buffer
    return None


class ConvKernel(_Kernel):
    """``Conv2D``: the same im2col matrix and product as the layer (``_MatrixConv``), the
    product written into the last call's buffer; a plain ReLU in place, or none when
    ``fused`` (a ``MaxPoolKernel`` applies it)."""

    def __init__(self, layer, fused=False):
        super().__init__(layer)
        self.fused = fused
        self.relu = not fused and is_plain_relu(layer.activation)
        self._z = None

    def forward(self, x, training=False):
        layer = self.layer
        channels = layer.params["kernel"].shape[2]
        if x.ndim != 4 or x.shape[3] != channels:  # the layer's own refusal
            return layer.forward(x, training=training)
        w_matrix = layer._w_matrix()
        bias = layer.params.get("bias")
        windows = layer.windows(x.shape)
        layer.x = x
        layer._col = windows.matrix(x, out=layer._col, ones_column=bias is not None,
                                    dtype=np.result_type(x.dtype, w_matrix.dtype))
        if bias is not None:
            w_matrix = np.concatenate([w_matrix, bias.reshape(1, -1)])  # (K + 1, F)
        shape = (windows.rows, w_matrix.shape[1])
        self._z = np.matmul(layer._col, w_matrix,
                            out=_reused(self._z, shape, np.result_type(layer._col, w_matrix)))
        z = self._z.reshape(*windows.row_shape, -1)  # (N, oh, ow, F)
        if self.fused:
            return z
        if self.relu:
            self.y = np.maximum(z, 0, out=z)
            return self.y
        return layer.activation.forward(z, training=training)

    def backward_weights(self, dout):
        """Stores dkernel and dbias; returns dL/dz as an (M, F) matrix."""
        layer = self.layer
        if self.fused:
            dz = dout
        elif self.relu:
            dz = dout * (self.y > 0)
        else:
            dz = layer.activation.backward(dout)
        dz = dz.reshape(-1, dz.shape[-1])  # (M, F)
        layer.grads["kernel"] = layer._weight_grads(dz).reshape(layer.params["kernel"].shape)
        return dz

    def backward(self, dout):
        dz = self.backward_weights(dout)
        return self.layer._input_grad(dz, self.layer._w_matrix())


class MaxPoolKernel(_Kernel):
    """``MaxPooling2D`` of the raw output z of a fused ``ConvKernel``: relu(max(z)), its
    gradient written into z (see the module docstring). Shapes whose windows do not tile
    the image run the plain ReLU, then the layer."""

    def __init__(self, layer):
        super().__init__(layer)
        self.relu = None

    def forward(self, x, training=False):
        layer = self.layer
        windows = layer._windows_of(x)
        if not (windows.tiling and not windows.padded and x.flags.c_contiguous):
            self.relu = L.Relu()  # the plain ReLU the convolution would have applied
            self.fused = False
            return layer.forward(self.relu.forward(x), training=training)
        self.fused = True
        self.z = x
        self.m = pooling.max_over_windows(windows.view(x))  # (N, oh, ow, C)
        return np.maximum(self.m, 0)

    def backward(self, dout):
        if not self.fused:
            return self.relu.backward(self.layer.backward(dout))
        windows = self.layer.windows(self.z.shape)
        routed = dout * (self.m > 0)  # (N, oh, ow, C): the ReLU's mask at each maximum
        (ph, pw), (n, oh, ow, c) = windows.kernel_size, self.m.shape
        blocks = self.z.reshape(n, oh, ph, ow, pw, c)  # the windows tile z: a view
        hits = np.equal(blocks, self.m[:, :, None, :, None, :])  # every maximum of a window
        cells = [hits[:, :, i, :, j] for i in range(ph) for j in range(pw)]  # row-major
        taken = cells[0].copy()
        for k, hit in enumerate(cells[1:], start=2):  # keep only each window's first
            np.greater(hit, taken, out=hit)  # hit and not taken
            if k < len(cells):
                taken |= hit
        np.multiply(routed[:, :, None, :, None, :], hits, out=blocks)  # z's buffer: dz
        return self.z  # dz, in z's buffer


def fusable_pool(layer):
    """Whether ``layer`` is a max pooling ``MaxPoolKernel`` can take a ReLU into: channels
    last, 'valid', windows that do not overlap."""
    return (type(layer) is pooling.MaxPooling2D and layer.data_format == "channels_last"
            and layer.padding == "valid"
            and all(s >= k for s, k in zip(layer.strides, layer.pool_size)))


def fusable_conv(layer):
    """Whether ``layer`` is a ``Conv2D`` with a plain ReLU."""
    return type(layer) is conv.Conv2D and is_plain_relu(layer.activation)
