"""Random Keras models made of the layers ``tfmodels.parity.twin`` supports, for property tests.

A model is drawn as a *program*, plain data that hypothesis can shrink and
print: the input shapes, a table of layer specs, and steps that each apply a
layer of the table to earlier values (the inputs come first, then one value per
step; the last value is the output). A layer used by two steps shares its
weights; a 'Nested' spec holds a program of its own (a chain). One program is
realised as a functional model (nested programs become Sequential sub-models),
a subclassed model whose ``call`` runs the steps (nested programs become
composite layers) or, for a chain, a Sequential model.

``sequence_programs()`` draws sequence models in the same form: tokens through an
Embedding, recurrent layers, attention, merges, a Keras mask where one flows
(``sequence_batch`` pads their batches).

``programs(special=...)`` places one given step at a random position, possibly
inside a nested program: a layer without a twin, or ('Op', name) an operation
that is not a layer (subclassed models only).
"""

import dataclasses
import functools
import math
import operator

import keras
import numpy as np
import tensorflow as tf
from hypothesis import strategies as st

import untwinned
from keras_twins import F64, keras_activation_names

CLASSES = 3
# Every activation the twin knows, but 'exponential': chained, exp(exp(...)) overflows.
ACTIVATIONS = [name for name in keras_activation_names() if name != "exponential"]
PARTIALS = {  # drawn by name, realised as Keras's function with that option
    "gelu_approximate": functools.partial(keras.activations.gelu, approximate=True),
    "leaky_relu_0.1": functools.partial(keras.activations.leaky_relu, negative_slope=0.1),
}
RELU_OPTIONS = [{}, {"max_value": 6.0}, {"max_value": 2.0}, {"negative_slope": 0.1},
                {"threshold": 0.5}, {"max_value": 6.0, "negative_slope": 0.2},
                {"max_value": 1.5, "negative_slope": 0.1, "threshold": 0.2}]
ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]
MERGES = {*ELEMENTWISE, "Concatenate"}
LIST_CALLS = {*MERGES, "Attention"}  # layers called on a list of values
# Layers without a twin, and operations in ``call`` that are not layers:
# name -> (TensorFlow operation, the Keras layer the error suggests).
UNSUPPORTED = ["Cube", "Doubled"]  # custom layers (untwinned.py): every Keras one has a twin
TWINNED_SPECIALS = ["BatchNormalization", "Dropout"]  # kinds a program can be asked to hold
OPS = {"+": ("AddV2", "keras.layers.Add"), "*": ("Mul", "keras.layers.Multiply"),
       "tf.concat": ("ConcatV2", "keras.layers.Concatenate"),
       "tf.nn.relu": ("Relu", "keras.layers.ReLU")}
OP_FUNCTIONS = {"+": lambda v: v + v, "*": lambda v: v * 2.0,
                "tf.concat": lambda v: tf.concat([v, v], axis=-1), "tf.nn.relu": tf.nn.relu}


@dataclasses.dataclass(frozen=True)
class Spec:
    """A layer: a ``keras.layers`` class name and its arguments; or 'Nested' (a program)
    or 'Op' (an operation in OPS)."""

    kind: str
    options: dict = dataclasses.field(default_factory=dict)
    call: dict = dataclasses.field(default_factory=dict)  # keyword arguments of each call


@dataclasses.dataclass
class Program:
    input_shapes: list
    layers: list  # Specs
    steps: list  # (layer index, [value index, ...])
    shapes: list  # every value's shape (batch excluded): the inputs', then each step's
    vocab: int = 0  # > 0: the one input holds integer tokens below it (sequence programs)

    def is_chain(self):
        return len(self.input_shapes) == 1 and all(
            args == [i] for i, (_, args) in enumerate(self.steps))


# --- drawing programs ------------------------------------------------------------------

SHAPES = st.sampled_from([(4,), (5,), (2, 3), (3, 2), (3, 4)])


def _out_shape(spec, shapes):
    kind, o, s = spec.kind, spec.options, shapes[0]
    if kind == "Dense":
        return (*s[:-1], o["units"])
    if kind == "Flatten":
        return (math.prod(s),)
    if kind == "Reshape":
        known = math.prod(d for d in o["target_shape"] if d != -1)
        return tuple(math.prod(s) // known if d == -1 else d for d in o["target_shape"])
    if kind == "Doubled":
        return (*s[:-1], 2 * s[-1])
    if kind == "Op" and o["name"] == "tf.concat":
        return (*s[:-1], 2 * s[-1])
    if kind == "Concatenate":  # Keras's axis counts the batch axis, these shapes do not
        axis = o.get("axis", -1)
        axis = axis - 1 if axis > 0 else len(s) + axis
        return tuple(sum(x[axis] for x in shapes) if i == axis else d for i, d in enumerate(s))
    if kind == "Nested":
        return o["program"].shapes[-1]
    return s  # activations, element-wise merges of bridged inputs, the unsupported layers


def _reshape_targets(s):
    p = math.prod(s)
    targets = [(-1,)]
    for d in range(2, p):
        if p % d == 0 and d <= 6 and p // d <= 6:
            targets += [(d, -1), (-1, d)]
    if len(s) == 1 and p % 4 == 0:
        targets.append((2, 2, -1))
    return targets


@st.composite
def unary_specs(draw, shape, kind=None):
    """A layer with a twin (of ``kind``, or of any kind) that takes one value of ``shape``."""
    kind = kind or draw(st.sampled_from(["Dense", "Dense", "Activation", "ReLU", "LeakyReLU",
                                         "ELU", "Softmax", "Identity", "Flatten", "Reshape",
                                         "Dropout", "BatchNormalization"]))
    activation = st.sampled_from([*ACTIVATIONS, *PARTIALS])
    options = {
        "Dense": lambda: {"units": draw(st.integers(1, 5)), "activation": draw(activation),
                          "use_bias": draw(st.booleans())},
        "Activation": lambda: {"activation": draw(activation)},
        "ReLU": lambda: draw(st.sampled_from(RELU_OPTIONS)),
        "LeakyReLU": lambda: {"negative_slope": draw(st.sampled_from([0.01, 0.3]))},
        "ELU": lambda: {"alpha": draw(st.sampled_from([0.5, 1.0]))},
        "Softmax": lambda: {"axis": draw(st.sampled_from([-1, *range(1, len(shape) + 1)]))},
        "Flatten": lambda: {"data_format": draw(st.sampled_from(["channels_last",
                                                                 "channels_first"]))},
        "Reshape": lambda: {"target_shape": draw(st.sampled_from(_reshape_targets(shape)))},
        "Dropout": lambda: {"rate": draw(st.sampled_from([0.0, 0.3, 0.5]))},
        "BatchNormalization": lambda: {
            "axis": draw(st.sampled_from([-1, *range(1, len(shape) + 1)])),
            "center": draw(st.booleans()), "scale": draw(st.booleans()),
            "momentum": draw(st.sampled_from([0.99, 0.5])),
            "epsilon": draw(st.sampled_from([1e-3, 0.1]))},
    }.get(kind, dict)()
    return Spec(kind, options)


class _Builder:
    """A program being drawn: layers, steps and the shape of every value."""

    def __init__(self, input_shapes):
        self.program = Program(list(input_shapes), [], [], list(input_shapes))
        self.consumed = set()
        self.dense_inputs = {}  # layer index of a Dense -> the last axis it takes

    @property
    def shapes(self):
        return self.program.shapes

    def add(self, spec):
        self.program.layers.append(spec)
        return len(self.program.layers) - 1

    def apply(self, index, args):
        spec = self.program.layers[index]
        shape = _out_shape(spec, [self.shapes[a] for a in args])
        if spec.kind == "Dense":
            self.dense_inputs.setdefault(index, self.shapes[args[0]][-1])
        self.program.steps.append((index, list(args)))
        self.shapes.append(shape)
        self.consumed.update(args)
        return len(self.shapes) - 1

    def layer(self, spec, value):
        return self.apply(self.add(spec), [value])

    def bridge(self, value, shape):
        """``value`` mapped to ``shape`` by Dense layers (and Flatten, Reshape)."""
        s = self.shapes[value]
        if s == shape:
            return value
        if len(s) == len(shape) and s[:-1] == shape[:-1]:
            return self.layer(Spec("Dense", {"units": shape[-1]}), value)
        if len(s) > 1:
            value = self.layer(Spec("Flatten"), value)
        value = self.layer(Spec("Dense", {"units": math.prod(shape)}), value)
        return value if len(shape) == 1 else self.layer(Spec("Reshape", {"target_shape": shape}),
                                                         value)


def _special_step(draw, b, value, special):
    """The special step on ``value``: a layer without a twin, an 'Op', or a layer of
    the twinned kind ``special`` (e.g. 'BatchNormalization')."""
    if special in TWINNED_SPECIALS:
        return b.layer(draw(unary_specs(b.shapes[value], kind=special)), value)
    if special in UNSUPPORTED:
        return b.layer(Spec(special), value)
    if not b.program.layers:  # a block made of an operation alone has no layer to look into
        value = b.layer(Spec("Identity"), value)
    return b.layer(Spec("Op", {"name": special}), value)


def _merge_step(draw, b, pick):
    kind = draw(st.sampled_from([*ELEMENTWISE, "Concatenate"]))
    first = pick()
    target = b.shapes[first]
    args = [first]
    for _ in range(1 if kind == "Subtract" else draw(st.integers(1, 2))):
        other = first if draw(st.integers(0, 3)) == 0 else pick()  # now and then itself
        s = b.shapes[other]
        if kind == "Concatenate" and len(s) == len(target) and s[:-1] == target[:-1]:
            args.append(other)  # any width along the last axis
        elif kind != "Concatenate" and draw(st.booleans()) and s[:-1] == target[:-1]:
            args.append(b.bridge(other, (*target[:-1], 1)))  # broadcast along the last axis
        elif kind != "Concatenate" and len(target) == 2 and draw(st.booleans()):
            args.append(b.bridge(other, target[1:]))  # lower rank: Keras inserts axis 1
        else:
            args.append(b.bridge(other, target))
    options = {}
    if kind == "Concatenate":
        same = all(b.shapes[a] == target for a in args)
        options = {"axis": draw(st.sampled_from([-1, 1] if same and len(target) > 1 else [-1]))}
    return b.apply(b.add(Spec(kind, options)), args)


def _reusable(b):
    """{index of a Dense layer: the values it could be applied to again}."""
    fits = {index: [v for v, s in enumerate(b.shapes) if s[-1] == width]
            for index, width in b.dense_inputs.items()}
    return {index: values for index, values in fits.items() if values}


@st.composite
def programs(draw, chain=False, input_shapes=None, max_steps=5, special=None, head=True,
             nested=True):
    """A random program: a chain (one input, each step on the last value) or a DAG of
    merges, shared layers and nested programs on one or two inputs; with ``head``, the
    values nothing reads are flattened, concatenated and read by a Dense(CLASSES) head."""
    if input_shapes is None:
        input_shapes = [draw(SHAPES)]
        if not chain and draw(st.booleans()):  # a second input, often of the same shape
            input_shapes.append(input_shapes[0] if draw(st.booleans()) else draw(SHAPES))
    b = _Builder(input_shapes)
    n = draw(st.integers(1, max_steps))
    special_at = draw(st.integers(0, n - 1)) if special else None

    def pick():
        return len(b.shapes) - 1 if chain else draw(st.integers(0, len(b.shapes) - 1))

    for i in range(n):
        kinds = ["layer", "layer", "nested"] if chain else [
            "layer", "layer", "merge", "merge", "shared", "nested"]
        kind = draw(st.sampled_from(kinds if nested else ["layer"]))
        if kind == "nested":
            value = pick()
            inner = draw(programs(chain=True, input_shapes=[b.shapes[value]], max_steps=3,
                                  special=special if i == special_at else None, head=False,
                                  nested=False))
            index = b.add(Spec("Nested", {"program": inner}))
            b.apply(index, [value])
            again = [v for v, s in enumerate(b.shapes) if s == b.shapes[value]]
            if not chain and draw(st.booleans()):
                b.apply(index, [draw(st.sampled_from(again))])  # the sub-model called twice
        elif i == special_at:
            _special_step(draw, b, pick(), special)
        elif kind == "merge":
            _merge_step(draw, b, pick)
        elif kind == "shared" and _reusable(b):
            index = draw(st.sampled_from(sorted(_reusable(b))))
            b.apply(index, [draw(st.sampled_from(_reusable(b)[index]))])  # the same weights
        else:
            value = pick()
            b.layer(draw(unary_specs(b.shapes[value])), value)
    if head:
        ends = [v for v in range(len(b.shapes)) if v not in b.consumed]
        ends = [b.layer(Spec("Flatten"), v) if len(b.shapes[v]) > 1 else v for v in ends]
        end = ends[0] if len(ends) == 1 else b.apply(b.add(Spec("Concatenate")), ends)
        activation = draw(st.sampled_from(["linear", "softmax"]))
        b.layer(Spec("Dense", {"units": CLASSES, "activation": activation}), end)
    return b.program


def uses(program, kind):
    """Whether the program (nested programs included) has a layer of that kind."""
    return any(spec.kind == kind or (spec.kind == "Nested" and uses(spec.options["program"], kind))
               for spec in program.layers)


def dims(program):
    """Every size along any axis of any value of the program, nested programs included."""
    found = {d for shape in program.shapes for d in shape}
    for spec in program.layers:
        if spec.kind == "Nested":
            found |= dims(spec.options["program"])
    return found


def batch_sizes(program, largest=8):
    """Batch sizes that equal no size of the program's values, and 1.

    Keras 3.15's ``ops.add`` (TensorFlow backend) turns ``x1 + x2`` into a
    ``bias_add`` when x2 has one axis longer than 1 and that length is x1's axis
    1 or last axis; when x2 is a per-sample value of shape (batch, 1, ...), that
    axis is the batch axis, and the sum broadcasts along the wrong axis on a
    concrete batch (eagerly, or in ``fit``'s first trace) while the model's
    symbolic call (batch None) and the twin do not. Batch sizes that no feature
    size equals stay clear of it.
    """
    taken = dims(program)
    return [1, *(n for n in range(2, largest + 1) if n not in taken)]


# --- sequence programs ---------------------------------------------------------------------
#
# One input: integer tokens (T,) into an Embedding (mask_zero or not), or float vectors
# (T, D) (through Masking, with MASKING). Values are sequences (T, w), vectors (w,) or others (attention scores,
# flattened at the end); a Keras mask may ride on a sequence. Layers that read a mask
# (the recurrent ones, attention, GlobalAveragePooling1D) or pass it on see one only where
# Keras supports it; the sequences nothing reads are reduced to vectors by a layer that
# drops the mask (a last-step RNN, a pooling), so the model's output carries none.

RECURRENT = ["SimpleRNN", "LSTM", "GRU"]
# Merges that compute a mask (an element-wise merge of masked values only, a Concatenate
# of any masked value): a Concatenate's mask has no twin yet, and the twin refuses the
# model (test_known_gaps_of_masked_models); an Add of masked values is followed
# (test_masks_made_in_the_functional_graph_are_followed), but is drawn only with this.
MASKED_MERGES = False
# Masking in a model (its mask is ops.any(x != v, axis=-1) in the functional graph).
MASKING = True
# Keras 3.15's Multiply, Maximum and Minimum read their inputs' Keras masks (a masked
# step counts as 1 in a product, is skipped by a maximum or minimum); their twins refuse
# masked inputs by name (test_a_merge_that_reads_its_inputs_masks_is_refused). They get
# masked inputs only with MASK_READING_MERGES.
MASK_READERS = {"Multiply", "Maximum", "Minimum"}
MASK_READING_MERGES = False
SEQUENCE_WIDTH = 6  # the widest sequence value
RNN_ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear"]


@dataclasses.dataclass
class Value:
    shape: object  # a shape, or for a layer with several outputs a list of them
    masked: bool = False  # a Keras mask rides on it

    @property
    def sequence(self):
        return isinstance(self.shape, tuple) and len(self.shape) == 2


class _SequenceBuilder(_Builder):
    """A sequence program being drawn: each value's shape and whether a mask rides on it."""

    def __init__(self, input_shapes, vocab):
        super().__init__(input_shapes)
        self.program.vocab = vocab
        self.values = [Value(tuple(s)) for s in input_shapes]

    def put(self, spec, args, shape, masked):
        """The step ``spec`` on the values ``args``, of ``shape``; returns its value."""
        self.program.steps.append((self.add(spec), list(args)))
        self.shapes.append(shape)
        self.values.append(Value(shape, masked))
        self.consumed.update(args)
        return len(self.values) - 1

    def take_all(self, value):
        """One 'Take' step per output of a layer with several outputs; their values."""
        shapes, masks = self.values[value].shape, self.values[value].masked
        return [self.put(Spec("Take", {"index": i}), [value], shape, bool(masks[i]))
                for i, shape in enumerate(shapes)]

    def width(self, value, units):
        """``value`` (a sequence) with a last axis of ``units`` (a Dense on each step)."""
        s = self.values[value]
        if s.shape[-1] == units:
            return value
        return self.put(Spec("Dense", {"units": units}), [value], (s.shape[0], units), s.masked)


def _recurrent_spec(draw, kind, return_sequences, **extra):
    options = {"units": extra.pop("units", None) or draw(st.integers(1, 5)),
               "return_sequences": return_sequences, "go_backwards": draw(st.booleans()),
               "activation": draw(st.sampled_from(RNN_ACTIVATIONS)),
               "use_bias": draw(st.booleans()),
               "dropout": draw(st.sampled_from([0.0, 0.0, 0.3])),
               "recurrent_dropout": draw(st.sampled_from([0.0, 0.0, 0.3])), **extra}
    if kind == "GRU":
        options["reset_after"] = draw(st.booleans())
    if kind != "SimpleRNN" and draw(st.booleans()):
        options["recurrent_activation"] = draw(st.sampled_from(["sigmoid", "hard_sigmoid"]))
    return Spec(kind, options)


def _recurrent_step(draw, b, value, return_sequences, several=True):
    """SimpleRNN/LSTM/GRU (return_state now and then) or a Bidirectional of one."""
    v = b.values[value]
    T, kind = v.shape[0], draw(st.sampled_from(RECURRENT))
    if draw(st.integers(0, 2)) == 0:  # Bidirectional
        units = draw(st.integers(1, 3))
        merge_mode = draw(st.sampled_from(["concat", "sum", "ave", "mul", *(
            [None] if several else [])]))
        # go_backwards=False: Keras's Bidirectional cannot wrap a layer that runs backwards
        inner = _recurrent_spec(draw, kind, return_sequences, units=units, go_backwards=False)
        spec = Spec("Bidirectional", {"layer": inner, "merge_mode": merge_mode})
        out = (T, units) if return_sequences else (units,)
        if merge_mode is None:
            masked = [v.masked and return_sequences] * 2
            return b.take_all(b.put(spec, [value], [out, out], masked))[draw(st.integers(0, 1))]
        if merge_mode == "concat":
            out = (*out[:-1], 2 * units)
        return b.put(spec, [value], out, v.masked and return_sequences)
    states = several and draw(st.integers(0, 3)) == 0
    spec = _recurrent_spec(draw, kind, return_sequences, return_state=states)
    units = spec.options["units"]
    out = (T, units) if return_sequences else (units,)
    if not states:
        return b.put(spec, [value], out, v.masked and return_sequences)
    shapes = [out] + [(units,)] * (2 if kind == "LSTM" else 1)
    masks = [v.masked and return_sequences] + [False] * (len(shapes) - 1)
    return b.take_all(b.put(spec, [value], shapes, masks))[0]  # the states: read by the head


def _attention_step(draw, b, query, pick_sequence):
    """MultiHeadAttention (self-attention, or on another sequence) or Attention."""
    q = b.values[query]
    T = q.shape[0]
    if draw(st.booleans()):
        value = query if draw(st.booleans()) else pick_sequence()
        args = [query, value]
        if draw(st.integers(0, 3)) == 0:
            args.append(pick_sequence())  # a separate key
        options = {"num_heads": draw(st.integers(1, 2)), "key_dim": draw(st.integers(1, 3)),
                   "use_bias": draw(st.booleans()), "dropout": draw(st.sampled_from([0.0, 0.4]))}
        if draw(st.booleans()):
            options["value_dim"] = draw(st.integers(1, 3))
        if draw(st.integers(0, 3)) == 0:
            options["output_shape"] = draw(st.integers(1, SEQUENCE_WIDTH))
        call = {"use_causal_mask": draw(st.booleans())}
        width = options.get("output_shape", q.shape[-1])
        if draw(st.integers(0, 3)) == 0:
            call["return_attention_scores"] = True
            spec = Spec("MultiHeadAttention", options, call)
            # Keras puts the attention mask on the scores (flattened at the end)
            scores_masked = call["use_causal_mask"] or any(b.values[a].masked for a in args)
            both = b.put(spec, args, [(T, width), (options["num_heads"], T, T)],
                         [q.masked, scores_masked])
            return b.take_all(both)[0]
        return b.put(Spec("MultiHeadAttention", options, call), args, (T, width), q.masked)
    value = pick_sequence()
    args = [query, value]
    if draw(st.booleans()):  # a key, as wide as the query
        args.append(b.width(pick_sequence(), q.shape[-1]))
    else:  # the value is the key: as wide as the query
        args[1] = b.width(value, q.shape[-1])
    options = {"use_scale": draw(st.booleans()), "score_mode": draw(st.sampled_from(
        ["dot", "concat"])), "dropout": draw(st.sampled_from([0.0, 0.4]))}
    call = {"use_causal_mask": draw(st.booleans())}
    width = b.values[args[1]].shape[-1]
    return b.put(Spec("Attention", options, call), args, (T, width), q.masked)


def _sequence_layer(draw, b, value):
    """A layer that maps the sequence ``value`` to a sequence, passing its mask on."""
    v = b.values[value]
    T, w = v.shape
    kind = draw(st.sampled_from(["Dense", "TimeDistributed", "LayerNormalization", "Dropout",
                                 "Activation", "ReLU"]))
    activation = st.sampled_from(["linear", "tanh", "relu", "sigmoid", "gelu"])
    if kind in ("Dense", "TimeDistributed"):
        units = draw(st.integers(1, SEQUENCE_WIDTH))
        dense = Spec("Dense", {"units": units, "activation": draw(activation),
                               "use_bias": draw(st.booleans())})
        spec = dense if kind == "Dense" else Spec("TimeDistributed", {"layer": dense})
        return b.put(spec, [value], (T, units), v.masked)
    options = {
        "LayerNormalization": lambda: {"center": draw(st.booleans()),
                                       "scale": draw(st.booleans()),
                                       "epsilon": draw(st.sampled_from([1e-3, 0.1]))},
        "Dropout": lambda: {"rate": draw(st.sampled_from([0.0, 0.3, 0.5]))},
        "Activation": lambda: {"activation": draw(activation)},
        "ReLU": lambda: draw(st.sampled_from(RELU_OPTIONS)),
    }[kind]()
    return b.put(Spec(kind, options), [value], (T, w), v.masked)


def _sequence_merge(draw, b, first, pick_sequence):
    """A merge of ``first`` and one or two other sequences. Without MASKED_MERGES, no
    merge computes a mask: an element-wise one gets an unmasked input where ``first``
    is masked, a Concatenate unmasked inputs only."""
    masked = b.values[first].masked
    unmasked = [v for v, value in enumerate(b.values) if value.sequence and not value.masked]
    if masked and not MASKED_MERGES and not unmasked:
        return _sequence_layer(draw, b, first)
    concatenate = MASKED_MERGES or not masked
    kinds = [*ELEMENTWISE, *(["Concatenate"] if concatenate else [])]
    if masked and not MASK_READING_MERGES:
        kinds = [k for k in kinds if k not in MASK_READERS]
    kind = draw(st.sampled_from(kinds))
    unmasked_only = not MASK_READING_MERGES and kind in MASK_READERS or not MASKED_MERGES and (
        kind == "Concatenate")
    args = [first]
    for i in range(1 if kind == "Subtract" else draw(st.integers(1, 2))):
        other = pick_sequence()
        if unmasked_only or not MASKED_MERGES and masked and i == 0:
            other = draw(st.sampled_from(unmasked))
        if kind == "Concatenate":
            room = SEQUENCE_WIDTH - sum(b.values[a].shape[-1] for a in args)
            if room < 1:
                break
            if b.values[other].shape[-1] > room:
                other = b.width(other, draw(st.integers(1, room)))
            args.append(other)
        else:
            args.append(b.width(other, b.values[first].shape[-1]))
    masks = [b.values[a].masked for a in args]
    T = b.values[first].shape[0]
    width = sum(b.values[a].shape[-1] for a in args) if kind == "Concatenate" else \
        b.values[first].shape[-1]
    # Keras: Concatenate's mask where any input has one; the others' only where all have
    masked = any(masks) if kind == "Concatenate" else all(masks)
    return b.put(Spec(kind), args, (T, width), masked)


def _reduce(draw, b, value, several=True):
    """The sequence ``value`` as a vector, its mask dropped: a last-step RNN or
    Bidirectional, GlobalAveragePooling1D (masked, where a mask rides), and for an
    unmasked sequence GlobalMaxPooling1D or Flatten too."""
    v = b.values[value]
    kinds = ["RNN", "RNN", "GlobalAveragePooling1D"]
    if not v.masked:
        kinds += ["GlobalMaxPooling1D", "Flatten"]
    kind = draw(st.sampled_from(kinds))
    if kind == "RNN":
        return _recurrent_step(draw, b, value, False, several)
    shape = (v.shape[0] * v.shape[1],) if kind == "Flatten" else (v.shape[1],)
    return b.put(Spec(kind), [value], shape, False)


@st.composite
def sequence_programs(draw, chain=False, max_steps=5):
    """A random sequence program: tokens through an Embedding (mask_zero or not) or float
    vectors (through Masking or not), then sequence layers, recurrent layers (several
    outputs), attention and merges on the sequences (a chain: one after the other, one
    output each), sequences reduced to vectors, vector layers, and a Dense(CLASSES) head
    on every value nothing reads."""
    T = draw(st.integers(2, 6))
    tokens = draw(st.booleans())
    vocab = draw(st.integers(3, 9)) if tokens else 0
    b = _SequenceBuilder([(T,) if tokens else (T, draw(st.integers(1, 5)))], vocab)
    if tokens:
        width, mask_zero = draw(st.integers(1, SEQUENCE_WIDTH)), draw(st.booleans())
        b.put(Spec("Embedding", {"input_dim": vocab, "output_dim": width,
                                 "mask_zero": mask_zero}), [0], (T, width), mask_zero)
    elif MASKING and draw(st.booleans()):
        b.put(Spec("Masking", {"mask_value": 0.0}), [0], b.values[0].shape, True)
    several = not chain

    def pick(sequence=True):
        choices = [i for i, v in enumerate(b.values) if v.sequence] if sequence else \
            [i for i, v in enumerate(b.values) if isinstance(v.shape, tuple) and len(v.shape) == 1]
        choices = [i for i in choices if b.program.vocab == 0 or i > 0]  # not the tokens
        if chain:
            return choices[-1] if choices and choices[-1] == len(b.values) - 1 else None
        return draw(st.sampled_from(choices)) if choices else None

    reduced = False
    for _ in range(draw(st.integers(1, max_steps))):
        sequence, vector = pick(), pick(sequence=False)
        kinds = []
        if sequence is not None:
            kinds += ["layer", "recurrent", "reduce"] + ([] if chain else ["attention", "merge"])
        if vector is not None and (not chain or reduced):
            kinds += ["vector"]
        kind = draw(st.sampled_from(kinds))
        if kind == "layer":
            _sequence_layer(draw, b, sequence)
        elif kind == "recurrent":
            _recurrent_step(draw, b, sequence, True, several)
        elif kind == "attention":
            _attention_step(draw, b, sequence, pick)
        elif kind == "merge":
            _sequence_merge(draw, b, sequence, pick)
        elif kind == "reduce":
            _reduce(draw, b, sequence, several)
            reduced = True
        else:
            spec = draw(unary_specs(b.values[vector].shape))
            b.put(spec, [vector], _out_shape(spec, [b.values[vector].shape]), False)
    ends = [v for v in range(len(b.values)) if v not in b.consumed and
            isinstance(b.values[v].shape, tuple) and not (v == 0 and vocab)]
    ends = [_reduce(draw, b, v, several) if b.values[v].sequence else v for v in ends]
    ends = [b.put(Spec("Flatten"), [v], (math.prod(b.values[v].shape),), False)
            if len(b.values[v].shape) > 1 else v for v in ends]
    end = ends[0] if len(ends) == 1 else b.put(Spec("Concatenate"), ends, (sum(
        b.values[v].shape[0] for v in ends),), False)
    activation = draw(st.sampled_from(["linear", "softmax"]))
    b.put(Spec("Dense", {"units": CLASSES, "activation": activation}), [end], (CLASSES,), False)
    return b.program


def sequence_batch(program, rng, largest=6):
    """A batch for a sequence program: padded token rows (0 after each row's length, now
    and then inside it), or float steps with the padded ones all 0 (for Masking); every
    row keeps its first step. The batch size is 1 or one no size of the program has
    (``batch_sizes``)."""
    taken = {d for s in program.shapes for shape in (s if isinstance(s, list) else [s])
             for d in shape}
    n = int(rng.choice([1, *(k for k in range(2, largest + 1) if k not in taken)]))
    T = program.input_shapes[0][0]
    lengths = rng.integers(1, T + 1, n)
    kept = np.arange(T) < lengths[:, None]
    kept &= (rng.random((n, T)) > 0.15) | (np.arange(T) == 0)  # gaps inside a row too
    if program.vocab:
        return np.where(kept, rng.integers(1, program.vocab, (n, T)), 0).astype("int32")
    return rng.normal(size=(n, *program.input_shapes[0])) * kept[..., None]


# --- realising programs as Keras models --------------------------------------------------


def input_dtype(program):
    return "int32" if program.vocab else F64


def _activation(name):
    return PARTIALS.get(name, name)


def make_layer(spec, nested_as, created):
    """The Keras layer (or, for 'Op', the function) a spec describes; layers go to ``created``."""
    o = dict(spec.options)
    if spec.kind == "Op":
        return OP_FUNCTIONS[o["name"]]
    if spec.kind == "Take":  # one output of a layer with several: plain indexing
        return operator.itemgetter(o["index"])
    if spec.kind == "Nested":
        layer = nested_as(o["program"], created)
    else:
        if "activation" in o:
            o["activation"] = _activation(o["activation"])
        if "layer" in o:  # a wrapper (Bidirectional, TimeDistributed) and the layer it wraps
            o["layer"] = make_layer(o["layer"], nested_as, created)
        cls = getattr(untwinned, spec.kind, None) or getattr(keras.layers, spec.kind)
        layer = cls(dtype=F64, **o)
    created.append(layer)
    return layer


def run_steps(program, layers, values):
    """Applies the program's steps to ``values`` (the inputs); returns the last value."""
    values = list(values)
    for index, args in program.steps:
        spec, inputs = program.layers[index], [values[a] for a in args]
        if spec.kind in LIST_CALLS:
            values.append(layers[index](inputs, **spec.call))
        else:  # MultiHeadAttention(query, value[, key]); any other layer, one input
            values.append(layers[index](*inputs, **spec.call))
    return values[-1]


def sequential(program, created=None):
    """A chain program as ``keras.Sequential`` (nested programs as Sequential sub-models)."""
    created = [] if created is None else created
    layers = [make_layer(spec, sequential, created) for spec in program.layers]
    return keras.Sequential([keras.Input(program.input_shapes[0], dtype=input_dtype(program)),
                             *(layers[index] for index, _ in program.steps)])


def functional(program, created=None):
    """A program as a functional ``keras.Model`` (nested programs as Sequential sub-models)."""
    created = [] if created is None else created
    layers = [make_layer(spec, sequential, created) for spec in program.layers]
    inputs = [keras.Input(shape, dtype=input_dtype(program)) for shape in program.input_shapes]
    output = run_steps(program, layers, inputs)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0], output)


class ProgramBlock(keras.layers.Layer):
    """A composite layer whose ``call`` runs a program: the twin traces through it."""

    def __init__(self, program, created, **kwargs):
        super().__init__(dtype=F64, **kwargs)
        self.program = program
        self.parts = [make_layer(spec, ProgramBlock, created) for spec in program.layers]

    def call(self, inputs):
        return run_steps(self.program, self.parts, [inputs])


class ProgramModel(keras.Model):
    """A subclassed model whose ``call`` runs a program (nested ones as ProgramBlocks)."""

    def __init__(self, program, created, **kwargs):
        super().__init__(dtype=F64, **kwargs)
        self.program = program
        self.parts = [make_layer(spec, ProgramBlock, created) for spec in program.layers]

    def call(self, inputs):
        return run_steps(self.program, self.parts, inputs if isinstance(inputs, (list, tuple))
                         else [inputs])


def subclassed(program, created=None):
    """A program as a subclassed model (not yet built: call it on a batch)."""
    return ProgramModel(program, [] if created is None else created)
