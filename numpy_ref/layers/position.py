"""Learned position embeddings: one trainable vector per position, added to the tokens.

The twin of ``tfmodels.models.PositionEmbedding`` (what a Vision Transformer adds to its
patch tokens so that attention, which treats its tokens as a set, can tell them apart):

    forward   y[n, t, :] = x[n, t, :] + E[t, :]
    backward  dx = dout                  (the addition passes the gradient on)
              dE = sum over n of dout    (every example used the same table)

Shape letters: N batch, T tokens (positions), D token width.
"""

import numpy as np

from numpy_ref import layers as L


class PositionEmbedding(L.Layer):
    """y = x + E, with ``E`` (the weight ``embeddings``, (T, D)) added to every example.

    The sum is taken in ``dtype`` (the Keras layer's compute dtype; None: the input's):
    Keras casts the input and the table to it first, as under mixed precision (a float32
    table added to float16 tokens in float16). The gradients go back in the input's and
    the table's own dtypes.

    Args:
        embeddings: the position table, the shape of one example ((T, D) for (N, T, D)
            tokens); used as given.
        dtype: the dtype the addition runs in, or None for the input's.

    Input shape: (N, T, D). Output shape: (N, T, D).
    """

    def __init__(self, embeddings, dtype=None):
        super().__init__()
        self.params["embeddings"] = np.asarray(embeddings)
        self.dtype = None if dtype is None else np.dtype(dtype).name

    def forward(self, x, training=False):
        table = self.params["embeddings"]  # (T, D)
        if x.shape[1:] != table.shape:
            raise ValueError(f"PositionEmbedding holds a table of shape {table.shape} and "
                             f"takes inputs (N, {', '.join(map(str, table.shape))}). "
                             f"Received: input shape {x.shape}")
        self.x_dtype = x.dtype
        dtype = self.dtype or x.dtype
        return x.astype(dtype, copy=False) + table.astype(dtype, copy=False)  # (N, T, D)

    def backward(self, dout):
        self.backward_weights(dout)
        return dout.astype(self.x_dtype, copy=True)  # dx = dout, a fresh array

    def backward_weights(self, dout):
        table = self.params["embeddings"]
        self.grads["embeddings"] = dout.sum(axis=0).astype(table.dtype, copy=False)  # (T, D)
