"""Recurrent cells: one time step of SimpleRNN, LSTM and GRU, forward and backward.

A cell maps (x_t, states_{t-1}) to (output_t, states_t); ``recurrent.RNN`` loops it
over time and runs backpropagation through time (BPTT) by calling ``step_backward``
on the steps in reverse. The weights are Keras's, with the gates side by side:

    kernel            (D, G*U)   input x_t -> every gate
    recurrent_kernel  (U, G*U)   previous output h_{t-1} -> every gate
    bias              (G*U,)     (GRU with reset_after: (2, 3U), input and recurrent rows)

    SimpleRNN  G = 1   h = act(x K + b + h_prev R)
    LSTM       G = 4   gate order i, f, c, o (input, forget, cell candidate, output)
    GRU        G = 3   gate order z, r, h (update, reset, candidate)

Shape letters: N batch, D input features, U units, G gates.

Dropout inside a cell (Keras's ``dropout`` and ``recurrent_dropout``) multiplies
x_t and h_{t-1} by a mask drawn once per sequence: ``x_masks`` / ``h_masks`` are
None (no dropout), one (N, D) multiplier every gate reads, or one per gate (Keras's
``implementation=1``, which ``recurrent_dropout`` forces). A multiplier is 0 where a
unit is dropped and 1 / (1 - rate) where it is kept.

Each step keeps its own activation layers (a fresh copy of the cell's) in its cache,
so the backward pass of step t reads what the forward pass of step t computed.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import activations, core


def fresh(activation):
    """A new activation layer computing what ``activation`` computes (its own cache)."""
    return core.activation_from_config(core.activation_config(activation))


def gate_inputs(x, masks, gates):
    """What each gate reads: x itself, or x times its dropout multiplier (one for all
    gates, or one per gate)."""
    if masks is None:
        return [x] * gates
    if len(masks) == 1:
        return [x * masks[0]] * gates
    return [x * m for m in masks]


def gate_matmul(xs, W):
    """z = [xs[0] W_0 | xs[1] W_1 | ...]: (N, G*U), one product when all gates read one x."""
    if all(x is xs[0] for x in xs):
        return xs[0] @ W
    U = W.shape[1] // len(xs)
    return np.concatenate([x @ W[:, g * U:(g + 1) * U] for g, x in enumerate(xs)], axis=1)


def gate_matmul_backward(xs, masks, W, dz):
    """(dx, dW) of ``gate_matmul(gate_inputs(x, masks, G), W)`` for dz (N, G*U)."""
    if all(x is xs[0] for x in xs):
        dx = dz @ W.T
        return (dx if masks is None else dx * masks[0]), xs[0].T @ dz
    U = W.shape[1] // len(xs)
    blocks = [slice(g * U, (g + 1) * U) for g in range(len(xs))]
    dW = np.concatenate([x.T @ dz[:, b] for x, b in zip(xs, blocks)], axis=1)
    dx = sum((dz[:, b] @ W[:, b].T) * m for m, b in zip(masks, blocks))
    return dx, dW


def activation_settings(cell):
    """{key: name, key_args: the activation's arguments} of each of the cell's
    ``ACTIVATION_KEYS``: how a saved cell records its activations."""
    config = {}
    for key in cell.ACTIVATION_KEYS:
        args = core.activation_config(getattr(cell, key))
        config.update({key: args.pop("activation"), f"{key}_args": args})
    return config


def with_activations(cls, config):
    """``config`` with each of ``cls.ACTIVATION_KEYS`` an activation layer again."""
    config = dict(config)
    for key in cls.ACTIVATION_KEYS:
        config[key] = core.activation_from_config(
            {"activation": config.pop(key), **config.pop(f"{key}_args", {})})
    return config


def as_activation(activation):
    return activation if isinstance(activation, L.Layer) else activations.get(activation)


class Cell(L.Layer):
    """What the cells share: the three weights, the dropout rates, the gradient sums.

    Args:
        kernel: (D, G*U). recurrent_kernel: (U, G*U). bias: (G*U,) or None.
        activation: the output/candidate activation (a name or activation layer).
        dropout, recurrent_dropout: Keras's rates (used in training mode only).
        per_gate_masks: one dropout mask per gate (Keras's ``implementation=1``)
            instead of one for all gates.
    """

    gates = 1
    state_count = 1

    def __init__(self, kernel, recurrent_kernel, bias=None, activation="tanh", dropout=0.0,
                 recurrent_dropout=0.0, per_gate_masks=False):
        super().__init__()
        self.params["kernel"] = np.asarray(kernel)
        self.params["recurrent_kernel"] = np.asarray(recurrent_kernel)
        if bias is not None:
            self.params["bias"] = np.asarray(bias)
        self.units = self.params["recurrent_kernel"].shape[0]
        if self.params["kernel"].shape[1] != self.gates * self.units:
            raise ValueError(f"{type(self).__name__} needs kernel (D, {self.gates}*U) and "
                             f"recurrent_kernel (U, {self.gates}*U). Received: "
                             f"{self.params['kernel'].shape}, "
                             f"{self.params['recurrent_kernel'].shape}")
        self.activation = as_activation(activation)
        self.dropout, self.recurrent_dropout = float(dropout), float(recurrent_dropout)
        self.per_gate_masks = bool(per_gate_masks)

    @property
    def input_dim(self):
        return self.params["kernel"].shape[0]

    @property
    def state_sizes(self):
        return [self.units] * self.state_count

    @property
    def mask_count(self):
        """How many masks one dropout draws: one per gate, or one for all."""
        return self.gates if self.per_gate_masks else 1

    def applies(self, rate):
        """Whether Keras's cell applies a dropout of this rate in training: LSTM and GRU
        only for 0 < rate < 1 (SimpleRNN overrides: for any rate > 0)."""
        return 0.0 < rate < 1.0

    ACTIVATION_KEYS = ("activation",)

    def get_config(self):
        return {**activation_settings(self), "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "per_gate_masks": self.per_gate_masks}

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(params["kernel"], params["recurrent_kernel"], params.get("bias"),
                   **with_activations(cls, config))

    def zero_grads(self):
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    def add_grads(self, **grads):
        for key, value in grads.items():
            self.grads[key] += value


class SimpleRNNCell(Cell):
    """h_t = act(x_t K + b + h_{t-1} R); the output is h_t, the one state.

    Backward, with dh the gradient reaching h_t (from the output and the next step):
        da = act'(a) * dh;  dK += x^T da;  dR += h_{t-1}^T da;  db += sum_N da
        dx = da K^T;  dh_{t-1} = da R^T
    """

    def applies(self, rate):
        return rate > 0.0  # Keras's SimpleRNNCell drops whenever it drew a mask

    def step(self, x, states, x_masks=None, h_masks=None):
        (h_prev,) = states
        K, R, b = self.params["kernel"], self.params["recurrent_kernel"], self.params.get("bias")
        xs, hs = gate_inputs(x, x_masks, 1), gate_inputs(h_prev, h_masks, 1)
        a = xs[0] @ K  # (N, U)
        if b is not None:
            a = a + b
        a = a + hs[0] @ R
        act = fresh(self.activation)
        h = act.forward(a)
        return h, [h], (xs, hs, x_masks, h_masks, act)

    def step_backward(self, cache, dout, dstates):
        xs, hs, x_masks, h_masks, act = cache
        da = act.backward(dout + dstates[0])  # (N, U)
        dx, dK = gate_matmul_backward(xs, x_masks, self.params["kernel"], da)
        dh_prev, dR = gate_matmul_backward(hs, h_masks, self.params["recurrent_kernel"], da)
        self.add_grads(kernel=dK, recurrent_kernel=dR)
        if "bias" in self.params:
            self.add_grads(bias=da.sum(axis=0))
        return dx, [dh_prev]


class GatedCell(Cell):
    """A cell with a second activation for its gates (LSTM, GRU)."""

    def __init__(self, kernel, recurrent_kernel, bias=None, activation="tanh",
                 recurrent_activation="sigmoid", dropout=0.0, recurrent_dropout=0.0,
                 per_gate_masks=False):
        super().__init__(kernel, recurrent_kernel, bias, activation, dropout, recurrent_dropout,
                         per_gate_masks)
        self.recurrent_activation = as_activation(recurrent_activation)

    ACTIVATION_KEYS = ("activation", "recurrent_activation")


def lstm_gates(z, c_prev, activation, recurrent_activation):
    """The LSTM's gates from their pre-activations z (..., 4U), Keras's order i, f, c, o
    along the last axis, and the previous carry c_prev (..., U):

        i = σ(z_i)  f = σ(z_f)  g = act(z_c)  o = σ(z_o)    (σ recurrent_activation)
        c = f * c_prev + i * g;   h = o * act(c)

    Returns (h, c, cache for ``lstm_gates_backward``). The leading axes are any: (N,)
    for ``LSTMCell``, (N, *S) for a convolutional LSTM's positions."""
    U = c_prev.shape[-1]
    gate_acts = [fresh(a) for a in (recurrent_activation, recurrent_activation, activation,
                                    recurrent_activation)]
    i, f, g, o = (a.forward(z[..., k * U:(k + 1) * U]) for k, a in enumerate(gate_acts))
    c = f * c_prev + i * g
    cell_act = fresh(activation)
    act_c = cell_act.forward(c)
    h = o * act_c
    return h, c, (c_prev, i, f, g, o, gate_acts, cell_act, act_c)


def lstm_gates_backward(cache, dh, dc):
    """(dz (..., 4U), dc_prev) from dh, the gradient reaching h (output + next step's),
    and dc, the next step's gradient of the carry:

        do = dh * act(c);  dc += act'(c) * dh * o
        di = dc * g;  df = dc * c_prev;  dg = dc * i;  dc_prev = dc * f
        dz = [σ'(z_i) di | σ'(z_f) df | act'(z_c) dg | σ'(z_o) do]"""
    c_prev, i, f, g, o, gate_acts, cell_act, act_c = cache
    do = dh * act_c
    dc = dc + cell_act.backward(dh * o)
    di, df, dg = dc * g, dc * c_prev, dc * i
    dz = np.concatenate([a.backward(d) for a, d in zip(gate_acts, (di, df, dg, do))], axis=-1)
    return dz, dc * f


class LSTMCell(GatedCell):
    """Long short-term memory, Keras's gate order i, f, c, o; states (h, c).

        z = x_t K + h_{t-1} R + b                      (N, 4U), split in four
        i = σ(z_i)  f = σ(z_f)  g = tanh(z_c)  o = σ(z_o)   (σ recurrent_activation,
                                                           tanh activation)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)                            output and first state

    Backward, dh (output + next step's dh) and dc (next step's dc):
        do = dh * tanh(c_t);  dc += tanh'(c_t) * dh * o
        di = dc * g;  df = dc * c_{t-1};  dg = dc * i;  dc_{t-1} = dc * f
        dz = [σ'(z_i) di | σ'(z_f) df | tanh'(z_c) dg | σ'(z_o) do]
        dK += x^T dz;  dR += h_{t-1}^T dz;  db += sum_N dz;  dx = dz K^T;  dh_{t-1} = dz R^T

    The gates and their backward are ``lstm_gates`` / ``lstm_gates_backward``, which the
    convolutional LSTM (``conv_lstm``) shares.
    """

    gates = 4
    state_count = 2

    def step(self, x, states, x_masks=None, h_masks=None):
        h_prev, c_prev = states
        xs, hs = gate_inputs(x, x_masks, 4), gate_inputs(h_prev, h_masks, 4)
        z = (gate_matmul(xs, self.params["kernel"])  # (N, 4U)
             + gate_matmul(hs, self.params["recurrent_kernel"]))
        if "bias" in self.params:
            z += self.params["bias"]
        h, c, gates = lstm_gates(z, c_prev, self.activation, self.recurrent_activation)
        return h, [h, c], (xs, hs, x_masks, h_masks, gates)

    def step_backward(self, cache, dout, dstates):
        xs, hs, x_masks, h_masks, gates = cache
        dz, dc_prev = lstm_gates_backward(gates, dout + dstates[0], dstates[1])
        dx, dK = gate_matmul_backward(xs, x_masks, self.params["kernel"], dz)
        dh_prev, dR = gate_matmul_backward(hs, h_masks, self.params["recurrent_kernel"], dz)
        self.add_grads(kernel=dK, recurrent_kernel=dR)
        if "bias" in self.params:
            self.add_grads(bias=dz.sum(axis=0))
        return dx, [dh_prev, dc_prev]


class GRUCell(GatedCell):
    """Gated recurrent unit, Keras's gate order z, r, h; one state h.

        x-part  zx = x_t K + b_in                       (N, 3U)
        reset_after=True (Keras's default, cuDNN's; bias (2, 3U) = [b_in; b_rec]):
            zh = h_{t-1} R + b_rec
            z = σ(zx_z + zh_z);  r = σ(zx_r + zh_r);  hh = tanh(zx_h + r * zh_h)
        reset_after=False (bias (3U,)):
            z = σ(zx_z + h_{t-1} R_z);  r = σ(zx_r + h_{t-1} R_r)
            hh = tanh(zx_h + (r * h_{t-1}) R_h)
        h_t = z * h_{t-1} + (1 - z) * hh

    Backward, dh (output + next step's):
        dz = dh * (h_{t-1} - hh);  dhh = dh * (1 - z);  dh_{t-1} = dh * z + ...
        da = tanh'(.) dhh; reset_after: dr = da * zh_h, dzh_h = da * r;
        otherwise: d(r h) = da R_h^T, dr = d(r h) * h_{t-1}, dh_{t-1} += d(r h) * r
        then through σ for z and r, and the products as in ``SimpleRNNCell``.
    """

    gates = 3

    def __init__(self, kernel, recurrent_kernel, bias=None, activation="tanh",
                 recurrent_activation="sigmoid", dropout=0.0, recurrent_dropout=0.0,
                 per_gate_masks=False, reset_after=True):
        super().__init__(kernel, recurrent_kernel, bias, activation, recurrent_activation,
                         dropout, recurrent_dropout, per_gate_masks)
        self.reset_after = bool(reset_after)
        want = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
        if bias is not None and np.shape(bias) != want:
            raise ValueError(f"GRUCell with reset_after={self.reset_after} needs bias of shape "
                             f"{want}. Received: {np.shape(bias)}")

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}

    def _biases(self):
        b = self.params.get("bias")
        if b is None:
            return None, None
        return (b[0], b[1]) if self.reset_after else (b, None)

    def step(self, x, states, x_masks=None, h_masks=None):
        (h_prev,) = states
        U = self.units
        K, R = self.params["kernel"], self.params["recurrent_kernel"]
        b_in, b_rec = self._biases()
        xs, hs = gate_inputs(x, x_masks, 3), gate_inputs(h_prev, h_masks, 3)
        zx = gate_matmul(xs, K)  # (N, 3U)
        if b_in is not None:
            zx = zx + b_in
        act_z, act_r, act_h = (fresh(self.recurrent_activation),
                               fresh(self.recurrent_activation), fresh(self.activation))
        if self.reset_after:
            zh = gate_matmul(hs, R)  # (N, 3U)
            if b_rec is not None:
                zh = zh + b_rec
            z = act_z.forward(zx[:, :U] + zh[:, :U])
            r = act_r.forward(zx[:, U:2 * U] + zh[:, U:2 * U])
            rh = zh[:, 2 * U:]  # what r resets: the candidate's recurrent part
            hh = act_h.forward(zx[:, 2 * U:] + r * rh)
        else:
            zh = gate_matmul(hs[:2], R[:, :2 * U])  # (N, 2U): z and r only
            z = act_z.forward(zx[:, :U] + zh[:, :U])
            r = act_r.forward(zx[:, U:2 * U] + zh[:, U:])
            rh = r * hs[2]  # the reset previous output
            hh = act_h.forward(zx[:, 2 * U:] + rh @ R[:, 2 * U:])
        h = z * h_prev + (1 - z) * hh
        return h, [h], (xs, hs, x_masks, h_masks, h_prev, z, r, rh, hh, act_z, act_r, act_h)

    def step_backward(self, cache, dout, dstates):
        xs, hs, x_masks, h_masks, h_prev, z, r, rh, hh, act_z, act_r, act_h = cache
        U = self.units
        R = self.params["recurrent_kernel"]
        dh = dout + dstates[0]
        dz_gate = dh * (h_prev - hh)
        dh_prev = dh * z
        da_h = act_h.backward(dh * (1 - z))  # (N, U), before the candidate's activation
        if self.reset_after:
            dr = da_h * rh
            da_z, da_r = act_z.backward(dz_gate), act_r.backward(dr)
            dzx = np.concatenate([da_z, da_r, da_h], axis=1)
            dzh = np.concatenate([da_z, da_r, da_h * r], axis=1)
            dhp, dR = gate_matmul_backward(hs, h_masks, R, dzh)
            dbias = np.stack([dzx.sum(axis=0), dzh.sum(axis=0)])
        else:
            drh = da_h @ R[:, 2 * U:].T  # d(r * h_{t-1})
            dR_h = rh.T @ da_h
            dr = drh * hs[2]
            dh_reset = drh * r
            if h_masks is not None:
                dh_reset = dh_reset * h_masks[-1]
            da_z, da_r = act_z.backward(dz_gate), act_r.backward(dr)
            dzx = np.concatenate([da_z, da_r, da_h], axis=1)
            dhp, dR_zr = gate_matmul_backward(
                hs[:2], None if h_masks is None else h_masks[:2], R[:, :2 * U],
                np.concatenate([da_z, da_r], axis=1))
            dhp = dhp + dh_reset
            dR = np.concatenate([dR_zr, dR_h], axis=1)
            dbias = dzx.sum(axis=0)
        dx, dK = gate_matmul_backward(xs, x_masks, self.params["kernel"], dzx)
        self.add_grads(kernel=dK, recurrent_kernel=dR)
        if "bias" in self.params:
            self.add_grads(bias=dbias)
        return dx, [dh_prev + dhp]


CELLS = {cls.__name__: cls for cls in (SimpleRNNCell, LSTMCell, GRUCell)}

__all__ = ["CELLS", "Cell", "GRUCell", "LSTMCell", "SimpleRNNCell", "fresh", "gate_inputs",
           "gate_matmul", "gate_matmul_backward", "lstm_gates", "lstm_gates_backward"]
