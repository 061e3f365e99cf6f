"""What a Keras model computes, read off one call: which layers, in which order, on which tensors.

``trace(model, input_specs)`` calls the model once inside a ``tf.function``
(symbolic tensors, nothing runs) while recording every ``Layer.__call__``: the
layer, the tensors it was given and the tensors it returned. This works alike
for ``Sequential``, functional and subclassed models, nested ones included; a
subclassed model has no other graph to read.

The calls are then reduced to *leaves*: layers with a registered twin. A layer
without one is looked into when it is itself made of layers (a nested model, a
block), and refused otherwise. A tensor that reaches a layer or the output
without coming from a layer (``x + y``, ``tf.concat`` in ``call``) is refused
with the TensorFlow operation that made it and the Keras layer to use instead.
"""

import contextlib
import dataclasses

import keras
import tensorflow as tf

from tfmodels.parity import registry

# TensorFlow operation -> the Keras layer that does the same, for the error message.
_LAYER_FOR_OP = {
    "AddV2": "keras.layers.Add", "Add": "keras.layers.Add", "AddN": "keras.layers.Add",
    "Sub": "keras.layers.Subtract", "Mul": "keras.layers.Multiply",
    "ConcatV2": "keras.layers.Concatenate", "Maximum": "keras.layers.Maximum",
    "Minimum": "keras.layers.Minimum", "Reshape": "keras.layers.Reshape or Flatten",
    "MatMul": "keras.layers.Dense", "BiasAdd": "keras.layers.Dense",
    "Relu": "keras.layers.ReLU", "LeakyRelu": "keras.layers.LeakyReLU",
    "Elu": "keras.layers.ELU", "Softmax": "keras.layers.Softmax",
    "Sigmoid": "keras.layers.Activation('sigmoid')", "Tanh": "keras.layers.Activation('tanh')",
}
# Operations Keras itself puts between layers that change nothing a twin computes.
_TRANSPARENT = ("Identity",)
CAST = "Cast"  # Keras casts an input to a layer's dtype: the twin casts too


@dataclasses.dataclass(eq=False)
class Call:
    """One ``layer(...)`` call seen during the trace."""

    layer: keras.layers.Layer
    inputs: list  # the tensors among the positional arguments, flattened
    parent: "Call" = None
    children: list = dataclasses.field(default_factory=list)
    outputs: list = None  # the returned tensors, flattened
    mask: bool = False  # given a Keras mask (``mask=``, or one carried by its input)


@dataclasses.dataclass
class Trace:
    """The recorded call tree of one model call, and its input and output tensors."""

    model: keras.Model
    root: Call
    inputs: list
    outputs: list
    output_structure: object
    probe: dict  # what the caller's ``probe(outputs)`` returned inside the trace


def _tensors(structure):
    return [t for t in tf.nest.flatten(structure) if tf.is_tensor(t)]


@contextlib.contextmanager
def recording():
    """Records every ``Layer.__call__`` made inside the block; yields the list of ``Call``s.

    Works in eager mode and while tracing a ``tf.function`` alike.
    """
    calls, stack = [], []
    original_call = keras.layers.Layer.__call__

    def recording_call(layer, *args, **kwargs):
        call = Call(layer, _tensors(args), parent=stack[-1] if stack else None)
        call.mask = kwargs.get("mask") is not None or any(
            getattr(t, "_keras_mask", None) is not None for t in call.inputs)
        if call.parent is not None:
            call.parent.children.append(call)
        calls.append(call)
        stack.append(call)
        try:
            outputs = original_call(layer, *args, **kwargs)
        finally:
            stack.pop()
        outputs = tf.nest.map_structure(lambda t: _own(t, call.inputs), outputs)
        call.outputs = _tensors(outputs)
        return outputs

    keras.layers.Layer.__call__ = recording_call
    try:
        yield calls
    finally:
        keras.layers.Layer.__call__ = original_call


def _own(value, inputs):
    """``value``, or a copy of it (``tf.identity``) when it is one of the call's inputs
    itself: a layer that passes its input through (Dropout in inference, Identity)
    still gets an output of its own, so two such calls on one tensor, or a later reader
    of that tensor, are told apart."""
    if tf.is_tensor(value) and any(value is t for t in inputs):
        return tf.identity(value)
    return value


def call_model(model, inputs, training=False):
    """``model`` applied to a list of input tensors, one per model input."""
    return model(list(inputs) if len(inputs) > 1 else inputs[0], training=training)


def root_call(calls):
    """The outermost call recorded: the model's own."""
    return next(c for c in calls if c.parent is None)


def trace(model, input_specs, probe=None):
    """Calls ``model`` on symbolic inputs shaped by ``input_specs`` and records its layers.

    Args:
        input_specs: ``tf.TensorSpec``s, one per model input.
        probe: optional ``probe(outputs) -> dict`` run inside the trace on the
            model's outputs (e.g. whether a loss reads them).
    """
    result = {}

    def run(*inputs):
        outputs = call_model(model, inputs)
        result.update(inputs=list(inputs), structure=outputs, outputs=_tensors(outputs),
                      probe=probe(outputs) if probe is not None else {})
        return outputs

    with recording() as calls:
        tf.function(run).get_concrete_function(*input_specs)
    return Trace(model, root_call(calls), result["inputs"], result["outputs"],
                 result["structure"], result["probe"])


def leaf_calls(root, require_twin=True):
    """The calls of layers with a twin, in call order, looking into composite layers.

    The root itself is a leaf when its class has a twin (a custom model with a
    registered twin); otherwise its sublayers' calls are looked into. A call with
    neither is refused, naming the layer, unless ``require_twin`` is False (a twin given
    by hand may cover it): then it is a leaf too.
    """
    if registry.builder_for(root.layer) is not None:
        return [root]
    if not root.children:
        if require_twin:
            raise registry.unsupported_error(root.layer)
        return [root]
    _check_no_own_weights(root)
    leaves = []
    for child in root.children:
        leaves.extend(leaf_calls(child, require_twin))
    return leaves


def _check_no_own_weights(call):
    """A composite layer computing with weights its sublayers do not hold cannot be traced."""
    inner = {id(w) for c in _descendants(call) for w in c.layer.weights}
    own = [w for w in call.layer.weights if id(w) not in inner]
    if own:
        raise registry.unsupported_error(
            call.layer, f"computes with weights of its own ({', '.join(w.path for w in own)}) "
                        "besides its sublayers'")


def _descendants(call):
    for child in call.children:
        yield child
        yield from _descendants(child)


def resolve(tensor, known, model, consumer, add_cast):
    """The name ``known`` gives ``tensor``, looking through Keras's identity ops; a cast
    of a known tensor becomes ``add_cast(source name, dtype name)``'s node. Else a
    ValueError naming the operation that made the tensor."""
    if id(tensor) in known:
        return known[id(tensor)]
    op = getattr(tensor, "op", None)
    if op is not None and op.type in (*_TRANSPARENT, CAST) and len(op.inputs) == 1:
        source = resolve(op.inputs[0], known, model, consumer, add_cast)
        name = source if op.type in _TRANSPARENT else add_cast(source, tensor.dtype.name)
        known[id(tensor)] = name
        return name
    raise non_layer_error(model, tensor, consumer)


def non_layer_error(model, tensor, consumer):
    op = getattr(tensor, "op", None)
    op_type = op.type if op is not None else type(tensor).__name__
    instead = _LAYER_FOR_OP.get(op_type)
    advice = (f"use {instead} instead" if instead else
              "do it in a Keras layer and register that layer's twin with "
              "tfmodels.parity.register_twin")
    return ValueError(
        f"Model {model.name!r} ({type(model).__name__}) applies the TensorFlow operation "
        f"{op_type!r} outside any Keras layer (its result feeds {consumer}); the NumPy twin "
        f"follows Keras layers only: {advice}.")
