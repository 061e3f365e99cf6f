"""Multi-head attention: the twins of ``keras.layers.MultiHeadAttention`` and
``GroupedQueryAttention``.

Each head h has its own projections of the query, key and value (one ``EinsumDense``
each, computing every head at once), attends on its own, and one output projection
mixes the heads back:

    Q = query @ Wq + bq      (N, T, H, K)   T query steps, H heads, K = key_dim
    K = key @ Wk + bk        (N, S, H, K)   S key/value steps
    V = value @ Wv + bv      (N, S, H, Kv)
    scores  = (Q / sqrt(K)) K^T            (N, H, T, S)   per head
    weights = softmax(masked(scores))      over S
    O = dropout(weights) V                 (N, T, H, Kv)
    out = O @ Wo + bo                      (N, T, E), E = the query's features

Backward runs the same steps in reverse: dO = dout Wo^T; dweights = dO V^T and
dV = weights^T dO; the softmax's backward gives dscores; dQ = dscores K / sqrt(K),
dK = dscores^T (Q / sqrt(K)); each projection's backward gives its weight gradients
and its input's gradient.

With ``attention_axes`` the "steps" are several axes (an image's rows and columns):
the equations below name them by letters, as Keras builds them. Grouped-query
attention shares each key/value head among ``H / Hkv`` query heads: K and V are
projected to Hkv heads and repeated; their gradients are summed back per group.

Masks: the attention mask (N, T, S), True where query step t may see value step s,
is the AND of the ``attention_mask`` input, the Keras masks of the query (N, T, 1),
value and key (N, 1, S), ``use_causal_mask`` (s <= t) and ``sliding_window``
(|t - s| < window). Keras computes the fast path (``ops.dot_product_attention``: no
dropout, no returned scores, one attention axis) with another fill than the general
path: a query step that sees nothing gets the mean of all values there, zeros on
the general path (``attention.masked_softmax``).
"""

import math
import string

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import dropout as dropout_layers
from numpy_ref.layers.attention import causal_mask, masked_softmax, masked_softmax_backward
from numpy_ref.layers.einsum import EinsumDense, operand_grad, split

FAST_PATH_FILL = 3.38953e38 * -0.7  # ops.dot_product_attention's fill (TF backend)
PROJECTIONS = ("query", "key", "value", "gate", "attention_output")


def projection_equation(free, bound, out):
    """Keras's projection equation: ``free`` axes kept, ``bound`` summed, ``out`` new
    ones (the heads and their size): (2, 1, 2) -> "abc,cde->abde"."""
    letters = string.ascii_lowercase
    kept, summed, new = (letters[:free], letters[free:free + bound],
                         letters[free + bound:free + bound + out])
    return f"{kept}{summed},{summed}{new}->{kept}{new}"


def attention_equations(rank, attention_axes):
    """(scores equation "key,query->scores", combine equation "weights,value->output")
    for projected tensors of ``rank``: the axes not attended over (the batch, other
    axes, the heads) are shared; the attended axes get new letters on the key side."""
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch = [i for i in range(rank) if i not in attention_axes and i != rank - 1]
    extra = iter(letters[rank:])
    source = "".join(target[i] if i in batch or i == rank - 1 else next(extra)
                     for i in range(rank))
    product = "".join([target[i] for i in batch] + [target[i] for i in attention_axes]
                      + [source[i] for i in attention_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}"


class MultiHeadAttention(L.Layer):
    """The twin of ``keras.layers.MultiHeadAttention`` (and, with
    ``num_key_value_heads``, of ``GroupedQueryAttention``).

    Args:
        num_heads, key_dim, value_dim: H, K and Kv.
        output_shape: the output's trailing shape (default the query's features).
        attention_axes: the attended axes of the projected tensors (Keras's normalised
            ``layer._attention_axes``); None: every axis between the batch and the heads.
        dropout, seed: dropout on the weights (``fixed_masks``: [the keep mask] to use
            instead of drawing one, e.g. the one Keras drew).
        use_causal_mask, return_attention_scores: the call's arguments.
        has_key, has_attention_mask: whether the call was given ``key`` and
            ``attention_mask``: the inputs are [query, value, key?, attention_mask?], in
            the order of Keras's ``call``.
        sliding_window: Keras's band width, or None.
        num_key_value_heads: GroupedQueryAttention's Hkv (None: H, plain MHA).
        scale: the 1/sqrt(K) Keras computes with: a float64 rounded through float32,
            as TensorFlow casts the Python float.
        **weights: "query/kernel", "query/bias", ... (keyed by their path in the layer).

    Keras masks: ``query_mask`` (N, T), ``value_mask`` and ``key_mask`` (N, S).
    Output: (N, T, *output_shape); with ``return_attention_scores`` (out, weights),
    weights (N, H, T, S) as the softmax made them (before dropout), as Keras returns.
    """

    multi_input = True
    mask_arguments = ("query_mask", "value_mask", "key_mask")

    def __init__(self, num_heads, key_dim, value_dim=None, attention_axes=None,
                 dropout=0.0, seed=None, use_causal_mask=False,
                 return_attention_scores=False, has_key=False, has_attention_mask=False,
                 sliding_window=None, num_key_value_heads=None, scale=None, **weights):
        super().__init__()
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim or key_dim
        self.attention_axes = None if attention_axes is None else tuple(attention_axes)
        self.dropout, self.seed = dropout, seed
        self.use_causal_mask = bool(use_causal_mask)
        self.return_attention_scores = bool(return_attention_scores)
        self.multi_output = self.return_attention_scores
        self.has_key, self.has_attention_mask = bool(has_key), bool(has_attention_mask)
        self.sliding_window = sliding_window
        self.num_key_value_heads = num_key_value_heads
        self.scale = float(np.float32(1 / math.sqrt(key_dim))) if scale is None else scale
        self.params.update({key: np.asarray(value) for key, value in weights.items()})
        self.dropout_layer = dropout_layers.KerasDropout(dropout, seed=seed)
        self.fixed_masks = None
        self.sublayers = {}

    def get_config(self):
        names = ("num_heads", "key_dim", "value_dim", "attention_axes", "dropout", "seed",
                 "use_causal_mask", "return_attention_scores", "has_key",
                 "has_attention_mask", "sliding_window", "num_key_value_heads", "scale")
        config = {name: getattr(self, name) for name in names}
        config["attention_axes"] = (None if self.attention_axes is None
                                    else list(self.attention_axes))
        return config

    # -- the projections: EinsumDense layers computing with this layer's weights

    def _projection(self, name, x, heads, size, bound=1):
        """The ``name`` projection for an input of x's rank, built at the first call."""
        if name not in self.sublayers:
            out = [heads, size] if name != "attention_output" else None
            if name == "attention_output":
                out_rank = self.params["attention_output/kernel"].ndim - 2
                equation = projection_equation(x.ndim - 2, 2, out_rank)
            else:
                equation = projection_equation(x.ndim - 1, bound, len(out))
            activation = "sigmoid" if name == "gate" else "linear"
            self.sublayers[name] = EinsumDense(equation, self.params[f"{name}/kernel"],
                                               self.params.get(f"{name}/bias"), activation)
        layer = self.sublayers[name]
        layer.params["kernel"] = self.params[f"{name}/kernel"]  # the arrays held now
        if f"{name}/bias" in self.params:
            layer.params["bias"] = self.params[f"{name}/bias"]
        return layer

    def _attention_mask(self, query, value, given, query_mask, value_mask, key_mask):
        """The AND of every mask given (None when there is none), (N or 1, T, S)."""
        masks = []
        if query_mask is not None:
            masks.append(np.asarray(query_mask, bool)[..., None])  # (N, T, 1)
        for m in (value_mask, key_mask):
            if m is not None:
                masks.append(np.asarray(m, bool)[..., None, :])  # (N, 1, S)
        t, s = query.shape[1], value.shape[1]
        if self.use_causal_mask:
            masks.append(causal_mask(t, s))
        if self.sliding_window is not None:
            band = np.abs(np.arange(t)[:, None] - np.arange(s)[None, :]) < self.sliding_window
            masks.append(band[None])
        if given is not None:
            masks.append(np.asarray(given) != 0)
        if not masks:
            return None
        mask = masks[0]
        for m in masks[1:]:
            mask = mask & m
        return mask

    def forward(self, inputs, training=False, query_mask=None, value_mask=None,
                key_mask=None):
        query, value = inputs[0], inputs[1]
        key = inputs[2] if self.has_key else value
        given = inputs[-1] if self.has_attention_mask else None
        self.n_inputs = len(inputs)
        mask = self._attention_mask(query, value, given, query_mask, value_mask, key_mask)
        kv_heads = self.num_key_value_heads or self.num_heads
        q = self._projection("query", query, self.num_heads, self.key_dim).forward(query)
        k = self._projection("key", key, kv_heads, self.key_dim).forward(key)
        v = self._projection("value", value, kv_heads, self.value_dim).forward(value)
        if self.num_key_value_heads:  # each key/value head serves H / Hkv query heads
            repeats = self.num_heads // self.num_key_value_heads
            k, v = np.repeat(k, repeats, axis=2), np.repeat(v, repeats, axis=2)
        rank = q.ndim
        axes = self.attention_axes or tuple(range(1, rank - 2))
        self.dot_equation, self.combine_equation = attention_equations(rank, axes)
        self.softmax_axes = tuple(range(-len(axes), 0))
        if mask is not None:  # expanded to the scores' rank before the attended axes
            while mask.ndim < rank - 1 + len(axes):
                mask = np.expand_dims(mask, -2 * len(axes) - 1)
        self.mask = mask
        # Keras's fast path: no dropout, no scores returned, one attention axis (rank 4)
        fast = self.dropout == 0 and not self.return_attention_scores and rank == 4
        self.q_scaled = q * q.dtype.type(self.scale)
        self.k, self.v = k, v
        scores = np.einsum(self.dot_equation, k, self.q_scaled)  # (N, H, T, S)
        self.weights = masked_softmax(
            scores, mask, self.softmax_axes, FAST_PATH_FILL if fast else -1e9,
            zero_masked=not fast)
        self.dropout_layer.fixed_mask = self.fixed_masks[0] if self.fixed_masks else None
        self.dropped = self.dropout_layer.forward(self.weights, training=training)
        o = np.einsum(self.combine_equation, self.dropped, v)  # (N, T, H, Kv)
        self.o = o
        if "gate/kernel" in self.params:  # out projection of O * sigmoid(query gate)
            self.gate = self._projection("gate", query, self.num_heads, self.value_dim)
            self.g = self.gate.forward(query)
            o = o * self.g
        out = self._projection("attention_output", o, None, None).forward(o)
        return (out, self.weights) if self.return_attention_scores else out

    def compute_mask(self, inputs, query_mask=None, value_mask=None, key_mask=None):
        """The query's mask, on the (first) output, as Keras sets it."""
        return query_mask

    def backward(self, dout):
        dscores_out = None
        if self.return_attention_scores:
            dout, dscores_out = dout
        out_layer = self.sublayers["attention_output"]
        if dout is None:  # only the scores reached the loss
            dout = np.zeros(self._out_shape(), self.o.dtype)
        do = out_layer.backward(dout)
        dquery_gate = None
        if "gate/kernel" in self.params:
            dquery_gate = self.gate.backward(do * self.o)
            do = do * self.g
        ddropped = operand_grad(do, *self._combine_terms("weights"))
        dv = operand_grad(do, *self._combine_terms("value"))
        dweights = self.dropout_layer.backward(ddropped)
        if dscores_out is not None:
            dweights = dweights + dscores_out
        dscores = masked_softmax_backward(dweights, self.weights, self.mask,
                                          self.softmax_axes)
        (k_term, q_term), s_term = split(self.dot_equation)
        dk = operand_grad(dscores, s_term, self.q_scaled, q_term, k_term, self.k.shape)
        dq = operand_grad(dscores, s_term, self.k, k_term, q_term, self.q_scaled.shape)
        dq = dq * dq.dtype.type(self.scale)
        if self.num_key_value_heads:  # the repeated heads' gradients, summed per group
            dk, dv = (self._sum_groups(d) for d in (dk, dv))
        dquery = self.sublayers["query"].backward(dq)
        if dquery_gate is not None:
            dquery = dquery + dquery_gate
        dkey = self.sublayers["key"].backward(dk)
        dvalue = self.sublayers["value"].backward(dv)
        for name, layer in self.sublayers.items():
            for key, grad in layer.grads.items():
                self.grads[f"{name}/{key}"] = grad
        grads = [dquery, dvalue if self.has_key else dvalue + dkey]
        if self.has_key:
            grads.append(dkey)
        if self.has_attention_mask:
            grads.append(None)  # a mask: no gradient
        return grads

    def _out_shape(self):
        o = self.o
        kernel = self.params["attention_output/kernel"]
        return (*o.shape[:-2], *kernel.shape[2:])

    def _combine_terms(self, which):
        """operand_grad's arguments for the combine einsum's ``which`` operand."""
        (w_term, v_term), o_term = split(self.combine_equation)
        if which == "weights":
            return o_term, self.v, v_term, w_term, self.dropped.shape
        return o_term, self.dropped, w_term, v_term, self.v.shape

    def _sum_groups(self, d):
        n, s, heads, size = d.shape
        return d.reshape(n, s, self.num_key_value_heads, heads // self.num_key_value_heads,
                         size).sum(axis=3)


__all__ = ["MultiHeadAttention", "attention_equations", "projection_equation"]
