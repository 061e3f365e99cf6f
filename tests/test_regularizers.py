"""numpy_ref.losses.regularizers and a Network's penalties: the book's weight decay, Keras's L1/L2.

Hand cases are exact (small integers and binary fractions); the gradient checks
are central differences in float64 (error ~1e-8 here; a penalty gradient off by
its factor of 2 is off by O(0.1)).
"""

import numpy as np
import pytest

from numpy_ref import layers as L
from numpy_ref.losses import regularizers as R
from numpy_ref.network import serialization
from numpy_ref.gradient import numerical_gradient
from numpy_ref.network import Network, Node

W = np.array([[1.0, -2.0], [3.0, 0.0]])


def test_the_books_weight_decay_by_hand():
    decay = R.WeightDecay(0.1)
    assert decay(W) == 0.5 * 0.1 * 14.0  # 0.5 * lambda * sum(W^2)
    np.testing.assert_array_equal(decay.gradient(W), 0.1 * W)


def test_keras_l2_is_the_books_decay_with_twice_the_factor():
    """l2 * sum(W^2) = 0.5 * (2 * l2) * sum(W^2); with binary fractions, exactly."""
    assert R.L2(0.25)(W) == R.WeightDecay(0.5)(W) == 3.5
    np.testing.assert_array_equal(R.L2(0.25).gradient(W), R.WeightDecay(0.5).gradient(W))


def test_keras_factors_are_float32_even_for_float64_weights():
    """Keras casts its factor with ops.cast, which makes a Python float float32 first."""
    factor = np.float64(np.float32(0.01))
    assert factor != 0.01
    assert R.L2(0.01)(W) == factor * 14.0
    assert R.L1(0.01)(W) == factor * 6.0
    assert R.L1L2(0.01, 0.01)(W) == factor * 6.0 + factor * 14.0
    assert R.L2(0.01)(W.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("regularizer", [R.WeightDecay(0.3), R.L1(0.2), R.L2(0.3),
                                         R.L1L2(0.2, 0.3), R.L1L2(0.0, 0.0)],
                         ids=["weight_decay", "l1", "l2", "l1l2", "l1l2-zero"])
def test_regularizer_gradient_check(regularizer):
    x = np.random.default_rng(0).normal(size=(3, 4))  # no zeros: |x| is smooth there
    np.testing.assert_allclose(regularizer.gradient(x, 0.7),
                               numerical_gradient(lambda v: 0.7 * regularizer(v), x),
                               atol=1e-8, rtol=0)


def test_l1_gradient_is_zero_at_zero():
    np.testing.assert_array_equal(R.L1(0.5).gradient(np.array([-1.0, 0.0, 2.0])),
                                  np.float32(0.5) * np.array([-1.0, 0.0, 1.0]))


# --- penalties in a Network -----------------------------------------------------------------


def two_layer(rng, penalties=()):
    nodes = [Node("a1", L.Affine(rng.normal(size=(4, 5)), rng.normal(size=5)), ["input"],
                  param_names={"kernel": "W1", "bias": "b1"}),
             Node("relu", L.Relu(), ["a1"]),
             Node("a2", L.Affine(rng.normal(size=(5, 3)), rng.normal(size=3)), ["relu"],
                  param_names={"kernel": "W2", "bias": "b2"})]
    # "logits": the loss whose exact derivative backward computes (see SoftmaxWithLoss)
    return Network(nodes, loss_layer=L.SoftmaxWithLoss("logits"), penalties=penalties)


@pytest.fixture
def batch():
    rng = np.random.default_rng(1)
    return rng.normal(size=(6, 4)), rng.integers(0, 3, 6)


def test_book_weight_decay_network_against_a_hand_computation(batch):
    """The book's MultiLayerNet: loss + sum of 0.5 * lambda * sum(W^2); dW + lambda * W."""
    x, t = batch
    lam = 0.1
    net = two_layer(np.random.default_rng(2), R.weight_decay_penalties(["W1", "W2"], lam))
    plain = two_layer(np.random.default_rng(2))
    loss, grads = net.loss_and_gradient(x, t)
    data_loss, data_grads = plain.loss_and_gradient(x, t)
    decay = 0
    for name in ("W1", "W2"):
        decay += 0.5 * lam * np.sum(net.params[name] ** 2)
    assert loss == data_loss + decay and net.data_loss == data_loss
    for name in ("W1", "W2"):
        np.testing.assert_array_equal(grads[name], data_grads[name] + lam * net.params[name])
    for name in ("b1", "b2"):  # biases are not decayed
        np.testing.assert_array_equal(grads[name], data_grads[name])


def test_weight_and_activity_penalties_gradient_check(batch):
    x, t = batch
    net = two_layer(np.random.default_rng(3), [
        R.ActivityPenalty("a1", R.L1L2(0.01, 0.02)), R.WeightPenalty("W1", R.L2(0.05)),
        R.WeightPenalty("b2", R.L1(0.03)), R.ActivityPenalty("a2", R.L2(0.04))])
    loss, grads = net.loss_and_gradient(x, t, training=False)
    activity = R.L1L2(0.01, 0.02)(net.values["a1"]) / 6 + R.L2(0.04)(net.values["a2"]) / 6
    weights = R.L2(0.05)(net.params["W1"]) + R.L1(0.03)(net.params["b2"])
    np.testing.assert_allclose(loss - net.data_loss, activity + weights, rtol=1e-14)
    numerical = net.numerical_gradient(x, t)
    for name, grad in grads.items():
        np.testing.assert_allclose(grad, numerical[name], atol=1e-7, rtol=0, err_msg=name)


def test_penalties_survive_saving(tmp_path, batch):
    x, t = batch
    net = two_layer(np.random.default_rng(4), [R.WeightPenalty("W2", R.L1L2(0.1, 0.2)),
                                               R.ActivityPenalty("relu", R.WeightDecay(0.3))])
    serialization.save_npz(net, tmp_path / "net.npz")
    loaded, _ = serialization.load_npz(tmp_path / "net.npz")
    assert [p.get_config() for p in loaded.penalties] == [p.get_config() for p in net.penalties]
    assert loaded.loss(x, t) == net.loss(x, t)


def test_a_penalty_must_name_a_parameter_or_a_node():
    with pytest.raises(ValueError, match="'W9', which is not a parameter"):
        two_layer(np.random.default_rng(5), [R.WeightPenalty("W9", R.L2())])
    with pytest.raises(ValueError, match="'nowhere', which is not a node"):
        two_layer(np.random.default_rng(5), [R.ActivityPenalty("nowhere", R.L2())])
    with pytest.raises(ValueError, match="unknown regularizer 'L3'"):
        R.penalty_from_config({"kind": "param", "target": "W1",
                               "regularizer": {"class": "L3", "config": {}}})
