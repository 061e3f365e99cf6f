"""The book's ``common/multi_layer_net.py``: a fully connected net of any depth."""

from collections import OrderedDict

import numpy as np

from numpy_ref.book.book_net import BookNet, random_weight
from numpy_ref.layers import Affine, Relu, Sigmoid

ACTIVATION_LAYERS = {"sigmoid": Sigmoid, "relu": Relu}


def affine_stack(sizes, activation, weight_init_std, activation_name="Activation_function"):
    """The book's layers for consecutive ``sizes``: ``Affine{i}`` (weights ``W{i}``,
    ``b{i}``, biases zero) with ``{activation_name}{i}`` after every one but the last.

    Returns:
        (layers, param_names), as ``BookNet`` takes them.
    """
    if activation not in ACTIVATION_LAYERS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATION_LAYERS)}. "
                         f"Received: activation={activation!r}")
    layers, names = OrderedDict(), {}
    for idx, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        W = random_weight((fan_in, fan_out), weight_init_std, fan_in)
        layers[f"Affine{idx}"] = Affine(W, np.zeros(fan_out))
        names[f"Affine{idx}"] = {"kernel": f"W{idx}", "bias": f"b{idx}"}
        if idx < len(sizes) - 1:
            layers[f"{activation_name}{idx}"] = ACTIVATION_LAYERS[activation]()
    return layers, names


class MultiLayerNet(BookNet):
    """Affine -> activation, ``len(hidden_size_list)`` times, then Affine -> softmax.

    Args:
        input_size: 784 for MNIST.
        hidden_size_list: units per hidden layer, e.g. [100, 100, 100].
        output_size: 10 for MNIST.
        activation: 'relu' or 'sigmoid'.
        weight_init_std: a number (the std of every weight), 'relu'/'he'
            (sqrt(2 / fan_in)) or 'sigmoid'/'xavier' (sqrt(1 / fan_in)).
        weight_decay_lambda: strength of the L2 weight decay (0: none).

    Layers ``Affine1, Activation_function1, ..., Affine{n+1}``; parameters
    ``W1 b1 ... W{n+1} b{n+1}``, float64, drawn from NumPy's global generator.
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0):
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(self.hidden_size_list)
        sizes = [input_size, *self.hidden_size_list, output_size]
        super().__init__(*affine_stack(sizes, activation, weight_init_std), weight_decay_lambda)
