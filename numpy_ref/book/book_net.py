"""What the book's networks share: named layers in order, the book's parameter names,
weight decay, and ``save_params``/``load_params`` without pickle.

A ``BookNet`` is a chain ``numpy_ref.network.Network`` whose nodes carry the
book's layer names; ``layers`` is the book's OrderedDict of them, ``last_layer``
its ``SoftmaxWithLoss``, ``params`` a live name -> array view onto the layers'
own arrays (``W1 b1 W2 b2 ...``): ``params['W1'] -= lr * grads['W1']`` and
assigning ``params['W1'] = array`` (copied in) both change the layer.
"""

from collections import OrderedDict

import numpy as np

from numpy_ref import gradient as G
from numpy_ref import networks
from numpy_ref import serialization
from numpy_ref.layers import SoftmaxWithLoss
from numpy_ref.network import Network, Node, gathered

# weight_init_std names of the book -> numpy_ref's
BOOK_INIT_NAMES = {"relu": "he", "he": "he", "sigmoid": "xavier", "xavier": "xavier"}


def init_std(weight_init_std, fan_in):
    """The std of a weight: 'relu'/'he' sqrt(2 / fan_in), 'sigmoid'/'xavier'
    sqrt(1 / fan_in) (any case), or the number given."""
    if isinstance(weight_init_std, str):
        name = BOOK_INIT_NAMES.get(weight_init_std.lower())
        if name is None:
            raise ValueError(f"weight_init_std must be one of {sorted(BOOK_INIT_NAMES)} or a "
                             f"number. Received: weight_init_std={weight_init_std!r}")
        return networks.init_std(name, fan_in)
    return weight_init_std


def random_weight(shape, weight_init_std, fan_in):
    """std * N(0, 1) of ``shape``, float64, from NumPy's global generator (so the book's
    ``np.random.seed`` applies), std from ``init_std``."""
    return init_std(weight_init_std, fan_in) * np.random.standard_normal(shape)


class BookNet(Network):
    """Named layers applied in order, then ``SoftmaxWithLoss``.

    Args:
        layers: OrderedDict, layer name -> layer.
        param_names: layer name -> {layer key: public name}, e.g.
            ``{'Affine1': {'kernel': 'W1', 'bias': 'b1'}}``.
        weight_decay_lambda: adds 0.5 * lambda * sum(W^2) over every layer's
            ``kernel`` to the loss and lambda * W to its gradient (the book's).
    """

    def __init__(self, layers, param_names, weight_decay_lambda=0, state_names=None):
        nodes, previous = [], "input"
        for name, layer in layers.items():
            nodes.append(Node(name, layer, [previous], param_names=param_names.get(name),
                              state_names=(state_names or {}).get(name)))
            previous = name
        super().__init__(nodes, loss_layer=SoftmaxWithLoss())
        self.weight_decay_lambda = weight_decay_lambda
        self.decayed = [names["kernel"] for names in param_names.values() if "kernel" in names]

    @property
    def layers(self):
        """The book's OrderedDict: layer name -> layer, in forward order."""
        return OrderedDict((node.name, node.layer) for node in self.nodes)

    def weight_decay(self):
        """0.5 * lambda * sum(W^2) over the decayed weights (0 when lambda is 0)."""
        if not self.weight_decay_lambda:
            return 0
        return 0.5 * self.weight_decay_lambda * sum(np.sum(self.params[name] ** 2)
                                                    for name in self.decayed)

    def loss(self, x, t, training=False):
        """The batch's cross-entropy plus the weight decay term."""
        return super().loss(x, t, training=training) + self.weight_decay()

    def backward(self, dout=1):
        """Backprop; each decayed W's gradient gets lambda * W (the layer's own ``dW``
        stays the data term, as in the book)."""
        grads = super().backward(dout)
        if self.weight_decay_lambda:
            for name in self.decayed:
                grads[name] = grads[name] + self.weight_decay_lambda * self.params[name]
        return grads

    def numerical_gradient(self, x, t):
        """Central differences of ``loss`` (weight decay included), weight by weight."""
        if not self.weight_decay_lambda:
            return super().numerical_gradient(x, t)  # re-runs only the layers downstream
        return {name: G.numerical_gradient(lambda _: self.loss(x, t), self.params[name])
                for name in self.params}

    def save_params(self, file_name="params.pkl"):
        """Writes ``params`` to ``file_name`` (that very name, ``.pkl`` or not) as an
        ``.npz`` archive: plain arrays, no pickle."""
        with open(file_name, "wb") as f:
            np.savez(f, **gathered(self.params))

    def load_params(self, file_name="params.pkl"):
        """Copies the arrays ``save_params`` wrote into ``params`` (so into the layers).

        Raises:
            serialization.NpzFileError: the file is missing, not an .npz (a pickle is
                refused unread), or its names or shapes are not this network's.
        """
        arrays = serialization.read_npz(file_name)
        if set(arrays) != set(self.params):
            raise serialization.NpzFileError(
                f"{file_name}: holds {sorted(arrays)}, the network has {sorted(self.params)}")
        for name, value in arrays.items():
            if value.shape != self.params[name].shape:
                raise serialization.NpzFileError(
                    f"{file_name}: {name} has shape {value.shape}, the network's "
                    f"{self.params[name].shape}")
        for name, value in arrays.items():
            self.params[name] = value
