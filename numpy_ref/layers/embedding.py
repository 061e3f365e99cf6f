"""Token embeddings and masks: ``Embedding``, ``ReversibleEmbedding``, ``Masking``.

An embedding is a table lookup: row ``ids[n, t]`` of the table (V, D) becomes the
vector of token t of sample n. Its backward is the lookup run in reverse: each
row of dout is added into the table row of its token (a token seen twice gets
both rows added), the scatter-add TensorFlow's gather gradient does. The token
ids are integers and get no gradient.

Keras masks: ``Embedding(mask_zero=True)`` marks token 0 as padding, and
``Masking(mask_value)`` marks the time steps whose features all equal the value;
layers downstream (RNNs, attention) skip the marked steps. ``compute_mask`` is the
mask each one hands on.

Shape letters: N batch, T time steps, V vocabulary size, D embedding size.
"""

import numpy as np

from numpy_ref import layers as L


def token_ids(x):
    """The ids as Keras takes them: integers as they are, other values cast to int32
    (truncated toward zero, as TensorFlow's cast does)."""
    x = np.asarray(x)
    return x if x.dtype.kind in "iu" else x.astype(np.int32)


class Embedding(L.Layer):
    """out[n, t] = embeddings[ids[n, t]], the twin of ``keras.layers.Embedding``.

    Args:
        embeddings: the table (V, D), used as given.
        mask_zero: whether id 0 is padding (``compute_mask`` returns ids != 0).
        dtype: the dtype of the output (Keras's compute dtype); default the table's.

    A negative id counts from the end of the table, once (-1 is row V - 1), as
    Keras's ``take`` does. Input (N, ...) ids; output (N, ..., D).
    Backward: dembeddings[v] = sum of dout[n, t] over the (n, t) with ids[n, t] == v;
    the ids get no gradient (None).
    """

    def __init__(self, embeddings, mask_zero=False, dtype=None):
        super().__init__()
        self.params["embeddings"] = np.asarray(embeddings)
        self.mask_zero = bool(mask_zero)
        self.dtype = np.dtype(dtype or self.params["embeddings"].dtype).name

    def forward(self, x, training=False):
        self.ids = token_ids(x)
        return self.params["embeddings"][self.ids].astype(self.dtype, copy=False)

    def compute_mask(self, inputs, mask=None):
        return np.asarray(inputs) != 0 if self.mask_zero else None

    def backward(self, dout):
        self.backward_weights(dout)
        return None  # integer ids: no gradient

    def backward_weights(self, dout):
        table = self.params["embeddings"]
        grad = np.zeros_like(table)
        ids = np.where(self.ids < 0, self.ids + table.shape[0], self.ids)
        np.add.at(grad, ids.reshape(-1), dout.reshape(-1, table.shape[1]).astype(table.dtype))
        self.grads["embeddings"] = grad


class ReversibleEmbedding(Embedding):
    """The twin of ``keras.layers.ReversibleEmbedding``: forward, an ``Embedding``; in
    reverse (``reverse=True``, the call's argument), logits over the vocabulary from
    vectors: logits = x @ embeddings^T (tied weights) or x @ reverse_embeddings (D, V),
    then, with ``logit_soft_cap`` c, c * tanh(logits / c).

    Reverse backward (untied kernel K = reverse_embeddings, or K = embeddings^T):
    dlogits through the cap (1 - tanh^2), dK = x^T dlogits, dx = dlogits K^T.
    In forward mode with ``mask_zero`` it hands on the mask ids != 0, as Keras sets it
    on the output; in reverse mode none.
    """

    def __init__(self, embeddings, reverse_embeddings=None, reverse=False, mask_zero=False,
                 logit_soft_cap=None, dtype=None):
        super().__init__(embeddings, mask_zero, dtype)
        if reverse_embeddings is not None:
            self.params["reverse_embeddings"] = np.asarray(reverse_embeddings)
        self.reverse = bool(reverse)
        self.logit_soft_cap = logit_soft_cap

    def compute_mask(self, inputs, mask=None):
        return None if self.reverse else super().compute_mask(inputs)

    def _kernel(self):
        if "reverse_embeddings" in self.params:
            return self.params["reverse_embeddings"]  # (D, V)
        return self.params["embeddings"].T

    def forward(self, x, training=False):
        if not self.reverse:
            return super().forward(x, training)
        self.x = x
        logits = x @ self._kernel()  # (N, ..., V)
        cap = self.logit_soft_cap
        if cap is None:
            return logits
        self.capped = np.tanh(logits / x.dtype.type(cap))
        return self.capped * x.dtype.type(cap)

    def backward(self, dout):
        if not self.reverse:
            return super().backward(dout)
        dlogits = self._reverse_weights(dout)
        return dlogits @ self._kernel().T

    def backward_weights(self, dout):
        if not self.reverse:
            return super().backward_weights(dout)
        self._reverse_weights(dout)
        return None

    def _reverse_weights(self, dout):
        dlogits = dout
        if self.logit_soft_cap is not None:  # d(c tanh(l / c)) / dl = 1 - tanh^2
            dlogits = dout * (1 - self.capped * self.capped)
        x2 = self.x.reshape(-1, self.x.shape[-1])  # (N..., D)
        dk = x2.T @ dlogits.reshape(-1, dlogits.shape[-1])  # (D, V)
        if "reverse_embeddings" in self.params:
            self.grads["reverse_embeddings"] = dk
            self.grads["embeddings"] = np.zeros_like(self.params["embeddings"])
        else:
            self.grads["embeddings"] = dk.T
        return dlogits


class Masking(L.Layer):
    """The twin of ``keras.layers.Masking``: a time step whose features all equal
    ``mask_value`` is masked; its output is zeros there and x elsewhere.

    mask = any(x != mask_value, axis=-1), (N, T); y = where(mask[..., None], x, 0);
    (``mask_value`` a Python float is rounded through float32, as Keras compares it);
    dx = where(mask[..., None], dout, 0). ``compute_mask`` returns the mask.
    """

    def __init__(self, mask_value=0.0):
        super().__init__()
        self.mask_value = mask_value

    def compute_mask(self, inputs, mask=None):
        inputs = np.asarray(inputs)
        return np.any(inputs != self.compared_value(inputs.dtype), axis=-1)

    def compared_value(self, dtype):
        """The mask value as Keras compares it: TensorFlow makes a Python float a float32
        tensor first, then casts it to x's dtype (so in float64, Masking(0.1) does not
        mask steps of float64 0.1)."""
        value = self.mask_value
        return np.dtype(dtype).type(np.float32(value) if isinstance(value, float) else value)

    def forward(self, x, training=False):
        self.keep = self.compute_mask(x)[..., None]  # (N, T, 1)
        return np.where(self.keep, x, x.dtype.type(0))

    def backward(self, dout):
        return np.where(self.keep, dout, dout.dtype.type(0))


__all__ = ["Embedding", "Masking", "ReversibleEmbedding", "token_ids"]
