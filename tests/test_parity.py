"""The project's own models and their twins compute the same numbers, given the same weights.

Tolerances, by dtype:
- float64: both sides do the same IEEE operations up to summation order inside
  matrix products (oneDNN vs OpenBLAS), so differences stay within a few ulps
  of the values involved: atol 1e-12 on probabilities, losses and gradients.
- float32: the same reorderings cost ~1e-7 relative per operation and grow
  with the reduction length (3072 inputs for SVHN): rtol 1e-4, atol 1e-6.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_ref import training as np_training
from tfmodels import data, models, parity
from tfmodels import training as tf_training
from tfmodels.parity.compare import Difference

TOL = {"float64": dict(rtol=0, atol=1e-12), "float32": dict(rtol=1e-4, atol=1e-6)}
INPUT_SHAPES = {"mnist": (28, 28), "svhn": (32, 32, 3)}
MODEL_NAMES = ("mymodel", "two_layer_net")
ACTIVATIONS = ("relu", "sigmoid", "tanh")


def make_model(kind, activation="relu", dtype="float64", **kwargs):
    if kind == "mymodel":
        return models.Mymodel(activation=activation, dtype=dtype, **kwargs)
    # std 0.1 rather than the book's 0.01 so the outputs are not all ~1/C.
    kwargs.setdefault("weight_init_std", 0.1)
    return models.TwoLayerNet(activation=activation, dtype=dtype, **kwargs)


def twins(name, activation, input_shape, dtype, batch, seed=0, **kwargs):
    """A built Keras model, its NumPy twin, and a batch (x, t) for both."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.random((batch, *input_shape)).astype(dtype)
    model = make_model(name, activation, dtype, **kwargs)
    model(x)  # build
    t = rng.integers(0, model.num_classes, batch)
    return model, parity.twin(model), x, t


def keras_loss_and_gradient(model, x, t):
    """Keras's loss (in the model's dtype) and gradients, keyed by variable path."""
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(dtype=model.dtype_policy.variable_dtype)
    with tf.GradientTape() as tape:
        loss = loss_fn(t, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), {v.path: g.numpy() for v, g in zip(model.trainable_variables, grads)}


GRID = pytest.mark.parametrize("name", MODEL_NAMES)
GRID_ACT = pytest.mark.parametrize("activation", ACTIVATIONS)
GRID_BATCH = pytest.mark.parametrize("batch", [1, 7], ids=["batch1", "batch7"])
GRID_INPUT = pytest.mark.parametrize("input_name", INPUT_SHAPES)
GRID_DTYPE = pytest.mark.parametrize("dtype", ["float64", "float32"])


def full_grid(test):
    """Every model x activation x batch x input x dtype."""
    for mark in (GRID_DTYPE, GRID_INPUT, GRID_BATCH, GRID_ACT, GRID):
        test = mark(test)
    return test


@full_grid
def test_forward_outputs_match(name, activation, batch, input_name, dtype):
    model, net, x, _ = twins(name, activation, INPUT_SHAPES[input_name], dtype, batch)
    keras_out = model(x).numpy()
    numpy_out = net.predict(x)
    assert numpy_out.dtype == keras_out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(numpy_out, keras_out, **TOL[dtype])


@full_grid
def test_loss_and_gradients_match(name, activation, batch, input_name, dtype):
    model, net, x, t = twins(name, activation, INPUT_SHAPES[input_name], dtype, batch)
    keras_loss, keras_grads = keras_loss_and_gradient(model, x, t)
    numpy_loss, numpy_grads = net.loss_and_gradient(x, t)
    np.testing.assert_allclose(numpy_loss, keras_loss, **TOL[dtype])
    assert set(numpy_grads) == set(keras_grads)
    for key, grad in numpy_grads.items():
        assert grad.dtype == np.dtype(dtype), key
        np.testing.assert_allclose(grad, keras_grads[key], err_msg=key, **TOL[dtype])


@pytest.mark.parametrize("run", ["eager", "tf_function"])
def test_keras_loss_on_softmax_output_reads_logits(run):
    """Saturated probabilities (some clipped below 1e-7) tell the formulas apart:
    Keras's loss on a softmax layer's output equals the NumPy 'logits' variant,
    not the clipped formula it uses on a plain probability tensor."""
    model, net, x, t = twins("two_layer_net", "relu", (28, 28), "float64", 8,
                             weight_init_std=3.0)
    assert net.predict(x).min() < 1e-7  # the clip is active
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(dtype="float64")
    call = lambda: loss_fn(t, model(x))
    keras_loss = float(tf.function(call)() if run == "tf_function" else call())
    assert net.loss_input == "classifier/logits"  # the twin's loss reads the logits too
    np.testing.assert_allclose(net.loss(x, t), keras_loss, rtol=0, atol=1e-12)
    clipped = parity.twin_loss(loss_fn).forward(net.predict(x), t)  # the plain-tensor formula
    assert abs(clipped - keras_loss) > 1e-6


def test_keras_loss_on_plain_probabilities_is_clipped():
    """On probabilities that are just an array (no softmax logits behind them),
    Keras clips to [1e-7, 1 - 1e-7] and renormalises: the 'keras' formula."""
    from numpy_ref import functions as F

    y = np.array([[0.0, 0.3, 0.7], [1.0, 0.0, 0.0], [0.2, 0.2, 0.6]])
    t = np.array([0, 0, 2])
    keras_loss = float(tf.keras.losses.SparseCategoricalCrossentropy(dtype="float64")(
        t, tf.constant(y)))
    np.testing.assert_allclose(F.keras_sparse_categorical_crossentropy(y, t), keras_loss,
                               rtol=0, atol=1e-15)
    # The book's log(y + 1e-7) is a different number when a probability is 0.
    assert abs(F.cross_entropy_error(y, t) - keras_loss) > 1e-8


@GRID
@GRID_ACT
def test_gradients_match_numerical_gradient(name, activation):
    """Small float64 model: GradientTape, NumPy backprop and central differences agree.

    The central difference has O(h^2) truncation error with h = 1e-4, so it
    agrees with backprop to ~1e-9 here, not to rounding: atol 1e-7.
    """
    kwargs = ({"hidden_units": (5, 4), "num_classes": 3} if name == "mymodel"
              else {"hidden_size": 5, "num_classes": 3, "weight_init_std": 0.5})
    model, net, x, t = twins(name, activation, (2, 3), "float64", 4, seed=3, **kwargs)
    _, keras_grads = keras_loss_and_gradient(model, x, t)
    backprop = net.gradient(x, t)
    numerical = net.numerical_gradient(x, t)
    for key in backprop:
        np.testing.assert_allclose(backprop[key], keras_grads[key], rtol=0, atol=1e-12,
                                   err_msg=key)
        np.testing.assert_allclose(numerical[key], keras_grads[key], rtol=0, atol=1e-7,
                                   err_msg=key)


KERAS_OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(learning_rate=0.1),
    "momentum": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
    "nesterov": lambda: keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(),
    "adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.01),
    "adam": lambda: keras.optimizers.Adam(),
}


def assert_same_weights(model, net, **tol):
    for variable in model.trainable_variables:
        np.testing.assert_allclose(net.params[variable.path], variable.numpy(),
                                   err_msg=variable.path, **tol)


@pytest.mark.parametrize("opt", sorted(KERAS_OPTIMIZERS))
def test_optimizer_steps_match(opt):
    """Three steps on the same gradients leave identical float64 weights.

    The twin optimizer repeats Keras's operations in Keras's order, with its
    float32 rounding of lr, momentum and beta powers, so the weights agree to
    the last bit or within 2 ulps (atol 1e-15 on weights of size ~0.1).
    """
    model, net, x, t = twins("mymodel", "relu", (28, 28), "float64", 8)
    keras_opt = KERAS_OPTIMIZERS[opt]()
    numpy_opt = parity.twin_optimizer(KERAS_OPTIMIZERS[opt](), model.trainable_variables)
    for _ in range(3):
        _, grads = keras_loss_and_gradient(model, x, t)
        keras_opt.apply_gradients([(grads[v.path], v) for v in model.trainable_variables])
        numpy_opt.update(net.params, grads)
        assert_same_weights(model, net, rtol=0, atol=1e-15)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "rmsprop", "adam"])
def test_fifty_step_trajectory_matches(opt):
    """50 steps of the tf.function train_step and of numpy_ref's train_step on
    the same batches from the same weights: same losses and weights (float64).
    Rounding differences in the matrix products compound over the steps;
    measured: below 2e-15 after 50 steps; the bound is 1e-12."""
    model, net, _, _ = twins("mymodel", "relu", (28, 28), "float64", 1)
    trainer = tf_training.Trainer(model, KERAS_OPTIMIZERS[opt]())
    numpy_opt = parity.twin_optimizer(KERAS_OPTIMIZERS[opt](), model.trainable_variables)
    rng = np.random.default_rng(42)
    images = rng.integers(0, 256, (50 * 16, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 50 * 16)
    for step in range(50):
        xb = images[step * 16:(step + 1) * 16].astype(np.float64) / 255
        tb = labels[step * 16:(step + 1) * 16]
        keras_loss = float(trainer.train_step(tf.constant(xb), tf.constant(tb)))
        numpy_loss = np_training.train_step(net, numpy_opt, xb, tb)
        np.testing.assert_allclose(numpy_loss, keras_loss, rtol=0, atol=1e-12,
                                   err_msg=f"step {step}")
    assert_same_weights(model, net, rtol=0, atol=1e-12)


@GRID
@GRID_INPUT
def test_round_trip_keeps_outputs(name, input_name):
    """Keras -> twin -> a fresh Keras model of the same kind: the same outputs, bit for bit."""
    model, net, x, _ = twins(name, "tanh", INPUT_SHAPES[input_name], "float64", 3)
    before = model(x).numpy()
    fresh = make_model(name, "tanh", "float64", name=model.name)  # same name: same paths
    fresh(x)
    parity.to_keras(net, fresh)
    np.testing.assert_array_equal(fresh(x).numpy(), before)
    np.testing.assert_array_equal(parity.twin(fresh).predict(x), net.predict(x))


def test_compare_reports_every_layer_and_finds_a_changed_weight():
    model, net, x, t = twins("two_layer_net", "sigmoid", (28, 28), "float64", 5)
    report = parity.compare(model, x, t)
    assert report.ok and [row.name for row in report.rows][1:] == ["dense_0", "classifier"]
    assert all(d.abs < 1e-12 for row in report.rows for d in row.weights.values())
    # A deliberate bug on the NumPy side shows up at that layer. (Adding one constant
    # to all of the classifier's kernel would not: softmax ignores equal shifts.)
    net.params[f"{model.name}/classifier/kernel"][0, 3] += 0.5
    report = parity.compare(model, x, t, net=net)
    assert (report.first_divergence, report.divergence) == ("classifier", "forward")


def nan_in(variable, *index):
    value = variable.numpy()
    value[index] = np.nan
    variable.assign(value)


def test_nan_computed_alike_on_both_sides_is_agreement_with_a_warning():
    """A NaN weight, copied to the twin: both compute the same NaNs, which is no divergence
    (it was "they part at 'dense_0'"); the report says where they come from."""
    model, _, x, t = twins("two_layer_net", "relu", (28, 28), "float64", 5)
    nan_in(model.blocks[0][0].kernel, 0, 2)
    report = parity.compare(model, x, t)
    assert report.ok and report.first_divergence is None
    row, = (row for row in report.rows if row.name == "dense_0")
    assert row.forward.nonfinite == 5 and row.forward.ok  # column 2, for each example
    assert list(row.nonfinite_weights.values()) == [{"nan": 1, "inf": 0}]
    assert report.nonfinite_notes()[0] == (
        f"dense_0: both compute NaN in 5 of {np.prod(row.output_shape)} output values "
        "(its weights hold 1 NaN value)")
    assert "verdict: all layers agree, NaN and inf included" in str(report)
    assert report.to_dict()["nonfinite"] == report.nonfinite_notes()


def test_nan_on_one_side_only_is_a_divergence():
    model, net, x, t = twins("two_layer_net", "relu", (28, 28), "float64", 5)
    net.params[f"{model.name}/dense_0/kernel"][0, 2] = np.nan
    report = parity.compare(model, x, t, net=net)
    assert (report.first_divergence, report.divergence) == ("dense_0", "forward")
    assert not report.rows[1].forward.ok and report.rows[1].forward.nonfinite == 0


def test_the_same_infinity_agrees_and_opposite_ones_do_not():
    tolerance, inf = (1e-9, 1e-12), np.inf
    same = Difference.of([1.0, inf, -inf, np.nan], [1.0, inf, -inf, np.nan], tolerance)
    assert same.ok and same.nonfinite == 3 and same.abs == 0
    assert not Difference.of([inf], [-inf], tolerance).ok
    assert not Difference.of([1.0], [np.nan], tolerance).ok


@GRID
def test_real_svhn_crops_through_loader_pipeline_and_both_models(name, svhn_sample_file):
    images, labels = data.load_svhn_mat(svhn_sample_file)
    dataset = data.make_dataset(images, labels, batch_size=4, training=False)
    xb, tb = next(iter(dataset))
    keras.utils.set_random_seed(0)
    model = make_model(name, dtype="float32")
    keras_out = model(xb).numpy()
    net = parity.twin(model)
    np.testing.assert_allclose(net.predict(xb.numpy()), keras_out, **TOL["float32"])
    keras_loss, _ = keras_loss_and_gradient(model, xb, tb)
    np.testing.assert_allclose(net.loss(xb.numpy(), tb.numpy()), keras_loss, **TOL["float32"])


def test_real_mnist_batch_through_both_models(mnist_dir):
    (_, _), (x_test, y_test) = data.load_mnist(mnist_dir)
    xb, tb = x_test[:64].astype(np.float64) / 255, y_test[:64]
    keras.utils.set_random_seed(1)
    model = make_model("mymodel", dtype="float64")
    model(xb)
    report = parity.compare(model, xb, tb)
    assert report.ok, report
    assert max(d.abs for row in report.rows for d in (row.forward, *row.weights.values())) < 1e-12
