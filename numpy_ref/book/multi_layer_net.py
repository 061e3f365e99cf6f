"""The book's ``common/multi_layer_net.py``: a fully connected net of any depth."""

from numpy_ref.layers import Relu, Sigmoid
from numpy_ref.network import config, networks
from numpy_ref.network.chain import init_std

ACTIVATION_LAYERS = {"sigmoid": Sigmoid, "relu": Relu}


def activation_layer(activation):
    """The book's activation layer class for 'relu' or 'sigmoid'."""
    if activation not in ACTIVATION_LAYERS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATION_LAYERS)}. "
                         f"Received: activation={activation!r}")
    return ACTIVATION_LAYERS[activation]


class BookMultiLayerNet(networks.MultiLayerNet):
    """Affine -> activation, ``len(hidden_size_list)`` times, then Affine -> softmax:
    ``numpy_ref``'s ``MultiLayerNet`` with the book's arguments, names and layers.

    Args:
        input_size: 784 for MNIST.
        hidden_size_list: units per hidden layer, e.g. [100, 100, 100].
        output_size: 10 for MNIST.
        activation: 'relu' or 'sigmoid'.
        weight_init_std: a number (the std of every weight), 'relu'/'he'
            (sqrt(2 / fan_in)) or 'sigmoid'/'xavier' (sqrt(1 / fan_in)).
        weight_decay_lambda: strength of the L2 weight decay (0: none).

    Layers ``Affine1, Activation_function1, ..., Affine{n+1}`` (``layers`` is the book's
    OrderedDict); parameters ``W1 b1 ... W{n+1} b{n+1}``, float64, drawn from NumPy's
    global generator. The book's scripts import it as ``MultiLayerNet``.
    """

    layers_by_name = True

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0):
        init_std(weight_init_std, 1)  # a bad name fails under the book's argument name
        super().__init__(input_size, hidden_size_list, output_size,
                         activation_layer(activation), weight_init_std,
                         weight_decay_lambda=weight_decay_lambda,
                         activation_name="Activation_function")


MultiLayerNet = BookMultiLayerNet
# Files saved when this class was called MultiLayerNet.
config.RENAMED["numpy_ref.book.multi_layer_net.MultiLayerNet"] = (
    "numpy_ref.book.multi_layer_net.BookMultiLayerNet")
