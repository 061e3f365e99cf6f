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
from numpy_ref.losses import regularizers as R
from numpy_ref.network import serialization
from numpy_ref.layers.dropout import training_mode
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
            ``kernel`` to the loss and lambda * W to its gradient (the book's), as
            ``regularizers.WeightDecay`` penalties of the network.
        state_names: layer name -> {state key: public name}, for layers with
            running statistics.

    ``predict``, ``loss`` and ``numerical_gradient`` take the book's ``train_flg``
    (dropout and batch norm in training mode); ``gradient`` backpropagates a
    training-mode pass, as the book's networks with those layers do.
    """

    def __init__(self, layers, param_names, weight_decay_lambda=0, state_names=None):
        nodes, previous = [], "input"
        for name, layer in layers.items():
            nodes.append(Node(name, layer, [previous], param_names=param_names.get(name),
                              state_names=(state_names or {}).get(name)))
            previous = name
        decayed = [names["kernel"] for names in param_names.values() if "kernel" in names]
        penalties = (R.weight_decay_penalties(decayed, weight_decay_lambda)
                     if weight_decay_lambda else ())
        super().__init__(nodes, loss_layer=SoftmaxWithLoss(), penalties=penalties)
        self.weight_decay_lambda = weight_decay_lambda

    @property
    def layers(self):
        """The book's OrderedDict: layer name -> layer, in forward order."""
        return OrderedDict((node.name, node.layer) for node in self.nodes)

    def predict(self, x, train_flg=False, training=None):
        """The scores for ``x``; ``train_flg``: dropout and batch norm in training mode."""
        return super().predict(x, training=training_mode(train_flg, training))

    def loss(self, x, t, train_flg=False, training=None):
        """The batch's cross-entropy plus the weight decay term."""
        return super().loss(x, t, training=training_mode(train_flg, training))

    def numerical_gradient(self, x, t, train_flg=False):
        """Central differences of ``loss`` (weight decay included), weight by weight.

        With ``train_flg`` each evaluation is a whole training-mode pass (batch
        statistics, as the book's ``MultiLayerNetExtend`` checks its gradient);
        otherwise only the layers downstream of the weight are re-run.
        """
        if not train_flg:
            return super().numerical_gradient(x, t)
        return {name: G.numerical_gradient(lambda _: self.loss(x, t, train_flg=True),
                                           self.params[name])
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
