"""Attention: each query position takes a weighted average of the value vectors, the
weights a softmax of how well the query matches each key.

    scores  = score(Q, K)                 (N, Tq, Tv)  how well query t matches key s
    scores  = masked(scores)              positions a mask rules out get a large negative
    weights = softmax(scores, axis=-1)    each row sums to 1
    weights = dropout(weights)            training only
    out     = weights @ V                 (N, Tq, D)

and backward, step by step in reverse:

    dweights = dout @ V^T,  dV = weights^T @ dout
    dweights through the dropout (kept entries scaled by 1 / (1 - rate), the rest 0)
    dscores  = weights * (dweights - sum(dweights * weights, axis=-1))   (softmax)
    dQ, dK   from dscores through the score function.

``Attention`` (Luong) scores with a dot product, Q K^T (times a learned ``scale``), or
with ``score_mode="concat"``; ``AdditiveAttention`` (Bahdanau) with
sum(scale * tanh(q + k)). ``masked_softmax`` is the step both these and
``multi_head_attention`` share.

Shape letters: N batch, Tq query steps, Tv value (and key) steps, D features.
"""

import numpy as np

from numpy_ref import functions as F
from numpy_ref import layers as L
from numpy_ref.layers import dropout as dropout_layers


def masked_softmax(scores, mask, axis=-1, fill=-1e9, zero_masked=True):
    """softmax(where(mask, scores, fill)) over ``axis`` (an int or a tuple), then, with
    ``zero_masked``, zeros where the mask is False: Keras's ``Softmax(mask=...)``
    (fill -1e9). A row masked everywhere is then all zeros; without ``zero_masked`` it
    is uniform (what ``keras.ops.dot_product_attention`` does, whose fill is
    -0.7 * 3.38953e38). ``mask``: booleans broadcasting to ``scores``, or None."""
    if mask is None:
        return F.softmax(scores, axis=axis)
    weights = F.softmax(np.where(mask, scores, scores.dtype.type(fill)), axis=axis)
    return np.where(mask, weights, scores.dtype.type(0)) if zero_masked else weights


def masked_softmax_backward(dweights, weights, mask, axis=-1):
    """dL/dscores of ``masked_softmax``: the softmax's y * (dy - sum(dy * y)), then 0
    where the mask put the fill (the fill is a constant: nothing flows to those scores).
    With ``zero_masked`` the masked weights are 0 already, so the same formula holds."""
    dscores = weights * (dweights - np.sum(dweights * weights, axis=axis, keepdims=True))
    return dscores if mask is None else np.where(mask, dscores, dscores.dtype.type(0))


def causal_mask(tq, tv):
    """(1, Tq, Tv): query step t sees value steps s <= t."""
    return (np.arange(tq)[:, None] >= np.arange(tv)[None, :])[None]


def _as_list(mask):
    return list(mask) if isinstance(mask, (list, tuple)) else [None, None]


class Attention(L.Layer):
    """The twin of ``keras.layers.Attention`` (Luong-style attention).

    Args:
        scale: the learned scalar (``use_scale=True``), or None.
        concat_score_weight: the learned scalar of ``score_mode="concat"``, or None for
            ``score_mode="dot"``.
        dropout, seed: dropout on the weights in training mode (``fixed_mask``: the keep
            mask to use instead of drawing one, e.g. the one Keras drew).
        use_causal_mask, return_attention_scores: the call's arguments.

    Inputs: [query (N, Tq, D), value (N, Tv, Dv)] or [query, value, key (N, Tv, D)]
    (key defaults to value). ``mask=[query_mask (N, Tq), value_mask (N, Tv)]`` (either
    may be None): value steps with False are masked out by scores - 1e9 (Keras
    subtracts, so a fully masked row still gets a softmax of shifted scores); query
    steps with False get zero outputs.

    Scores: dot, Q K^T (* scale); concat, w * sum(tanh(scale * (q_t + k_s)), -1).
    Output: out (N, Tq, Dv), and with ``return_attention_scores`` (out, weights), the
    weights after dropout, as Keras returns them.
    """

    multi_input = True
    mask_arguments = ("mask",)

    def __init__(self, scale=None, concat_score_weight=None, dropout=0.0, seed=None,
                 use_causal_mask=False, return_attention_scores=False):
        super().__init__()
        if scale is not None:
            self.params["scale"] = np.asarray(scale)
        if concat_score_weight is not None:
            self.params["concat_score_weight"] = np.asarray(concat_score_weight)
        self.dropout, self.seed = dropout, seed
        self.use_causal_mask = bool(use_causal_mask)
        self.return_attention_scores = bool(return_attention_scores)
        self.multi_output = self.return_attention_scores
        self.dropout_layer = dropout_layers.KerasDropout(dropout, seed=seed)
        self.fixed_mask = None

    def get_config(self):
        return {"dropout": self.dropout, "seed": self.seed,
                "use_causal_mask": self.use_causal_mask,
                "return_attention_scores": self.return_attention_scores}

    # -- scores and their backward (AdditiveAttention overrides these two)

    def scores(self, q, k):
        p = self.params
        if "concat_score_weight" not in p:  # dot: Q K^T (N, Tq, Tv)
            self.raw = q @ np.swapaxes(k, -1, -2)
            return self.raw * p["scale"] if "scale" in p else self.raw
        self.sum_qk = q[..., :, None, :] + k[..., None, :, :]  # (N, Tq, Tv, D)
        self.th = np.tanh(p["scale"] * self.sum_qk if "scale" in p else self.sum_qk)
        self.th_sum = np.sum(self.th, axis=-1)
        return p["concat_score_weight"] * self.th_sum

    def scores_backward(self, dscores, q, k):
        """(dq, dk), storing the gradients of the scalars."""
        p = self.params
        if "concat_score_weight" not in p:
            draw = dscores
            if "scale" in p:
                self.grads["scale"] = np.sum(dscores * self.raw)
                draw = dscores * p["scale"]
            return draw @ k, np.swapaxes(draw, -1, -2) @ q
        self.grads["concat_score_weight"] = np.sum(dscores * self.th_sum)
        du = (dscores * p["concat_score_weight"])[..., None] * (1 - self.th * self.th)
        if "scale" in p:
            self.grads["scale"] = np.sum(du * self.sum_qk)
            du = du * p["scale"]
        return du.sum(axis=-2), du.sum(axis=-3)  # q_t meets every k_s, and back

    # -- the steps every score function shares

    def forward(self, inputs, training=False, mask=None):
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        self.inputs = inputs
        q_mask, v_mask = _as_list(mask)[:2]
        scores = self.scores(q, k)  # (N, Tq, Tv)
        keep = None if v_mask is None else np.asarray(v_mask, bool)[..., None, :]
        if self.use_causal_mask:
            causal = causal_mask(*scores.shape[-2:])
            keep = causal if keep is None else keep & causal
        if keep is not None:  # Keras subtracts 1e9 where masked (no replacement)
            scores = np.where(keep, scores, scores - scores.dtype.type(1e9))
        self.weights = F.softmax(scores, axis=-1)
        self.dropout_layer.fixed_mask = self.fixed_mask
        self.dropped = self.dropout_layer.forward(self.weights, training=training)
        out = self.dropped @ v  # (N, Tq, Dv)
        self.q_keep = None if q_mask is None else np.asarray(q_mask, bool)[..., None]
        if self.q_keep is not None:
            out = np.where(self.q_keep, out, out.dtype.type(0))
        return (out, self.dropped) if self.return_attention_scores else out

    def compute_mask(self, inputs, mask=None):
        return _as_list(mask)[0]

    def backward(self, dout):
        dweights_out = None
        if self.return_attention_scores:
            dout, dweights_out = dout
        q, v = self.inputs[0], self.inputs[1]
        k = self.inputs[2] if len(self.inputs) > 2 else v
        if dout is None:
            dout = np.zeros((*q.shape[:-1], v.shape[-1]), q.dtype)
        if self.q_keep is not None:
            dout = np.where(self.q_keep, dout, dout.dtype.type(0))
        ddropped = dout @ np.swapaxes(v, -1, -2)  # (N, Tq, Tv)
        if dweights_out is not None:
            ddropped = ddropped + dweights_out
        dv = np.swapaxes(self.dropped, -1, -2) @ dout  # (N, Tv, Dv)
        dweights = self.dropout_layer.backward(ddropped)
        # softmax backward; the -1e9 shift has derivative 1: dscores passes unchanged
        dscores = masked_softmax_backward(dweights, self.weights, None)
        dq, dk = self.scores_backward(dscores, q, k)
        if len(self.inputs) > 2:
            return [dq, dv, dk]
        return [dq, dv + dk]  # key is value


class AdditiveAttention(Attention):
    """The twin of ``keras.layers.AdditiveAttention`` (Bahdanau-style attention):
    scores = sum(scale * tanh(q_t + k_s), axis=-1), ``scale`` (D,) learned (or 1 with
    ``use_scale=False``: pass None). Everything after the scores is ``Attention``'s.

    Backward: u = q_t + k_s, dscale = sum(dscores * tanh(u)) over (N, Tq, Tv);
    du = dscores * scale * (1 - tanh(u)^2); dq = sum_s du, dk = sum_t du.
    """

    def __init__(self, scale=None, dropout=0.0, seed=None, use_causal_mask=False,
                 return_attention_scores=False):
        super().__init__(scale, None, dropout, seed, use_causal_mask,
                         return_attention_scores)

    def scores(self, q, k):
        self.th = np.tanh(q[..., :, None, :] + k[..., None, :, :])  # (N, Tq, Tv, D)
        scaled = self.params["scale"] * self.th if "scale" in self.params else 1.0 * self.th
        return np.sum(scaled, axis=-1)

    def scores_backward(self, dscores, q, k):
        dth = dscores[..., None]
        if "scale" in self.params:
            self.grads["scale"] = np.sum(dth * self.th, axis=tuple(range(self.th.ndim - 1)))
            dth = dth * self.params["scale"]
        du = dth * (1 - self.th * self.th)
        return du.sum(axis=-2), du.sum(axis=-3)


__all__ = ["AdditiveAttention", "Attention", "causal_mask", "masked_softmax",
           "masked_softmax_backward"]
