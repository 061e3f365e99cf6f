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
block), and refused otherwise.

Such a layer's own ``call`` computes between its sublayers with plain tensor code
(``self.norm(x + self.attention(x))``, ``ops.arange(T)``): TensorFlow operations,
not Keras calls. The trace records those too (a TensorFlow op callback, while the
code of a layer without a twin runs), and ``leaf_calls`` adds each one the leaves
read to the leaves, as a ``Call`` of a ``TFOperation`` (twinned by ``tf_ops.py``).
A value that depends on no input and no weight (``ops.arange(T)``) is no leaf but
a constant of the twin (``constant_value``). An operation the twin does not follow
(``tf.math.cumsum``), or one that reads a weight directly, is refused with its name,
what reads its result, and the Keras layer to use instead; so is a tensor that
reaches a layer from anywhere else.
"""

import contextlib
import dataclasses
import inspect

import keras
from keras.src import backend
from keras.src.ops.operation import Operation
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import op_callbacks, op_def_registry

from tfmodels.parity import registry, tf_ops

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
    # The TensorFlow operations this call's own code applied (``OpRecord``s), recorded for
    # a layer without a twin (``records``), whose code may compute between its sublayers.
    operations: list = dataclasses.field(default_factory=list)
    records: bool = False

    def output_masks(self):
        """The Keras mask of each output (None where it has none), as ``Layer.__call__``
        set them on the tensors it returned (a later layer may take them off again:
        MultiHeadAttention does)."""
        if self.returned_masks is not None:
            return self.returned_masks
        return [keras_mask(t) for t in self.outputs]


@dataclasses.dataclass(eq=False)
class OpRecord:
    """One TensorFlow operation run (eagerly) or added to the graph during the trace."""

    type: str
    inputs: tuple
    outputs: tuple


@dataclasses.dataclass(frozen=True)
class TFOperation:
    """A TensorFlow operation a custom layer's ``call`` applies between its sublayers: what
    a leaf ``Call`` holds in place of a layer. Two traces of one model give equal ones
    (the same type, layer and place among that layer's followed operations)."""

    type: str
    owner: object  # the Keras layer whose ``call`` applies it
    index: int  # its place among the operations of ``owner`` the twin follows
    consumer: str = dataclasses.field(default="", compare=False)  # what reads its result

    @property
    def name(self):
        return f"{self.owner.name}/{self.type}"


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
    ops_recorder = _OpsRecorder(stack)

    def recording_call(layer, *args, **kwargs):
        arguments = arguments_of(layer, args, kwargs)
        masks = mask_arguments(arguments)
        inputs = _tensors([v for k, v in arguments.items()
                           if k not in _CONTEXT_ARGUMENTS and k not in masks])
        call = Call(layer, inputs, parent=stack[-1] if stack else None,
                    training=kwargs.get("training"), arguments=arguments,
                    masks={k: arguments[k] for k in masks if _holds_mask(arguments[k])},
                    input_masks=[keras_mask(t) for t in inputs])
        # The operations of a layer's own code matter where the twin looks into the layer:
        # a layer without a twin, not inside a layer with one.
        call.records = (isinstance(layer, keras.layers.Layer)
                        and registry.builder_for(layer) is None
                        and (call.parent is None or call.parent.records))
        if call.parent is not None:
            call.parent.children.append(call)
        calls.append(call)
        stack.append(call)
        ops_recorder.sync()
        try:
            outputs = original_call(layer, *args, **kwargs)
        finally:
            stack.pop()
            ops_recorder.sync()
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
        ops_recorder.stop()


class _OpsRecorder:
    """Records each TensorFlow operation run (or added to a graph) while the innermost
    call in progress is one that ``records``, into that call's ``operations``.

    The op callback is installed only while such a call is innermost (TensorFlow runs
    every eager op on its slow path while a callback is installed)."""

    def __init__(self, stack):
        self.stack, self.installed = stack, False
        self.callback = self.record  # one object, to add and remove

    def sync(self):
        wanted = bool(self.stack) and self.stack[-1].records
        if wanted and not self.installed:
            op_callbacks.add_op_callback(self.callback)
        elif self.installed and not wanted:
            op_callbacks.remove_op_callback(self.callback)
        self.installed = wanted

    def stop(self):
        if self.installed:
            op_callbacks.remove_op_callback(self.callback)
            self.installed = False

    def record(self, op_type, inputs, attrs, outputs, op_name=None, graph=None):
        if self.stack and self.stack[-1].records:
            op_type = op_type.decode() if isinstance(op_type, bytes) else op_type
            self.stack[-1].operations.append(OpRecord(op_type, tuple(inputs), tuple(outputs)))
        return None  # the outputs stay as they are


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
    """The calls of layers with a twin, in call order, looking into composite layers, and
    the TensorFlow operations a composite layer's own code applies between them.

    The root itself is a leaf when its class has a twin (a custom model with a
    registered twin); otherwise its sublayers' calls are looked into. A call with
    neither is refused, naming the layer, unless ``require_twin`` is False (a twin given
    by hand may cover it): then it is a leaf too.

    Each recorded TensorFlow operation whose result a leaf (or the model's output) reads
    becomes a leaf too (a ``Call`` of a ``TFOperation``), placed before its first reader;
    one the twin does not follow is refused (unless ``require_twin`` is False).
    """
    return _OperationWalk(root, require_twin).insert(_layer_leaves(root, require_twin))


def _layer_leaves(root, require_twin):
    if registry.builder_for(root.layer) is not None:
        return [root]
    if not root.children:
        if require_twin:
            raise registry.unsupported_error(_written(root).layer)
        return [root]
    _check_no_own_weights(root)
    leaves = []
    for child in root.children:
        leaves.extend(_layer_leaves(child, require_twin))
    return leaves


# Operations whose result depends on their input's shape only, never on its values.
_SHAPE_OPS = ("Shape", "Size", "Rank")


class _OperationWalk:
    """Follows the tensors the leaves read back through the recorded TensorFlow operations.

    A tensor is *known* (a model input, a leaf's output), *constant* (made by operations
    of constants only: nothing but values fixed when the model is traced) or made by a
    recorded operation from known tensors: that operation becomes a leaf, after the
    operations it reads. Casts and identities are looked through (the twin repeats a
    cast: ``resolve``). A tensor none of these made is left to ``resolve``, which holds a
    constant or refuses it. The walk reads only which operation made which tensor, so an
    eager run and a traced graph of one model give the same leaves.
    """

    def __init__(self, root, require_twin):
        self.require_twin = require_twin
        self.made = {}  # id(tensor) -> (OpRecord, the Call whose code applied it)
        for call in (root, *_descendants(root)):
            for op in call.operations:
                for t in op.outputs:
                    self.made[id(t)] = (op, call)
        self.root = root
        self.known = {id(t) for t in root.inputs}
        self.constants = {}  # id(tensor) -> whether it is constant
        self.counts = {}  # id(owner call) -> operations made leaves so far
        self.leaves = []

    def insert(self, layer_leaves):
        if not self.made:
            return layer_leaves
        for leaf in layer_leaves:
            for t in leaf.inputs:
                self.demand(t, f"layer {leaf.layer.name!r}")
            self.leaves.append(leaf)
            self.known.update(id(t) for t in [*leaf.outputs, *(leaf.returned or [])])
        for t in [*self.root.outputs, *(self.root.returned or [])]:
            self.demand(t, "the model's output")
        return self.leaves

    def demand(self, tensor, consumer):
        """Makes leaves of the operations ``tensor`` needs, in an order they can run in."""
        if id(tensor) in self.known or id(tensor) not in self.made:
            return
        op, owner = self.made[id(tensor)]
        if op.type in (*_TRANSPARENT, CAST) and len(op.inputs) == 1:
            self.demand(op.inputs[0], consumer)
            return
        if self.is_constant(tensor) or not _follows(owner):
            return  # a constant, or left to ``resolve`` (which refuses it)
        index = self.counts.get(id(owner), 0)
        self.counts[id(owner)] = index + 1
        operation = TFOperation(op.type, owner.layer, index, consumer)
        if self.require_twin and not tf_ops.supports(op.type):
            raise operation_error(operation)
        settings = tf_ops.static_positions(op.type, len(op.inputs))
        data = [t for i, t in enumerate(op.inputs) if i not in settings]
        for t in data:
            self.demand(t, f"TensorFlow operation {operation.name!r}")
        outputs = list(op.outputs)
        self.leaves.append(Call(operation, data, parent=owner, outputs=outputs,
                                arguments={f"input_{i}": t for i, t in enumerate(op.inputs)},
                                masks={}, input_masks=[None] * len(data), returned=outputs,
                                returned_masks=[None] * len(outputs)))
        self.known.update(id(t) for t in outputs)

    def is_constant(self, tensor):
        """Whether ``tensor`` depends on no model input, leaf output or weight."""
        key = id(tensor)
        if key not in self.constants:
            if key in self.known:
                self.constants[key] = False
            elif key not in self.made:
                self.constants[key] = True  # nothing recorded made it: a given value
            else:
                op = self.made[key][0]
                self.constants[key] = op.type in _SHAPE_OPS or (
                    not _is_stateful(op.type) and all(self.is_constant(t) for t in op.inputs))
        return self.constants[key]


def operation_owners(root):
    """{id(tensor): the Keras layer whose own code made it}, for every tensor a recorded
    TensorFlow operation made (a constant of the twin is named after that layer)."""
    owners = {}
    for call in (root, *_descendants(root)):
        for op in call.operations:
            owners.update((id(t), call.layer) for t in op.outputs)
    return owners


def _follows(call):
    """Whether the twin follows the operations of a call's own code: those of a layer the
    user wrote that applies layers (Keras's own layers and models apply their sublayers
    only; a layer that applies none has no twin unless one is registered)."""
    return bool(call.children) and not _is_keras_own(call.layer)


def _is_stateful(op_type):
    """Whether a TensorFlow operation type reads or changes state (a variable, a random
    generator): its result is not fixed when the model is traced. Unknown types count."""
    op_def = op_def_registry.get(op_type)
    return op_def is None or op_def.is_stateful


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


def resolve(tensor, known, model, consumer, add_cast, add_constant=None):
    """The name ``known`` gives ``tensor``, looking through Keras's identity ops; a cast
    of a known tensor becomes ``add_cast(source name, dtype name)``'s node, and a value
    fixed when the model is traced (``constant_value``) ``add_constant(tensor, value)``'s.
    Else a ValueError naming the operation that made the tensor."""
    if id(tensor) in known:
        return known[id(tensor)]
    if add_constant is not None:
        value = constant_value(tensor)
        if value is not None:
            known[id(tensor)] = name = add_constant(tensor, value)
            return name
    op = getattr(tensor, "op", None)
    if op is not None and op.type in (*_TRANSPARENT, CAST) and len(op.inputs) == 1:
        source = resolve(op.inputs[0], known, model, consumer, add_cast, add_constant)
        name = source if op.type in _TRANSPARENT else add_cast(source, tensor.dtype.name)
        known[id(tensor)] = name
        return name
    raise non_layer_error(model, tensor, consumer)


def constant_value(tensor):
    """The value of a traced (graph) tensor fixed whatever the model's input, as a NumPy
    array, or None: what TensorFlow computes ahead (constants, ``ops.arange`` of
    constants, casts), a constant the traced function captured, or what the twins of
    the operations followed (``tf_ops``) compute from such values (``arange(T) * 0.5``)."""
    if not tf.is_tensor(tensor) or getattr(tensor, "graph", None) is None:
        return None
    if tensor.dtype in (tf.resource, tf.variant, tf.string):
        return None
    value = tf.get_static_value(tensor)
    if value is not None:
        return np.asarray(value)
    op = tensor.op
    if op.type == "Placeholder":  # a captured eager tensor
        for external, internal in getattr(tensor.graph, "captures", ()):
            if internal is tensor and hasattr(external, "numpy") and external.dtype == \
                    tensor.dtype:
                return np.asarray(external.numpy())
        return None
    if op.type in (*_TRANSPARENT, CAST) and len(op.inputs) == 1:
        value = constant_value(op.inputs[0])
        return None if value is None else value.astype(tensor.dtype.as_numpy_dtype)
    if op.type in _FOLDED:
        return _folded(op)
    if not tf_ops.supports(op.type) or len(op.outputs) != 1 or _is_stateful(op.type):
        return None
    settings = tf_ops.static_positions(op.type, len(op.inputs))
    data = [t for i, t in enumerate(op.inputs) if i not in settings]
    values = [constant_value(t) for t in data]
    if any(v is None for v in values):
        return None
    call = Call(TFOperation(op.type, None, 0), data, outputs=[tensor],
                arguments={f"input_{i}": t for i, t in enumerate(op.inputs)})
    try:
        twin = tf_ops.build(call)
    except ValueError:
        return None
    return np.asarray(twin.forward(values if twin.multi_input else values[0]))


def _static_shape(tensor):
    """``tf.shape`` of a graph tensor as far as it is known when the model is traced: its
    static shape, -1 standing for an unknown dimension (the batch axis)."""
    op = tensor.op
    if op.type != "Shape" or op.inputs[0].shape.rank is None:
        return constant_value(tensor)
    dims = op.inputs[0].shape.as_list()
    return np.array([-1 if d is None else d for d in dims], tensor.dtype.as_numpy_dtype)


def _strided_slice(op):
    """A slice of constants, or of a tensor's static shape (``tf.shape(x)[-1]``) that
    takes known dimensions only; TensorFlow slices, with the operation's own masks."""
    values = [_static_shape(op.inputs[0]), *(constant_value(t) for t in op.inputs[1:])]
    if any(v is None for v in values):
        return None
    masks = {name: op.get_attr(name) for name in (
        "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    with tf.init_scope():  # run eagerly, outside the traced graph
        value = tf.strided_slice(*values, **masks).numpy()
    if op.inputs[0].op.type == "Shape" and np.any(value == -1):
        return None  # it takes a dimension known only when the model runs
    return value


# Operations of constants TensorFlow computes here (eagerly, outside the traced graph),
# where ``tf.get_static_value`` does not: op type -> f(op, input values).
_FOLDERS = {
    "Range": lambda op, v: tf.range(*v, dtype=op.outputs[0].dtype),
    "Pack": lambda op, v: tf.stack(v, axis=op.get_attr("axis")),
    "Fill": lambda op, v: tf.fill(*v),
}
_FOLDED = (*_FOLDERS, "StridedSlice")


def _folded(op):
    if op.type == "StridedSlice":
        return _strided_slice(op)
    values = [constant_value(t) for t in op.inputs]
    if any(v is None for v in values):
        return None
    with tf.init_scope():
        return np.asarray(_FOLDERS[op.type](op, values))


def non_layer_error(model, tensor, consumer):
    op = getattr(tensor, "op", None)
    op_type = op.type if op is not None else type(tensor).__name__
    if op_type in _SHAPE_OPS or op_type == "StridedSlice" and _reads_shape(op):
        return ValueError(
            f"Model {model.name!r} ({type(model).__name__}) computes a value from a "
            f"tensor's shape when it runs (tf.shape: TensorFlow operation {op_type!r}; "
            f"its result feeds {consumer}), which the NumPy twin cannot hold: use the "
            "static shape (x.shape, or keras.ops.shape, whose known dimensions are "
            "Python ints).")
    instead = _LAYER_FOR_OP.get(op_type)
    advice = (f"use {instead} instead" if instead else
              "do it in a Keras layer and register that layer's twin with "
              "tfmodels.parity.register_twin")
    return ValueError(
        f"Model {model.name!r} ({type(model).__name__}) applies the TensorFlow operation "
        f"{op_type!r} outside any Keras layer (its result feeds {consumer}); the NumPy twin "
        f"follows Keras layers, and between the sublayers of a layer you wrote the "
        f"TensorFlow operations {', '.join(sorted(tf_ops.TWINS))}: {advice}.")


def _reads_shape(op):
    return any(t.op.type in _SHAPE_OPS for t in op.inputs)


def operation_error(operation):
    """The refusal of a TensorFlow operation a custom layer's code applies that the twin
    does not follow (a ``TFOperation``)."""
    owner = operation.owner
    if operation.type in ("ReadVariableOp", "ResourceGather"):
        why = ("reads a weight directly; the twin follows weights through the layers that "
               "hold them: call that layer instead")
    else:
        instead = _LAYER_FOR_OP.get(operation.type)
        why = ("has no NumPy twin; the operations followed between sublayers are "
               f"{', '.join(sorted(tf_ops.TWINS))}: "
               + (f"use {instead} instead, or " if instead else "do it in a Keras layer "
                  "with a twin, or ")
               + f"register a twin of {type(owner).__name__} with "
               "tfmodels.parity.register_twin")
    return ValueError(
        f"Keras layer {owner.name!r} ({type(owner).__module__}.{type(owner).__qualname__}) "
        f"applies the TensorFlow operation {operation.type!r} in its call (its result feeds "
        f"{operation.consumer}), which {why}.")
