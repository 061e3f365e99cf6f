"""``twin(model)``: the ``numpy_ref`` network that computes what a built Keras model computes.

The model is traced once (``trace.py``): each call of a layer with a
registered twin becomes a node of a ``numpy_ref.network.Network``, wired as
the tensors flow; so does each TensorFlow operation a custom layer's ``call``
applies between its sublayers (``x + attention(x)``: ``tf_ops.py``), and a value
fixed when the model is traced (``ops.arange(T)``) becomes a constant node.
Parameters are keyed by the Keras variable path (``dense_1/kernel``) and hold
copies of the weights; a layer called twice gets two nodes sharing one array per
weight. The loss is the twin of the compiled
loss (or a ``SparseCategoricalCrossentropy``), and where Keras's loss reads the
logits cached on a softmax or sigmoid output, the twin's loss reads the node
of those logits, as the Keras graph does.

The twin's ``loss`` is what ``model.fit`` minimises: the compiled loss plus
the terms of ``model.losses``, one penalty per weight and activity
regularizer (``regularizers.py``); ``net.data_loss`` is the compiled loss alone.
"""

import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

from numpy_ref.layers import activations, core, tensor_ops
from numpy_ref.network import Network, Node
from tfmodels.parity import losses as twin_losses
from tfmodels.parity import registry, regularizers, tf_ops, trace as tracing


@dataclasses.dataclass
class Twin:
    """A twin and what links it to the Keras model (``compare`` needs both)."""

    net: Network
    keras_loss: keras.losses.Loss
    layer_nodes: list  # [(keras layer, node name of its output or None)], in forward order
    input_specs: list


def twin(model, loss=None, x=None):
    """The NumPy twin of a built Keras model (Sequential, functional or subclassed).

    Args:
        model: a built Keras model (called once, or built with an input shape).
        loss: a Keras loss (object, name or function); default the compiled
            ``model.loss``, else ``SparseCategoricalCrossentropy`` in the
            output's dtype.
        x: optional example input (an array or a list of arrays), for a model
            whose input shape Keras does not record.

    Returns:
        A ``numpy_ref.network.Network``: ``predict(x)`` is the model's output,
        ``loss_and_gradient(x, y)`` returns ``(loss, {variable.path: gradient})``.

    Raises:
        ValueError: an unbuilt model, a layer or activation without a twin
            (named, with the supported list), or an operation in ``call``
            that is not a layer (named, with the layer to use instead).
    """
    return build(model, loss, x).net


def build(model, loss=None, x=None, input_grad=False):
    """``twin`` with its links to the Keras model (a ``Twin``)."""
    if not model.built:
        raise ValueError(f"Model {model.name!r} is not built: call it on a batch (or "
                         "build it with an input shape) before twinning it")
    specs = input_specs(model, x)
    keras_loss = twin_losses.resolve(model, loss)
    if keras_loss is not None:  # a loss without a twin is named before the trace calls it
        twin_losses.twin_loss(keras_loss)
    recorded = tracing.trace(model, specs, probe=lambda out: {
        **_loss_probe(keras_loss, out), "keras_losses": len(model.losses)})
    leaves = tracing.leaf_calls(recorded.root)
    in_training = tracing.leaf_calls(tracing.trace(model, specs, training=True).root)
    modes = tracing.fixed_modes(leaves, in_training)
    return _network(model, recorded, leaves, modes, recorded.probe.get("loss", keras_loss),
                    specs, input_grad)


def link(model, net, loss=None, x=None):
    """A given (hand-made or modified) twin with its links to the Keras model, built
    without twinning any layer, so a model with a layer that has no registered twin can
    still be compared: each traced layer call is linked to ``net``'s node of the same name
    (what ``twin`` names it), or to None where ``net`` has no such node."""
    specs = input_specs(model, x)
    keras_loss = twin_losses.resolve(model, loss)
    recorded = tracing.trace(model, specs, probe=lambda out: _loss_probe(keras_loss, out))
    nodes, taken = {node.name for node in net.nodes}, set(net.inputs)
    layer_nodes = []
    for call in tracing.leaf_calls(recorded.root, require_twin=False):
        name = _unique(call.layer.name, taken)
        layer_nodes.append((call.layer, name if name in nodes else None))
    return Twin(net, recorded.probe.get("loss", keras_loss), layer_nodes, specs)


def input_specs(model, x=None):
    """One ``tf.TensorSpec`` per model input, with an open batch dimension."""
    if x is not None:
        xs = x if isinstance(x, (list, tuple)) else [x]
        return [tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype))
                for a in xs]
    inputs = symbolic_tensors(model)
    if inputs is not None:
        return [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in inputs]
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    if len(shapes) == 1:
        shape = next(iter(shapes.values()))
        dtype = getattr(model, "input_dtype", None) or model.compute_dtype
        flat = [shape] if _is_shape(shape) else list(shape)
        if all(_is_shape(s) for s in flat):
            return [tf.TensorSpec((None, *s[1:]), dtype) for s in flat]
    raise ValueError(f"Model {model.name!r} ({type(model).__name__}) does not record its "
                     "input shape: pass an example batch, twin(model, x=...)")


def symbolic_tensors(model, which="inputs"):
    """``model.inputs`` or ``model.outputs`` (``which``); None where the model has none
    (a subclassed model has no symbolic inputs or outputs)."""
    try:
        return getattr(model, which) or None
    except (AttributeError, ValueError):
        return None


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(
        d is None or isinstance(d, int) for d in value)


def _loss_probe(keras_loss, outputs):
    """Inside the trace: does the loss reach the output tensor, or the logits Keras cached?"""
    flat = tf.nest.flatten(outputs)
    if len(flat) != 1:
        return {}
    out = flat[0]
    keras_loss = keras_loss or twin_losses.default_loss(out)
    value = keras_loss(twin_losses.probe_labels(keras_loss, out), out)
    return {"loss": keras_loss, "reads_output": tf.gradients(value, out)[0] is not None,
            "cached_logits": getattr(out, "_keras_logits", None)}


def _network(model, recorded, leaves, modes, keras_loss, specs, input_grad):
    input_names = _input_names(model, len(recorded.inputs))
    known = {id(t): name for t, name in zip(recorded.inputs, input_names)}
    nodes, layer_nodes, first = [], [], {}
    taken = set(input_names)

    def add_cast(source, dtype):  # Keras keeps a tensor's mask when it casts it
        name = _unique(f"{source}/cast_{dtype}", taken)
        nodes.append(Node(name, core.Cast(dtype), [source], output_mask="input"))
        return name

    owners = tracing.operation_owners(recorded.root)

    def add_constant(tensor, value):
        """A value fixed when the model is traced (``ops.arange(T)``): a node holding it,
        reading the first input (a node reads some value) and passing nothing back."""
        owner = owners.get(id(tensor))
        op_type = getattr(getattr(tensor, "op", None), "type", "constant")
        name = _unique(f"{owner.name}/constant_{op_type}" if owner is not None
                       else f"constant_{op_type}", taken)
        nodes.append(Node(name, tensor_ops.Constant(value, tensor.dtype.name),
                          [input_names[0]]))
        return name

    def resolve(tensor, consumer):
        return tracing.resolve(tensor, known, model, consumer, add_cast, add_constant)

    mask_sources = {}  # id(a Keras mask tensor) -> the value whose mask it is
    unfollowable = {}  # id(a Keras mask the twin cannot compute) -> the layer that made it
    for call in leaves:
        operation = isinstance(call.layer, tracing.TFOperation)
        consumer = (f"TensorFlow operation {call.layer.name!r}" if operation
                    else f"layer {call.layer.name!r}")
        refs = [resolve(t, consumer) for t in call.inputs]
        layer, frozen = _twin_layer(call, first)
        if len(refs) != 1 and not getattr(layer, "multi_input", False):
            raise registry.unsupported_error(
                call.layer, f"is given {len(refs)} tensors (in "
                            f"{', '.join(tracing.tensor_arguments(call))}), and its twin "
                            "takes one")
        several = len(call.outputs) != 1
        if several != bool(getattr(layer, "multi_output", False)):
            raise registry.unsupported_error(
                call.layer, f"returns {len(call.outputs)} tensors, and its twin "
                            f"{'one' if several else 'several'}")
        if isinstance(call.layer, _READS_INPUT_MASKS) and any(
                m is not None for m in call.input_masks):
            raise registry.unsupported_error(
                call.layer, "is given inputs carrying Keras masks, which Keras's "
                            f"{type(call.layer).__name__} applies inside its call (masked "
                            "steps skipped or counted as 1) and its twin does not")
        name = _unique(call.layer.name, taken)
        rule = "value" if _is_mask_value(call, layer) else _output_mask_rule(call, layer)
        if rule == "unfollowable":  # refused only if a later layer is given that mask
            unfollowable.update({id(m): call.layer for m in call.output_masks()
                                 if m is not None})
            rule = None
        nodes.append(Node(name, layer, refs, param_names=_paths(call.layer, layer, "params"),
                          state_names=_paths(call.layer, layer, "state"),
                          training=modes.get(id(call)), frozen=frozen,
                          masks=_mask_links(call, layer, mask_sources, unfollowable) or None,
                          output_mask=rule))
        names = [name]
        if several:  # one node per output, reading it off the tuple the layer returns
            names = [_unique(f"{name}/output_{k}", taken) for k in range(len(call.outputs))]
            nodes.extend(Node(n, core.TakeOutput(k), [name], output_mask=rule and "item")
                         for k, n in enumerate(names))
        returned = call.returned or call.outputs
        for tensor, final, mask, value in zip(call.outputs, returned, call.output_masks(),
                                              names):
            known[id(tensor)] = known[id(final)] = value
            if rule == "value":  # the tensor is itself a mask (x != 0 in a functional graph)
                mask_sources.setdefault(id(tensor), value)
            if mask is not None:
                mask_sources.setdefault(id(mask), value)
        layer_nodes.append((call.layer, names[0]))
    outputs = [resolve(t, "the model's output") for t in recorded.outputs]
    loss_layer, loss_input = _loss(model, recorded, keras_loss, nodes, outputs, known, taken)
    params = {name for node in nodes for name in node.public_names("params").values()}
    penalties = regularizers.penalties(model, recorded.root, resolve, params)
    regularizers.check_count(model, penalties, recorded.probe.get("keras_losses"))
    net = Network(nodes, input_names, outputs, loss_layer, loss_input, input_grad=input_grad,
                  penalties=penalties)
    return Twin(net, keras_loss, layer_nodes, specs)


# Keras layers that read their inputs' Keras masks inside ``call`` (not as a ``mask``
# argument): Keras's masked merges.
_READS_INPUT_MASKS = (keras.layers.Multiply, keras.layers.Maximum, keras.layers.Minimum)


def _is_mask_value(call, layer):
    """Whether a call's output is itself a Keras mask: a boolean tensor a functional
    graph computes with ``keras.ops`` (``x != 0``) and passes on as a layer's mask."""
    return getattr(layer, "makes_mask", False) or (
        not isinstance(call.layer, keras.layers.Layer)
        and all(t.dtype == tf.bool for t in call.outputs))


def _mask_links(call, layer, mask_sources, unfollowable):
    """{mask argument: the value whose mask it is} for the Keras masks a call was given;
    a ValueError where the twin takes no such argument, or the mask was not made by a
    twinned layer (a mask passed by hand)."""
    accepted = getattr(layer, "mask_arguments", ())
    links = {}
    for argument, given in call.masks.items():
        if argument not in accepted:
            raise registry.unsupported_error(
                call.layer, f"is given a Keras mask ({argument}), which its NumPy twin does "
                            "not follow")

        def source(tensor, argument=argument):
            if tensor is None:
                return None
            if id(tensor) in unfollowable:
                maker = unfollowable[id(tensor)]
                raise registry.unsupported_error(
                    call.layer, f"is given the Keras mask that {maker.name!r} "
                                f"({type(maker).__name__}) computes, which its NumPy twin "
                                "cannot compute")
            if id(tensor) not in mask_sources:
                raise registry.unsupported_error(
                    call.layer, f"is given a Keras mask ({argument}) that no layer of the "
                                "model made (a mask passed by hand), which the twin cannot "
                                "compute")
            return mask_sources[id(tensor)]
        links[argument] = ([source(t) for t in given] if isinstance(given, (list, tuple))
                           else source(given))
    return links


def _output_mask_rule(call, layer):
    """How the twin gets the Keras mask of a call's output (``Node.output_mask``): None,
    "input" (the same mask the call was given, or its first input carried), "computed"
    (the twin's ``compute_mask``; for several outputs, a tuple of them), or
    "unfollowable" (Keras computes one and the twin cannot: refused if a layer reads it)."""
    masks = call.output_masks()
    if all(m is None for m in masks):
        return None
    given = [*tf.nest.flatten(list(call.masks.values())), *call.input_masks[:1]]
    if len(masks) == 1 and any(masks[0] is g for g in given if g is not None):
        return "input"
    if not hasattr(layer, "compute_mask"):
        return "unfollowable"
    return "computed"


def _input_names(model, n):
    inputs = symbolic_tensors(model)
    if inputs is not None and len(inputs) == n:
        names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(inputs)]
        if len(set(names)) == n:
            return names
    return ["input"] if n == 1 else [f"input_{i}" for i in range(n)]


def _unique(name, taken):
    candidate, i = name, 1
    while candidate in taken:
        i += 1
        candidate = f"{name}#{i}"
    taken.add(candidate)
    return candidate


def _twin_layer(call, first):
    """The twin of one call and its frozen keys; a second call of the same layer shares
    the first twin's arrays. A builder takes the layer, or the layer and the ``trace.Call``
    (``registry.takes_call``), which holds the arguments it was given: an operation's
    constants (``x + 3.0`` in a functional model), a MultiHeadAttention's
    ``use_causal_mask``."""
    keras_layer = call.layer
    if isinstance(keras_layer, tracing.TFOperation):  # an operation in a layer's own code
        return tf_ops.build(call), ()
    builder = registry.builder_for(keras_layer)
    layer = (builder(keras_layer, call) if registry.takes_call(builder, keras_layer)
             else builder(keras_layer))
    frozen = _check_keys(keras_layer, layer)
    if id(keras_layer) in first:
        original = first[id(keras_layer)]
        layer.params.update(original.params)  # the same arrays: shared weights
        layer.state.update(original.state)
    else:
        first[id(keras_layer)] = layer
    return layer, frozen


def _keras_weights(keras_layer):
    """{key: variable} of every weight of the layer, trainable or not. The key is the
    weight's name (``kernel``); where two weights of a composite layer share a name, it is
    the weight's path inside the layer instead (``query/kernel`` in a MultiHeadAttention,
    ``forward_lstm/lstm_cell/kernel`` in a Bidirectional)."""
    variables = list(getattr(keras_layer, "weights", ()))
    names = [v.name for v in variables]
    if len(set(names)) == len(names):
        return dict(zip(names, variables))
    prefix = f"{getattr(keras_layer, 'path', None)}/"
    keyed = {}
    for v in variables:
        key = v.path[len(prefix):] if v.path.startswith(prefix) else v.path
        if key in keyed:
            raise registry.unsupported_error(
                keras_layer, f"holds two weights under one path {key!r}, which its twin "
                             "cannot tell apart")
        keyed[key] = v
    return keyed


def _check_keys(keras_layer, layer):
    """Checks that the twin holds the layer's weights under their own names and shapes
    (trainable ones in ``params``; non-trainable ones in ``state``, or in ``params`` when
    they are weights the layer trains unless frozen); returns the frozen ``params`` keys."""
    variables = _keras_weights(keras_layer)
    params, state = getattr(layer, "params", {}), getattr(layer, "state", {})
    have = {**params, **state}
    if set(variables) != set(have) or set(params) & set(state):
        raise ValueError(
            f"The twin of Keras layer {keras_layer.name!r} ({type(keras_layer).__name__}) "
            f"holds {sorted(params)} (params) and {sorted(state)} (state), but the layer's "
            f"weights are {sorted(variables)}: a twin's keys are the Keras weights' own names "
            "(their paths inside the layer, for a composite layer)")
    for key, variable in variables.items():
        if np.shape(have[key]) != tuple(variable.shape):
            raise ValueError(f"The twin of Keras weight {variable.path!r} has shape "
                             f"{np.shape(have[key])}, the weight {tuple(variable.shape)}")
        if key in state and variable.trainable:
            raise ValueError(f"The twin of Keras layer {keras_layer.name!r} "
                             f"({type(keras_layer).__name__}) keeps {key!r} in its state, "
                             "but Keras trains that weight")
    return tuple(key for key in params if not variables[key].trainable)


def _paths(keras_layer, layer, kind):
    variables = _keras_weights(keras_layer)
    return {key: variables[key].path for key in getattr(layer, kind, {})}


def _loss(model, recorded, keras_loss, nodes, outputs, known, taken):
    """The twin loss and the node it reads: the output, or the logits Keras reads instead."""
    if len(outputs) != 1:
        raise ValueError(f"Model {model.name!r} has {len(outputs)} outputs; the twin's loss "
                         "covers models with one output")
    if tracing.keras_mask(recorded.outputs[0]) is not None:
        raise ValueError(f"Model {model.name!r}'s output carries a Keras mask, which Keras's "
                         "loss applies to weight the time steps; the twin's loss does not")
    reads_logits = not recorded.probe.get("reads_output", True)
    loss_layer = twin_losses.twin_loss(keras_loss, from_logits=True if reads_logits else None)
    if not reads_logits:
        return loss_layer, outputs[0]
    logits = recorded.probe["cached_logits"]
    if id(logits) in known:  # e.g. Activation('softmax') after a layer: its input
        return loss_layer, known[id(logits)]
    return loss_layer, _split_activation(model, nodes, outputs[0], taken)


def _split_activation(model, nodes, output, taken):
    """Splits the output node ``y = act(z)`` into ``z`` and ``act`` nodes; returns ``z``'s name.

    Keras's loss reads the logits ``z`` it cached inside the output layer (a
    ``Dense(activation='softmax')``); the twin exposes them as a node of their own.
    """
    index = next(i for i, node in enumerate(nodes) if node.name == output)
    node = nodes[index]
    act = getattr(node.layer, "activation", None)
    if act is None or activations.name_of(act) not in ("softmax", "sigmoid"):
        raise ValueError(f"Model {model.name!r}: its loss reads logits cached inside "
                         f"{node.name!r}, which has no softmax or sigmoid activation to split")
    node.layer.activation = activations.get("linear")
    logits = _unique(f"{node.name}/logits", taken)
    nodes[index] = Node(logits, node.layer, node.inputs, node.param_names, node.state_names)
    nodes.insert(index + 1, Node(node.name, act, [logits]))
    return logits


def to_keras(net, model):
    """Copies the twin's weights (and state) back into ``model``'s variables; returns ``model``.

    Weights are matched by their path inside the model (``match_variables``), so
    the twin of one instance fits another instance of the same architecture; all
    are checked before anything is assigned.
    """
    for name, variable in match_variables(net, model).items():  # every one checked first
        variable.assign(np.asarray(_view(net, name)[name], dtype=variable.dtype))
    return model


def from_keras(net, model):
    """Copies ``model``'s current weights into the twin (the reverse of ``to_keras``)."""
    for name, variable in match_variables(net, model).items():
        _view(net, name)[name] = variable.numpy()
    return net


def _view(net, name):
    """The twin's ``state`` or ``params``, whichever holds ``name``."""
    return net.state if name in net.state else net.params


_SUFFIX = re.compile(r"_\d+$")


def _canonical(path):
    """A variable path without the numbers Keras appends to make names unique in a process
    (``mymodel_1/dense_3/kernel`` -> ``mymodel/dense/kernel``), and those numbers, which
    order the weights of one canonical path by creation."""
    parts = path.split("/")
    numbers = tuple(int(m.group()[1:]) if (m := _SUFFIX.search(p)) else -1 for p in parts)
    return "/".join(_SUFFIX.sub("", p) for p in parts), numbers


def match_variables(net, model):
    """{twin weight name: the Keras variable of ``model`` it holds}, for every name of the
    twin's ``params`` and ``state``.

    The names are Keras variable paths of the model the twin was made from. In that model
    they are found as they are; in another instance of the same architecture (whose paths
    Keras numbered apart: ``mymodel_1/...``, ``dense_7/...``) each path is matched to the
    one that differs only by those numbers, several alike in the order Keras created them.
    A ValueError names the weights that have no match, and a shape that differs.
    """
    names = [*net.params, *net.state]
    variables = {v.path: v for v in model.weights}
    if all(name in variables for name in names):
        matched = {name: variables[name] for name in names}
    else:
        matched = _match_by_canonical_path(names, list(variables.values()), model)
    for name, variable in matched.items():
        value = _view(net, name)[name]
        if tuple(variable.shape) != np.shape(value):
            raise ValueError(f"Shape mismatch: the twin's {name!r} is {np.shape(value)}, the "
                             f"Keras weight {variable.path!r} {tuple(variable.shape)}")
    return matched


def _match_by_canonical_path(names, variables, model):
    groups = {}
    for name in names:
        key, order = _canonical(name)
        groups.setdefault(key, [[], []])[0].append((order, name))
    for variable in variables:
        key, order = _canonical(variable.path)
        groups.setdefault(key, [[], []])[1].append((order, variable.path, variable))
    matched, unmatched = {}, ([], [])
    for key, (twin_side, keras_side) in groups.items():
        if not twin_side:
            continue  # weights the twin does not hold (as with the exact paths)
        if len(twin_side) != len(keras_side):
            unmatched[0].extend(name for _, name in twin_side)
            unmatched[1].extend(path for _, path, _ in keras_side)
            continue
        for (_, name), (_, _, variable) in zip(sorted(twin_side), sorted(
                keras_side, key=lambda item: item[:2])):
            matched[name] = variable
    if unmatched[0] or unmatched[1]:
        raise ValueError(f"The twin's weights do not match model {model.name!r}'s: the twin "
                         f"has {sorted(unmatched[0])}, the model {sorted(unmatched[1])} "
                         "(paths compared without the numbers Keras appends to names)")
    return matched
