"""Layers around other layers: ``Bidirectional`` (two RNNs, one reading the sequence
backwards) and ``TimeDistributed`` (a layer applied to every time step).

Bidirectional, as Keras's::

    y     = forward RNN(x)
    y_rev = backward RNN(x)            (go_backwards: its outputs in reverse time order)
    y_rev = y_rev[:, ::-1]             with return_sequences, back in time order
    out   = [y | y_rev] (concat), y + y_rev (sum), (y + y_rev) / 2 (ave),
            y * y_rev (mul), or the pair (y, y_rev) (merge_mode None)

Inputs ``[x]`` or ``[x, *forward states, *backward states]``; with return_state the
outputs are (out, *forward states, *backward states) ((y, y_rev, ...) for None).

TimeDistributed folds the time axis into the batch, (N, T, ...) -> (N*T, ...),
applies the inner layer once, and unfolds its output; a layer that treats each sample
on its own computes there what Keras's loop over the T steps computes.

Shape letters: N batch, T time steps, U units.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import recurrent


class Bidirectional(L.Layer):
    """The twin of ``keras.layers.Bidirectional`` around two ``recurrent.RNN``s whose
    ``params`` keys are distinct (their paths inside the Keras layer)."""

    multi_input = True
    mask_arguments = ("mask",)
    MERGE_MODES = ("concat", "sum", "ave", "mul", None)

    def __init__(self, forward_layer, backward_layer, merge_mode="concat", output_dtype=None):
        super().__init__()
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"merge_mode must be one of {self.MERGE_MODES}. "
                             f"Received: merge_mode={merge_mode!r}")
        self.forward_layer, self.backward_layer = forward_layer, backward_layer
        if set(forward_layer.params) & set(backward_layer.params):
            raise ValueError("Bidirectional needs distinct weight keys in its two layers. "
                             f"Received: {sorted(forward_layer.params)} twice")
        self.params.update(forward_layer.params)
        self.params.update(backward_layer.params)
        self.merge_mode = merge_mode
        self.output_dtype = None if output_dtype is None else np.dtype(output_dtype).name
        self.return_sequences = forward_layer.return_sequences
        self.return_state = forward_layer.return_state
        self.multi_output = self.return_state or merge_mode is None

    def get_config(self):
        return {"forward_layer": self.forward_layer.get_config(),
                "backward_layer": self.backward_layer.get_config(),
                "merge_mode": self.merge_mode, "output_dtype": self.output_dtype}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(recurrent.RNN.from_config(config["forward_layer"], params),
                   recurrent.RNN.from_config(config["backward_layer"], params),
                   config["merge_mode"], config.get("output_dtype"))

    @property
    def fixed_masks(self):
        forward, backward = self.forward_layer.fixed_masks, self.backward_layer.fixed_masks
        return None if forward is None else [*forward, *backward]

    @fixed_masks.setter
    def fixed_masks(self, masks):
        """Keras's keep masks: the forward layer's draws, then the backward layer's."""
        if masks is None:
            self.forward_layer.fixed_masks = self.backward_layer.fixed_masks = None
            return
        count = self.forward_layer.draw_count
        self.forward_layer.fixed_masks = list(masks)[:count]
        self.backward_layer.fixed_masks = list(masks)[count:]

    def _sync(self):
        for layer in (self.forward_layer, self.backward_layer):
            for key in layer.params:
                layer.params[key] = self.params[key]

    def forward(self, inputs, training=False, mask=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        x, states = inputs[0], inputs[1:]
        half = len(states) // 2
        self._sync()
        y = self.forward_layer.forward([x, *states[:half]], training=training, mask=mask)
        y_rev = self.backward_layer.forward([x, *states[half:]], training=training, mask=mask)
        kept = ()
        if self.return_state:
            (y, *fs), (y_rev, *bs) = y, y_rev
            kept = (*fs, *bs)
        if self.output_dtype is not None:  # Keras casts the two sequences, not the states
            y, y_rev = y.astype(self.output_dtype, copy=False), y_rev.astype(self.output_dtype,
                                                                             copy=False)
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        self.y, self.y_rev, self.given = y, y_rev, len(states)
        if self.merge_mode is None:
            return (y, y_rev, *kept)
        if self.merge_mode == "concat":
            out = np.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            out = y + y_rev
        elif self.merge_mode == "ave":
            out = (y + y_rev) / 2
        else:
            out = y * y_rev
        self.out_shape = out.shape
        return (out, *kept) if self.return_state else out

    def compute_mask(self, inputs, mask=None):
        """Keras's Bidirectional passes its input mask on to its first output only (its
        other outputs, the second sequence or the states, get none)."""
        if not self.multi_output:
            return mask
        count = 2 if self.merge_mode is None else 1
        return [mask] + [None] * (count - 1 + (2 * len(self.forward_layer.state_sizes)
                                               if self.return_state else 0))

    def backward(self, dout):
        """Splits the output gradient between the two layers as the merge did; a None
        (an output nothing downstream read) counts as zeros."""
        count = 2 if self.merge_mode is None else 1
        douts = list(dout) if self.multi_output else [dout]
        if self.merge_mode is None:
            dy, dy_rev = (np.zeros_like(v) if d is None else d
                          for d, v in zip(douts[:2], (self.y, self.y_rev)))
        else:
            d = douts[0]
            if d is None:
                d = np.zeros(self.out_shape, self.y.dtype)
            if self.merge_mode == "concat":
                u = self.y.shape[-1]
                dy, dy_rev = d[..., :u], d[..., u:]
            elif self.merge_mode == "sum":
                dy, dy_rev = d, d
            elif self.merge_mode == "ave":
                dy, dy_rev = d / 2, d / 2
            else:  # mul
                dy, dy_rev = d * self.y_rev, d * self.y
        if self.return_sequences:
            dy_rev = dy_rev[:, ::-1]
        dstates = douts[count:]
        n = len(self.forward_layer.state_sizes)
        if self.return_state:
            dfw = self.forward_layer.backward((dy, *dstates[:n]))
            dbw = self.backward_layer.backward((dy_rev, *dstates[n:]))
        else:
            dfw = self.forward_layer.backward(dy)
            dbw = self.backward_layer.backward(dy_rev)
        self.grads = {**self.forward_layer.grads, **self.backward_layer.grads}
        return [dfw[0] + dbw[0], *dfw[1:], *dbw[1:]]


class TimeDistributed(L.Layer):
    """The twin of ``keras.layers.TimeDistributed``: ``layer`` on (N*T, ...) folded batches.

    Args:
        layer: the inner twin.
        keys: {this layer's weight key: the inner twin's key} (Keras keys a weight of
            the wrapper by its path inside it: ``bidirectional/forward_lstm/...``).
        name: the Keras layer's name, for errors.
    """

    mask_arguments = ("mask",)

    def __init__(self, layer, keys=None, name="time_distributed"):
        super().__init__()
        self.layer, self.name = layer, name
        self.keys = dict(keys) if keys is not None else {k: k for k in layer.params}
        for outer, inner in self.keys.items():
            self.params[outer] = layer.params[inner]
        self.state = layer.state  # the inner layer's state, under its own keys
        self.fixed_masks = None  # Keras's keep masks, one per time step (a Dropout inside)

    def get_config(self):
        return {"layer": {"class": L.class_key(type(self.layer)),
                          "config": self.layer.get_config()},
                "keys": self.keys, "name": self.name}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        keys = config["keys"]
        inner_class = L.LAYER_CLASSES[config["layer"]["class"]]
        inner = inner_class.from_config(config["layer"]["config"],
                                        {keys[k]: v for k, v in (params or {}).items()}, state)
        return cls(inner, keys, config["name"])

    def _hand_masks(self, n, t):
        """Gives an inner dropout (``fixed_mask``) the T keep masks Keras drew, one per
        time step of its loop, folded as the batch is: (N, T, ...) -> (N*T, ...)."""
        if not hasattr(self.layer, "fixed_mask"):
            return
        masks = self.fixed_masks or []
        if not masks:
            self.layer.fixed_mask = None
            return
        if len(masks) != t:
            raise ValueError(f"TimeDistributed {self.name!r}: Keras drew {len(masks)} masks "
                             f"for {t} time steps")
        steps = [np.broadcast_to(m, (n, *np.shape(m)[1:])) for m in masks]
        stacked = np.stack(steps, axis=1)  # (N, T, ...)
        self.layer.fixed_mask = stacked.reshape(n * t, *stacked.shape[2:])

    def forward(self, x, training=False, mask=None):
        n, t = x.shape[0], x.shape[1]
        for outer, inner in self.keys.items():
            self.layer.params[inner] = self.params[outer]
        if training and self.layer.state:
            raise ValueError(f"TimeDistributed {self.name!r}: in training its inner layer "
                             f"({type(self.layer).__name__}) updates its state from each "
                             "time step's batch in turn, which the folded twin does not do")
        if training and self.fixed_masks is not None:
            self._hand_masks(n, t)
        kwargs = {}
        if mask is not None and "mask" in getattr(self.layer, "mask_arguments", ()):
            kwargs["mask"] = np.asarray(mask).reshape(n * t, *np.shape(mask)[2:])
        y = self.layer.forward(x.reshape(n * t, *x.shape[2:]), training=training, **kwargs)
        self.x_shape = x.shape
        return y.reshape(n, t, *y.shape[1:])

    def backward(self, dout):
        n, t = self.x_shape[0], self.x_shape[1]
        dx = self.layer.backward(dout.reshape(n * t, *dout.shape[2:]))
        self.grads = {outer: self.layer.grads[inner] for outer, inner in self.keys.items()
                      if inner in self.layer.grads}
        return dx.reshape(self.x_shape)


__all__ = ["Bidirectional", "TimeDistributed"]
