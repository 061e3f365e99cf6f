"""Dropout, BatchNormalization and regularizers through the twin, against Keras.

- Dropout (and the spatial dropouts) in training mode: ``compare`` gives the
  twin the masks Keras drew, so both sides must agree like any other layer;
  the dropout's own output, the same mask times the same rounded scale on the
  same input, exactly.
- BatchNormalization: output, loss, input and weight gradients and the moving
  statistics after the pass (``keras_twins.assert_agree``), in both modes.
- Regularizers: the twin's loss is what ``fit`` minimises (the loss plus
  ``sum(model.losses)``); 20-step trajectories of a custom ``GradientTape`` loop
  and of ``fit`` against the twin and ``twin_optimizer``.

Tolerances, scaled as in ``keras_twins.scaled``:
- float64 1e-12: the same IEEE operations up to summation order (NumPy's
  pairwise sums against Eigen's in the batch statistics and products); measured
  <= 1.3e-15 for a pass, <= 2.2e-16 after 20 Adam or AdamW steps. A wrong term is off by
  far more (a missing 1/(1 - rate) by 0.4, float64 l2 instead of Keras's
  float32-rounded one by 3e-9 relative on the penalty).
- float32 2e-6: the same reorderings at float32's 1.2e-7 ulp, and Eigen's
  float32 rsqrt (a few ulps); measured <= 4.4e-7.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import F32, F64, assert_agree, mse, scaled, twin_of
from keras_twins import randomise_batch_normalization as randomise
from numpy_ref.layers import core
from numpy_ref.losses import regularizers as R
from numpy_ref.network import serialization
from tfmodels import parity

TOL = {F64: 1e-12, F32: 2e-6}
BATCHES = (1, 5)  # clear of every feature size here (random_models.batch_sizes)


def head_model(layer, shape, dtype):
    """Input -> layer -> Flatten -> Dense(3): the layer under test, then a linear head."""
    inputs = keras.Input(shape, dtype=dtype)
    h = keras.layers.Flatten(dtype=dtype)(layer(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, dtype=dtype, name="head")(h))


# --- Dropout: compare in training mode uses Keras's masks ----------------------------------

L = keras.layers
DROPOUTS = [
    ("Dropout-0.5-rank2", lambda d: L.Dropout(0.5, dtype=d), (6,)),
    ("Dropout-0.3-rank3", lambda d: L.Dropout(0.3, dtype=d), (3, 4)),
    ("Dropout-0.7-rank4", lambda d: L.Dropout(0.7, dtype=d), (2, 3, 4)),
    ("Dropout-seeded", lambda d: L.Dropout(0.5, seed=3, dtype=d), (6,)),
    ("Dropout-noise_shape", lambda d: L.Dropout(0.5, noise_shape=(None, 1, 4), dtype=d), (3, 4)),
    ("Dropout-rate0", lambda d: L.Dropout(0.0, dtype=d), (6,)),
    ("Dropout-rate1", lambda d: L.Dropout(1.0, dtype=d), (6,)),
    ("SpatialDropout1D", lambda d: L.SpatialDropout1D(0.5, dtype=d), (3, 4)),
    ("SpatialDropout2D-channels_last", lambda d: L.SpatialDropout2D(0.5, dtype=d), (2, 3, 4)),
    ("SpatialDropout2D-channels_first", lambda d: L.SpatialDropout2D(
        0.5, data_format="channels_first", dtype=d), (4, 2, 3)),
    ("SpatialDropout3D-channels_last", lambda d: L.SpatialDropout3D(0.5, dtype=d), (2, 2, 3, 4)),
    ("SpatialDropout3D-channels_first", lambda d: L.SpatialDropout3D(
        0.5, data_format="channels_first", dtype=d), (4, 2, 2, 3)),
]


@pytest.mark.parametrize("make, shape", [pytest.param(m, s, id=i) for i, m, s in DROPOUTS])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_compare_in_training_mode_is_exact_with_dropout(make, shape, dtype):
    keras.utils.set_random_seed(0)
    model = head_model(make(dtype), shape, dtype)
    rng = np.random.default_rng(1)
    for batch in BATCHES:
        x = rng.normal(size=(batch, *shape)).astype(dtype)
        x[0, ..., 0] = 0  # zeros in the input: a mask read off the output would be ambiguous
        y = rng.normal(size=(batch, 3)).astype(dtype)
        net = twin_of(model, mse(dtype))
        report = parity.compare(model, x, y, loss=mse(dtype), training=True, net=net)
        assert report.ok, str(report)
        assert report.rows[0].forward.abs == 0  # the same mask and scale on the same input
        layer = net.nodes[0].layer
        rate = layer.rate
        if batch == 5 and 0 < rate < 1:  # it did drop, and not everything
            assert 0 < layer.mask.mean() < 1
        assert layer.fixed_mask is None  # compare gave the mask back


def test_a_dropout_called_twice_gets_each_calls_mask():
    """Keras draws a new mask per call; compare hands each twin node its own."""
    drop = L.Dropout(0.5, dtype=F64)
    inputs = keras.Input((8,), dtype=F64)
    h = L.Concatenate(dtype=F64)([drop(inputs), drop(inputs)])
    model = keras.Model(inputs, L.Dense(2, dtype=F64)(h))
    x = np.random.default_rng(2).normal(size=(5, 8))
    net = twin_of(model, mse(F64))
    report = parity.compare(model, x, np.zeros((5, 2)), loss=mse(F64), training=True, net=net)
    assert report.ok, str(report)
    first, second = (node.layer.mask for node in net.nodes if node.name.startswith("dropout"))
    assert not np.array_equal(first, second)


def test_the_twin_draws_its_own_masks_from_the_keras_seed():
    """Plain twin training: masks from a NumPy generator seeded by the layer's seed, or by
    the seed its generator drew from Keras's global seed (the run's seed)."""
    nets = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        nets.append(parity.twin(head_model(L.Dropout(0.5), (50,), F32)))
    a, b = (net.nodes[0].layer for net in nets)
    x = np.ones((40, 50), np.float32)
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))
    assert abs(a.mask.mean() - 0.5) < 0.03  # 2,000 draws: the standard error is 0.011
    np.testing.assert_array_equal(a.forward(x), x)  # inference: the identity
    seeded = parity.twin(head_model(L.Dropout(0.5, seed=9), (50,), F32)).nodes[0].layer
    assert seeded.seed == 9


# --- BatchNormalization -------------------------------------------------------------------


def bn(**kwargs):
    return lambda dtype: L.BatchNormalization(dtype=dtype, **kwargs)


BATCH_NORMS = [
    ("rank2", bn(), (4,)),
    ("rank3", bn(), (3, 4)),
    ("rank3-axis1", bn(axis=1), (3, 4)),
    ("rank4-axis2", bn(axis=2), (2, 3, 4)),
    ("rank4-axis1", bn(axis=-3), (2, 3, 4)),
    ("no-center", bn(center=False), (3, 4)),
    ("no-scale", bn(scale=False), (3, 4)),
    ("neither", bn(center=False, scale=False), (4,)),
    ("momentum-epsilon", bn(momentum=0.5, epsilon=0.1), (3, 4)),
]


@pytest.mark.parametrize("make, shape", [pytest.param(m, s, id=i) for i, m, s in BATCH_NORMS])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("dtype", [F64, F32])
def test_batch_normalization(make, shape, training, dtype):
    keras.utils.set_random_seed(0)
    layer = make(dtype)
    model = head_model(layer, shape, dtype)
    rng = np.random.default_rng(1)
    randomise(model, rng)
    net = twin_of(model, mse(dtype))
    assert set(net.state) == {v.path for v in model.non_trainable_weights}
    for batch in BATCHES:
        before = layer.moving_mean.numpy().copy()
        x = rng.normal(1, 2, (batch, *shape)).astype(dtype)
        y = rng.normal(size=(batch, 3)).astype(dtype)
        assert_agree(model, x, y, mse(dtype), TOL[dtype], net=net, training=training)
        assert np.array_equal(layer.moving_mean.numpy(), before) != training  # it moved


def test_batch_normalization_with_batch_1_in_training_outputs_beta():
    """Keras's variance of one sample is 0: the output is beta, whatever the input."""
    layer = L.BatchNormalization(dtype=F64)
    model = head_model(layer, (4,), F64)
    randomise(model, np.random.default_rng(3))
    x = np.random.default_rng(4).normal(size=(1, 4))
    net = twin_of(model, mse(F64))
    assert_agree(model, x, np.zeros((1, 3)), mse(F64), TOL[F64], net=net)
    np.testing.assert_allclose(net.values[net.nodes[0].name], layer.beta.numpy()[None],
                               atol=1e-15)


def test_a_frozen_batch_normalization_uses_its_moving_statistics():
    layer = L.BatchNormalization(dtype=F64)
    model = head_model(layer, (3, 4), F64)
    randomise(model, np.random.default_rng(5))
    layer.trainable = False
    net = twin_of(model, mse(F64))
    assert not any(name.startswith(layer.name) for name in net.params)
    x = np.random.default_rng(6).normal(size=(5, 3, 4))
    assert_agree(model, x, np.zeros((5, 3)), mse(F64), TOL[F64], net=net, training=True)


def test_a_batch_normalization_called_twice_updates_its_statistics_twice():
    layer = L.BatchNormalization(dtype=F64)
    left, right = keras.Input((4,), dtype=F64), keras.Input((4,), dtype=F64)
    h = L.Concatenate(dtype=F64)([layer(left), layer(right)])
    model = keras.Model([left, right], L.Dense(3, dtype=F64)(h))
    randomise(model, np.random.default_rng(7))
    rng = np.random.default_rng(8)
    x = [rng.normal(size=(5, 4)), rng.normal(2, 3, (5, 4))]
    assert_agree(model, x, np.zeros((5, 3)), mse(F64), TOL[F64], training=True)


def test_trained_batch_norm_statistics_go_back_to_keras():
    """Training moves the twin's moving statistics; to_keras and from_keras carry them."""
    layer = L.BatchNormalization(dtype=F64)
    model = head_model(layer, (4,), F64)
    net = parity.twin(model, mse(F64))
    x = np.random.default_rng(9).normal(3, 2, (8, 4))
    for _ in range(3):
        net.loss_and_gradient(x, np.zeros((8, 3)))
    moved = net.state[layer.moving_mean.path].copy()
    assert np.all(moved != 0)
    parity.to_keras(net, model)
    np.testing.assert_array_equal(layer.moving_mean.numpy(), moved)
    np.testing.assert_allclose(model(x).numpy(), net.predict(x), atol=1e-14, rtol=0)
    fresh = parity.twin(model, mse(F64))
    fresh.state[layer.moving_mean.path][...] = 0
    parity.from_keras(fresh, model)
    np.testing.assert_array_equal(fresh.state[layer.moving_mean.path], moved)


@pytest.mark.parametrize("option", ["renorm", "synchronized"])
def test_batch_normalization_options_without_a_twin_are_refused(option):
    model = head_model(L.BatchNormalization(**{option: True}), (4,), F32)
    with pytest.raises(ValueError, match=f"has {option}=True, which has no NumPy twin"):
        parity.twin(model)


class Masked(keras.Model):
    """Passes a mask to its BatchNormalization: masked steps leave the statistics."""

    def __init__(self):
        super().__init__()
        self.norm, self.head = L.BatchNormalization(), L.Dense(3)

    def call(self, x):
        return self.head(self.norm(x, mask=tf.reduce_any(x != 0, axis=-1)))


def test_a_layer_given_a_mask_is_refused():
    model = Masked()
    model(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="'batch_normalization.*is given a Keras mask"):
        parity.twin(model)


# --- regularizers -------------------------------------------------------------------------


def regularized_model(dtype=F64):
    inputs = keras.Input((6,), dtype=dtype)
    h = L.Dense(8, activation="tanh", dtype=dtype, kernel_regularizer=keras.regularizers.L2(0.01),
                bias_regularizer=keras.regularizers.L1(0.02),
                activity_regularizer=keras.regularizers.L1L2(0.01, 0.03))(inputs)
    h = L.BatchNormalization(dtype=dtype, gamma_regularizer="l2", beta_regularizer="l1")(h)
    outputs = L.Dense(3, dtype=dtype, kernel_regularizer=keras.regularizers.L1L2(l1=0.005),
                      activity_regularizer="l2")(h)
    model = keras.Model(inputs, outputs)
    randomise(model, np.random.default_rng(0))
    return model


@pytest.fixture
def regression():
    rng = np.random.default_rng(1)
    return rng.normal(size=(5, 6)), rng.normal(size=(5, 3))


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_regularizers_add_what_model_losses_holds(regression, training):
    model = regularized_model()
    net = twin_of(model, mse(F64))
    assert [type(p).__name__ for p in net.penalties] == ["ActivityPenalty"] * 2 + [
        "WeightPenalty"] * 5
    x, y = regression
    found = assert_agree(model, x, y, mse(F64), TOL[F64], net=net, training=training)
    keras_data_loss = float(mse(F64)(y, model(x, training=training)))
    assert net.data_loss == pytest.approx(keras_data_loss, abs=1e-14)
    assert float(net.loss(x, y, training)) - net.data_loss > 0.01  # the penalties count
    assert found["loss"] <= TOL[F64]


def test_compare_reports_the_regularized_loss(regression):
    model = regularized_model()
    x, y = regression
    report = parity.compare(model, x, y, loss=mse(F64))
    assert report.ok, str(report)
    with_losses = float(mse(F64)(y, model(x)) + sum(model.losses))
    assert report.loss["keras"] == pytest.approx(with_losses, abs=1e-14)


def test_a_twin_keeps_its_penalties_when_saved(tmp_path, regression):
    net = parity.twin(regularized_model(), mse(F64))
    serialization.save_npz(net, tmp_path / "twin.npz")
    loaded, _ = serialization.load_npz(tmp_path / "twin.npz")
    x, y = regression
    assert loaded.loss(x, y) == net.loss(x, y)


@pytest.mark.parametrize("regularizer, name", [
    (keras.regularizers.OrthogonalRegularizer(0.01), "OrthogonalRegularizer"),
    (lambda w: 0.01 * tf.reduce_sum(w), "function"),
], ids=["orthogonal", "function"])
def test_a_regularizer_without_a_twin_is_named(regularizer, name):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, L.Dense(3, kernel_regularizer=regularizer)(inputs))
    with pytest.raises(ValueError, match=f"regularizer of Keras weight 'dense.*/kernel' is "
                                         f".*{name}.*no NumPy twin.*L1, L1L2, L2"):
        parity.twin(model)


class AddsLoss(keras.layers.Layer):
    def call(self, x):
        self.add_loss(tf.reduce_sum(x))
        return x


def test_a_loss_added_in_call_is_refused():
    parity.register_twin(AddsLoss, lambda layer: core.Identity())
    inputs = keras.Input((4,))
    model = keras.Model(inputs, L.Dense(3)(AddsLoss()(inputs)))
    with pytest.raises(ValueError, match=r"model.losses holds 1 term\(s\) but its regularizers "
                                         r"account for 0.*add_loss"):
        parity.twin(model)


# --- training trajectories: regularizers, batch normalization, weight decay ----------------


def trajectory(model, keras_optimizer, steps=20, seed=2):
    """``steps`` custom-loop steps (loss + sum(model.losses)) against the twin and the twin
    optimizer from the same start; the largest scaled difference of the weights and state."""
    net = parity.twin(model, mse(F64))
    numpy_optimizer = parity.twin_optimizer(keras_optimizer, model.trainable_variables)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x, y = rng.normal(size=(8, 6)), rng.normal(size=(8, 3))
        with tf.GradientTape() as tape:
            loss = mse(F64)(y, model(x, training=True)) + sum(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        keras_optimizer.apply_gradients(zip(grads, model.trainable_variables))
        _, numpy_grads = net.loss_and_gradient(x, y)
        numpy_optimizer.update(net.params, numpy_grads)
    return max(scaled(view[v.path], v.numpy()) for v in model.weights
               for view in (net.params, net.state) if v.path in view)


def test_a_regularized_model_trains_like_its_twin():
    assert trajectory(regularized_model(), keras.optimizers.Adam(0.01)) <= TOL[F64]


def test_weight_decay_of_the_optimizer_trains_like_its_twin():
    model = regularized_model()
    for layer in model.layers:  # no penalties: only AdamW's decay
        layer.activity_regularizer = None
        for v in layer.weights:
            v.regularizer = None
    assert not model.losses
    assert trajectory(model, keras.optimizers.AdamW(0.01, weight_decay=0.05)) <= TOL[F64]


@pytest.fixture
def floatx64():
    """fit sums its losses with ops.sum, which makes floatx (float32) tensors of them:
    a float64 model with regularizers fits only under floatx float64."""
    keras.config.set_floatx(F64)
    yield
    keras.config.set_floatx(F32)


def test_fit_minimises_the_twins_loss(regression, floatx64):
    """model.fit sums the compiled loss and model.losses: three steps of it and of the twin."""
    model = regularized_model()
    model.compile(keras.optimizers.SGD(0.1, momentum=0.5), loss=mse(F64))
    net = parity.twin(model)
    numpy_optimizer = parity.twin_optimizer(model.optimizer, model.trainable_variables)
    x, y = regression
    history = model.fit(x, y, batch_size=5, epochs=3, shuffle=False, verbose=0)
    losses = []
    for _ in range(3):
        loss, grads = net.loss_and_gradient(x, y)
        numpy_optimizer.update(net.params, grads)
        losses.append(float(loss))
    np.testing.assert_allclose(losses, history.history["loss"], rtol=1e-12)
    for v in model.weights:
        view = net.params if v.path in net.params else net.state
        assert scaled(view[v.path], v.numpy()) <= TOL[F64], v.path


def test_the_books_weight_decay_is_keras_l2_at_half_the_factor():
    """A Network penalised with WeightDecay(lambda) equals the twin of L2(lambda / 2)
    where lambda / 2 is exact in float32 (Keras rounds l2 to float32)."""
    inputs = keras.Input((6,), dtype=F64)
    model = keras.Model(inputs, L.Dense(3, dtype=F64,
                                        kernel_regularizer=keras.regularizers.L2(0.125))(inputs))
    twin = parity.twin(model, mse(F64))
    book = parity.twin(model, mse(F64))
    book.penalties = R.weight_decay_penalties([f"{model.layers[1].name}/kernel"], 0.25)
    x, y = np.random.default_rng(3).normal(size=(4, 6)), np.zeros((4, 3))
    assert twin.loss(x, y) == book.loss(x, y)
    for name, grad in twin.loss_and_gradient(x, y)[1].items():
        np.testing.assert_array_equal(grad, book.loss_and_gradient(x, y)[1][name])
