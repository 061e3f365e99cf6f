"""``compare(model, x, y)``: where do a Keras model and its NumPy twin part, layer by layer?

Both sides run the same batch: Keras eagerly under a ``tf.GradientTape`` (each
layer's output recorded as it is made), the twin with every gradient kept.
Each row compares one layer call: its output (forward), the loss gradient with
respect to that output (backward), and the gradients of its weights. A
difference counts when ``max|keras - numpy| > atol + rtol * max|keras|`` for
the tensor, with tolerances chosen per dtype (``TOLERANCES``).

The first divergence is the layer that introduced a difference: going forward,
the first layer whose output parts while its inputs agree; else, going back
from the loss, the layer whose output gradient agrees while the gradient it
passes back (to its inputs) or its weight gradients do not.

The loss on both sides is what ``fit`` minimises: the loss plus
``sum(model.losses)`` (the regularizers). In training mode the twin's dropout
layers drop the units Keras dropped in its run (``dropout_masks.py``), and
both sides' batch normalization update their moving statistics once.
"""

import dataclasses
import json

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


@dataclasses.dataclass
class Difference:
    """Largest absolute and relative difference of one tensor, and the verdict."""

    abs: float
    rel: float
    ok: bool

    @classmethod
    def of(cls, keras_value, numpy_value, tolerance):
        a = np.asarray(keras_value, np.float64)
        b = np.asarray(numpy_value, np.float64)
        if a.shape != b.shape:
            return cls(float("inf"), float("inf"), False)
        diff = np.abs(a - b)
        largest = float(np.max(np.abs(a))) if a.size else 0.0
        worst = float(np.max(diff)) if diff.size else 0.0
        rtol, atol = tolerance
        ok = bool(np.all(np.isfinite(diff))) and worst <= atol + rtol * largest
        return cls(worst, worst / largest if largest else worst, ok)

    def to_dict(self):
        return dataclasses.asdict(self)


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

    @property
    def ok(self):
        return (self.forward.ok and (self.backward is None or self.backward.ok)
                and all(d.ok for d in self.weights.values()))

    def to_dict(self):
        return {"name": self.name, "class": self.class_name,
                "output_shape": list(self.output_shape), "forward": self.forward.to_dict(),
                "backward": None if self.backward is None else self.backward.to_dict(),
                "weights": {k: d.to_dict() for k, d in self.weights.items()},
                "inputs": self.inputs, "ok": self.ok}


@dataclasses.dataclass
class Report:
    """What ``compare`` found: per-layer rows, the loss, the verdict and where they part."""

    model_name: str
    dtype: str
    tolerance: tuple
    rows: list
    loss: dict  # {"keras": ..., "numpy": ..., "difference": Difference}
    input_gradients: dict  # input name -> Difference of dL/d(input)
    first_divergence: str = None
    divergence: str = None  # "forward", "loss", "backward" or "weights"

    @property
    def ok(self):
        return self.first_divergence is None

    def to_dict(self):
        return {"model": self.model_name, "dtype": self.dtype, "ok": self.ok,
                "tolerance": {"rtol": self.tolerance[0], "atol": self.tolerance[1]},
                "first_divergence": self.first_divergence, "divergence": self.divergence,
                "loss": {**{k: v for k, v in self.loss.items() if k != "difference"},
                         "difference": self.loss["difference"].to_dict()},
                "input_gradients": {k: d.to_dict() for k, d in self.input_gradients.items()},
                "layers": [row.to_dict() for row in self.rows]}

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    def __str__(self):
        lines = [f"{self.model_name}: Keras vs NumPy twin ({self.dtype}, rtol {self.tolerance[0]:g}, "
                 f"atol {self.tolerance[1]:g}; differences are max |abs| / max rel)"]
        header = f"{'layer':<24} {'class':<16} {'output':<16} {'forward':>19} {'backward':>19}  weights"
        lines += [header, "-" * len(header)]
        for row in self.rows:
            weights = ", ".join(f"{k.rsplit('/', 1)[-1]} {_fmt(d)}" for k, d in row.weights.items())
            mark = "" if row.ok else "  <-- differs"
            lines.append(f"{row.name[:24]:<24} {row.class_name[:16]:<16} "
                         f"{str(tuple(row.output_shape))[:16]:<16} {_fmt(row.forward):>19} "
                         f"{_fmt(row.backward):>19}  {weights}{mark}")
        loss = self.loss
        lines.append(f"loss: keras {loss['keras']:.17g}, numpy {loss['numpy']:.17g}, "
                     f"|difference| {loss['difference'].abs:.3g}")
        lines.append("verdict: all layers agree" if self.ok else
                     f"verdict: they part at {self.first_divergence!r} ({self.divergence})")
        return "\n".join(lines)


def _fmt(difference):
    if difference is None:
        return "-"
    return f"{difference.abs:.2e}/{difference.rel:.1e}" + ("" if difference.ok else "!")


def compare(model, x, y, loss=None, training=False, net=None):
    """Runs ``model`` and its twin on ``(x, y)`` and reports, layer by layer, where they part.

    Args:
        model: a built Keras model.
        x, y: a batch (an array, or a list of arrays for several inputs) and its targets.
        loss: as for ``twin`` (default: the compiled loss, else sparse crossentropy).
        training: run both in training mode.
        net: the twin to check (default: ``twin(model)``); pass your own to check
            a modified or hand-made twin against the model.

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
    keras_side = _keras_run(model, built, xs, y, training, require_twin=net is None)
    with dropout_masks.using(built.net, built.layer_nodes, keras_side["leaves"],
                             keras_side["masks"]):
        numpy_loss, numpy_grads = built.net.loss_and_gradient(x, y, training=training)
    return _report(model, built, keras_side, float(numpy_loss), numpy_grads, tolerance, dtype)


def _keras_run(model, built, xs, y, training, require_twin):
    """Keras's outputs, loss and gradients: per leaf layer call, per weight, per input."""
    inputs = [tf.convert_to_tensor(a, dtype=spec.dtype) for a, spec in zip(xs, built.input_specs)]
    with tf.GradientTape(persistent=True) as tape:
        for t in inputs:
            tape.watch(t)
        with tracing.recording() as calls, dropout_masks.capturing(calls) as masks:
            outputs = tracing.call_model(model, inputs, training=training)
        loss = _with_regularization(built.keras_loss(y, outputs), model.losses)
    leaves = tracing.leaf_calls(tracing.root_call(calls), require_twin)
    layer_outputs = [call.outputs[0] for call in leaves]
    variables = model.trainable_variables
    grads = tape.gradient(loss, [*layer_outputs, *variables, *inputs])
    n = len(layer_outputs)
    return {"leaves": leaves, "masks": masks,
            "outputs": [t.numpy() for t in layer_outputs], "loss": float(loss),
            "output_grads": [None if g is None else g.numpy() for g in grads[:n]],
            "weight_grads": {v.path: (None if g is None else g.numpy())
                             for v, g in zip(variables, grads[n:n + len(variables)])},
            "input_grads": [None if g is None else g.numpy() for g in grads[n + len(variables):]]}


def _with_regularization(loss, losses):
    """``loss + sum(losses)``, what a custom loop adds (and ``fit`` minimises), in the wider
    of the two dtypes as NumPy would promote them."""
    if not losses:
        return loss
    total = sum(losses)
    dtype = np.result_type(loss.dtype.as_numpy_dtype, total.dtype.as_numpy_dtype)
    return tf.cast(loss, dtype) + tf.cast(total, dtype)


def _report(model, built, keras_side, numpy_loss, numpy_grads, tolerance, dtype):
    net = built.net
    nodes = {node.name: node for node in net.nodes}
    rows = []
    seen_weights = set()
    visible = set(net.inputs) | {name for _, name in built.layer_nodes if name is not None}
    for (layer, node_name), k_out, k_grad in zip(built.layer_nodes, keras_side["outputs"],
                                                 keras_side["output_grads"]):
        if node_name is None:  # a hand-made twin without this layer: nothing to compare
            continue
        node = nodes[node_name]
        n_grad = net.value_grads.get(node_name)
        backward = (None if k_grad is None and n_grad is None else
                    Difference.of(_or_zeros(k_grad, k_out), _or_zeros(n_grad, k_out), tolerance))
        weights = {}
        for variable in layer.trainable_weights:
            if variable.path in seen_weights or variable.path not in numpy_grads:
                continue
            seen_weights.add(variable.path)
            k = keras_side["weight_grads"].get(variable.path)
            weights[variable.path] = Difference.of(_or_zeros(k, numpy_grads[variable.path]),
                                                   numpy_grads[variable.path], tolerance)
        rows.append(Row(node_name, type(layer).__name__, np.shape(k_out),
                        Difference.of(k_out, net.values[node_name], tolerance), backward,
                        weights, _layer_inputs(node, nodes, visible)))
    input_grads = {}
    for name, k in zip(net.inputs, keras_side["input_grads"]):
        n = net.value_grads.get(name)
        if k is not None or n is not None:
            ref = k if k is not None else n
            input_grads[name] = Difference.of(_or_zeros(k, ref), _or_zeros(n, ref), tolerance)
    loss = {"keras": keras_side["loss"], "numpy": numpy_loss,
            "difference": Difference.of(keras_side["loss"], numpy_loss, tolerance)}
    report = Report(model.name, dtype, tolerance, rows, loss, input_grads)
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
