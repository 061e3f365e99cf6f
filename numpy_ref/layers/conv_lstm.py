"""The convolutional LSTM: the twin of Keras's ``ConvLSTM1D``, ``ConvLSTM2D`` and
``ConvLSTM3D``, an LSTM whose inputs and states are images and whose matrix products
are convolutions.

One step, at every output position p of the images (channels last inside):

    z = conv(x_t, K; strides, padding, dilation) + b        (N, *S', 4F)  gates i f c o
        + conv(h_{t-1}, R; stride 1, 'same')                  along the last axis
    i, f, g, o = σ(z_i), σ(z_f), act(z_c), σ(z_o)             (``lstm_gates``, the LSTM's)
    c_t = f * c_{t-1} + i * g;   h_t = o * act(c_t)           (N, *S', F)

    kernel K (*k, C, 4F), recurrent_kernel R (*k, F, 4F), bias b (4F,): Keras's layouts.
    S' is the input convolution's output size; the recurrent convolution keeps it.

A convolution is a matrix product on the windows (``conv_nd.Windows``, im2col):
cols(x) (M, kp*C) holds each output position's window, M = N * prod(S'), and

    conv(x, K) = cols(x) @ K.reshape(kp*C, 4F)                (M, 4F)

Backward of one step (backpropagation through time walks the steps in reverse):

    dz, dc_{t-1} = lstm_gates_backward(dh_t, dc_t)            (M, 4F), (M, F)
    dK += cols(x_t)^T dz;  dR += cols(h_{t-1})^T dz;  db += sum_M dz
    dx_t = col2im(dz K^T);  dh_{t-1} = col2im(dz R^T)

The loop over time is ``recurrent.RNN``'s (masks, initial states, go_backwards,
return_state, dropout masks, BPTT): ``ConvLSTM`` hands it each frame as one flat
vector, x_t (N, prod(S)*C) and a state (N, prod(S')*F), channels last, and
``ConvLSTMCell.step`` reshapes them into images. ``ConvLSTM`` moves channels_first
tensors (N, T, C, *S) to channels last on the way in and back on the way out.

Dropout (training): Keras draws four input masks of x_t's shape and four recurrent
masks of h's, one per gate (``dropout`` > 0, then ``recurrent_dropout`` > 0), and
applies them for 0 < rate < 1: gate g reads x_t * m_g and h_{t-1} * r_g, and so
convolves its own copy of the images.

Shape letters: N batch, T time steps, S input image size (1 to 3 axes), C input
channels, F filters, S' output image size, k kernel size, kp = prod(k).
"""

import math

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import recurrent
from numpy_ref.layers import recurrent_cells as C
from numpy_ref.layers.conv_nd import (DATA_FORMATS, Windows, choice, grouped_columns,
                                      image_from_columns, pads_for, tuple_of)


def columns(windows, flat, dtype):
    """cols (M, kp*C): each output position's window of the image ``flat`` (N, prod(S)*C)."""
    image = flat.reshape(windows.input_shape)  # (N, *S, C)
    return grouped_columns(windows, image, 1, dtype)[0]


def gate_convolutions(windows, xs, W):
    """z = [conv(xs[0], W_i) | conv(xs[1], W_f) | ...] (M, 4F), and the columns read: one
    convolution when every gate reads the same image, else one per gate."""
    dtype = np.result_type(xs[0], W)
    F4 = W.shape[-1]
    if all(x is xs[0] for x in xs):
        cols = columns(windows, xs[0], dtype)
        return cols @ W.reshape(-1, F4), [cols]
    F = F4 // len(xs)
    cols = [columns(windows, x, dtype) for x in xs]
    z = np.concatenate([c @ W[..., g * F:(g + 1) * F].reshape(-1, F)
                        for g, c in enumerate(cols)], axis=1)
    return z, cols


def gate_convolutions_backward(windows, cols, masks, W, dz):
    """(dx flat (N, prod(S)*C), dW) of ``gate_convolutions`` of x times its dropout
    masks (None, one, or one per gate), for dz (M, 4F)."""
    N, F4 = windows.input_shape[0], W.shape[-1]
    if len(cols) == 1:
        dW = (cols[0].T @ dz).reshape(W.shape)
        dx = image_from_columns(windows, (dz @ W.reshape(-1, F4).T)[None], dz.dtype)
        dx = dx.reshape(N, -1)
        return (dx if masks is None else dx * masks[0]), dW
    F = F4 // len(cols)
    blocks = [slice(g * F, (g + 1) * F) for g in range(len(cols))]
    dW = np.concatenate([(c.T @ dz[:, b]).reshape(*W.shape[:-1], F)
                         for c, b in zip(cols, blocks)], axis=-1)
    dx = sum(image_from_columns(windows, (dz[:, b] @ W[..., b].reshape(-1, F).T)[None],
                                dz.dtype).reshape(N, -1) * m
             for m, b in zip(masks, blocks))
    return dx, dW


class ConvLSTMCell(L.Layer):
    """One step of the convolutional LSTM on flat frames (module docstring), with the
    cell interface ``recurrent.RNN`` loops (``step``, ``step_backward``, ``units``...).

    Args:
        kernel: (*k, C, 4F), 1 to 3 spatial axes. recurrent_kernel: (*k, F, 4F).
        bias: (4F,) or None.
        strides, padding ('valid' or 'same'), dilation_rate: the input convolution's.
        activation, recurrent_activation: names or activation layers.
        dropout, recurrent_dropout: Keras's rates (training mode only).

    ``set_frame((*S, C))`` fixes the image size before a sequence is stepped through, and
    with it ``output_image_shape`` (*S', F) and ``units`` = prod(S') * F (a flat state).
    """

    gates = 4
    state_count = 2
    mask_count = 4  # Keras's ConvLSTMCell draws one mask per gate
    per_gate_masks = True
    ACTIVATION_KEYS = ("activation", "recurrent_activation")

    state_sizes = C.Cell.state_sizes
    applies = C.Cell.applies
    zero_grads = C.Cell.zero_grads
    add_grads = C.Cell.add_grads

    def __init__(self, kernel, recurrent_kernel, bias=None, strides=1, padding="valid",
                 dilation_rate=1, activation="tanh", recurrent_activation="sigmoid",
                 dropout=0.0, recurrent_dropout=0.0):
        super().__init__()
        kernel, recurrent_kernel = np.asarray(kernel), np.asarray(recurrent_kernel)
        self.rank = kernel.ndim - 2
        self.filters = kernel.shape[-1] // 4 if kernel.ndim >= 3 else 0
        F = self.filters
        if (self.rank not in (1, 2, 3) or kernel.shape[-1] != 4 * F or F == 0
                or recurrent_kernel.shape != (*kernel.shape[:-2], F, 4 * F)
                or (bias is not None and np.shape(bias) != (4 * F,))):
            raise ValueError("ConvLSTMCell needs kernel (*k, C, 4F) with 1 to 3 spatial axes, "
                             "recurrent_kernel (*k, F, 4F) and bias (4F,). Received: "
                             f"{kernel.shape}, {recurrent_kernel.shape}, "
                             f"{None if bias is None else np.shape(bias)}")
        self.params["kernel"], self.params["recurrent_kernel"] = kernel, recurrent_kernel
        if bias is not None:
            self.params["bias"] = np.asarray(bias)
        self.kernel_size = kernel.shape[:-2]
        self.strides = tuple_of(strides, self.rank, "strides")
        self.dilation_rate = tuple_of(dilation_rate, self.rank, "dilation_rate")
        self.padding = choice(padding, ("valid", "same"), "padding")
        self.activation = C.as_activation(activation)
        self.recurrent_activation = C.as_activation(recurrent_activation)
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.frame, self.output_image_shape, self.units = None, None, None

    def set_frame(self, frame_shape):
        """Fixes the input image (*S, C) (channels last): the windows of both
        convolutions and the state size ``units`` = prod(S') * F."""
        frame_shape, kernel = tuple(frame_shape), self.params["kernel"]
        if len(frame_shape) != self.rank + 1 or frame_shape[-1] != kernel.shape[-2]:
            raise ValueError(f"ConvLSTMCell with kernel {kernel.shape} takes frames (*S, C) "
                             f"with {self.rank} spatial axes and {kernel.shape[-2]} channels. "
                             f"Received: {frame_shape}")
        self.frame = frame_shape
        self.input_windows = self.recurrent_windows = None
        self.output_image_shape = (*self._windows(1)[0].out_shape, self.filters)  # (*S', F)
        self.units = math.prod(self.output_image_shape)  # a flat state's size

    def _windows(self, n):
        """The two convolutions' ``Windows`` for a batch of n (kept for the last n)."""
        if self.input_windows is None or self.input_windows.input_shape[0] != n:
            self.input_windows = Windows((n, *self.frame), self.kernel_size, self.strides,
                                         pads_for(self.padding, self.frame[:-1],
                                                  self.kernel_size, self.strides,
                                                  self.dilation_rate),
                                         self.dilation_rate)
            out, ones = self.input_windows.out_shape, (1,) * self.rank
            self.recurrent_windows = Windows((n, *out, self.filters), self.kernel_size, ones,
                                             pads_for("same", out, self.kernel_size, ones,
                                                      ones), ones)
        return self.input_windows, self.recurrent_windows

    def get_config(self):
        return {**C.activation_settings(self), "strides": list(self.strides),
                "padding": self.padding, "dilation_rate": list(self.dilation_rate),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(params["kernel"], params["recurrent_kernel"], params.get("bias"),
                   **C.with_activations(cls, config))

    def step(self, x, states, x_masks=None, h_masks=None):
        """x (N, prod(S)*C), states [h, c] each (N, prod(S')*F) -> (h, [h, c], cache)."""
        h_prev, c_prev = states
        N, F = x.shape[0], self.filters
        in_windows, rec_windows = self._windows(N)
        xs, hs = C.gate_inputs(x, x_masks, 4), C.gate_inputs(h_prev, h_masks, 4)
        z, x_cols = gate_convolutions(in_windows, xs, self.params["kernel"])  # (M, 4F)
        if "bias" in self.params:
            z += self.params["bias"]
        zh, h_cols = gate_convolutions(rec_windows, hs, self.params["recurrent_kernel"])
        z += zh
        h, c, gates = C.lstm_gates(z, c_prev.reshape(-1, F), self.activation,
                                   self.recurrent_activation)  # (M, F) each
        h, c = h.reshape(N, -1), c.reshape(N, -1)
        return h, [h, c], (x_cols, h_cols, x_masks, h_masks, gates)

    def step_backward(self, cache, dout, dstates):
        """(dx_t, [dh_{t-1}, dc_{t-1}]) from the gradient of the output h_t and of the
        states [h_t, c_t] from the step after; adds this step's weight gradients."""
        x_cols, h_cols, x_masks, h_masks, gates = cache
        N, F = dout.shape[0], self.filters
        in_windows, rec_windows = self._windows(N)
        dh = (dout + dstates[0]).reshape(-1, F)  # (M, F)
        dz, dc_prev = C.lstm_gates_backward(gates, dh, dstates[1].reshape(-1, F))
        dx, dK = gate_convolutions_backward(in_windows, x_cols, x_masks,
                                            self.params["kernel"], dz)
        dh_prev, dR = gate_convolutions_backward(rec_windows, h_cols, h_masks,
                                                 self.params["recurrent_kernel"], dz)
        self.add_grads(kernel=dK, recurrent_kernel=dR)
        if "bias" in self.params:
            self.add_grads(bias=dz.sum(axis=0))
        return dx, [dh_prev, dc_prev.reshape(N, -1)]


class ConvLSTM(recurrent.RNN):
    """The twin of ``keras.layers.ConvLSTM1D/2D/3D``: ``recurrent.RNN``'s loop over a
    ``ConvLSTMCell``, on images.

    Inputs (``multi_input``): ``[x]`` or ``[x, h0, c0]``, x (N, T, *S, C) (channels_last)
    or (N, T, C, *S) (channels_first), the states (N, *S', F) or (N, F, *S'). Outputs:
    (N, T, *S', F) with return_sequences, else (N, *S', F) (channels_first: F after the
    batch and time axes), and with return_state the tuple (output, h_T, c_T). A Keras
    mask is (N, T). ``fixed_masks``: Keras's eight keep masks (or four), in the
    layer's layout, in its draw order (module docstring).

    Args:
        cell: the ``ConvLSTMCell``.
        data_format: 'channels_last' or 'channels_first'.
        The others as ``recurrent.RNN``'s.
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 zero_output_for_mask=False, data_format="channels_last", seed=None,
                 output_dtype=None):
        super().__init__([cell], return_sequences, return_state, go_backwards,
                         zero_output_for_mask, prefixes=[""], seed=seed,
                         output_dtype=output_dtype)
        self.cell = cell
        self.data_format = choice(data_format, DATA_FORMATS, "data_format")

    def get_config(self):
        config = super().get_config()
        del config["cells"], config["prefixes"]
        return {"cell": self.cell.get_config(), **config, "data_format": self.data_format}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        config = dict(config)
        return cls(ConvLSTMCell.from_config(config.pop("cell"), params), **config)

    # -- between the layer's layout and the loop's flat frames

    def _flat(self, a, lead):
        """(*lead, layout image) -> (*lead, prod): channels moved last, then flattened."""
        a = np.asarray(a)
        if self.data_format == "channels_first":
            a = np.moveaxis(a, lead, -1)
        return a.reshape(*a.shape[:lead], -1)

    def _image(self, a, lead, image_shape):
        """The inverse of ``_flat``: (*lead, prod) -> (*lead, layout image)."""
        a = a.reshape(*a.shape[:lead], *image_shape)
        return np.moveaxis(a, -1, lead) if self.data_format == "channels_first" else a

    def _keep(self, draws, shape, rate, dtype):
        if draws:  # Keras's mask of x_t or h in the layer's layout, flat as the loop has it
            draws[0] = self._flat(draws[0], 1)
        return super()._keep(draws, shape, rate, dtype)

    def forward(self, inputs, training=False, mask=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        x, given = np.asarray(inputs[0]), inputs[1:]
        rank = self.cell.rank
        if x.ndim != rank + 3:
            raise ValueError(f"ConvLSTM{rank}D takes inputs (N, T, {rank} image axes and "
                             f"channels). Received: input shape {x.shape}")
        N, T = x.shape[:2]
        if mask is not None and np.shape(mask) != (N, T):
            raise ValueError(f"ConvLSTM{rank}D takes a Keras mask (N, T) = {(N, T)}, one "
                             f"flag per sequence and step. Received: {np.shape(mask)}")
        frame = x.shape[2:] if self.data_format == "channels_last" else (*x.shape[3:],
                                                                        x.shape[2])
        self.cell.set_frame(frame)
        self.image_shape = self.cell.output_image_shape  # (*S', F)
        self.frame_shape = frame
        out = super().forward([self._flat(x, 2), *[self._flat(s, 1) for s in given]],
                              training=training, mask=mask)
        outs = list(out) if self.return_state else [out]
        lead = 2 if self.return_sequences else 1
        images = [self._image(outs[0], lead, self.image_shape),
                  *[self._image(s, 1, self.image_shape) for s in outs[1:]]]
        return tuple(images) if self.return_state else images[0]

    def backward(self, dout):
        douts = list(dout) if self.return_state else [dout]
        lead = 2 if self.return_sequences else 1
        flat = [None if d is None else self._flat(d, lead if k == 0 else 1)
                for k, d in enumerate(douts)]
        grads = super().backward(tuple(flat) if self.return_state else flat[0])
        dx = self._image(grads[0], 2, self.frame_shape)
        return [dx, *[self._image(d, 1, self.image_shape) for d in grads[1:]]]


__all__ = ["ConvLSTM", "ConvLSTMCell", "gate_convolutions", "gate_convolutions_backward"]
