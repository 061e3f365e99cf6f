"""A network is a graph of layers: forward through it, backward through it, weights gathered.

A ``Network`` holds ``Node``s in topological order. A node applies one layer to
the outputs of earlier nodes or to the network's inputs (a chain is the special
case where each node reads the one before). Layers that merge several inputs
(``numpy_ref.layers.merge``) receive a list and return a list of input gradients.

Parameters are gathered from the layers under public names: a node maps each
of its layer's keys (``kernel``, ``bias``) to a name (``W1``, or the Keras
variable path ``dense_1/kernel``). Two nodes may share a name: they then hold
the *same* array (a layer applied twice shares its weights), and the gradient
under that name is the sum over the nodes.

Penalties (``numpy_ref.losses.regularizers``: the book's weight decay, Keras's weight
and activity regularizers) add to the loss: ``loss`` returns the data loss plus
their sum, what training minimises (what Keras's ``fit`` minimises: the
compiled loss plus ``sum(model.losses)``), and their gradients add to the
weight gradients; ``data_loss`` keeps the data term of the last ``loss``.

Shape letters: N batch; the rest depends on the layers.
"""

from collections.abc import Mapping, MutableMapping
import dataclasses
import importlib
import pkgutil

import numpy as np

from numpy_ref.layers import activations
from numpy_ref.fast import flat
from numpy_ref import gradient as G
from numpy_ref import layers as L
from numpy_ref.losses import regularizers as R

NETWORK_CLASSES = {}  # "module.QualName" -> Network class, filled by __init_subclass__


@dataclasses.dataclass
class Node:
    """One application of ``layer`` to the values named in ``inputs``.

    Args:
        name: unique within the network.
        layer: a ``numpy_ref`` layer (``forward``/``backward``, ``params``/``grads``).
        inputs: names of earlier nodes or of the network's inputs.
        param_names: layer key -> public name; default ``"{name}/{key}"``.
        state_names: the same for the layer's non-trainable ``state``.
    """

    name: str
    layer: object
    inputs: list
    param_names: dict = None
    state_names: dict = None

    def public_names(self, kind):
        """{layer key: public name} for 'params' or 'state'."""
        given = (self.param_names if kind == "params" else self.state_names) or {}
        return {key: given.get(key, f"{self.name}/{key}")
                for key in getattr(self.layer, kind, {})}


class ArrayView(MutableMapping):
    """Public name -> array, read from and written to the layers themselves.

    ``view["W1"]`` is the layer's own array, so an in-place update
    (``params["W1"] -= lr * dW``) changes the network. Assigning copies the
    value into that array after a shape check, so every layer sharing it sees
    the change.
    """

    def __init__(self, slots, kind):
        self._slots = slots  # name -> [(node, key), ...]
        self._kind = kind

    def __getitem__(self, name):
        node, key = self._slots[name][0]
        return getattr(node.layer, self._kind)[key]

    def __setitem__(self, name, value):
        current = self[name]
        if value is current:  # the `params[k] -= ...` round trip
            return
        if np.shape(value) != current.shape:
            raise ValueError(f"{self._kind}[{name!r}] has shape {current.shape}. "
                             f"Received: an array of shape {np.shape(value)}")
        np.copyto(current, value, casting="same_kind")

    def __delitem__(self, name):
        raise TypeError(f"a network's {self._kind} cannot be deleted")

    def __iter__(self):
        return iter(self._slots)

    def items(self):
        """(name, array) pairs, read from the layers now (as ``__getitem__``); a list, made
        in one pass: an optimizer step asks for them every step."""
        kind = self._kind
        return [(name, getattr(owners[0][0].layer, kind)[owners[0][1]])
                for name, owners in self._slots.items()]

    def values(self):
        return [array for _, array in self.items()]

    def __len__(self):
        return len(self._slots)


ParamView = ArrayView  # the name the book-facing docs use


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
        NETWORK_CLASSES[L.class_key(cls)] = cls

    def __init__(self, nodes, inputs=("input",), outputs=None, loss_layer=None,
                 loss_input=None, input_grad=False, penalties=()):
        self.nodes = list(nodes)
        self.inputs = list(inputs)
        self.outputs = list(outputs) if outputs is not None else [self.nodes[-1].name]
        self.last_layer = loss_layer
        self.loss_input = loss_input or self.outputs[0]
        self._input_grad = input_grad
        self._check_graph()
        self._needs_grad = self._values_needing_grad()
        self._backward_plan = self._make_backward_plan()
        self.params = ArrayView(self._gather("params"), "params")
        self.state = ArrayView(self._gather("state"), "state")
        self.values = {}  # node or input name -> value of the last forward pass
        self.penalties = list(penalties)
        self._check_penalties()
        self.data_loss = None  # the data term of the last ``loss``
        self._grad_buffers = None  # {name: view} of one buffer per dtype, for reuse_buffers
        self._softmax_of_loss = self._find_softmax_of_loss()
        self._grad_out_set = False  # whether the layers' grad_out point into them

    def _check_graph(self):
        known = set(self.inputs)
        if len(known) != len(self.inputs):
            raise ValueError(f"input names must be unique. Received: {self.inputs}")
        for node in self.nodes:
            missing = [name for name in node.inputs if name not in known]
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
        self._needs_grad = self._values_needing_grad()
        self._backward_plan = self._make_backward_plan()

    def _values_needing_grad(self):
        """Names of the values whose gradient backward must compute."""
        needed = set(self.inputs) if self.input_grad else set()
        for node in self.nodes:
            if getattr(node.layer, "params", None) or needed.intersection(node.inputs):
                needed.add(node.name)
        return needed

    def _gather(self, kind):
        """{public name: [(node, key), ...]}; shared names must hold one array."""
        slots = {}
        for node in self.nodes:
            for key, name in node.public_names(kind).items():
                slots.setdefault(name, []).append((node, key))
        for name, owners in slots.items():
            arrays = {id(getattr(node.layer, kind)[key]) for node, key in owners}
            if len(arrays) > 1:
                raise ValueError(f"{kind} name {name!r} is shared by layers holding "
                                 "different arrays; shared weights must be one array")
        return slots

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
        self._run(0, training)
        outputs = [self.values[name] for name in self.outputs]
        return outputs[0] if len(outputs) == 1 else outputs

    def _run(self, start, training):
        """Runs nodes start.. on the values of the nodes before them."""
        values = self.values
        for node in self.nodes[start:]:
            arg = ([values[name] for name in node.inputs]
                   if getattr(node.layer, "multi_input", False) else values[node.inputs[0]])
            values[node.name] = node.layer.forward(arg, training=training)

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
        logits = self.values[self.loss_input]
        if self._softmax_of_loss is not None:  # a Keras classifier: softmax out, loss on logits
            loss = self.last_layer.forward_after_softmax(logits, self._softmax_of_loss, t)
            if loss is not None:
                return self._penalised(loss)
        return self._penalised(self.last_layer.forward(logits, t))

    def _find_softmax_of_loss(self):
        """The Softmax layer applied to the loss's logits, when the loss can reuse its work
        (``SparseCategoricalCrossentropy.forward_after_softmax``); else None."""
        reads = getattr(self.last_layer, "reads_softmax_of_logits", None)
        if reads is None or not reads():
            return None
        for node in self.nodes:
            if (type(node.layer) is activations.Softmax and node.inputs == [self.loss_input]
                    and node.layer.axis == -1):
                return node.layer
        return None

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

    def backward(self, dout=1, reuse_buffers=False):
        """Backprop from the loss through the last forward pass.

        Returns the gradient dict (public name -> array; shared names summed;
        zeros for a weight the loss does not reach). Each layer's own ``grads``
        hold its part; ``value_grads`` maps every node and input the loss
        reaches to dL/d(its value).

        ``reuse_buffers=True`` (what a training loop wants): the gradients are
        written into buffers the network keeps, one per dtype with the weights'
        order, which the next such call overwrites; an optimizer then updates all
        weights in one pass over them. Copy a gradient to keep it.
        """
        self._route_grad_out(reuse_buffers)
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
                backward_weights = getattr(layer, "backward_weights", None)
                if backward_weights is not None:
                    backward_weights(dy)
                else:
                    layer.backward(dy)
                continue
            dxs = layer.backward(dy)
            if not getattr(layer, "multi_input", False):
                dxs = (dxs,)
            for value, dx in zip(node.inputs, dxs):
                if dx is not None:
                    grads[value] = dx if value not in grads else grads[value] + dx
        self.value_grads = grads
        out = self._gathered_grads(grads, dout)
        if reuse_buffers:
            for name, view in self._grad_buffers.items():
                if out[name] is not view:
                    np.copyto(view, out[name], casting="same_kind")
                    out[name] = view
        return out

    def _make_backward_plan(self):
        """(node, whether only its weight gradients are needed) for the nodes backward
        visits, last first: those whose value needs a gradient (something at or above
        them learns)."""
        return [(node, self._needs_grad.isdisjoint(node.inputs))
                for node in reversed(self.nodes) if node.name in self._needs_grad]

    def _route_grad_out(self, reuse):
        """Points the layers' ``grad_out`` at the gradient buffers (or back at None)."""
        if reuse == self._grad_out_set:
            return
        if reuse and self._grad_buffers is None:
            self._grad_buffers = flat.pack_by_dtype(
                {name: np.zeros_like(array) for name, array in self.params.items()})
        for name, owners in self.params._slots.items():  # pylint: disable=protected-access
            if len(owners) == 1:  # a shared weight's parts are summed, not written in place
                node, key = owners[0]
                out = getattr(node.layer, "grad_out", None)
                if reuse:
                    if out is None:
                        out = node.layer.grad_out = {}
                    out[key] = self._grad_buffers[name]
                elif out is not None:
                    node.layer.grad_out = None
        self._grad_out_set = reuse

    def _gathered_grads(self, reached, dout=1):
        out = {}
        for name, owners in self.params._slots.items():  # pylint: disable=protected-access
            if len(owners) == 1:  # the usual case, without the list
                node, key = owners[0]
                if node.name in reached:
                    out[name] = node.layer.grads[key]
                    continue
                parts = ()
            else:
                parts = [node.layer.grads[key] for node, key in owners if node.name in reached]
            if not parts:  # the loss does not depend on this weight
                out[name] = np.zeros_like(self.params[name])
            else:
                out[name] = parts[0] if len(parts) == 1 else sum(parts[1:], parts[0])
        for p in self.penalties:
            if isinstance(p, R.WeightPenalty):
                out[p.param] = out[p.param] + p.regularizer.gradient(self.params[p.param], dout)
        return out

    def loss_and_gradient(self, x, t, training=True, reuse_buffers=False):
        """One forward and one backward pass: ``(loss, {name: dL/dparam})``
        (``reuse_buffers``: see ``backward``)."""
        loss = self.loss(x, t, training=training)
        return loss, self.backward(1, reuse_buffers=reuse_buffers)

    def pack_params(self):
        """Moves the weights into one contiguous buffer per dtype, in ``params`` order;
        each layer then holds a view of its stretch (same values).

        An element-wise optimizer then updates every weight with one pass per operation
        (``numpy_ref.fast.flat``). Arrays taken from the layers before the call are no longer
        theirs afterwards: call it on a network whose weights nobody else holds (a
        twin, a network just built).
        """
        for name, view in flat.pack_by_dtype(dict(self.params.items())).items():
            for node, key in self.params._slots[name]:  # pylint: disable=protected-access
                node.layer.params[key] = view
        return self

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

    # -- serialization

    def get_config(self):
        """The graph as JSON-able data: nodes (layer class and config), wiring, loss."""
        return {
            "inputs": self.inputs, "outputs": self.outputs, "loss_input": self.loss_input,
            "input_grad": self.input_grad,
            "nodes": [{"name": n.name, "inputs": n.inputs,
                       "class": L.class_key(type(n.layer)), "config": n.layer.get_config(),
                       "params": n.public_names("params"), "state": n.public_names("state")}
                      for n in self.nodes],
            "loss": None if self.last_layer is None else {
                "class": L.class_key(type(self.last_layer)),
                "config": self.last_layer.get_config()},
            "penalties": [p.get_config() for p in self.penalties],
        }

    @classmethod
    def from_config(cls, config, arrays):
        """The network ``get_config`` describes, its layers built around ``arrays``
        (public name -> array; used, not copied). Raises ValueError on a bad config."""
        nodes = []
        for spec in config["nodes"]:
            layer_cls = layer_class(spec["class"])
            weights = {kind: {key: _array(arrays, name) for key, name in spec[kind].items()}
                       for kind in ("params", "state")}
            layer = layer_cls.from_config(spec["config"], weights["params"], weights["state"])
            nodes.append(Node(spec["name"], layer, list(spec["inputs"]),
                              param_names=spec["params"], state_names=spec["state"]))
        loss = config.get("loss")
        loss_layer = (None if loss is None else
                      layer_class(loss["class"]).from_config(loss["config"]))
        net = cls.__new__(cls)  # the graph is given: no subclass constructor runs
        penalties = [R.penalty_from_config(p) for p in config.get("penalties", ())]
        Network.__init__(net, nodes, config["inputs"], config["outputs"], loss_layer,
                         config["loss_input"], config["input_grad"], penalties)
        return net


def layer_class(key):
    """The layer class a saved network names (``class_key``): one of numpy_ref's own, found
    by its class name wherever numpy_ref now keeps it (so files saved before a module moved
    still load), or another class already defined (imported) by the caller."""
    return _registered(key, L.LAYER_CLASSES, "layer")


def network_class(key):
    """The network class a saved network names, as ``layer_class`` finds layers."""
    return _registered(key, NETWORK_CLASSES, "network")


def _registered(key, classes, kind):
    if key in classes:
        return classes[key]
    if key.startswith("numpy_ref."):
        _import_numpy_ref()
        name = key.rsplit(".", 1)[-1]
        found = [cls for k, cls in classes.items()
                 if k.startswith("numpy_ref.") and k.rsplit(".", 1)[-1] == name]
        if len(found) == 1:
            return found[0]
    raise ValueError(f"unknown {kind} class {key!r}: define (import) it before loading; "
                     f"known: {sorted(classes)}")


def _import_numpy_ref():
    """Imports every numpy_ref module, so that each of its classes is registered."""
    package = importlib.import_module("numpy_ref")
    for info in pkgutil.walk_packages(package.__path__, "numpy_ref."):
        importlib.import_module(info.name)


def _array(arrays, name):
    if name not in arrays:
        raise ValueError(f"array {name!r} is missing")
    return arrays[name]


NETWORK_CLASSES[L.class_key(Network)] = Network


def gathered(mapping):
    """A plain dict copy of a params/state view (arrays copied)."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"expected a mapping. Received: {type(mapping).__name__}")
    return {name: np.array(value) for name, value in mapping.items()}
