"""A network is a graph of layers: forward through it, backward through it.

A ``Network`` holds ``Node``s in topological order. A node applies one layer to
the outputs of earlier nodes or to the network's inputs (a chain is the special
case where each node reads the one before). Layers that merge several inputs
(``numpy_ref.layers.merge``) receive a list and return a list of input gradients.

Parameters are gathered from the layers under public names (``params``, an
``ArrayView``); a name two nodes share is one array, and its gradient is the
sum over the nodes.

Penalties (``numpy_ref.losses.regularizers``: the book's weight decay, Keras's weight
and activity regularizers) add to the loss: ``loss`` returns the data loss plus
their sum, what training minimises (what Keras's ``fit`` minimises: the
compiled loss plus ``sum(model.losses)``), and their gradients add to the
weight gradients; ``data_loss`` keeps the data term of the last ``loss``.

Shape letters: N batch; the rest depends on the layers.
"""

import numpy as np

from numpy_ref import gradient as G
from numpy_ref import layers as L
from numpy_ref.losses import regularizers as R
from numpy_ref.network import config as C
from numpy_ref.network.arrays import ArrayView


def _add(a, b):
    """a + b for two gradients of one value; the gradient of a layer's several outputs
    (``multi_output``) is a tuple, None where nothing reached that output."""
    if isinstance(a, tuple):
        return tuple(y if x is None else x if y is None else x + y for x, y in zip(a, b))
    return a + b


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Network:
    """Layers wired as a directed acyclic graph, with an optional loss layer.

    Args:
        nodes: ``Node``s in an order where every input comes first.
        inputs: names of the network's inputs (one array each).
        outputs: node names whose values ``predict`` returns; default the last node.
        loss_layer: ``forward(y, t) -> loss``, ``backward(dout) -> dy``; or None.
        loss_input: the node whose value the loss reads; default the single output.
            (A Keras loss on a softmax output reads the logits before it.)
        input_grad: whether ``backward`` computes dL/d(inputs). The data needs
            none: then only values downstream of some weight get a gradient,
            a layer whose inputs need none computes just its weight gradients
            (``backward_weights``), and a layer with neither is skipped.
        penalties: ``regularizers.WeightPenalty`` (on a parameter name) and
            ``ActivityPenalty`` (on a node) terms, added to the loss in this order.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        C.NETWORK_CLASSES[L.class_key(cls)] = cls

    def __init__(self, nodes, inputs=("input",), outputs=None, loss_layer=None,
                 loss_input=None, input_grad=False, penalties=()):
        self.nodes = list(nodes)
        self.inputs = list(inputs)
        self.outputs = list(outputs) if outputs is not None else [self.nodes[-1].name]
        self.last_layer = loss_layer
        self.loss_input = loss_input or self.outputs[0]
        self._check_graph()
        self.input_grad = input_grad
        self.params = ArrayView(self.nodes, "params")
        self.state = ArrayView(self.nodes, "state")
        self.values = {}  # node or input name -> value of the last forward pass
        self.masks = {}
        self.penalties = list(penalties)
        self._check_penalties()
        self.data_loss = None  # the data term of the last ``loss``

    def _check_graph(self):
        known = set(self.inputs)
        if len(known) != len(self.inputs):
            raise ValueError(f"input names must be unique. Received: {self.inputs}")
        holders = {}  # id(layer) -> the first node applying it
        for node in self.nodes:
            first = holders.setdefault(id(node.layer), node.name)
            if first != node.name:
                raise ValueError(f"nodes {first!r} and {node.name!r} hold the same layer object: "
                                 "a layer keeps its last forward pass for its backward, so "
                                 "each application needs a layer of its own (sharing the "
                                 "weight arrays, as a twin's shared layers do)")
            sources = [s for v in (node.masks or {}).values()
                       for s in (v if isinstance(v, list) else [v]) if s is not None]
            missing = [name for name in [*node.inputs, *sources] if name not in known]
            if missing:
                raise ValueError(f"node {node.name!r} reads {missing}, which no earlier node "
                                 f"or input provides")
            if node.name in known:
                raise ValueError(f"node name {node.name!r} is used twice")
            known.add(node.name)
        unknown = [name for name in [*self.outputs, self.loss_input] if name not in known]
        if unknown:
            raise ValueError(f"outputs or loss_input {unknown} are not nodes of the network")

    def _check_penalties(self):
        nodes = {node.name for node in self.nodes}
        for p in self.penalties:
            target, known = ((p.param, self.params) if isinstance(p, R.WeightPenalty)
                             else (getattr(p, "node", None), nodes))
            if target not in known:
                raise ValueError(f"penalty {p!r} names {target!r}, which is not a "
                                 f"{'parameter' if known is self.params else 'node'} "
                                 "of the network")

    @property
    def input_grad(self):
        """Whether ``backward`` computes dL/d(inputs) (and so every value's gradient)."""
        return self._input_grad

    @input_grad.setter
    def input_grad(self, value):
        self._input_grad = bool(value)
        needed = set(self.inputs) if self._input_grad else set()
        for node in self.nodes:  # values downstream of a weight (or of the inputs)
            if node.arrays("params") or needed.intersection(node.inputs):
                needed.add(node.name)
        # (node, whether only its weight gradients are needed), last first
        self._backward_plan = [(node, needed.isdisjoint(node.inputs))
                               for node in reversed(self.nodes) if node.name in needed]

    @property
    def layers(self):
        """The layers, in forward order."""
        return [node.layer for node in self.nodes]

    @property
    def dtype(self):
        return next(iter(self.params.values())).dtype

    # -- forward

    def forward(self, x, training=False):
        """Runs every node; returns the outputs (one array, or a list for several)."""
        xs = _as_list(x) if len(self.inputs) > 1 else [x]
        if len(xs) != len(self.inputs):
            raise ValueError(f"the network takes {len(self.inputs)} inputs "
                             f"({self.inputs}). Received: {len(xs)}")
        self.values = dict(zip(self.inputs, xs))
        self.masks = {}  # value name -> its Keras mask, where it has one
        self._run(0, training)
        outputs = [self.values[name] for name in self.outputs]
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, start, training):
        """Runs nodes start.. on the values of the nodes before them."""
        values, masks = self.values, self.masks
        for node in self.nodes[start:]:
            arg = ([values[name] for name in node.inputs]
                   if getattr(node.layer, "multi_input", False) else values[node.inputs[0]])
            mode = training if node.training is None else node.training
            given = {key: ([None if s is None else masks.get(s) for s in source]
                           if isinstance(source, list) else masks.get(source))
                     for key, source in (node.masks or {}).items()}
            values[node.name] = node.layer.forward(arg, training=mode, **given)
            if node.output_mask is not None:
                masks[node.name] = self._output_mask(node, arg, given)

    def _output_mask(self, node, arg, given):
        """The Keras mask of a node's output (``Node.output_mask`` says which rule)."""
        rule = node.output_mask
        if rule == "computed":
            return node.layer.compute_mask(arg, **given)
        if rule == "value":  # the node computes a mask (x != 0)
            return self.values[node.name]
        if rule == "item":
            source = self.masks.get(node.inputs[0])
            return None if source is None else source[node.layer.index]
        return given["mask"] if "mask" in given else self.masks.get(node.inputs[0])

    def predict(self, x, training=False):
        """The network's output for ``x`` (before any loss layer)."""
        return self.forward(x, training=training)

    @property
    def last_output(self):
        """The first output of the last forward pass."""
        return self.values[self.outputs[0]]

    def loss(self, x, t, training=False):
        """The loss of a batch plus the penalties (the outputs stay in ``last_output``,
        the data term alone in ``data_loss``)."""
        self.forward(x, training=training)
        return self._penalised(self.last_layer.forward(self.values[self.loss_input], t))

    def _penalised(self, data_loss):
        """data_loss + (p1 + p2 + ...), the penalties at the current weights and values
        (the sum in the order of ``penalties``, as Python's ``sum(model.losses)``)."""
        self.data_loss = data_loss
        if not self.penalties:
            return data_loss
        return data_loss + sum(p.value(self) for p in self.penalties)

    def accuracy(self, x, t, batch_size=10_000):
        """Fraction of samples whose arg-max output equals the label (or one-hot label)."""
        t = np.asarray(t)
        labels = t.argmax(axis=-1) if t.ndim == 2 else t
        hits = 0
        for start in range(0, len(labels), batch_size):  # bounded memory
            stop = start + batch_size
            batch = [a[start:stop] for a in x] if len(self.inputs) > 1 else x[start:stop]
            self.forward(batch)
            hits += int(np.sum(self.last_output.argmax(axis=-1) == labels[start:stop]))
        return hits / len(labels)

    # -- backward

    def backward(self, dout=1):
        """Backprop from the loss through the last forward pass.

        Returns the gradient dict (public name -> array; shared names summed;
        zeros for a weight the loss does not reach). Each layer's own ``grads``
        hold its part; ``value_grads`` maps every node and input the loss
        reaches to dL/d(its value).
        """
        grads = {self.loss_input: self.last_layer.backward(dout)}
        for p in self.penalties:  # an activity penalty's gradient starts at its node
            if isinstance(p, R.ActivityPenalty):
                dy = p.gradient(self.values[p.node], dout)
                grads[p.node] = dy if p.node not in grads else grads[p.node] + dy
        for node, weights_only in self._backward_plan:
            dy = grads.get(node.name)
            if dy is None:
                continue  # the loss does not reach this node
            layer = node.layer
            if weights_only:  # nothing upstream learns: dL/d(inputs) is not needed
                getattr(layer, "backward_weights", layer.backward)(dy)
                continue
            dxs = layer.backward(dy)
            multi_input = getattr(layer, "multi_input", False)
            for value, dx in zip(node.inputs, dxs if multi_input else (dxs,)):
                if dx is not None:
                    grads[value] = dx if value not in grads else _add(grads[value], dx)
        self.value_grads = grads
        return self._weight_grads(grads, dout)

    def _weight_grads(self, reached, dout=1):
        """{public name: dL/dparam}: each owner's part where the loss reached it, summed
        for a shared weight, zeros where it reached none; the weight penalties added."""
        out = {}
        for name, param in self.params.items():
            parts = [node.layer.grads[key] for node, key in self.params.owners(name)
                     if node.name in reached]
            if not parts:  # the loss does not depend on this weight
                out[name] = np.zeros_like(param)
            else:
                out[name] = parts[0] if len(parts) == 1 else sum(parts[1:], parts[0])
        for p in self.penalties:
            if isinstance(p, R.WeightPenalty):
                out[p.param] = out[p.param] + p.regularizer.gradient(self.params[p.param], dout)
        return out

    def loss_and_gradient(self, x, t, training=True):
        """One forward and one backward pass: ``(loss, {name: dL/dparam})``."""
        loss = self.loss(x, t, training=training)
        return loss, self.backward(1)

    def gradient(self, x, t):
        """Backprop: dict of dL/dparam with the keys of ``params``."""
        return self.loss_and_gradient(x, t)[1]

    def numerical_gradient(self, x, t):
        """Central differences, one weight at a time, perturbed in place.

        Two loss evaluations per weight. A weight of node k cannot change the
        nodes before k (topological order), so their values are computed once
        and only nodes k.. are re-run: the same numbers as a full forward pass,
        for less work. Use it in float64 to check ``gradient``.
        """
        self.forward(x)
        grads = {}
        for k, node in enumerate(self.nodes):
            names = node.public_names("params")
            for key, name in names.items():
                if name not in grads:
                    grads[name] = G.numerical_gradient(
                        lambda _, k=k: self._loss_from(k, t), node.layer.params[key])
            if names:  # the values from node k on again, from the restored weights
                self._run(k, training=False)
        return {name: grads[name] for name in self.params}

    def _loss_from(self, k, t):
        """The loss with nodes k.. re-run on the cached values of the nodes before k."""
        self._run(k, training=False)
        return self._penalised(self.last_layer.forward(self.values[self.loss_input], t))

    # -- saving (``numpy_ref.network.serialization`` writes it to a file)

    def get_config(self):
        """The graph as JSON-able data: nodes (layer class and config), wiring, loss."""
        return C.graph_config(self)

    @classmethod
    def from_config(cls, config, arrays):
        """The network ``get_config`` describes, its layers built around ``arrays``
        (public name -> array; used, not copied). Raises ValueError on a bad config."""
        net = cls.__new__(cls)  # the graph is given: no subclass constructor runs
        Network.__init__(net, **C.graph_arguments(config, arrays))
        return net


C.NETWORK_CLASSES[L.class_key(Network)] = Network
