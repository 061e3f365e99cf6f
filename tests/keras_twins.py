"""Shared helpers for tests that hold a Keras model against its NumPy twin.

``keras_side`` and ``twin_side`` run one batch through each and return the same
record (output, loss, dL/d(each input), dL/d(each weight, by variable path),
the non-trainable weights after the pass: BatchNormalization's moving statistics);
``differences`` reduces two records to their largest scaled differences, and
``assert_agree`` checks them against a tolerance.

A difference is scaled by the size of the values it is measured on,
``max|numpy - keras| / max(1, max|keras|)``: rounding errors are relative to the
values involved, and values of order 1 or below get an absolute bound.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from numpy_ref.layers import activations
from tfmodels.parity import twins

F64, F32 = "float64", "float32"


@dataclasses.dataclass
class Side:
    """What one side computed on a batch."""

    output: np.ndarray
    loss: float
    input_grads: list  # dL/d(input), one per model input
    weight_grads: dict  # variable path -> dL/d(variable)
    state: dict  # variable path -> non-trainable weight after the pass


def as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def keras_side(model, x, y, loss, training=True):
    """Keras's output, loss (plus ``sum(model.losses)``, the regularizers) and gradients,
    under a GradientTape; the moving statistics of a BatchNormalization move in training
    mode, and a Dropout drops units then (use ``parity.compare`` for those)."""
    inputs = [tf.constant(a) for a in as_list(x)]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        output = model(inputs if len(inputs) > 1 else inputs[0], training=training)
        value = loss(y, output) + sum(model.losses)
    variables = model.trainable_variables
    grads = [None if g is None else tf.convert_to_tensor(g)  # an Embedding's: IndexedSlices
             for g in tape.gradient(value, [*inputs, *variables])]
    return Side(output.numpy(), float(value), [g.numpy() for g in grads[:len(inputs)]],
                {v.path: g.numpy() for v, g in zip(variables, grads[len(inputs):])},
                {v.path: v.numpy() for v in model.non_trainable_weights})


def twin_of(model, loss, x=None):
    """The twin of ``model`` with ``loss``, computing dL/d(inputs) too (for ``twin_side``);
    ``x``, an example batch, for a model that does not record its input shape."""
    return twins.build(model, loss, x, input_grad=True).net


def twin_side(net, x, y, training=True):
    """The same record from a twin made by ``twin_of``."""
    loss, grads = net.loss_and_gradient(x, y, training=training)
    return Side(net.last_output, float(loss), [net.value_grads[name] for name in net.inputs],
                grads, {name: np.array(value) for name, value in net.state.items()})


def scaled(numpy_value, keras_value):
    """max|numpy - keras| / max(1, max|keras|); inf when the shapes differ."""
    a, b = np.asarray(numpy_value, np.float64), np.asarray(keras_value, np.float64)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def differences(numpy_side, keras_side_):
    """{'output', 'loss', 'input_grads', 'weight_grads', 'state': largest scaled difference}.

    The weight gradients and the states must have the same keys on both sides (inf otherwise).
    """
    same_keys = set(numpy_side.weight_grads) == set(keras_side_.weight_grads)
    same_state = set(numpy_side.state) == set(keras_side_.state)
    weight = max((scaled(numpy_side.weight_grads[k], g)
                  for k, g in keras_side_.weight_grads.items()), default=0.0)
    return {
        "output": scaled(numpy_side.output, keras_side_.output),
        "loss": scaled(numpy_side.loss, keras_side_.loss),
        "input_grads": max((scaled(n, k) for n, k in zip(numpy_side.input_grads,
                                                           keras_side_.input_grads)),
                           default=0.0),
        "weight_grads": weight if same_keys else float("inf"),
        "state": max((scaled(numpy_side.state[k], v) for k, v in keras_side_.state.items()),
                     default=0.0) if same_state else float("inf"),
    }


def compare_sides(model, x, y, loss, net=None, training=True):
    """``differences`` of the twin (``twin_of(model, loss)`` unless given) and Keras."""
    net = net or twin_of(model, loss)
    return differences(twin_side(net, x, y, training), keras_side(model, x, y, loss, training))


def assert_agree(model, x, y, loss, tol, net=None, training=True):
    """Every scaled difference of ``compare_sides`` within ``tol``; returns them."""
    found = compare_sides(model, x, y, loss, net, training)
    worst = {k: v for k, v in found.items() if not v <= tol}
    assert not worst, f"differences above {tol:g}: {worst}"
    return found


def keras_activation_names():
    """Every ``numpy_ref.layers.activations`` name that this Keras knows too."""
    names = []
    for name in activations.ACTIVATIONS:
        try:
            keras.activations.get(name)
        except ValueError:
            continue
        names.append(name)
    return names


def mse(dtype):
    """Mean squared error computing in ``dtype`` (a Keras loss computes in float32 unless told)."""
    return keras.losses.MeanSquaredError(dtype=dtype)


def targets_like(net, x, rng):
    """Random regression targets shaped like the twin's output on ``x``."""
    output = net.predict(x)
    return rng.normal(size=output.shape).astype(output.dtype)


def randomise_batch_normalization(model, rng):
    """BatchNormalization's weights start as 1, 0, 0, 1, which hides mistakes: draw them."""
    for v in model.weights:
        if v.name in ("gamma", "beta", "moving_mean"):
            v.assign(rng.normal(0.5 if v.name == "gamma" else 0.0, 0.5, v.shape))
        elif v.name == "moving_variance":
            v.assign(rng.uniform(0.5, 2.0, v.shape))


class Tally:
    """How many models a test compared, and the largest of each kind of difference."""

    def __init__(self):
        self.models = 0
        self.largest = {}

    def add(self, found):
        self.models += 1
        for kind, value in found.items():
            self.largest[kind] = max(self.largest.get(kind, 0.0), value)

    def __str__(self):
        return f"{self.models} models; largest scaled differences: " + ", ".join(
            f"{kind} {value:.2g}" for kind, value in self.largest.items())


def report_differences(report):
    """Every ``compare.Difference`` a report holds: the loss, the input gradients, and per
    layer its output, its output gradient and its weight gradients."""
    differences = [report.loss["difference"], *report.input_gradients.values()]
    for row in report.rows:
        differences += [row.forward, *row.weights.values()]
        differences += [] if row.backward is None else [row.backward]
    return differences


def recurrent_differences(layer, xs, mask=None, nest=None, training=False, seed=0):
    """(largest scaled difference, twin) of a recurrent layer called directly on
    ``xs`` = [x, *initial states]: its outputs (returned states included), input and
    initial-state gradients and weight gradients against its twin's, for random output
    gradients. ``nest`` shapes the flat initial states as Keras's call takes them
    (stacked cells)."""
    from tfmodels.parity import registry  # pylint: disable=import-outside-toplevel
    ts = [tf.constant(a) for a in xs]
    kwargs = {} if mask is None else {"mask": tf.constant(mask)}
    if len(ts) > 1:
        kwargs["initial_state"] = nest(ts[1:]) if nest else ts[1:]
    rng = np.random.default_rng(seed)
    with tf.GradientTape() as tape:
        tape.watch(ts)
        outs = tf.nest.flatten(layer(ts[0], training=training, **kwargs))
        gs = [rng.normal(size=o.shape).astype(o.dtype.as_numpy_dtype) for o in outs]
        value = sum(tf.reduce_sum(o * g) for o, g in zip(outs, gs))
    grads = tape.gradient(value, [*ts, *layer.trainable_weights])
    twin = registry.builder_for(layer)(layer)
    given = xs if getattr(twin, "multi_input", False) else xs[0]
    y = twin.forward(given, training=training, **({} if mask is None else {"mask": mask}))
    several = getattr(twin, "multi_output", False)
    ys = list(y) if several else [y]
    dxs = twin.backward(tuple(gs) if several else gs[0])
    dxs = dxs if isinstance(dxs, list) else [dxs]
    assert len(ys) == len(outs) and len(dxs) == len(ts)
    keys = {id(v): k for k, v in twins._keras_weights(layer).items()}
    found = [scaled(a, b.numpy()) for a, b in zip(ys, outs)]
    found += [scaled(a, b.numpy()) for a, b in zip(dxs, grads[:len(ts)])]
    found += [scaled(twin.grads[keys[id(v)]], g.numpy())
              for v, g in zip(layer.trainable_weights, grads[len(ts):])]
    return max(found), twin
