"""A chain of layers, the book's way: layers in order, then a loss; weights W1 b1 W2 b2 ...

``LayerNet`` is a ``Network`` whose nodes form a chain. The k-th layer with a
``kernel`` contributes the parameters ``W{k}`` and ``b{k}``, as the book names
them. It speaks the book's dialect too: ``predict``/``loss`` take ``train_flg``
(dropout and batch norm in training mode), ``weight_decay_lambda`` adds the
book's weight decay, and ``save_params``/``load_params`` keep the weights in an
``.npz`` (never a pickle).

Initial weights are ``std * N(0, 1)``, drawn from NumPy's global generator (so
the book's ``np.random.seed(...)`` makes them repeatable) unless a generator is
given; ``init_std`` names the std and ``dense_stack`` builds the fully connected
layers of every network here.

Shape letters: N batch, D input features, M units.
"""

from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from numpy_ref import functions as F
from numpy_ref import gradient as G
from numpy_ref import layers as L
from numpy_ref.layers.dropout import training_mode
from numpy_ref.losses import regularizers as R
from numpy_ref.network import serialization
from numpy_ref.network.arrays import gathered
from numpy_ref.network.graph import Network
from numpy_ref.network.node import Node

# The std names, any case: 'he' (for ReLU), 'xavier' (for sigmoid and tanh), and the book's
# own names for them.
INIT_NAMES = {"relu": "he", "he": "he", "sigmoid": "xavier", "xavier": "xavier"}


def init_std(weight_init_std, fan_in, name="weight_init_std"):
    """The std of a layer's initial weights: 'he' (or 'relu') sqrt(2 / fan_in), 'xavier'
    (or 'sigmoid') sqrt(1 / fan_in), or ``weight_init_std`` itself (a number); ``name`` is
    the argument an error names."""
    if not isinstance(weight_init_std, str):
        return weight_init_std
    kind = INIT_NAMES.get(weight_init_std.lower())
    if kind is None:
        raise ValueError(f"{name} must be one of {sorted(INIT_NAMES)}, 'glorot_uniform' or a "
                         f"number. Received: {name}={weight_init_std!r}")
    return np.sqrt(2 / fan_in) if kind == "he" else np.sqrt(1 / fan_in)


def random_weight(shape, weight_init_std, fan_in, rng=None, dtype=np.float64,
                  name="weight_init_std"):
    """``init_std(...) * N(0, 1)`` of ``shape``, or with 'glorot_uniform' (Keras's Dense
    default) U(+-sqrt(6 / (fan_in + fan_out))); drawn from ``rng``, or from NumPy's global
    generator when None."""
    rng = np.random if rng is None else rng
    if weight_init_std == "glorot_uniform":
        limit = np.sqrt(6 / (fan_in + shape[-1]))
        return rng.uniform(-limit, limit, shape).astype(dtype)
    return (init_std(weight_init_std, fan_in, name) * rng.standard_normal(shape)).astype(dtype)


def dense_stack(sizes, activation, weight_init_std, dtype=np.float64, rng=None,
                activate_output=False, name="weight_init_std"):
    """``Affine`` layers for consecutive ``sizes`` (weights ``random_weight``, biases
    zero), with ``activation()`` (a fresh layer each call) between each pair.

    With ``activate_output`` the last Affine is followed by the activation too
    (the study notes' DNN); otherwise it outputs raw scores for a softmax.
    """
    if any(int(s) != s or s < 1 for s in sizes):
        raise ValueError(f"layer sizes must be positive integers. Received: {list(sizes)}")
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = random_weight((fan_in, fan_out), weight_init_std, fan_in, rng, dtype, name)
        layers.append(L.Affine(W, np.zeros(fan_out, dtype=dtype)))
        if activate_output or i < len(sizes) - 2:
            layers.append(activation())
    return layers


def book_names(layers, activation_name):
    """The book's OrderedDict of a ``dense_stack``: ``Affine{i}``, then ``{activation_name}{i}``."""
    named, i = OrderedDict(), 0
    for layer in layers:
        if isinstance(layer, L.Affine):
            i += 1
            named[f"Affine{i}"] = layer
        else:
            named[f"{activation_name}{i}"] = layer
    return named


def chain_nodes(layers, param_names=None, state_names=None):
    """Nodes applying ``layers`` in order: a list (node i named ``{class}{i}``) or an
    OrderedDict (name -> layer). A node's weights are named by ``param_names`` (node name ->
    {key: public name}) where it has an entry, else the k-th layer with a kernel has ``W{k}``
    and ``b{k}``."""
    if not isinstance(layers, Mapping):
        layers = {f"{type(layer).__name__}{i}": layer for i, layer in enumerate(layers, start=1)}
    param_names, state_names = param_names or {}, state_names or {}
    nodes, previous, weighted = [], "input", 0
    for name, layer in layers.items():
        names = param_names.get(name)
        if "kernel" in layer.params:
            weighted += 1
            names = names or {"kernel": f"W{weighted}", "bias": f"b{weighted}"}
        nodes.append(Node(name, layer, [previous], param_names=names,
                          state_names=state_names.get(name)))
        previous = name
    return nodes


class LayerNet(Network):
    """Layers applied in order, then ``loss_layer.forward(scores, t)``.

    Args:
        layers: a list, or the book's OrderedDict (layer name -> layer).
        loss_layer: the loss, e.g. ``SoftmaxWithLoss``.
        param_names, state_names: node name -> {layer key: public name}, for weights the
            book does not name ``W{k}``/``b{k}`` (batch norm's ``gamma1``, ``running_mean1``).
        weight_decay_lambda: adds 0.5 * lambda * sum(W^2) over every kernel to the loss
            and lambda * W to its gradient (the book's), as ``regularizers.WeightDecay``
            penalties of the network.
    """

    layers_by_name = False  # ``layers``: a list; the book's OrderedDict where True

    def __init__(self, layers, loss_layer, param_names=None, state_names=None,
                 weight_decay_lambda=0):
        nodes = chain_nodes(layers, param_names, state_names)
        decayed = [node.public_names("params")["kernel"] for node in nodes
                   if "kernel" in node.layer.params]
        penalties = (R.weight_decay_penalties(decayed, weight_decay_lambda)
                     if weight_decay_lambda else ())
        super().__init__(nodes, loss_layer=loss_layer, penalties=penalties)
        self.weight_decay_lambda = weight_decay_lambda

    @property
    def layers(self):
        """The layers in forward order: a list, or the book's OrderedDict (name -> layer)."""
        if self.layers_by_name:
            return OrderedDict((node.name, node.layer) for node in self.nodes)
        return super().layers

    def predict(self, x, train_flg=False, training=None):
        """The scores for ``x``; ``train_flg``: dropout and batch norm in training mode."""
        return super().predict(x, training=training_mode(train_flg, training))

    def loss(self, x, t, train_flg=False, training=None):
        """The batch's loss plus the penalties (the book's weight decay)."""
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
    """A LayerNet ending in ``SoftmaxWithLoss(loss_variant)``: scores are logits."""

    def __init__(self, layers, loss_variant="book", **chain):
        super().__init__(layers, L.SoftmaxWithLoss(loss_variant), **chain)

    def predict_proba(self, x):
        """Softmax probabilities, what the Keras twins output, (N, C)."""
        return F.softmax(self.predict(x))
