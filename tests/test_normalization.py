"""numpy_ref.layers.normalization: the book's BatchNormalization and the twin of Keras's, in NumPy alone.

Hand cases follow the formulas; gradient checks compare backward with central
differences in float64 (error O(h^2): about 1e-8 on these O(1) values; a
missing term of the batch-statistics backward is off by O(1)). Training-mode
outputs do not depend on the running statistics the pass updates, so the
checked function is deterministic.
"""

import numpy as np
import pytest

from numpy_ref.layers import normalization as N
from numpy_ref.gradient import numerical_gradient

ATOL = 1e-7


def check_gradients(layer, x, training, weights=()):
    """backward's dx and weight gradients against central differences of sum(y * w)."""
    w = np.random.default_rng(1).normal(size=layer.forward(x, training=training).shape)

    def f(_):
        return np.sum(layer.forward(x, training=training) * w)

    f(x)
    dx = layer.backward(w)
    grads = dict(layer.grads)
    np.testing.assert_allclose(dx, numerical_gradient(f, x), atol=ATOL, rtol=0, err_msg="dx")
    for key in weights:
        np.testing.assert_allclose(grads[key], numerical_gradient(f, layer.params[key]),
                                   atol=ATOL, rtol=0, err_msg=key)
    return dx


# --- the book's layer -----------------------------------------------------------------------


def test_book_batch_norm_hand_case():
    x = np.array([[1.0, 2.0], [3.0, 6.0]])
    gamma, beta = np.array([2.0, 1.0]), np.array([0.5, -1.0])
    layer = N.BatchNormalization(gamma, beta)
    out = layer.forward(x, True)
    # mean (2, 4), variance (1, 4): (x - mean) / sqrt(var + 1e-6)
    xn = np.array([[-1.0, -2.0], [1.0, 2.0]]) / np.sqrt(np.array([1.0, 4.0]) + 1e-6)
    np.testing.assert_allclose(out, gamma * xn + beta, rtol=1e-15)
    np.testing.assert_allclose(layer.running_mean, [0.2, 0.4], rtol=1e-15)  # 0.9 * 0 + 0.1 * mu
    np.testing.assert_allclose(layer.running_var, [0.1, 0.4], rtol=1e-15)
    test_out = layer.forward(x, train_flg=False)  # the running statistics now
    expected = gamma * (x - [0.2, 0.4]) / np.sqrt(np.array([0.1, 0.4]) + 10e-7) + beta
    np.testing.assert_allclose(test_out, expected, rtol=1e-15)


def test_book_batch_norm_uses_the_arrays_it_is_given():
    gamma, beta, mean, var = np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)
    layer = N.BatchNormalization(gamma, beta, momentum=0.5, running_mean=mean, running_var=var)
    assert layer.gamma is gamma and layer.running_mean is mean
    x = np.random.default_rng(0).normal(size=(4, 3))
    layer.forward(x, True)
    np.testing.assert_allclose(mean, 0.5 * x.mean(axis=0), rtol=1e-15)  # updated in place
    gamma *= 2  # an optimizer's in-place step changes the layer
    np.testing.assert_allclose(layer.forward(x, True), 2 * layer.xn)
    layer.backward(np.ones_like(x))
    assert layer.dgamma is layer.grads["gamma"] and layer.dbeta.shape == (3,)
    assert set(layer.state) == {"running_mean", "running_var"}
    assert layer.get_config() == {"momentum": 0.5}


def test_book_batch_norm_flattens_each_sample_of_an_image_batch():
    x = np.random.default_rng(2).normal(size=(5, 2, 3, 3))
    layer = N.BatchNormalization(np.ones(18), np.zeros(18))
    out = layer.forward(x, True)
    assert out.shape == x.shape
    flat = x.reshape(5, -1)
    np.testing.assert_allclose(out.reshape(5, -1), (flat - flat.mean(0))
                               / np.sqrt(flat.var(0) + 1e-6), atol=1e-14)


@pytest.mark.parametrize("shape", [(6, 4), (5, 2, 3, 3)], ids=["2d", "4d"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_book_batch_norm_gradient_check(shape, training):
    rng = np.random.default_rng(3)
    d = int(np.prod(shape[1:]))
    layer = N.BatchNormalization(rng.normal(1, 0.3, d), rng.normal(0, 0.3, d),
                                 running_mean=rng.normal(size=d), running_var=rng.uniform(1, 2, d))
    check_gradients(layer, rng.normal(1, 2, shape), training, ("gamma", "beta"))


# --- the Keras twin -----------------------------------------------------------------------


def keras_bn(c, rng, center=True, scale=True, **kwargs):
    return N.KerasBatchNormalization(rng.normal(size=c), rng.uniform(0.5, 2, c),
                                     rng.normal(1, 0.3, c) if scale else None,
                                     rng.normal(0, 0.3, c) if center else None, **kwargs)


def test_keras_batch_norm_hand_case():
    rng = np.random.default_rng(0)
    layer = keras_bn(2, rng, momentum=0.9, epsilon=0.01)
    mm, mv = layer.state["moving_mean"].copy(), layer.state["moving_variance"].copy()
    x = np.array([[1.0, 2.0], [3.0, 6.0], [2.0, 4.0]])
    out = layer.forward(x, training=True)
    mean, var = x.mean(0), x.var(0)
    expected = layer.gamma * (x - mean) / np.sqrt(var + 0.01) + layer.beta
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    np.testing.assert_allclose(layer.state["moving_mean"], 0.9 * mm + 0.1 * mean, rtol=1e-14)
    np.testing.assert_allclose(layer.state["moving_variance"], 0.9 * mv + 0.1 * var, rtol=1e-14)
    mm, mv = layer.state["moving_mean"].copy(), layer.state["moving_variance"].copy()
    out = layer.forward(x, training=False)  # the moving statistics, left as they are
    np.testing.assert_allclose(out, layer.gamma * (x - mm) / np.sqrt(mv + 0.01) + layer.beta,
                               rtol=1e-14)
    np.testing.assert_array_equal(layer.state["moving_mean"], mm)


@pytest.mark.parametrize("shape, axis", [((6, 4), -1), ((5, 3, 4), -1), ((5, 3, 4), 1),
                                         ((3, 2, 3, 4), 1), ((3, 2, 3, 4), 2)],
                         ids=["rank2", "rank3", "rank3-axis1", "rank4-axis1", "rank4-axis2"])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False),
                                           (False, False)], ids=["cs", "s", "c", "none"])
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_keras_batch_norm_gradient_check(shape, axis, center, scale, training):
    rng = np.random.default_rng(4)
    layer = keras_bn(shape[axis], rng, center, scale, axis=axis)
    check_gradients(layer, rng.normal(1, 2, shape), training, list(layer.params))


def test_keras_batch_norm_frozen_uses_the_moving_statistics_and_learns_nothing():
    rng = np.random.default_rng(5)
    layer = keras_bn(3, rng, trainable=False)
    assert not layer.params and set(layer.state) == {"gamma", "beta", "moving_mean",
                                                     "moving_variance"}
    x = rng.normal(size=(4, 3))
    before = {k: v.copy() for k, v in layer.state.items()}
    np.testing.assert_array_equal(layer.forward(x, training=True), layer.forward(x))
    for key, value in before.items():
        np.testing.assert_array_equal(layer.state[key], value)
    check_gradients(layer, x, True)


def test_keras_batch_norm_with_batch_1_in_training_outputs_beta():
    rng = np.random.default_rng(6)
    layer = keras_bn(4, rng)
    out = layer.forward(rng.normal(size=(1, 4)), training=True)
    np.testing.assert_allclose(out, layer.beta[None], atol=1e-15)
    np.testing.assert_allclose(layer.backward(np.ones((1, 4))), 0, atol=1e-15)


def test_keras_batch_norm_float32_stays_float32():
    rng = np.random.default_rng(7)
    layer = N.KerasBatchNormalization(np.zeros(3, np.float32), np.ones(3, np.float32),
                                      np.ones(3, np.float32), np.zeros(3, np.float32))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    assert layer.forward(x, training=True).dtype == np.float32
    assert layer.backward(np.ones_like(x)).dtype == np.float32
    assert layer.grads["gamma"].dtype == np.float32
    assert layer.state["moving_mean"].dtype == np.float32


def test_keras_batch_norm_names_a_wrong_feature_count():
    layer = keras_bn(3, np.random.default_rng(8))
    with pytest.raises(ValueError, match=r"expects 3 features.*\(2, 4\)"):
        layer.forward(np.ones((2, 4)))
