"""The loop over time: ``RNN(cells)``, the twin of ``keras.layers.RNN`` and of ``SimpleRNN``,
``LSTM`` and ``GRU`` (an RNN of one cell of ``recurrent_cells``).

Forward, for t = 0 .. T-1 (T-1 .. 0 with ``go_backwards``, whose outputs stay in that
processing order, as Keras returns them):

    y_t, s_t = cell.step(x_t, s_{t-1})          s_{-1}: zeros, or the given initial state

Several cells (Keras's ``StackedRNNCells``) run one after another inside each step:
cell k reads cell k-1's output, keeps its own states, and the last cell's output is y_t.

A Keras mask (N, T), True where a step counts, follows Keras's time loop
(``backend.rnn``): at a masked step the states keep their previous value, and the
output is the previous step's (masked) output, zeros before the first step, or
zeros (``zero_output_for_mask``, which ``Bidirectional`` sets with return_sequences):

    s_t = where(m_t, s_t, s_{t-1});   y_t = where(m_t, y_t, y_{t-1} or 0)

Backward (BPTT) walks the steps in reverse: the gradient of each output y_t and the
gradient carried from step t+1 into s_t meet in ``cell.step_backward``, which returns
the gradient of x_t and of s_{t-1}; a masked step passes them by its ``where``s.
Weight gradients are summed over the steps.

Inputs (``multi_input``): ``[x]`` or ``[x, *initial states]``, as Keras's
``call(sequences, initial_state=...)`` receives them (LSTM: [x, h0, c0]; stacked
cells: each cell's states in turn). Outputs: y (N, T, U) with ``return_sequences``,
else the last y (N, U); with ``return_state`` (``multi_output``) a tuple
(y, *final states).

Dropout (training mode): Keras draws each cell's masks once per call, in this order:
the input masks (when ``dropout`` > 0), then the recurrent ones (``recurrent_dropout``
> 0), cell after cell. ``fixed_masks`` set to that list of boolean keep masks makes
the twin use them (``tfmodels.parity.compare`` hands it the draws Keras made); else
it draws its own from ``seed``.

Shape letters: N batch, T time steps, D input features, U units.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import recurrent_cells as C


def where_kept(keep, new, old):
    """Keras's masked update: ``new`` where the step counts (keep (N, 1)), else ``old``."""
    return np.where(keep, new, old)


class RNN(L.Layer):
    """A recurrent layer: ``cells`` (one, or several stacked) looped over time.

    Args:
        cells: a cell of ``recurrent_cells`` or a list of them (stacked).
        return_sequences, return_state, go_backwards, zero_output_for_mask: Keras's.
        prefixes: the key each cell's weights have in ``params`` before their own name
            ("" for a lone cell: ``kernel``; ``"stacked_rnn_cells/lstm_cell/"`` ...).
        seed: for the dropout masks it draws itself.
        output_dtype: the dtype of its outputs and returned states (Keras's layer compute
            dtype, which may differ from its cells'); None: the input's.
    """

    multi_input = True
    mask_arguments = ("mask",)

    def __init__(self, cells, return_sequences=False, return_state=False, go_backwards=False,
                 zero_output_for_mask=False, prefixes=None, seed=None, output_dtype=None):
        super().__init__()
        self.cells = list(cells) if isinstance(cells, (list, tuple)) else [cells]
        self.prefixes = list(prefixes) if prefixes is not None else [""] * len(self.cells)
        if len(self.prefixes) != len(self.cells) or len(set(self.prefixes)) != len(self.cells):
            raise ValueError(f"RNN needs one distinct key prefix per cell. Received: "
                             f"prefixes={self.prefixes} for {len(self.cells)} cells")
        for cell, prefix in zip(self.cells, self.prefixes):
            for key, value in cell.params.items():
                self.params[prefix + key] = value
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.multi_output = self.return_state
        self.seed = seed
        self.output_dtype = None if output_dtype is None else np.dtype(output_dtype).name
        self.rng = np.random.default_rng(None if seed is None else seed % 2**64)
        self.fixed_masks = None  # Keras's keep masks, in its draw order (module docstring)

    # -- configuration

    def get_config(self):
        return {"cells": [{"class": type(cell).__name__, "config": cell.get_config()}
                          for cell in self.cells],
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "go_backwards": self.go_backwards,
                "zero_output_for_mask": self.zero_output_for_mask,
                "prefixes": self.prefixes, "seed": self.seed, "output_dtype": self.output_dtype}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        config = dict(config)
        cells = []
        for spec, prefix in zip(config.pop("cells"), config["prefixes"]):
            cell_class = C.CELLS[spec["class"]]
            own = {key[len(prefix):]: value for key, value in params.items()
                   if key.startswith(prefix) and "/" not in key[len(prefix):]}
            cells.append(cell_class.from_config(spec["config"], own))
        return cls(cells, **config)

    @property
    def state_sizes(self):
        """The sizes of the flat list of states, cell after cell."""
        return [size for cell in self.cells for size in cell.state_sizes]

    @property
    def compute_dtype(self):
        """The dtype the cells compute in: their weights' (Keras casts to each cell's
        compute dtype, which may differ from the RNN layer's)."""
        return self.cells[0].params["kernel"].dtype

    @property
    def draw_count(self):
        """How many dropout masks one call draws (Keras draws them in inference too)."""
        return sum(cell.mask_count * ((cell.dropout > 0) + (cell.recurrent_dropout > 0))
                   for cell in self.cells)

    def _share_weights(self):
        """Each cell computes with the arrays in ``self.params`` (a network may have put
        a shared layer's arrays there)."""
        for cell, prefix in zip(self.cells, self.prefixes):
            for key in cell.params:
                cell.params[key] = self.params[prefix + key]

    # -- forward

    def forward(self, inputs, training=False, mask=None):
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        x, given = inputs[0], inputs[1:]  # x (N, T, D)
        self._share_weights()
        self.out_dtype = np.dtype(self.output_dtype or x.dtype)
        self.in_dtype, self.given_dtypes = x.dtype, [np.asarray(s).dtype for s in given]
        x = x.astype(self.compute_dtype, copy=False)  # Keras's cells cast to their own dtype
        N, T = x.shape[0], x.shape[1]
        if given and len(given) != len(self.state_sizes):
            raise ValueError(f"RNN takes {len(self.state_sizes)} initial states "
                             f"({self.state_sizes} units). Received: {len(given)}")
        flat = ([np.asarray(s, x.dtype) for s in given] if given else
                [np.zeros((N, u), x.dtype) for u in self.state_sizes])
        states = self._per_cell(flat)
        self.dropout = self._dropout_multipliers(x, training)
        seq = x[:, ::-1] if self.go_backwards else x
        keep = None
        if mask is not None:
            keep = np.asarray(mask, bool)[:, ::-1] if self.go_backwards else np.asarray(mask, bool)
        y_prev = np.zeros((N, self.cells[-1].units), x.dtype)
        self.caches, outputs = [], []
        for t in range(T):
            y, new_states, caches = self._step(seq[:, t], states)
            if keep is not None:
                k = keep[:, t, None]  # (N, 1)
                y = where_kept(k, y, np.zeros_like(y) if self.zero_output_for_mask else y_prev)
                new_states = [[where_kept(k, s, s_old) for s, s_old in zip(new, old)]
                              for new, old in zip(new_states, states)]
            self.caches.append(caches)
            outputs.append(y)
            states, y_prev = new_states, y
        self.keep, self.shape, self.given, self.dtype = keep, x.shape, len(given), x.dtype
        output = np.stack(outputs, axis=1) if self.return_sequences else outputs[-1]
        output = output.astype(self.out_dtype, copy=False)  # Keras casts back to the layer's
        if self.return_state:
            return (output, *[s.astype(self.out_dtype, copy=False)
                              for cell_states in states for s in cell_states])
        return output

    def _per_cell(self, flat):
        """The flat list of states split cell by cell."""
        out, start = [], 0
        for cell in self.cells:
            out.append(list(flat[start:start + cell.state_count]))
            start += cell.state_count
        return out

    def _step(self, x_t, states):
        """One time step through the stacked cells: (y_t, new states, caches)."""
        new_states, caches = [], []
        h = x_t
        for cell, cell_states, (x_masks, h_masks) in zip(self.cells, states, self.dropout):
            h, cell_new, cache = cell.step(h, cell_states, x_masks, h_masks)
            new_states.append(cell_new)
            caches.append(cache)
        return h, new_states, caches

    def _dropout_multipliers(self, x, training):
        """Per cell (input multipliers, recurrent multipliers), each None or a list of
        (N, D) / (N, U) arrays: 0 where dropped, 1 / (1 - rate) where kept."""
        if not training:
            return [(None, None)] * len(self.cells)
        draws = None if self.fixed_masks is None else list(self.fixed_masks)
        wanted = self.draw_count
        if draws is not None and len(draws) != wanted:
            raise ValueError(f"RNN with cells {[type(c).__name__ for c in self.cells]} draws "
                             f"{wanted} dropout masks. Received: fixed_masks with {len(draws)}")
        N, out = x.shape[0], []
        size = x.shape[2]
        for cell in self.cells:
            pair = []
            for rate, width in ((cell.dropout, size), (cell.recurrent_dropout, cell.units)):
                masks = None
                if rate > 0:  # Keras draws whenever the rate is positive...
                    keeps = [self._keep(draws, (N, width), rate, x.dtype)
                             for _ in range(cell.mask_count)]
                    if cell.applies(rate):  # ... and uses them where its cell says
                        scale = x.dtype.type(1 / (1 - rate))
                        masks = [np.where(k, scale, x.dtype.type(0)) for k in keeps]
                pair.append(masks)
            out.append(tuple(pair))
            size = cell.units
        return out

    def _keep(self, draws, shape, rate, dtype):
        if draws is not None:
            keep = np.asarray(draws.pop(0), bool)
            if keep.shape != shape:
                raise ValueError(f"a fixed dropout mask of shape {keep.shape}, where the RNN "
                                 f"draws {shape}")
            return keep
        draw_dtype = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
        return self.rng.random(shape, dtype=draw_dtype) >= draw_dtype.type(rate)

    def compute_mask(self, inputs, mask=None):
        """Keras's: the input mask for the sequence output, None for the last output and
        for each returned state."""
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_sizes)
        return output_mask

    # -- backward (BPTT)

    def backward(self, dout):
        if self.return_state:
            dout, *dfinal = dout
        else:
            dfinal = [None] * len(self.state_sizes)
        def cast(d):  # to the dtype the cells computed in
            return None if d is None else np.asarray(d).astype(self.dtype, copy=False)

        dout, dfinal = cast(dout), [cast(d) for d in dfinal]
        N, T = self.shape[0], self.shape[1]
        for cell in self.cells:
            cell.zero_grads()
        dtype = self.dtype

        def zeros(u):
            return np.zeros((N, u), dtype)

        dstates = self._per_cell([zeros(u) if d is None else d
                                  for d, u in zip(dfinal, self.state_sizes)])
        units = self.cells[-1].units
        if dout is None:
            dout = np.zeros((N, T, units) if self.return_sequences else (N, units), dtype)
        dy_carry = zeros(units)  # the gradient reaching y_{t-1} through a masked step t
        dxs = [None] * T
        for t in reversed(range(T)):
            if self.return_sequences:
                dy = dout[:, t] + dy_carry
            else:
                dy = dout + dy_carry if t == T - 1 else dy_carry
            skipped = None
            if self.keep is not None:
                k = self.keep[:, t, None]
                zero = dtype.type(0)
                dy_carry = zeros(units) if self.zero_output_for_mask else np.where(k, zero, dy)
                dy = np.where(k, dy, zero)
                skipped = [[np.where(k, zero, d) for d in ds] for ds in dstates]
                dstates = [[np.where(k, d, zero) for d in ds] for ds in dstates]
            else:
                dy_carry = zeros(units)
            dxs[t], dstates = self._step_backward(self.caches[t], dy, dstates)
            if skipped is not None:
                dstates = [[a + b for a, b in zip(ds, sk)] for ds, sk in zip(dstates, skipped)]
        dx = np.stack(dxs, axis=1)
        if self.go_backwards:
            dx = dx[:, ::-1]
        for cell, prefix in zip(self.cells, self.prefixes):
            for key, value in cell.grads.items():
                self.grads[prefix + key] = value
        dinitial = [d.astype(dt, copy=False) for d, dt in
                    zip([d for ds in dstates for d in ds], self.given_dtypes)]
        return [dx.astype(self.in_dtype, copy=False), *dinitial]

    def _step_backward(self, caches, dy, dstates):
        """One step back through the stacked cells, last cell first: (dx_t, d states_{t-1})."""
        dprev = [None] * len(self.cells)
        for k in reversed(range(len(self.cells))):
            dy, dprev[k] = self.cells[k].step_backward(caches[k], dy, dstates[k])
        return dy, dprev


__all__ = ["RNN", "where_kept"]
