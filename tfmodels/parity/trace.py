"""What a Keras model computes, read off one call: which layers, in which order, on which tensors.

``trace(model, input_specs)`` calls the model once inside a ``tf.function``
(symbolic tensors, nothing runs) while recording every call Keras makes of an
operation's ``call``: each layer (and each ``keras.ops`` operation a functional
model applies between layers, ``x + 3.0``), the tensors it was given and the
tensors it returned. This works alike for ``Sequential``, functional and
subclassed models, nested ones included; a subclassed model has no other graph
to read.

The record is taken where ``Layer.__call__`` hands over to ``Operation.__call__``,
so it sees each call as the layer's ``call`` receives it: its inputs already cast
to the layer's compute dtype (the cast is an operation the twin repeats), tensors
passed by keyword in the order of ``call``'s signature, and the ``training`` value
Keras resolved for it (from an explicit ``training=`` or the enclosing call's).

The calls are then reduced to *leaves*: layers with a registered twin. A layer
without one is looked into when it is itself made of layers (a nested model, a
block), and refused otherwise. A tensor that reaches a layer or the output
without coming from a layer (``x + y``, ``tf.concat`` in ``call``) is refused
with the TensorFlow operation that made it and the Keras layer to use instead.
"""

import contextlib
import dataclasses
import inspect

import keras
from keras.src import backend
from keras.src.ops.operation import Operation
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


# Arguments of ``call`` that carry no input data (masks: ``mask_arguments``).
_CONTEXT_ARGUMENTS = ("training",)


@dataclasses.dataclass(eq=False)
class Call:
    """One ``layer(...)`` call seen during the trace (or one ``keras.ops`` operation's)."""

    layer: object  # a keras.layers.Layer, or a keras.Operation of a functional graph
    inputs: list  # the input tensors, in the order of ``call``'s arguments, flattened
    parent: "Call" = None
    children: list = dataclasses.field(default_factory=list)
    outputs: list = None  # the returned tensors, flattened
    training: object = None  # the ``training`` Keras passed to ``call`` (None: none)
    arguments: dict = None  # every argument of ``call`` by name, as given (constants too)
    masks: dict = None  # {mask argument: the Keras mask tensor it was given}
    input_masks: list = None  # the Keras mask each input carried when the call began

    returned: list = None  # what ``Layer.__call__`` returned in the end (masks set on it)
    returned_masks: list = None  # their Keras masks as they were then

    def output_masks(self):
        """The Keras mask of each output (None where it has none), as ``Layer.__call__``
        set them on the tensors it returned (a later layer may take them off again:
        MultiHeadAttention does)."""
        if self.returned_masks is not None:
            return self.returned_masks
        return [keras_mask(t) for t in self.outputs]


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


def arguments_of(operation, args, kwargs):
    """{argument name: value} of one call of ``operation.call``, in the signature's order
    (positional arguments first where the signature cannot place them)."""
    try:
        bound = inspect.signature(operation.call).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {**{f"arg_{i}": a for i, a in enumerate(args)}, **kwargs}
    named = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            named.update({f"{name}_{i}": v for i, v in enumerate(value)})
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        else:
            named[name] = value
    return named


def keras_mask(tensor):
    """The Keras mask a tensor carries, or None (Keras keeps it on the tensor, or beside
    it where the tensor takes no attributes)."""
    return backend.get_keras_mask(tensor)


def _holds_mask(value):
    """A mask argument's value holds a mask: a tensor, or a list with one (Attention's
    ``mask=[query_mask, value_mask]``, which Keras fills with Nones when nothing masks)."""
    return any(v is not None for v in tf.nest.flatten(value))


def mask_arguments(arguments):
    """The names among a call's arguments that carry Keras masks: ``mask``, and ``k_mask``
    beside a tensor argument ``k`` (MultiHeadAttention's ``query_mask``, which Keras fills
    from the query's mask), not a data tensor such as ``attention_mask``."""
    return [name for name in arguments
            if name == "mask" or (name.endswith("_mask") and name[:-5] in arguments)]


def tensor_arguments(call):
    """The names of the arguments of a call that hold input tensors."""
    masks = mask_arguments(call.arguments)
    return [name for name, value in call.arguments.items()
            if name not in _CONTEXT_ARGUMENTS and name not in masks and _tensors([value])]


@contextlib.contextmanager
def recording():
    """Records every call of an operation's ``call`` made inside the block (each layer's,
    and each ``keras.ops`` operation's in a functional model); yields the list of ``Call``s.

    Works in eager mode and while tracing a ``tf.function`` alike.
    """
    calls, stack = [], []
    original_call = Operation.__call__

    def recording_call(layer, *args, **kwargs):
        arguments = arguments_of(layer, args, kwargs)
        masks = mask_arguments(arguments)
        inputs = _tensors([v for k, v in arguments.items()
                           if k not in _CONTEXT_ARGUMENTS and k not in masks])
        call = Call(layer, inputs, parent=stack[-1] if stack else None,
                    training=kwargs.get("training"), arguments=arguments,
                    masks={k: arguments[k] for k in masks if _holds_mask(arguments[k])},
                    input_masks=[keras_mask(t) for t in inputs])
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

    original_layer_call = keras.layers.Layer.__call__

    def layer_call(layer, *args, **kwargs):
        # Only to read back what Layer.__call__ returns after the call recorded above:
        # the tensors carrying the Keras masks (which may be copies of ``call``'s).
        start, parent = len(calls), stack[-1] if stack else None
        outputs = original_layer_call(layer, *args, **kwargs)
        call = next((c for c in calls[start:] if c.layer is layer and c.parent is parent), None)
        if call is not None:
            call.returned = _tensors(outputs)
            call.returned_masks = [keras_mask(t) for t in call.returned]
        return outputs

    Operation.__call__ = recording_call
    keras.layers.Layer.__call__ = layer_call
    try:
        yield calls
    finally:
        Operation.__call__ = original_call
        keras.layers.Layer.__call__ = original_layer_call


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


def trace(model, input_specs, probe=None, training=False):
    """Calls ``model`` on symbolic inputs shaped by ``input_specs`` and records its layers.

    Args:
        input_specs: ``tf.TensorSpec``s, one per model input.
        probe: optional ``probe(outputs) -> dict`` run inside the trace on the
            model's outputs (e.g. whether a loss reads them).
        training: the mode the model is called in.
    """
    result = {}

    def run(*inputs):
        outputs = call_model(model, inputs, training=training)
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
            raise registry.unsupported_error(_written(root).layer)
        return [root]
    _check_no_own_weights(root)
    leaves = []
    for child in root.children:
        leaves.extend(leaf_calls(child, require_twin))
    return leaves


def _written(call):
    """The call a refusal names: the outermost enclosing layer that Keras itself defines
    (an ``LSTM`` rather than the ``LSTMCell`` inside it), short of a model; the call itself
    when none encloses it (the user wrote that layer)."""
    named, parent = call, call.parent
    while parent is not None:
        if _is_keras_own(parent.layer) and not isinstance(parent.layer, keras.Model):
            named = parent
        parent = parent.parent
    return named


def _is_keras_own(layer):
    return type(layer).__module__.split(".")[0] == "keras"


def _check_no_own_weights(call):
    """A composite layer computing with weights its sublayers do not hold cannot be traced."""
    inner = {id(w) for c in _descendants(call) for w in getattr(c.layer, "weights", ())}
    own = [w for w in getattr(call.layer, "weights", ()) if id(w) not in inner]
    if own:
        raise registry.unsupported_error(
            _written(call).layer,
            f"computes with weights of its own ({', '.join(w.path for w in own)}) "
            "besides its sublayers'")


def fixed_modes(leaves_inference, leaves_training):
    """{id(call): True or False} for each leaf that runs in one mode whatever the model's
    (``self.dropout(h, training=True)`` in a subclassed ``call``), from the leaves of two
    traces of the model, called with training=False and with training=True; the other
    leaves follow the model's mode. A ValueError where the two traces apply different
    layers, or a layer's mode is not a Python bool."""
    if [c.layer for c in leaves_inference] != [c.layer for c in leaves_training]:
        raise ValueError("The model applies other layers when called with training=True "
                         "than with training=False; a NumPy twin follows one graph of "
                         "layers in both modes")
    fixed = {}
    for inference, training in zip(leaves_inference, leaves_training):
        modes = (inference.training, training.training)
        if modes in ((None, None), (False, True)):
            continue  # no training argument, or the model's mode
        if all(isinstance(m, bool) for m in modes) and modes[0] == modes[1]:
            fixed[id(inference)] = modes[0]
            continue
        layer = _written(inference).layer
        raise registry.unsupported_error(
            layer, f"is called with training={modes[0]!r} when the model runs with "
                   f"training=False and training={modes[1]!r} when it runs with "
                   "training=True; a twin runs a layer in the model's mode or in one fixed "
                   "mode")
    return fixed


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
