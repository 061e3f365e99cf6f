"""The book's networks and the study notes' DNN, each a chain of layers (``chain.LayerNet``).

``SimpleNet`` (a 2x3 weight, ch04), ``TwoLayerNet`` (ch04/ch05), ``MultiLayerNet``
(any depth; ``MultiLayerNet(784, [32, 64, 128, 256], 10)`` is the NumPy twin of
the Keras ``Mymodel``) and ``DNN`` (an activation after every layer, output
included, on a mean squared error). ``predict``, ``loss``, ``accuracy``,
``gradient`` (backprop) and ``numerical_gradient`` work the same way for each.

Float64 unless a dtype is asked for, as the book. Without ``seed`` the initial
weights come from NumPy's global generator, as the book's do, so
``np.random.seed(0)`` makes them repeatable; ``seed=s`` draws them from
``np.random.default_rng(s)`` instead.
"""

import functools

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers import activations
from numpy_ref.network.chain import ClassifierNet, LayerNet, book_names, dense_stack


def _generator(seed):
    """Where the initial weights come from: NumPy's global generator, or a seeded one."""
    return None if seed is None else np.random.default_rng(seed)


def _activation_maker(activation):
    """A callable making a fresh activation layer: a layer class, or a registry name."""
    if isinstance(activation, type):
        return activation
    return functools.partial(activations.get, activation)


class SimpleNet(ClassifierNet):
    """The book's one-layer net: scores = x @ W with a 2x3 W and no bias."""

    def __init__(self, W=None, seed=None, dtype=np.float64, loss_variant="book"):
        if W is None:
            W = (np.random if seed is None else _generator(seed)).standard_normal((2, 3))
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
        super().__init__(dense_stack(sizes, _activation_maker(activation), weight_init_std,
                                     dtype, _generator(seed)), loss_variant)
        self.config = dict(input_size=input_size, hidden_size=hidden_size,
                           output_size=output_size, weight_init_std=weight_init_std,
                           activation=activations.name_of(activation), dtype=np.dtype(dtype).name,
                           loss_variant=loss_variant)


class MultiLayerNet(ClassifierNet):
    """Any number of hidden layers with one activation, then softmax.

    Args:
        input_size, hidden_size_list, output_size: the layer sizes, e.g. 784, [32, 64], 10.
        activation: a name from ``numpy_ref.layers.activations``, or a layer class.
        weight_init: 'he' (or 'relu'), 'xavier' (or 'sigmoid'), 'glorot_uniform' or a
            number, the std (``chain.init_std``).
        dtype, seed, loss_variant: see the module docstring and ``SoftmaxWithLoss``.
        weight_decay_lambda: the book's weight decay (0: none).
        activation_name: names the layers as the book does, ``Affine{i}`` and
            ``{activation_name}{i}`` (None: by class and position, ``Affine1``, ``ReLU2``).
    """

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init="he", dtype=np.float64, seed=None, loss_variant="book",
                 weight_decay_lambda=0, activation_name=None):
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(self.hidden_size_list)
        sizes = [input_size, *self.hidden_size_list, output_size]
        make = _activation_maker(activation)
        layers = dense_stack(sizes, make, weight_init, dtype, _generator(seed),
                             name="weight_init")
        if activation_name is not None:
            layers = book_names(layers, activation_name)
        super().__init__(layers, loss_variant, weight_decay_lambda=weight_decay_lambda)
        self.config = dict(input_size=input_size, hidden_size_list=self.hidden_size_list,
                           output_size=output_size, activation=activations.name_of(make()),
                           weight_init=weight_init, dtype=np.dtype(dtype).name,
                           loss_variant=loss_variant)


class DNN(LayerNet):
    """The study notes' deep net: activation after every layer, output included,
    trained on L = 1/2 * mean((h - y)^2).

    ``hidden_depth`` counts hidden layers, so there are hidden_depth + 1 Affine
    layers: num_input -> num_neuron (x hidden_depth) -> num_output.
    """

    def __init__(self, hidden_depth, num_neuron, num_input, num_output,
                 activation="sigmoid", weight_init="xavier", dtype=np.float64, seed=None):
        if hidden_depth < 1:
            raise ValueError(f"hidden_depth must be >= 1. Received: hidden_depth={hidden_depth}")
        sizes = [num_input] + [num_neuron] * hidden_depth + [num_output]
        super().__init__(dense_stack(sizes, _activation_maker(activation), weight_init, dtype,
                                     _generator(seed), activate_output=True,
                                     name="weight_init"),
                         L.MeanSquaredErrorLoss())
        self.config = dict(hidden_depth=hidden_depth, num_neuron=num_neuron,
                           num_input=num_input, num_output=num_output,
                           activation=activations.name_of(activation),
                           weight_init=weight_init, dtype=np.dtype(dtype).name)
