"""Networks built from ``numpy_ref.layers``: one machinery, four recipes.

``LayerNet`` is a list of layers followed by a loss layer. Its parameters are
gathered from the layers that have weights and named as the book names them:
the i-th such layer contributes ``W{i}`` (its ``kernel``) and ``b{i}`` (its
``bias``). ``predict``, ``loss``, ``accuracy``, ``gradient`` (backprop) and
``numerical_gradient`` work the same way for every network below.
"""

from collections.abc import MutableMapping

import numpy as np

from numpy_ref import functions as F
from numpy_ref import gradient as G
from numpy_ref import layers as L


class ParamView(MutableMapping):
    """Name -> weight array, read from and written to the layers themselves.

    ``params["W1"]`` is the first Affine layer's own kernel, so an in-place
    update (``params["W1"] -= lr * dW``) changes the network. Assigning a new
    array copies it into the layer's array after a shape check.
    """

    def __init__(self, slots):
        self._slots = slots  # name -> (layer, key)

    def __getitem__(self, name):
        layer, key = self._slots[name]
        return layer.params[key]

    def __setitem__(self, name, value):
        current = self[name]
        if value is current:  # the `params[k] -= ...` round trip
            return
        if np.shape(value) != current.shape:
            raise ValueError(f"params[{name!r}] has shape {current.shape}. "
                             f"Received: an array of shape {np.shape(value)}")
        np.copyto(current, value, casting="same_kind")

    def __delitem__(self, name):
        raise TypeError("a network's parameters cannot be deleted")

    def __iter__(self):
        return iter(self._slots)

    def __len__(self):
        return len(self._slots)


class LayerNet:
    """Layers applied in order, then ``loss_layer.forward(scores, t)``."""

    def __init__(self, layers, loss_layer):
        self.layers = list(layers)
        self.last_layer = loss_layer
        slots = {}
        weighted = [layer for layer in self.layers if layer.params]
        for i, layer in enumerate(weighted, start=1):
            slots[f"W{i}"] = (layer, "kernel")
            if "bias" in layer.params:
                slots[f"b{i}"] = (layer, "bias")
        self._slots = slots
        self.params = ParamView(slots)

    @property
    def dtype(self):
        return next(iter(self.params.values())).dtype

    def predict(self, x):
        """Scores of the last layer (before the loss), (N, C)."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Mean loss of the batch; the scores are kept in ``last_output``."""
        self.last_output = self.predict(x)
        return self.last_layer.forward(self.last_output, t)

    def accuracy(self, x, t, batch_size=10_000):
        """Fraction of samples whose arg-max score equals the label."""
        t = np.asarray(t)
        labels = t.argmax(axis=1) if t.ndim == 2 else t
        hits = 0
        for start in range(0, len(labels), batch_size):  # bounded memory
            scores = self.predict(x[start:start + batch_size])
            hits += int(np.sum(scores.argmax(axis=1) == labels[start:start + batch_size]))
        return hits / len(labels)

    def gradient(self, x, t):
        """Backprop: dict of dL/dparam with the keys of ``params``."""
        return self.loss_and_gradient(x, t)[1]

    def loss_and_gradient(self, x, t):
        """One forward and one backward pass: (loss, gradient dict)."""
        loss = self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(self.layers[1:]):
            dout = layer.backward(dout)
        first = self.layers[0]
        if isinstance(first, L.Affine):
            first.backward(dout, input_grad=False)  # dL/dx of the data is never used
        else:
            first.backward(dout)
        grads = {name: layer.grads[key] for name, (layer, key) in self._slots.items()}
        return loss, grads

    def numerical_gradient(self, x, t):
        """Central differences, one weight at a time, perturbed in place.

        Two loss evaluations per weight, and nothing copied but the gradient
        arrays. A weight of layer k cannot change the layers before k, so
        their output is computed once and only layers k.. are re-run for its
        weights: the same numbers as re-running the whole network, for about
        half the work. Use it in float64 to check ``gradient``.
        """
        grads, h = {}, x
        for k, layer in enumerate(self.layers):
            # Reads the perturbed weight in place; h is layer k's (fixed) input.
            loss_at = lambda _, h=h, k=k: self._loss_from(k, h, t)
            for name, (owner, key) in self._slots.items():
                if owner is layer:
                    grads[name] = G.numerical_gradient(loss_at, layer.params[key])
            h = layer.forward(h)
        return {name: grads[name] for name in self._slots}

    def _loss_from(self, k, h, t):
        """The loss with ``h`` fed to layer k (the layers before k skipped)."""
        for layer in self.layers[k:]:
            h = layer.forward(h)
        return self.last_layer.forward(h, t)


class ClassifierNet(LayerNet):
    """A LayerNet ending in ``SoftmaxWithLoss``: scores are logits."""

    def __init__(self, layers, loss_variant="book"):
        super().__init__(layers, L.SoftmaxWithLoss(loss_variant))

    def predict_proba(self, x):
        """Softmax probabilities, what the Keras twins output, (N, C)."""
        return F.softmax(self.predict(x))


def init_weight(rng, fan_in, fan_out, weight_init, dtype):
    """A (fan_in, fan_out) kernel.

    Args:
        weight_init: 'he' (normal, std sqrt(2 / fan_in), for ReLU), 'xavier'
            (normal, std sqrt(1 / fan_in), the book's choice for sigmoid/tanh),
            'glorot_uniform' (Keras's Dense default, U(+/- sqrt(6 / (fan_in +
            fan_out)))), or a number: normal with that std.
    """
    if weight_init == "glorot_uniform":
        limit = np.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype)
    stds = {"he": np.sqrt(2 / fan_in), "xavier": np.sqrt(1 / fan_in)}
    if isinstance(weight_init, str) and weight_init not in stds:
        raise ValueError("weight_init must be 'he', 'xavier', 'glorot_uniform' or "
                         f"a standard deviation. Received: weight_init={weight_init!r}")
    std = stds.get(weight_init, weight_init)
    return (std * rng.standard_normal((fan_in, fan_out))).astype(dtype)


def dense_stack(sizes, activation, weight_init, dtype, seed, activate_output=False):
    """Affine layers for consecutive ``sizes``, an activation between each pair.

    With ``activate_output`` the last Affine is followed by the activation too
    (the material's DNN); otherwise it outputs raw scores for a softmax.
    """
    if any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be positive integers. Received: {list(sizes)}")
    rng = np.random.default_rng(seed)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = init_weight(rng, fan_in, fan_out, weight_init, dtype)
        layers.append(L.Affine(W, np.zeros(fan_out, dtype=dtype)))
        if activate_output or i < len(sizes) - 2:
            layers.append(L.activation_layer(activation))
    return layers


class SimpleNet(ClassifierNet):
    """The book's one-layer net: scores = x @ W with a 2x3 W and no bias."""

    def __init__(self, W=None, seed=None, dtype=np.float64, loss_variant="book"):
        if W is None:
            W = np.random.default_rng(seed).standard_normal((2, 3))
        super().__init__([L.Affine(np.asarray(W, dtype=dtype))], loss_variant)

    @property
    def W(self):
        return self.params["W1"]


class TwoLayerNet(ClassifierNet):
    """Affine -> activation -> Affine -> softmax, the book's recipe network.

    Weights start as ``weight_init_std * N(0, 1)``, biases at zero; the
    parameters are ``W1 b1 W2 b2``.
    """

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01,
                 activation="relu", dtype=np.float32, seed=None, loss_variant="book"):
        sizes = [input_size, hidden_size, output_size]
        super().__init__(dense_stack(sizes, activation, weight_init_std, dtype, seed),
                         loss_variant)
        self.config = dict(input_size=input_size, hidden_size=hidden_size,
                           output_size=output_size, weight_init_std=weight_init_std,
                           activation=L.activation_name(activation), dtype=np.dtype(dtype).name,
                           loss_variant=loss_variant)


class MultiLayerNet(ClassifierNet):
    """Any number of hidden layers with one activation, then softmax.

    ``MultiLayerNet(784, [32, 64, 128, 256], 10)`` is the NumPy twin of the
    Keras ``Mymodel``.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init="he", dtype=np.float32, seed=None, loss_variant="book"):
        sizes = [input_size, *hidden_size_list, output_size]
        super().__init__(dense_stack(sizes, activation, weight_init, dtype, seed),
                         loss_variant)
        self.config = dict(input_size=input_size, hidden_size_list=list(hidden_size_list),
                           output_size=output_size, activation=L.activation_name(activation),
                           weight_init=weight_init, dtype=np.dtype(dtype).name,
                           loss_variant=loss_variant)


class DNN(LayerNet):
    """The material's deep net: activation after every layer, output included,
    trained on L = 1/2 * mean((h - y)^2).

    ``hidden_depth`` counts hidden layers, so there are hidden_depth + 1 Affine
    layers: num_input -> num_neuron (x hidden_depth) -> num_output.
    """

    def __init__(self, hidden_depth, num_neuron, num_input, num_output,
                 activation="sigmoid", weight_init="xavier", dtype=np.float64, seed=None):
        if hidden_depth < 1:
            raise ValueError(f"hidden_depth must be >= 1. Received: hidden_depth={hidden_depth}")
        sizes = [num_input] + [num_neuron] * hidden_depth + [num_output]
        super().__init__(dense_stack(sizes, activation, weight_init, dtype, seed,
                                     activate_output=True), L.MeanSquaredErrorLoss())
        self.config = dict(hidden_depth=hidden_depth, num_neuron=num_neuron,
                           num_input=num_input, num_output=num_output,
                           activation=L.activation_name(activation),
                           weight_init=weight_init, dtype=np.dtype(dtype).name)
