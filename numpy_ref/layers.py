"""Layers with a forward pass and the backward pass right next to it.

Protocol (the book's ``common/layers.py``): ``forward(x)`` caches what the
backward pass needs and returns the output; ``backward(dout)`` returns dL/dx
and stores parameter gradients. A layer with weights owns two dicts with the
same keys, ``params`` and ``grads``, named like the Keras weights they mirror
(``kernel``, ``bias``). Layers keep the input's dtype and never modify an array
the caller passed in (forward inputs, ``dout``, constructor weights).

Shape letters: N batch, D input features, M output units, C classes.
"""

import numpy as np

from numpy_ref import functions as F


class Layer:
    """Base: a layer with no weights has empty ``params`` and ``grads``."""

    def __init__(self):
        self.params, self.grads = {}, {}


class MulLayer:
    """Multiplication node: out = x * y; dx = dout * y, dy = dout * x."""

    def forward(self, x, y):
        self.x, self.y = x, y
        return x * y

    def backward(self, dout):
        return dout * self.y, dout * self.x


class AddLayer:
    """Addition node: out = x + y; both inputs receive dout unchanged."""

    def forward(self, x, y):
        return x + y

    def backward(self, dout):
        return dout * 1, dout * 1  # fresh arrays, never the caller's dout


class Relu(Layer):
    """max(0, x); the gradient passes where x > 0 (0 at x == 0, as in TF)."""

    def forward(self, x):
        self.mask = x > 0  # where the gradient passes
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.mask  # TF's ReluGrad: dout * (x > 0)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)); dy/dx = y * (1 - y)."""

    def forward(self, x):
        self.out = F.sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out * self.out)


ACTIVATIONS = {"relu": Relu, "sigmoid": Sigmoid, "tanh": Tanh}


def activation_name(activation):
    """The canonical name of an activation given by name or as the book's function.

    The book passes functions (``activation=sigmoid``); ``functions.relu``,
    ``functions.sigmoid`` and ``functions.tanh`` are accepted as well as names.
    """
    name = {F.relu: "relu", F.sigmoid: "sigmoid", F.tanh: "tanh"}.get(activation, activation)
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}. "
                         f"Received: activation={activation!r}")
    return name


def activation_layer(activation):
    """A fresh activation layer: 'relu', 'sigmoid' or 'tanh' (or the function)."""
    return ACTIVATIONS[activation_name(activation)]()


class Affine(Layer):
    """Fully connected layer: out = x @ W + b, the NumPy twin of Keras ``Dense``.

    Input of any rank (N, ...) is flattened to (N, D) first, so an image batch
    (N, 28, 28) works directly; ``backward`` returns dx in the input's shape.
    A 1-D input (D,) is one sample. The layer copies W and b: it owns them.

    Args:
        W: kernel, (D, M).
        b: bias, (M,), or None for no bias (Keras ``use_bias=False``).
    """

    def __init__(self, W, b=None):
        super().__init__()
        W = np.array(W)  # a copy
        if W.ndim != 2 or (b is not None and np.shape(b) != (W.shape[1],)):
            raise ValueError(f"Affine needs W of shape (D, M) and b of shape (M,). "
                             f"Received: W.shape={W.shape}, b.shape={np.shape(b)}")
        self.params["kernel"] = W
        if b is not None:
            self.params["bias"] = np.array(b, dtype=W.dtype)
        self.grads = {key: np.zeros_like(value) for key, value in self.params.items()}

    # The book's attribute names, kept as views onto the two dicts.
    W = property(lambda self: self.params["kernel"])
    b = property(lambda self: self.params.get("bias"))
    dW = property(lambda self: self.grads["kernel"])
    db = property(lambda self: self.grads.get("bias"))

    def forward(self, x):
        self.x_shape = x.shape
        x = x.reshape(1 if x.ndim == 1 else x.shape[0], -1)  # (N, D)
        if x.shape[1] != self.W.shape[0]:
            raise ValueError(f"Affine expects {self.W.shape[0]} input features. "
                             f"Received: input shape {self.x_shape}")
        self.x = x
        out = x @ self.W  # (N, M), a new array
        if self.b is not None:
            out += self.b
        return out.reshape(-1) if len(self.x_shape) == 1 else out  # one sample: (M,)

    def backward(self, dout, input_grad=True):
        """Stores dW = x^T dout and db = sum(dout) over the batch; returns dx = dout W^T.

        ``input_grad=False`` skips dx and returns None: a network's first layer,
        whose input is the data, needs no dx, and for images that product
        (N x M x D) is the largest of the backward pass.
        """
        dout = dout.reshape(self.x.shape[0], -1)  # (N, M)
        self.grads["kernel"] = self.x.T @ dout  # (D, M)
        if self.b is not None:
            self.grads["bias"] = dout.sum(axis=0)  # (M,)
        if not input_grad:
            return None
        dx = dout @ self.W.T  # (N, D)
        return dx.reshape(self.x_shape)


class SoftmaxWithLoss(Layer):
    """Softmax output plus cross-entropy loss: forward(x, t) -> mean loss.

    ``backward(dout=1)`` returns dL/dx = (y - t_onehot) / N * dout, where y is
    the softmax of the scores x. Labels t are integers (N,) or one-hot (N, C).

    Args:
        variant: which loss value to compute (all share the softmax):
            'book'   -sum(log(y_t + 1e-7)) / N, the book's formula;
            'logits' -mean(log_softmax(x)_t), what Keras computes for a model
                     whose output comes from a softmax activation: Keras caches
                     the logits on the softmax output and the loss reads them;
            'keras'  Keras's formula for probabilities without cached logits
                     (clip to [1e-7, 1 - 1e-7], renormalise, -log); its backward
                     is the exact derivative through the clip, which differs
                     from (y - t) / N only where a probability was clipped.
        The 'book' backward (y - t) / N is the exact derivative of 'logits'
        (not of the book's own log(y + 1e-7), which is flat where y_t ~ 0).
    """

    VARIANTS = ("book", "logits", "keras")

    def __init__(self, variant="book"):
        if variant not in self.VARIANTS:
            raise ValueError(f"variant must be one of {self.VARIANTS}. "
                             f"Received: variant={variant!r}")
        super().__init__()
        self.variant = variant

    def forward(self, x, t):
        self.y = F.softmax(x)  # (N, C)
        self.t = np.asarray(t)
        if self.variant == "book":
            self.loss = F.cross_entropy_error(self.y, self.t)
        elif self.variant == "logits":
            self.loss = F.softmax_cross_entropy_with_logits(x, self.t)
        else:
            self.loss = F.keras_sparse_categorical_crossentropy(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        y2, labels = F.as_batch(self.y, self.t)  # (N, C), (N,)
        n = y2.shape[0]
        if self.variant == "keras":
            dx = self._keras_clipped_grad(y2, labels)
        else:
            dx = y2.copy()
            dx[np.arange(n), labels] -= 1
        dx *= dout / n
        return dx.reshape(self.y.shape)

    @staticmethod
    def _keras_clipped_grad(y, labels):
        """d(-log(c_t / sum c)) / dx for c = clip(softmax(x)), undivided by N."""
        c = np.clip(y, F.EPSILON, 1 - F.EPSILON)
        onehot = np.zeros_like(y)
        onehot[np.arange(y.shape[0]), labels] = 1
        # d/d(log c) of the softmax cross-entropy is c / sum(c) - onehot ...
        dlogc = c / np.sum(c, axis=1, keepdims=True) - onehot
        # ... then through the log and the clip (TF's clip passes the gradient
        # where the value lies inside [min, max], bounds included) ...
        dy = np.where((y >= F.EPSILON) & (y <= 1 - F.EPSILON), dlogc / c, 0)
        # ... and through the softmax: dx = y * (dy - sum(dy * y)).
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))


class MeanSquaredErrorLoss(Layer):
    """L = 1/2 * mean((y - t)^2) over all elements; dL/dy = (y - t) / y.size."""

    def forward(self, y, t):
        self.y, self.t = y, np.asarray(t)
        return F.mean_squared_error(y, self.t)

    def backward(self, dout=1):
        return (self.y - self.t) * (dout / self.y.size)
