"""Every layer type ``tfmodels.parity.twin`` supports, through the twin against Keras.

Each case is a small functional model: the layer under test on the model's
input(s), then a linear ``Dense`` head, under a mean squared error. Both sides
run it on batches of 1 and 5; they must agree on the output, the loss, the
gradient with respect to the layer's input(s) (the model's inputs) and every
weight gradient (the layer's own and the head's, which the layer's backward
feeds), each difference scaled by the values' size (``keras_twins.scaled``).

Tolerances:
- float64, 1e-12: both sides do the same IEEE operations up to the summation
  order inside the small matrix products and the last ulp of the elementary
  functions (Eigen's vs NumPy's exp, tanh, ...), so they agree to a few ulps of
  the values; the largest difference measured here is 2.1e-15 (the
  'exponential' Dense on rank-3 inputs). A wrong formula is off by far more.
- float32, 2e-6: the same disagreements at float32's eps = 1.2e-7; measured
  here <= 1.9e-7, but Eigen's float32 tanh/exp are a few ulps off the correctly
  rounded value and test_activations measures up to 1.2e-6 for an activation's
  gradient (gelu(approximate) near |x| = 7), which these inputs can reach.
"""

import dataclasses
import functools

import keras
import numpy as np
import pytest

from keras_twins import F32, F64, assert_agree, keras_activation_names, mse, targets_like, twin_of

TOL = {F64: 1e-12, F32: 2e-6}
# No merge case has a feature of size 5: Keras's ops.add misreads a (5, 1) operand
# as a bias when the batch size equals a feature size (random_models.batch_sizes).
BATCHES = (1, 5)
KERAS_ACTIVATIONS = keras_activation_names()


@dataclasses.dataclass
class Case:
    """A layer (``make(dtype)``) applied to inputs of these shapes (batch excluded)."""

    id: str
    make: object
    shapes: tuple = ((3, 4),)
    tie: bool = False  # every input gets the same values
    dtypes: tuple = (F64, F32)


def run_case(case, dtype, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = [keras.Input(shape, dtype=dtype) for shape in case.shapes]
    h = case.make(dtype)(inputs if len(inputs) > 1 else inputs[0])
    model = keras.Model(inputs if len(inputs) > 1 else inputs[0],
                        keras.layers.Dense(3, dtype=dtype, name="head")(h))
    net = twin_of(model, mse(dtype))
    rng = np.random.default_rng(seed)
    for batch in BATCHES:
        xs = [rng.normal(0, 2, (batch, *shape)).astype(dtype) for shape in case.shapes]
        if case.tie:
            xs = [xs[0].copy() for _ in xs]
        x = xs if len(xs) > 1 else xs[0]
        assert_agree(model, x, targets_like(net, x, rng), mse(dtype), TOL[dtype], net=net)
    return model, net


def layer(cls, **kwargs):
    return lambda dtype: cls(dtype=dtype, **kwargs)


def cases_by_dtype(cases):
    return [pytest.param(case, dtype, id=f"{case.id}-{dtype}")
            for case in cases for dtype in case.dtypes]


# --- Dense: every activation, with and without bias, on rank-2 and rank-3 inputs ----------

def dense_case(name, bias, rank, dtypes=(F64,)):
    return Case(f"{name}-{'bias' if bias else 'nobias'}-rank{rank}",
                layer(keras.layers.Dense, units=4, activation=name, use_bias=bias),
                ((5,) if rank == 2 else (3, 5),), dtypes=dtypes)


# Every activation with and without a bias, each on one rank; all four combinations
# for a few, and float32 for those (test_activation_layers has every activation in it).
DENSE = [*[dense_case(name, bias, rank) for name in KERAS_ACTIVATIONS
           for bias, rank in ((True, 3), (False, 2))],
         *[dense_case(name, bias, rank, (F32,)) for name in ("linear", "relu", "softmax", "gelu")
           for bias, rank in ((True, 3), (False, 2))],
         *[dense_case(name, bias, rank, (F64, F32)) for name in ("linear", "tanh")
           for bias, rank in ((True, 2), (False, 3))]]


@pytest.mark.parametrize("case, dtype", cases_by_dtype(DENSE))
def test_dense(case, dtype):
    model, net = run_case(case, dtype)
    dense = model.layers[1]
    assert set(net.params) == {v.path for v in model.trainable_variables}
    assert (f"{dense.name}/bias" in net.params) == dense.use_bias


# --- the activation layers -------------------------------------------------------------

ACTIVATION_LAYERS = [
    *[Case(f"Activation-{name}", layer(keras.layers.Activation, activation=name))
      for name in KERAS_ACTIVATIONS],
    Case("Activation-gelu-approximate", layer(
        keras.layers.Activation,
        activation=functools.partial(keras.activations.gelu, approximate=True))),
    Case("Activation-leaky_relu-0.1", layer(
        keras.layers.Activation,
        activation=functools.partial(keras.activations.leaky_relu, negative_slope=0.1))),
    Case("Activation-function", layer(keras.layers.Activation,
                                      activation=keras.activations.softplus)),
    Case("ReLU", layer(keras.layers.ReLU)),
    Case("ReLU-max6", layer(keras.layers.ReLU, max_value=6.0)),  # TF's relu6 op
    Case("ReLU-max2.5", layer(keras.layers.ReLU, max_value=2.5)),  # a clip
    Case("ReLU-slope", layer(keras.layers.ReLU, negative_slope=0.1)),  # leaky_relu op
    Case("ReLU-threshold", layer(keras.layers.ReLU, threshold=0.5)),
    Case("ReLU-max6-slope", layer(keras.layers.ReLU, max_value=6.0, negative_slope=0.2)),
    Case("ReLU-max6-threshold", layer(keras.layers.ReLU, max_value=6.0, threshold=0.5)),
    Case("ReLU-slope-threshold", layer(keras.layers.ReLU, negative_slope=0.3, threshold=1.0)),
    Case("ReLU-all", layer(keras.layers.ReLU, max_value=2.0, negative_slope=0.1,
                           threshold=0.3)),
    Case("LeakyReLU", layer(keras.layers.LeakyReLU)),
    Case("LeakyReLU-0.01", layer(keras.layers.LeakyReLU, negative_slope=0.01)),
    Case("ELU", layer(keras.layers.ELU)),
    Case("ELU-alpha", layer(keras.layers.ELU, alpha=0.5)),
    Case("Softmax", layer(keras.layers.Softmax)),
    Case("Softmax-axis1", layer(keras.layers.Softmax, axis=1)),
    Case("Softmax-axis1-rank4", layer(keras.layers.Softmax, axis=1), ((3, 2, 4),)),
    Case("Softmax-axes", layer(keras.layers.Softmax, axis=(1, 2))),
    Case("Identity", layer(keras.layers.Identity)),
]


@pytest.mark.parametrize("case, dtype", cases_by_dtype(ACTIVATION_LAYERS))
def test_activation_layers(case, dtype):
    run_case(case, dtype)


# --- shape layers ----------------------------------------------------------------------

SHAPE_LAYERS = [
    Case("Flatten-channels_last-rank3", layer(keras.layers.Flatten)),
    Case("Flatten-channels_last-rank4", layer(keras.layers.Flatten), ((2, 3, 4),)),
    # channels_first moves the channels (axis 1) last before flattening
    Case("Flatten-channels_first-rank3", layer(keras.layers.Flatten,
                                               data_format="channels_first")),
    Case("Flatten-channels_first-rank4", layer(keras.layers.Flatten,
                                               data_format="channels_first"), ((2, 3, 4),)),
    Case("Reshape-minus1-first", layer(keras.layers.Reshape, target_shape=(-1, 2))),
    Case("Reshape-minus1-last", layer(keras.layers.Reshape, target_shape=(2, -1))),
    Case("Reshape-minus1-flat", layer(keras.layers.Reshape, target_shape=(-1,))),
    Case("Reshape-rank4", layer(keras.layers.Reshape, target_shape=(2, 3, 2))),
    Case("Rescaling", layer(keras.layers.Rescaling, scale=1 / 255)),
    Case("Rescaling-offset", layer(keras.layers.Rescaling, scale=1 / 127.5, offset=-1)),
    Case("Rescaling-per-channel", layer(keras.layers.Rescaling, scale=[0.5, 2.0, 1 / 3, 4.0],
                                        offset=[0.0, 1.0, -1.0, 0.25])),
]


@pytest.mark.parametrize("case, dtype", cases_by_dtype(SHAPE_LAYERS))
def test_shape_layers(case, dtype):
    run_case(case, dtype)


# --- layer normalization: every option, over one axis or several ----------------------

def layer_norm(**kwargs):
    """With random gamma and beta, so that their handling is tested, not their defaults."""
    return layer(keras.layers.LayerNormalization, gamma_initializer="random_normal",
                 beta_initializer="random_normal", **kwargs)


LAYER_NORMS = [
    Case("LayerNormalization", layer_norm()),
    Case("LayerNormalization-axis1", layer_norm(axis=1)),
    Case("LayerNormalization-axes", layer_norm(axis=[1, 2])),
    Case("LayerNormalization-axes-rank4", layer_norm(axis=[-3, -1]), ((2, 3, 4),)),
    Case("LayerNormalization-no-center", layer_norm(center=False)),
    Case("LayerNormalization-no-scale", layer_norm(scale=False)),
    Case("LayerNormalization-neither", layer_norm(center=False, scale=False, epsilon=0.1)),
    # Deprecated in Keras (it divides by the variance), still what old models hold.
    Case("LayerNormalization-rms", layer_norm(rms_scaling=True)),
    Case("LayerNormalization-rms-axes", layer_norm(rms_scaling=True, axis=[1, 2])),
    Case("RMSNormalization", layer(keras.layers.RMSNormalization)),
    Case("RMSNormalization-axes", layer(keras.layers.RMSNormalization, axis=[1, 2],
                                        epsilon=0.1)),
]


@pytest.mark.parametrize("case, dtype", cases_by_dtype(LAYER_NORMS))
@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")
def test_layer_normalization(case, dtype):
    model, net = run_case(case, dtype)
    if case.id.startswith("RMSNormalization"):
        # Keras starts the scale at ones (no initializer argument): check the same layer
        # again, in a fresh model, with a scale that varies along the axis.
        scale = model.layers[1].scale
        scale.assign(scale.numpy() * np.linspace(0.5, 1.5, scale.shape[-1]))
        net = run_case(dataclasses.replace(case, make=lambda dtype: model.layers[1]), dtype)[1]
    assert set(net.params) == {v.path for v in model.trainable_variables}


# --- merges: same shapes, broadcasting, different ranks, ties, three inputs -------------

ELEMENTWISE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
MERGE_SHAPES = {
    "same": ((3, 4), (3, 4)),
    "broadcast": ((3, 4), (3, 1)),  # the second input broadcast along the last axis
    "lower-rank": ((3, 4), (4,)),  # Keras inserts axis 1 into the lower-rank input
    "ties": ((3, 4), (3, 4)),  # identical inputs: TF's gradient takes the first
    "three": ((3, 4), (1, 4), (3, 4)),
}
MERGES = [
    *[Case(f"{name}-{kind}", layer(getattr(keras.layers, name)), shapes,
           tie=kind.endswith("ties"), dtypes=(F64, F32) if kind == "ties" else (F64,))
      for name in ELEMENTWISE for kind, shapes in MERGE_SHAPES.items()
      if not (name == "Subtract" and len(shapes) == 3)],
    Case("Concatenate-last", layer(keras.layers.Concatenate), ((3, 4), (3, 2))),
    Case("Concatenate-axis1", layer(keras.layers.Concatenate, axis=1), ((3, 4), (2, 4))),
    Case("Concatenate-axis1-three", layer(keras.layers.Concatenate, axis=1),
         ((3, 4), (1, 4), (2, 4))),
    Case("Concatenate-ties", layer(keras.layers.Concatenate), ((3, 4), (3, 4)), tie=True),
]


@pytest.mark.parametrize("case, dtype", cases_by_dtype(MERGES))
def test_merge_layers(case, dtype):
    run_case(case, dtype)


def test_a_tie_sends_the_whole_gradient_to_the_first_input():
    """Maximum and Minimum of identical inputs: TF's gradient goes to the first one only
    (the twin must not split it, which would give the right total but the wrong parts)."""
    for name in ("Maximum", "Minimum"):
        case = Case(name, layer(getattr(keras.layers, name)), ((4,), (4,)), tie=True)
        _, net = run_case(case, F64)
        first, second = (net.value_grads[name] for name in net.inputs)
        assert np.all(first != 0) and np.all(second == 0), name


def test_rescaling_takes_uint8_images_as_keras_does():
    model = keras.Sequential([keras.Input((4, 4, 1), dtype="uint8"),
                              keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    x = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 1), np.uint8)
    net = twin_of(model, mse(F32))
    # float32 throughout, 16-term sums: a few ulps of values ~1.
    np.testing.assert_allclose(net.predict(x), model(x).numpy(), rtol=1e-6, atol=1e-6)
