"""Random Keras models made of the layers ``tfmodels.parity.twin`` supports, for property tests.

A model is drawn as a *program*, plain data that hypothesis can shrink and
print: the input shapes, a table of layer specs, and steps that each apply a
layer of the table to earlier values (the inputs come first, then one value per
step; the last value is the output). A layer used by two steps shares its
weights; a 'Nested' spec holds a program of its own (a chain). One program is
realised as a functional model (nested programs become Sequential sub-models),
a subclassed model whose ``call`` runs the steps (nested programs become
composite layers) or, for a chain, a Sequential model.

``programs(special=...)`` places one given step at a random position, possibly
inside a nested program: a layer without a twin, or ('Op', name) an operation
that is not a layer (subclassed models only).
"""

import dataclasses
import functools
import math

import keras
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


@dataclasses.dataclass
class Program:
    input_shapes: list
    layers: list  # Specs
    steps: list  # (layer index, [value index, ...])
    shapes: list  # every value's shape (batch excluded): the inputs', then each step's

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


# --- realising programs as Keras models --------------------------------------------------


def _activation(name):
    return PARTIALS.get(name, name)


def make_layer(spec, nested_as, created):
    """The Keras layer (or, for 'Op', the function) a spec describes; layers go to ``created``."""
    o = dict(spec.options)
    if spec.kind == "Op":
        return OP_FUNCTIONS[o["name"]]
    if spec.kind == "Nested":
        layer = nested_as(o["program"], created)
    else:
        if "activation" in o:
            o["activation"] = _activation(o["activation"])
        cls = getattr(untwinned, spec.kind, None) or getattr(keras.layers, spec.kind)
        layer = cls(dtype=F64, **o)
    created.append(layer)
    return layer


def run_steps(program, layers, values):
    """Applies the program's steps to ``values`` (the inputs); returns the last value."""
    values = list(values)
    for index, args in program.steps:
        inputs = [values[a] for a in args]
        merge = program.layers[index].kind in MERGES
        values.append(layers[index](inputs if merge else inputs[0]))
    return values[-1]


def sequential(program, created=None):
    """A chain program as ``keras.Sequential`` (nested programs as Sequential sub-models)."""
    created = [] if created is None else created
    layers = [make_layer(spec, sequential, created) for spec in program.layers]
    return keras.Sequential([keras.Input(program.input_shapes[0], dtype=F64),
                             *(layers[index] for index, _ in program.steps)])


def functional(program, created=None):
    """A program as a functional ``keras.Model`` (nested programs as Sequential sub-models)."""
    created = [] if created is None else created
    layers = [make_layer(spec, sequential, created) for spec in program.layers]
    inputs = [keras.Input(shape, dtype=F64) for shape in program.input_shapes]
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
