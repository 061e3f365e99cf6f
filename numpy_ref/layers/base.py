"""Layers with a forward pass and the backward pass right next to it.

Protocol (the book's ``common/layers.py``, with Keras's ``training`` flag):

- ``forward(x, training=False)`` caches what the backward pass needs and
  returns the output; ``backward(dout)`` returns dL/dx and stores the weight
  gradients. ``backward`` never modifies ``dout``.
- Trainable weights live in ``params`` and their gradients in ``grads``, with
  the same keys, named like the Keras weights they mirror (``kernel``,
  ``bias``); non-trainable state (moving statistics) lives apart in ``state``.
- A layer computes with the arrays it is given, as the book's do: updating
  ``layer.params["kernel"]`` in place (or the array passed to the
  constructor) changes the layer.
- A layer that merges several inputs sets ``multi_input = True``: it takes a
  list and its backward returns a list.
- ``backward_weights(dout)`` computes only the weight gradients; a network
  calls it for a layer whose input is the data, whose gradient nobody needs.
- ``get_config()`` returns the JSON-able constructor arguments other than the
  weights, so ``from_config(config, params, state)`` rebuilds the layer.

Every subclass of ``Layer`` is recorded in ``LAYER_CLASSES`` (by module and
name), which is how a saved network finds its layer classes again.

Shape letters: N batch, D input features, M output units, C classes.
"""

import inspect

import numpy as np

from numpy_ref import functions as F

LAYER_CLASSES = {}  # "module.QualName" -> class, filled by Layer.__init_subclass__


def class_key(cls):
    """The name a saved network records for a layer class."""
    return f"{cls.__module__}.{cls.__qualname__}"


class Layer:
    """Base: no weights, no state; subclasses define ``forward`` and ``backward``."""

    multi_input = False

    def __init__(self):
        self.params, self.grads, self.state = {}, {}, {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[class_key(cls)] = cls

    def backward_weights(self, dout):
        """The weight gradients only (dL/dx is not needed); by default the full backward."""
        self.backward(dout)

    def get_config(self):
        """Constructor arguments other than weights and state, read back from the
        attributes of the same names (a layer storing one under another name overrides
        this)."""
        signature = inspect.signature(type(self).__init__)
        config = {}
        for name, arg in list(signature.parameters.items())[1:]:
            if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD) or name in self.params \
                    or name in self.state:
                continue
            if not hasattr(self, name):
                raise TypeError(f"{type(self).__name__}.get_config: the constructor argument "
                                f"{name!r} is not an attribute; override get_config")
            config[name] = getattr(self, name)
        return config

    @classmethod
    def from_config(cls, config, params=None, state=None):
        """The layer rebuilt around the given weight arrays (used, not copied)."""
        return cls(**config, **(params or {}), **(state or {}))


def set_kernel_and_bias(layer, kernel, bias, names=("kernel", "bias"), layout=("D", "M"),
                        units="M"):
    """Stores a kernel of the given layout (default (D, M)) and a bias (units,) (or None)
    in ``layer.params``, as given (a list becomes an array); a ValueError names the
    arguments otherwise. A number as the bias (the book's ch07 filters use ``b = 0``)
    is every unit's bias: a (units,) array of it, in the kernel's dtype."""
    kernel = np.asarray(kernel)
    if bias is not None and np.ndim(bias) == 0 and kernel.ndim == len(layout):
        bias = np.full(kernel.shape[layout.index(units)], bias, kernel.dtype)
    if kernel.ndim != len(layout) or (
            bias is not None and np.shape(bias) != (kernel.shape[layout.index(units)],)):
        raise ValueError(f"{type(layer).__name__} needs {names[0]} of shape "
                         f"({', '.join(layout)}) and {names[1]} of shape ({units},). Received: "
                         f"{names[0]}.shape={kernel.shape}, {names[1]}.shape={np.shape(bias)}")
    layer.params["kernel"] = kernel
    if bias is not None:
        layer.params["bias"] = bias if isinstance(bias, np.ndarray) else np.asarray(bias,
                                                                                   kernel.dtype)


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

    def forward(self, x, training=False):
        self.mask = x > 0  # where the gradient passes
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.mask  # TF's ReluGrad: dout * (x > 0)


class Sigmoid(Layer):
    """y = 1 / (1 + exp(-x)); dy/dx = y * (1 - y)."""

    def forward(self, x, training=False):
        self.out = F.sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * self.out * (1 - self.out)


class Tanh(Layer):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x, training=False):
        self.out = np.tanh(x)
        return self.out

    def backward(self, dout):
        return dout * (1 - self.out * self.out)


def _set_param(key):
    def setter(self, value):
        self.params[key] = value
    return setter


class BookWeightNames:
    """The book's attribute names ``W``, ``b``, ``dW``, ``db``: views onto ``params`` and
    ``grads`` under Keras's keys ``kernel`` and ``bias`` (None where there is no bias or
    no gradient yet). Assigning ``layer.W = array`` (the book's ``load_params`` does)
    makes the layer compute with that array."""

    W = property(lambda self: self.params["kernel"], _set_param("kernel"))
    b = property(lambda self: self.params.get("bias"), _set_param("bias"))
    dW = property(lambda self: self.grads.get("kernel"))
    db = property(lambda self: self.grads.get("bias"))


class Affine(BookWeightNames, Layer):
    """The book's fully connected layer: out = x @ W + b.

    Input of any rank (N, ...) is flattened to (N, D) first, so an image batch
    (N, 28, 28) works directly; ``backward`` returns dx in the input's shape.
    A 1-D input (D,) is one sample. W and b are used as given, not copied.
    (Keras's ``Dense`` acts on the last axis instead: see ``numpy_ref.layers.core.Dense``.)

    Args:
        W: kernel, (D, M).
        b: bias, (M,), or None for no bias (Keras ``use_bias=False``).
    """

    def __init__(self, W, b=None):
        super().__init__()
        set_kernel_and_bias(self, W, b, names=("W", "b"))

    def get_config(self):
        return {}  # W and b are its only arguments: the weights

    @classmethod
    def from_config(cls, config, params=None, state=None):
        return cls(params["kernel"], params.get("bias"))

    def forward(self, x, training=False):
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

    def backward(self, dout):
        """Stores dW = x^T dout and db = sum(dout) over the batch; returns dx = dout W^T."""
        dout = self.backward_weights(dout)
        dx = dout @ self.W.T  # (N, D)
        return dx.reshape(self.x_shape)

    def backward_weights(self, dout):
        """dW and db only: for images, dx (N x M x D) is the largest product of the pass."""
        dout = dout.reshape(self.x.shape[0], -1)  # (N, M)
        self.grads["kernel"] = self.x.T @ dout  # (D, M)
        if self.b is not None:
            self.grads["bias"] = dout.sum(axis=0)  # (M,)
        return dout


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
        if self.variant == "book":  # rounded as the book's code: (y - t) / N, then * dout
            dx = dx / n * dout
        else:
            dx *= dout / n
        return dx.reshape(self.y.shape)

    @staticmethod
    def _keras_clipped_grad(y, labels):
        """d(-log(c_t / sum c)) / dx for c = clip(softmax(x)), undivided by N."""
        dy = F.sparse_crossentropy_from_probs_grad(y, labels)  # through the clip and the log
        # ... and through the softmax: dx = y * (dy - sum(dy * y)).
        return y * (dy - np.sum(dy * y, axis=1, keepdims=True))


class MeanSquaredErrorLoss(Layer):
    """L = 1/2 * mean((y - t)^2) over all elements; dL/dy = (y - t) / y.size."""

    def forward(self, y, t):
        self.y, self.t = y, np.asarray(t)
        return F.mean_squared_error(y, self.t)

    def backward(self, dout=1):
        return (self.y - self.t) * (dout / self.y.size)
