"""The book's networks, each a chain of layers on the one ``Network`` machinery.

A ``LayerNet`` is a ``numpy_ref.network.Network`` whose nodes form a chain,
followed by a loss layer. Its parameters are named as the book names them:
the i-th layer with weights contributes ``W{i}`` (its ``kernel``) and
``b{i}`` (its ``bias``). ``predict``, ``loss``, ``accuracy``, ``gradient``
(backprop) and ``numerical_gradient`` work the same way for every network.
"""

import numpy as np

from numpy_ref.layers import activations
from numpy_ref import functions as F
from numpy_ref import layers as L
from numpy_ref.network import Network, Node, ParamView  # noqa: F401  (ParamView: API)


def chain_nodes(layers):
    """Nodes applying ``layers`` in order, weights named W1 b1 W2 b2 ... as in the book."""
    nodes, previous, weighted = [], "input", 0
    for i, layer in enumerate(layers, start=1):
        names = {}
        if layer.params:
            weighted += 1
            names = {"kernel": f"W{weighted}", "bias": f"b{weighted}"}
        name = f"{type(layer).__name__}{i}"
        nodes.append(Node(name, layer, [previous], param_names=names))
        previous = name
    return nodes


class LayerNet(Network):
    """Layers applied in order, then ``loss_layer.forward(scores, t)``."""

    def __init__(self, layers, loss_layer):
        super().__init__(chain_nodes(layers), loss_layer=loss_layer)

    def get_config(self):
        """The graph, plus the constructor arguments of a book network (``config``)."""
        return {**super().get_config(), "constructor": getattr(self, "config", None)}

    @classmethod
    def from_config(cls, config, arrays):
        net = super().from_config(config, arrays)
        if config.get("constructor") is not None:
            net.config = config["constructor"]
        return net


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
    if isinstance(weight_init, str) and weight_init not in INIT_STD_NAMES:
        raise ValueError("weight_init must be 'he', 'xavier', 'glorot_uniform' or "
                         f"a standard deviation. Received: weight_init={weight_init!r}")
    return (init_std(weight_init, fan_in) * rng.standard_normal((fan_in, fan_out))).astype(dtype)


INIT_STD_NAMES = ("he", "xavier")


def init_std(weight_init, fan_in):
    """The standard deviation of a normal initialisation: 'he' sqrt(2 / fan_in),
    'xavier' sqrt(1 / fan_in), or ``weight_init`` itself (a number)."""
    if weight_init == "he":
        return np.sqrt(2 / fan_in)
    if weight_init == "xavier":
        return np.sqrt(1 / fan_in)
    return weight_init


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
            layers.append(activations.get(activation))
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
                 activation="relu", dtype=np.float64, seed=None, loss_variant="book"):
        sizes = [input_size, hidden_size, output_size]
        super().__init__(dense_stack(sizes, activation, weight_init_std, dtype, seed),
                         loss_variant)
        self.config = dict(input_size=input_size, hidden_size=hidden_size,
                           output_size=output_size, weight_init_std=weight_init_std,
                           activation=activations.name_of(activation), dtype=np.dtype(dtype).name,
                           loss_variant=loss_variant)


class MultiLayerNet(ClassifierNet):
    """Any number of hidden layers with one activation, then softmax.

    ``MultiLayerNet(784, [32, 64, 128, 256], 10)`` is the NumPy twin of the
    Keras ``Mymodel``.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init="he", dtype=np.float64, seed=None, loss_variant="book"):
        sizes = [input_size, *hidden_size_list, output_size]
        super().__init__(dense_stack(sizes, activation, weight_init, dtype, seed),
                         loss_variant)
        self.config = dict(input_size=input_size, hidden_size_list=list(hidden_size_list),
                           output_size=output_size, activation=activations.name_of(activation),
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
                           activation=activations.name_of(activation),
                           weight_init=weight_init, dtype=np.dtype(dtype).name)
