"""Fast stand-ins for a few layers and one loss: the same numbers, fewer passes over memory.

A kernel takes a layer's place in the fast graph (``numpy_ref.fast.graph``). It
holds the layer's own weights (``params``, ``grads`` and ``state`` are the layer's
dicts) and computes what the layer computes, operation for operation, so every
number is the layer's to the last bit:

- ``DenseKernel``: ``Dense`` writing its weight gradients into given buffers
  (``out=``) and applying a plain ReLU in place on its own pre-activation;
- ``SoftmaxKernel``: ``Softmax`` over the last axis keeping ``x - max`` and
  ``sum(exp(x - max))``, which a cross-entropy of the same logits reuses;
- ``SoftmaxCrossentropy``: ``SparseCategoricalCrossentropy(from_logits=True)`` read
  off those pieces, its gradient softmax - onehot from the softmax already made.

Each keeps what its backward needs in itself (a network gives every node a layer
object of its own, so one kernel serves one node).
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import activations, core
from numpy_ref.losses import SparseCategoricalCrossentropy


class _Kernel:
    """A layer's stand-in: the layer's own weight dicts, its own computation."""

    multi_input = False

    def __init__(self, layer):
        self.layer = layer
        # the layer's own dicts: its weights, and the gradients its network gathers
        self.params, self.grads, self.state = layer.params, layer.grads, layer.state

    def backward_weights(self, dout):
        self.backward(dout)


def is_plain_relu(layer):
    """Whether ``layer`` computes max(x, 0) and nothing else (the book's Relu, or a ReLU
    without options)."""
    return type(layer) is L.Relu or (type(layer) is activations.ReLU and layer.plain)


class DenseKernel(_Kernel):
    """``Dense``: kernel and bias gradients written into ``grad_out`` ({key: buffer view},
    keys left out get new arrays), a plain ReLU applied in place on z, which is the
    layer's own array (its mask then read off the output: y > 0 where z > 0)."""

    def __init__(self, layer, grad_out):
        super().__init__(layer)
        self.grad_out = grad_out
        self.relu = is_plain_relu(layer.activation)

    def forward(self, x, training=False):
        self.x = x
        params = self.layer.params
        z = x @ params["kernel"]  # (N, ..., M)
        if "bias" in params:
            z += params["bias"]
        if self.relu:
            self.y = np.maximum(z, 0, out=z)
            return self.y
        return self.layer.activation.forward(z, training=training)

    def backward_weights(self, dout):
        dz = dout * (self.y > 0) if self.relu else self.layer.activation.backward(dout)
        params, grads = self.layer.params, self.layer.grads
        d, m = params["kernel"].shape
        dz2 = dz.reshape(-1, m)  # (N * ..., M)
        grads["kernel"] = np.matmul(self.x.reshape(-1, d).T, dz2, out=self.grad_out.get("kernel"))
        if "bias" in params:  # np.sum's own reduction, into the buffer
            grads["bias"] = np.add.reduce(dz2, axis=0, out=self.grad_out.get("bias"))
        return dz

    def backward(self, dout):
        return self.backward_weights(dout) @ self.layer.params["kernel"].T  # (N, ..., D)


class SoftmaxKernel(_Kernel):
    """``Softmax(axis=-1)``, keeping ``shifted`` = x - max and ``total`` = sum(exp(shifted))
    of the last call (``np.max``/``np.sum`` are these reductions, minus their wrappers)."""

    def forward(self, x, training=False):
        self.x = x
        self.shifted = x - np.maximum.reduce(x, axis=-1, keepdims=True)
        e = np.exp(self.shifted)
        self.total = np.add.reduce(e, axis=-1, keepdims=True)
        self.y = self.layer.out = e / self.total  # the layer's backward reads its out
        return self.y

    def backward(self, dout):
        return self.layer.backward(dout)


def fusable(loss):
    """Whether ``SoftmaxCrossentropy`` can stand in for ``loss``: logits, the mean over
    the batch, no ignored class."""
    return (type(loss) is SparseCategoricalCrossentropy and loss.from_logits
            and loss.ignore_class is None and loss.reduction == "sum_over_batch_size")


class SoftmaxCrossentropy:
    """``loss`` (``fusable``) on the logits ``softmax`` (a ``SoftmaxKernel``) has just read:
    -log_softmax(z)[t] = -(shifted[t] - log(total)) per sample, its mean, and the gradient
    (softmax(z) - onehot) / N. Other inputs (labels not integers (N,), another dtype)
    go to ``loss`` itself."""

    def __init__(self, loss, softmax):
        self.loss, self.softmax = loss, softmax
        self.fused = False

    def forward(self, logits, y_true):
        y_true = np.asarray(y_true)
        self.fused = (logits is self.softmax.x and logits.ndim == 2 and logits.shape[0] > 0
                      and y_true.shape == logits.shape[:1] and y_true.dtype.kind in "iu"
                      and (self.loss.dtype is None or np.dtype(self.loss.dtype) == logits.dtype))
        if not self.fused:
            return self.loss.forward(logits, y_true)
        self.rows, self.labels = np.arange(logits.shape[0]), y_true.astype(np.intp)
        values = -(self.softmax.shifted[self.rows, self.labels]
                   - np.log(self.softmax.total[:, 0]))  # (N,)
        self.divisor = logits.dtype.type(values.size)
        return np.add.reduce(values) / self.divisor

    def backward(self, dout=1):
        if not self.fused:
            return self.loss.backward(dout)
        dz = self.softmax.y.copy()  # (N, C)
        dz[self.rows, self.labels] -= 1
        dz *= np.asarray(dout, dtype=dz.dtype) / self.divisor
        return dz


def kernel_for(layer, grad_out):
    """The kernel standing in for ``layer`` (``grad_out``: its weight gradient buffers), or
    None where the layer's own code is the fast one."""
    if type(layer) is core.Dense:
        return DenseKernel(layer, grad_out)
    return None
