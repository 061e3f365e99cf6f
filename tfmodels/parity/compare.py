"""``compare(model, x, y)``: where do a Keras model and its NumPy twin part, layer by layer?

Both sides run the same batch: Keras eagerly under a ``tf.GradientTape`` (each
layer's output recorded as it is made), the twin with every gradient kept.
Each row compares one layer call: its output (forward), the loss gradient with
respect to that output (backward), and the gradients of its weights. A
difference counts when ``max|keras - numpy| > atol + rtol * max|keras|`` for
the tensor, with tolerances chosen per dtype (``TOLERANCES``). Where both sides
hold the same non-finite value (NaN and NaN, or the same infinity) they agree and the
difference is that of the other elements; a NaN or inf on one side only is a
difference. ``Report.nonfinite_notes`` says where such values come from (the layer
whose output first holds them, the layers whose weights do).

The first divergence is the layer that introduced a difference: going forward,
the first layer whose output parts while its inputs agree; else, going back
from the loss, the layer whose output gradient agrees while the gradient it
passes back (to its inputs) or its weight gradients do not.

The loss on both sides is what ``fit`` minimises: the loss plus
``sum(model.losses)`` (the regularizers). In training mode the twin's dropout
layers drop the units Keras dropped in its run (``dropout_masks.py``), and
both sides' batch normalization update their moving statistics once.

Keras's own sensitivity. Some tensors are ill-conditioned: a batch
normalization that normalises over 2 values (training mode, batch 2, a 1x1
feature map deep in ResNet50) outputs ``+-(a - b) / sqrt((a - b)^2 + 4 eps)``,
which magnifies an upstream rounding difference ~1/(2 sqrt(eps)) times where
``|a - b|`` is near ``sqrt(eps)``, and passes back a gradient that is the small
remainder of nearly equal terms (the gradient of a bias just before it is
mathematically 0: rounding alone). There a correct twin parts from Keras by
more than any fixed tolerance that would still catch a wrong twin elsewhere,
and Keras parts from itself as much. So ``compare`` runs Keras a second time
with the input and every layer's output moved by ``PERTURBATION_ULPS``
machine epsilons of the coarsest dtype the layers compute in (relative, a
fixed pseudo-random sign per element; the gradient passing back through a
moved output is moved alike): a stand-in for the rounding a correct twin does
differently in every layer, not only at the input. That run has the same mode
and the same random draws: every seed generator and non-trainable weight is
put back as it was before the regular run, and what the regular run left is
put back after it, so moving statistics move once and the twin's state
comparisons see the regular run. For each compared tensor ``keras_self`` is
``max|keras - keras_moved|`` (for the loss, a scalar whose single difference
can be small by chance, at least ``sum |dL/dy| |y - y_moved|`` over what the
loss reads), and a difference counts only when it exceeds both the fixed
tolerance and ``SENSITIVITY_FACTOR * keras_self``.

Why 30: the twin's rounding is not the same draw as the moved run's, so the
ratio ``|keras - twin| / keras_self`` spreads. Measured in training mode at
batch 2 on the smallest input (float64, three seeds each) it stayed <= 5.3 on
ResNet50, <= 8.3 on DenseNet121 and <= 2.0 on InceptionV3 wherever the fixed
tolerance was exceeded; 30 leaves ~3.5x room. It stays far below what a wrong
twin costs: a wrong factor, index or formula is off by O(1) relative, while
``keras_self`` is ~1e-16 relative where Keras is well conditioned (30x that is
still under the fixed rtol), so the loosening acts only where Keras itself is
unsure. The rule is per tensor, so a wrong twin before or after an
ill-conditioned layer is still named. Where Keras is chaotic (float32
DenseNet121 at batch 2: normalised values flip sign under a 1-ulp move, and
Keras's own outputs differ by O(1)) no tolerance can judge a twin: compare in
float64. ``sensitivity=False`` gives the fixed tolerances alone (one Keras run).
"""

import contextlib
import dataclasses
import json

import keras
from keras.src.backend.common import global_state
from keras.src.random import seed_generator
import ml_dtypes
import numpy as np
import tensorflow as tf

from tfmodels.parity import dropout_masks
from tfmodels.parity import trace as tracing
from tfmodels.parity import twins as twinning

# dtype -> (rtol, atol), relative to the tensor's largest |value|.
# float64: both sides do the same IEEE operations up to summation order inside
#   products (oneDNN vs OpenBLAS), ~1e-16 relative per operation; a wrong twin is
#   off by many orders more. 1e-9 leaves room for long reductions and deep nets.
# float32: the same reorderings cost ~1e-7 relative per operation and grow with
#   the reduction length (3,072 inputs for SVHN) and depth.
# float16 (mixed precision): ~1e-3 per operation.
TOLERANCES = {"float64": (1e-9, 1e-12), "float32": (1e-4, 1e-6), "float16": (1e-2, 1e-3)}
# Keras's own sensitivity (module docstring): the input is moved by this many machine
# epsilons of the layers' coarsest compute dtype (float64 ~9e-16, float32 ~5e-7,
# float16 ~4e-3 relative), and a difference within this many times Keras's own
# difference under that move is not counted.
PERTURBATION_ULPS = 4
SENSITIVITY_FACTOR = 30.0


@dataclasses.dataclass
class Difference:
    """Largest absolute and relative difference of one tensor, and the verdict.

    ``keras_self`` is Keras's own largest difference for the tensor when the input moves
    by a few ulps (None where it was not measured); ``by_sensitivity`` says the tensor
    passed only because of it (it exceeds the fixed tolerance). ``nonfinite`` counts the
    elements where both sides hold the same non-finite value (NaN and NaN, or the same
    infinity): they agree there, and the differences are those of the other elements. A
    non-finite value on one side only is a difference (an infinite one, or NaN), so the
    tensor differs.
    """

    abs: float
    rel: float
    ok: bool
    keras_self: float = None
    by_sensitivity: bool = False
    nonfinite: int = 0

    @classmethod
    def of(cls, keras_value, numpy_value, tolerance, keras_self=None):
        a = np.asarray(keras_value, np.float64)
        b = np.asarray(numpy_value, np.float64)
        if a.shape != b.shape:
            return cls(float("inf"), float("inf"), False, keras_self)
        same = _same_nonfinite(a, b)
        nonfinite = int(np.count_nonzero(same))
        a, b = a[~same], b[~same]
        diff = np.abs(a - b)
        finite_a = np.abs(a[np.isfinite(a)])
        largest = float(np.max(finite_a)) if finite_a.size else 0.0
        worst = float(np.max(diff)) if diff.size else 0.0
        rtol, atol = tolerance
        finite = bool(np.all(np.isfinite(diff)))
        within_fixed = finite and worst <= atol + rtol * largest
        within_self = bool(finite and keras_self is not None and np.isfinite(keras_self)
                           and worst <= SENSITIVITY_FACTOR * keras_self)
        return cls(worst, worst / largest if largest else worst, within_fixed or within_self,
                   keras_self, within_self and not within_fixed, nonfinite)

    def to_dict(self):
        return dataclasses.asdict(self)


def _same_nonfinite(a, b):
    """Where ``a`` and ``b`` (float64 arrays of one shape) hold the same non-finite value:
    both NaN, or the same infinity."""
    return ~np.isfinite(a) & ((a == b) | (np.isnan(a) & np.isnan(b)))


@dataclasses.dataclass
class Row:
    """One layer call: forward, backward (dL/d output) and weight-gradient differences.

    ``backward`` is None where the loss does not reach the output on either side
    (e.g. a softmax whose logits the loss reads directly).
    """

    name: str
    class_name: str
    output_shape: tuple
    forward: Difference
    backward: Difference = None
    weights: dict = dataclasses.field(default_factory=dict)  # variable path -> Difference
    inputs: list = dataclasses.field(default_factory=list)  # names of the values it reads
    # variable path -> {"nan": count, "inf": count}, for the layer's weights holding any
    nonfinite_weights: dict = dataclasses.field(default_factory=dict)
    nonfinite_kinds: str = ""  # "NaN", "inf" or "NaN and inf": what the Keras output holds

    @property
    def ok(self):
        return all(d.ok for d in self.differences())

    @property
    def by_sensitivity(self):
        """Agrees, but only because some tensor is within Keras's own sensitivity."""
        return self.ok and any(d.by_sensitivity for d in self.differences())

    def differences(self):
        return [self.forward, *([] if self.backward is None else [self.backward]),
                *self.weights.values()]

    def to_dict(self):
        return {"name": self.name, "class": self.class_name,
                "output_shape": list(self.output_shape), "forward": self.forward.to_dict(),
                "backward": None if self.backward is None else self.backward.to_dict(),
                "weights": {k: d.to_dict() for k, d in self.weights.items()},
                "inputs": self.inputs, "ok": self.ok, "by_sensitivity": self.by_sensitivity,
                "nonfinite_weights": self.nonfinite_weights,
                "nonfinite_kinds": self.nonfinite_kinds}


@dataclasses.dataclass
class Report:
    """What ``compare`` found: per-layer rows, the loss, the verdict and where they part.

    ``perturbation`` is the relative size the input was moved by to measure Keras's own
    sensitivity (None: not measured, e.g. ``sensitivity=False`` or integer inputs only).
    """

    model_name: str
    dtype: str
    tolerance: tuple
    rows: list
    loss: dict  # {"keras": ..., "numpy": ..., "difference": Difference}
    input_gradients: dict  # input name -> Difference of dL/d(input)
    first_divergence: str = None
    divergence: str = None  # "forward", "loss", "backward" or "weights"
    perturbation: float = None

    @property
    def ok(self):
        return self.first_divergence is None

    def to_dict(self):
        return {"model": self.model_name, "dtype": self.dtype, "ok": self.ok,
                "tolerance": {"rtol": self.tolerance[0], "atol": self.tolerance[1],
                              "sensitivity_factor": (None if self.perturbation is None
                                                     else SENSITIVITY_FACTOR),
                              "perturbation": self.perturbation},
                "first_divergence": self.first_divergence, "divergence": self.divergence,
                "loss": {**{k: v for k, v in self.loss.items() if k != "difference"},
                         "difference": self.loss["difference"].to_dict()},
                "input_gradients": {k: d.to_dict() for k, d in self.input_gradients.items()},
                "layers": [row.to_dict() for row in self.rows],
                "nonfinite": self.nonfinite_notes()}

    def nonfinite_notes(self):
        """Lines saying where both sides compute NaN or inf alike (each layer whose
        weights hold such values, and the first layer whose output does), and how many
        layers after it carry them on; empty when every value is finite."""
        notes = []
        first = next((row for row in self.rows if row.forward.nonfinite), None)
        for row in self.rows:
            if row is first or row.nonfinite_weights:
                held = _nonfinite_weights(row.nonfinite_weights)
                size = int(np.prod(row.output_shape))
                what = (f"both compute {row.nonfinite_kinds} in {row.forward.nonfinite} of "
                        f"{size} output values" if row.forward.nonfinite else
                        "its outputs are finite")
                notes.append(f"{row.name}: {what}" + (f" (its weights hold {held})"
                                                      if held else ""))
        if first is not None:
            later = sum(1 for row in self.rows[self.rows.index(first) + 1:]
                        if row.forward.nonfinite)
            if later:
                notes.append(f"{later} layer(s) after {first.name!r} carry them on; "
                             "there the two sides are compared where their values are finite")
        if self.loss["difference"].nonfinite:
            notes.append(f"loss: both compute {_nonfinite_kinds(self.loss['keras'])}")
        return notes

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self):
        lines = [f"{self.model_name}: Keras vs NumPy twin ({self.dtype}, rtol {self.tolerance[0]:g}, "
                 f"atol {self.tolerance[1]:g}; differences are max |abs| / max rel)"]
        if self.perturbation is not None:
            lines.append(f"or within {SENSITIVITY_FACTOR:g}x Keras's own difference when its input "
                         f"and each layer output move by {self.perturbation:.1e} relative "
                         "(marked ~)")
        header = f"{'layer':<24} {'class':<16} {'output':<16} {'forward':>19} {'backward':>19}  weights"
        lines += [header, "-" * len(header)]
        for row in self.rows:
            weights = ", ".join(f"{k.rsplit('/', 1)[-1]} {_fmt(d)}" for k, d in row.weights.items())
            mark = ("  <-- differs" if not row.ok else
                    "  (within Keras's own sensitivity)" if row.by_sensitivity else "")
            lines.append(f"{row.name[:24]:<24} {row.class_name[:16]:<16} "
                         f"{str(tuple(row.output_shape))[:16]:<16} {_fmt(row.forward):>19} "
                         f"{_fmt(row.backward):>19}  {weights}{mark}")
        for name, d in self.input_gradients.items():
            if not d.ok or d.by_sensitivity:
                lines.append(f"dL/d {name}: {_fmt(d)}")
        loss = self.loss
        lines.append(f"loss: keras {loss['keras']:.17g}, numpy {loss['numpy']:.17g}, "
                     f"|difference| {loss['difference'].abs:.3g}"
                     + ("" if loss["difference"].keras_self is None else
                        f", Keras's own {loss['difference'].keras_self:.3g}"))
        notes = self.nonfinite_notes()
        lines += [f"warning: {note}" for note in notes]
        lines.append(f"verdict: they part at {self.first_divergence!r} ({self.divergence})"
                     if not self.ok else
                     "verdict: all layers agree, NaN and inf included: both sides compute "
                     "them in the same places (the model's weights or values are not finite)"
                     if notes else "verdict: all layers agree")
        return "\n".join(lines)


def _nonfinite_kinds(values):
    """"NaN", "inf", "NaN and inf" or "": the non-finite values ``values`` holds."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        return ""
    kinds = [kind for kind, found in (("NaN", np.isnan(values).any()),
                                      ("inf", np.isinf(values).any())) if found]
    return " and ".join(kinds)


def _nonfinite_counts(layer, seen):
    """{variable path: {"nan": n, "inf": m}} of the layer's weights holding either (each
    variable once over the calls of a shared layer)."""
    counts = {}
    for variable in getattr(layer, "weights", ()):  # keras.ops have none
        if variable.path in seen:
            continue
        seen.add(variable.path)
        value = np.asarray(variable.numpy())
        if not np.issubdtype(value.dtype, np.floating):
            continue
        nan, inf = int(np.isnan(value).sum()), int(np.isinf(value).sum())
        if nan or inf:
            counts[variable.path] = {"nan": nan, "inf": inf}
    return counts


def _nonfinite_weights(counts):
    """"12 NaN values and 1 inf value" over the layer's weights ({path: counts})."""
    nan = sum(c["nan"] for c in counts.values())
    inf = sum(c["inf"] for c in counts.values())
    parts = [f"{n} {kind} value{'s' if n != 1 else ''}" for n, kind in ((nan, "NaN"),
                                                                       (inf, "inf")) if n]
    return " and ".join(parts)


def _fmt(difference):
    if difference is None:
        return "-"
    mark = "!" if not difference.ok else "~" if difference.by_sensitivity else ""
    return f"{difference.abs:.2e}/{difference.rel:.1e}{mark}"


def compare(model, x, y, loss=None, training=False, net=None, sensitivity=True):
    """Runs ``model`` and its twin on ``(x, y)`` and reports, layer by layer, where they part.

    Args:
        model: a built Keras model.
        x, y: a batch (an array, or a list of arrays for several inputs) and its targets.
        loss: as for ``twin`` (default: the compiled loss, else sparse crossentropy).
        training: run both in training mode.
        net: the twin to check (default: ``twin(model)``); pass your own to check
            a modified or hand-made twin against the model.
        sensitivity: also run Keras on the input moved by a few ulps, and do not count
            a difference within ``SENSITIVITY_FACTOR`` times Keras's own (module
            docstring); False: the fixed tolerances alone, one Keras run.

    Returns:
        A ``Report``: ``ok``, ``first_divergence``, ``rows``; ``str(report)`` is a
        table, ``report.to_json()`` the same as JSON.
    """
    if net is None:
        built = twinning.build(model, loss, x, input_grad=True)
    else:
        net.input_grad = True  # every value's gradient is compared
        built = twinning.link(model, net, loss, x)
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    dtype = np.dtype(built.net.dtype).name
    tolerance = TOLERANCES.get(dtype, TOLERANCES["float32"])
    require_twin = net is None
    if sensitivity and training:
        seed_generator.global_seed_generator()  # exists before the run, so it can be replayed
    before = _state(model) if sensitivity else None
    keras_side = _keras_run(model, built, xs, y, training, require_twin)
    probe = None
    if sensitivity:
        probe = _keras_self(model, built, xs, y, training, require_twin, keras_side, before)
    with dropout_masks.using(built.net, built.layer_nodes, keras_side["leaves"],
                             keras_side["masks"]):
        numpy_loss, numpy_grads = built.net.loss_and_gradient(x, y, training=training)
    return _report(model, built, keras_side, float(numpy_loss), numpy_grads, tolerance, dtype,
                   probe)


def _keras_run(model, built, xs, y, training, require_twin, move_outputs=None):
    """Keras's outputs, loss and gradients: per leaf layer call, per weight, per input.

    ``move_outputs``: an epsilon; every layer's output is moved by that many (``_moving``).
    """
    inputs = [tf.convert_to_tensor(a, dtype=spec.dtype) for a, spec in zip(xs, built.input_specs)]
    moving = contextlib.nullcontext() if move_outputs is None else _moving(move_outputs)
    with tf.GradientTape(persistent=True) as tape:
        for t in inputs:
            tape.watch(t)
        with moving, tracing.recording() as calls, dropout_masks.capturing(calls) as masks:
            outputs = tracing.call_model(model, inputs, training=training)
        loss = _with_regularization(built.keras_loss(y, outputs), model.losses)
    leaves = tracing.leaf_calls(tracing.root_call(calls), require_twin)
    layer_outputs = [call.outputs[0] for call in leaves]
    variables = model.trainable_variables
    # What the loss reads: the model's outputs, and the logits Keras cached on them.
    ends = [t for out in tf.nest.flatten(outputs) if tf.is_tensor(out)
            for t in (out, getattr(out, "_keras_logits", None)) if t is not None]
    grads = tape.gradient(loss, [*layer_outputs, *variables, *inputs, *ends])
    # An Embedding's gradient comes as IndexedSlices (rows by token id): made dense.
    grads = [None if g is None else tf.convert_to_tensor(g) for g in grads]
    n, m = len(layer_outputs), len(layer_outputs) + len(variables) + len(inputs)
    return {"leaves": leaves, "masks": masks, "ends": [t.numpy() for t in ends],
            "end_grads": [None if g is None else g.numpy() for g in grads[m:]],
            "outputs": [t.numpy() for t in layer_outputs], "loss": float(loss),
            "output_grads": [None if g is None else g.numpy() for g in grads[:n]],
            "weight_grads": {v.path: (None if g is None else g.numpy())
                             for v, g in zip(variables, grads[n:n + len(variables)])},
            "input_grads": [None if g is None else g.numpy() for g in grads[n + len(variables):m]]}


def _state(model):
    """(variable, value) of what a training-mode run may change: every variable of the model
    (moving statistics, every layer's seed generator state; trainable ones too, which a
    layer such as SpectralNormalization rewrites in its call) and the global seed
    generator."""
    variables = list(model.variables)
    generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
    if generator is not None:
        variables.append(generator.state)
    return [(v, np.array(v.numpy())) for v in variables]


def _restore(state):
    for variable, value in state:
        variable.assign(value)


def _keras_self(model, built, xs, y, training, require_twin, keras_side, before):
    """Keras's own largest difference per compared tensor (as ``_keras_run``'s dict, each
    tensor replaced by a float or None) when each floating input moves by
    ``PERTURBATION_ULPS`` epsilons of the coarsest compute dtype; None where no input can
    move. The second run starts from the state ``before`` the first (same random draws,
    moving statistics not moved twice) and the state the first left is put back after it."""
    eps = _coarsest_eps(call.layer.compute_dtype for call in keras_side["leaves"]
                        if hasattr(call.layer, "compute_dtype"))  # keras.ops have none
    if eps is None:
        return None
    moved = [_moved(np.asarray(a, spec.dtype.as_numpy_dtype), eps)
             for a, spec in zip(xs, built.input_specs)]
    if all(m is None for m in moved):
        return None
    after = _state(model)
    _restore(before)
    try:
        other = _keras_run(model, built, [a if m is None else m for a, m in zip(xs, moved)],
                           y, training, require_twin, move_outputs=eps)
    finally:
        _restore(after)
    if len(other["outputs"]) != len(keras_side["outputs"]):
        return None  # a model that takes another path for the moved input: not comparable
    return {"perturbation": PERTURBATION_ULPS * float(eps),
            "outputs": _apart(keras_side["outputs"], other["outputs"]),
            "output_grads": _apart(keras_side["output_grads"], other["output_grads"]),
            "weight_grads": dict(zip(keras_side["weight_grads"],
                                     _apart(keras_side["weight_grads"].values(),
                                            other["weight_grads"].values()))),
            "input_grads": _apart(keras_side["input_grads"], other["input_grads"]),
            "loss": max(abs(keras_side["loss"] - other["loss"]), _loss_bound(keras_side, other))}


def _loss_bound(keras_side, other):
    """``sum |dL/dy| |y - y'|`` over what the loss reads: how far the loss can move when
    its inputs move as they did. One scalar difference alone is a single draw, which can
    be small by chance where each of its terms is not; the bound is not."""
    bound = 0.0
    for y, moved, g in zip(keras_side["ends"], other["ends"], keras_side["end_grads"]):
        if g is not None and np.shape(y) == np.shape(moved):
            bound += float(np.sum(np.abs(g) * np.abs(np.asarray(y, np.float64) - moved)))
    return bound


def _coarsest_eps(dtypes):
    """The largest machine epsilon among the floating ``dtypes`` (None if there is none)."""
    floating = [tf.as_dtype(d) for d in dtypes if d is not None and tf.as_dtype(d).is_floating]
    return max((float(ml_dtypes.finfo(d.as_numpy_dtype).eps) for d in floating), default=None)


def _moved(a, eps):
    """``a`` moved by ``PERTURBATION_ULPS * eps * |a|`` per element, with a fixed
    pseudo-random sign per element (no pattern a convolution or a pooling could line up
    with); None for an integer input, or one whose dtype is too coarse to hold the move
    (the layers compute finer than their input is given: it is exact data)."""
    if not np.issubdtype(a.dtype, np.floating) or _coarsest_eps([a.dtype]) > eps:
        return None
    factor = 1 + _signs(a.shape, np.random.default_rng(0)) * (PERTURBATION_ULPS * eps)
    return (a * factor.astype(a.dtype)).astype(a.dtype)


def _signs(shape, rng):
    return rng.integers(0, 2, shape) * 2 - 1


@contextlib.contextmanager
def _moving(eps):
    """Inside the block, every floating tensor a Keras layer returns (eagerly) is multiplied
    by ``1 +- PERTURBATION_ULPS * eps``, a fixed pseudo-random sign per element: the stand-in
    for the rounding a correct twin does differently at every layer. The gradient passing
    back through it is moved alike. Installed outside ``trace.recording``, which then
    records the moved tensors as the layers' outputs."""
    rng = np.random.default_rng(1)
    original = keras.layers.Layer.__call__

    def move(value):
        if not (tf.is_tensor(value) and value.dtype.is_floating and tf.executing_eagerly()):
            return value
        factor = 1 + _signs(value.shape, rng) * (PERTURBATION_ULPS * eps)
        moved = value * tf.constant(factor, value.dtype)
        for attribute in ("_keras_mask", "_keras_logits"):  # what Keras reads off outputs
            if getattr(value, attribute, None) is not None:
                setattr(moved, attribute, getattr(value, attribute))
        return moved

    def moving_call(layer, *args, **kwargs):
        return tf.nest.map_structure(move, original(layer, *args, **kwargs))

    keras.layers.Layer.__call__ = moving_call
    try:
        yield
    finally:
        keras.layers.Layer.__call__ = original


def _apart(first, second):
    """Per pair: max |first - second| (a None gradient counts as zeros), or None where the
    shapes differ."""
    result = []
    for a, b in zip(first, second):
        if a is None and b is None:
            result.append(0.0)
            continue
        a = np.zeros(np.shape(b)) if a is None else np.asarray(a, np.float64)
        b = np.zeros(np.shape(a)) if b is None else np.asarray(b, np.float64)
        if a.shape != b.shape:
            result.append(None)
            continue
        apart = np.abs(a - b)[~_same_nonfinite(a, b)]  # NaN and NaN: not apart
        result.append(float(np.max(apart)) if apart.size else 0.0)
    return result


def _with_regularization(loss, losses):
    """``loss + sum(losses)``, what a custom loop adds (and ``fit`` minimises), in the wider
    of the two dtypes as NumPy would promote them."""
    if not losses:
        return loss
    total = sum(losses)
    dtype = np.result_type(loss.dtype.as_numpy_dtype, total.dtype.as_numpy_dtype)
    return tf.cast(loss, dtype) + tf.cast(total, dtype)


def _report(model, built, keras_side, numpy_loss, numpy_grads, tolerance, dtype, probe=None):
    net = built.net
    nodes = {node.name: node for node in net.nodes}
    own = probe or {"outputs": [None] * len(keras_side["outputs"]),
                    "output_grads": [None] * len(keras_side["outputs"]), "weight_grads": {},
                    "input_grads": [None] * len(keras_side["input_grads"]), "loss": None}
    rows = []
    seen_weights, counted = set(), set()
    visible = set(net.inputs) | {name for _, name in built.layer_nodes if name is not None}
    for (layer, node_name), k_out, k_grad, self_out, self_grad in zip(
            built.layer_nodes, keras_side["outputs"], keras_side["output_grads"],
            own["outputs"], own["output_grads"]):
        if node_name is None:  # a hand-made twin without this layer: nothing to compare
            continue
        node = nodes[node_name]
        n_grad = net.value_grads.get(node_name)
        backward = (None if k_grad is None and n_grad is None else
                    Difference.of(_or_zeros(k_grad, k_out), _or_zeros(n_grad, k_out), tolerance,
                                  self_grad))
        weights = {}
        for variable in getattr(layer, "trainable_weights", ()):  # keras.ops have none
            if variable.path in seen_weights or variable.path not in numpy_grads:
                continue
            seen_weights.add(variable.path)
            k = keras_side["weight_grads"].get(variable.path)
            weights[variable.path] = Difference.of(_or_zeros(k, numpy_grads[variable.path]),
                                                   numpy_grads[variable.path], tolerance,
                                                   own["weight_grads"].get(variable.path))
        rows.append(Row(node_name, type(layer).__name__, np.shape(k_out),
                        Difference.of(k_out, net.values[node_name], tolerance, self_out),
                        backward, weights, _layer_inputs(node, nodes, visible),
                        _nonfinite_counts(layer, counted), _nonfinite_kinds(k_out)))
    input_grads = {}
    for name, k, self_k in zip(net.inputs, keras_side["input_grads"], own["input_grads"]):
        n = net.value_grads.get(name)
        if k is not None or n is not None:
            ref = k if k is not None else n
            input_grads[name] = Difference.of(_or_zeros(k, ref), _or_zeros(n, ref), tolerance,
                                              self_k)
    loss = {"keras": keras_side["loss"], "numpy": numpy_loss,
            "difference": Difference.of(keras_side["loss"], numpy_loss, tolerance, own["loss"])}
    report = Report(model.name, dtype, tolerance, rows, loss, input_grads,
                    perturbation=None if probe is None else probe["perturbation"])
    report.first_divergence, report.divergence = _first_divergence(report)
    return report


def _or_zeros(value, like):
    return np.zeros(np.shape(like)) if value is None else value


def _layer_inputs(node, nodes, visible):
    """The values a Keras layer reads, as twin names: the node's inputs, each followed back
    through the nodes the twin added between Keras's tensors (the logits it splits off a
    softmax output, a cast of an input) to a layer output or model input Keras also has."""
    found = []
    for name in node.inputs:
        while name not in visible and name in nodes and len(nodes[name].inputs) == 1:
            name = nodes[name].inputs[0]
        found.append(name)
    return found


def _first_divergence(report):
    """(layer name, kind) of the first place the two sides part, or (None, None)."""
    for row in report.rows:
        if not row.forward.ok:
            return row.name, "forward"
    if not report.loss["difference"].ok:
        return "loss", "loss"
    gradient_ok = {row.name: row.backward is None or row.backward.ok for row in report.rows}
    gradient_ok.update({name: d.ok for name, d in report.input_gradients.items()})
    for row in reversed(report.rows):  # from the loss back to the inputs
        if not gradient_ok[row.name]:
            continue  # its own output gradient already differs: a later layer's doing
        passes_back = [name for name in row.inputs if name in gradient_ok]
        if any(not gradient_ok[name] for name in passes_back):
            return row.name, "backward"
        if not all(d.ok for d in row.weights.values()):
            return row.name, "weights"
    if not all(gradient_ok.values()):  # no layer introduced it: the loss's own backward
        return "loss", "backward"
    return None, None
