"""Tests for `numpy_ref.network.networks`: structure, parameters as a live view, accuracy,
and float64 backprop-vs-numerical gradient checks for every network.
"""

import pkgutil

import numpy as np
import pytest

from numpy_ref.layers import activations as A
from numpy_ref import functions as F
from numpy_ref import layers as L
from numpy_ref.network import networks as N
import procs

# Same reasoning as in test_layers.py: float64 central differences (h = 1e-4)
# carry ~h^2/6 * |f'''| ~ 1e-9 truncation and ~eps * |L| / h ~ 1e-11 rounding
# error on O(1) gradients. Measured on the nets below: max |difference| 2e-8
# (DNN), max relative 4e-6 on gradients ~1e-3, at most 37% of
# rtol 1e-6 / atol 1e-8; a wrong backward is off by orders of magnitude more.
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-8

# Parameters of MultiLayerNet(784, [32, 64, 128, 256], 10), counted by hand:
# 784*32+32 + 32*64+64 + 64*128+128 + 128*256+256 + 256*10+10
# = 25120 + 2112 + 8320 + 33024 + 2570.
MYMODEL_PARAMS = 71_146

# The book's SimpleNet example (section 4.4.1): fixed W, one input, one-hot label.
BOOK_W = np.array([[0.47355232, 0.9977393, 0.84668094],
                   [0.85557411, 0.03563661, 0.69422093]])
BOOK_X = np.array([0.6, 0.9])
BOOK_T = np.array([0, 0, 1])
BOOK_SCORES = [1.05414809, 0.63071653, 1.1328074]
BOOK_LOSS = 0.92806853663411326
BOOK_DW = [[0.21924763, 0.14356247, -0.36281009],
           [0.32887144, 0.2153437, -0.54421514]]
# The book printed -log(y_t) = 0.928068537 without its 1e-7 guard; with the guard
# the loss is 1e-7 / y_t ~ 2.5e-7 (relative) lower, and the gradient moves by as much.
BOOK_LOSS_RTOL, BOOK_DW_ATOL = 1e-6, 1e-6


def _relu_margin(net, x):
    """Smallest |input| of any ReLU layer: the kink at 0 must stay far from h = 1e-4."""
    margin = np.inf
    for layer in net.layers:
        if isinstance(layer, L.Relu):
            margin = min(margin, float(np.min(np.abs(x))))
        x = layer.forward(x)
    return margin


def _max_gradient_error(net, x, t):
    """Asserts backprop == numerical per parameter and returns the largest |difference|."""
    _, backprop = net.loss_and_gradient(x, t)
    backprop = {name: grad.copy() for name, grad in backprop.items()}
    numerical = net.numerical_gradient(x, t)
    assert list(backprop) == list(numerical) == list(net.params)
    for name in net.params:
        assert backprop[name].shape == net.params[name].shape, name
        np.testing.assert_allclose(backprop[name], numerical[name],
                                   rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=name)
    return max(float(np.max(np.abs(backprop[k] - numerical[k]))) for k in net.params)


def _classification_batch(rng, batch, shape, num_classes):
    return rng.normal(size=(batch, *shape)), rng.integers(0, num_classes, batch)


# --- structure and parameters ---------------------------------------------------


def test_two_layer_net_structure_and_init():
    net = N.TwoLayerNet(784, 50, 10, seed=0)
    assert list(net.params) == ["W1", "b1", "W2", "b2"]
    assert [p.shape for p in net.params.values()] == [(784, 50), (50,), (50, 10), (10,)]
    assert [type(layer) for layer in net.layers] == [L.Affine, A.ReLU, L.Affine]
    assert isinstance(net.last_layer, L.SoftmaxWithLoss)
    # float64 by default, as the book's (float32 gave the book's gradient check 1e-4, not 1e-9)
    assert net.dtype == np.float64 and all(p.dtype == np.float64 for p in net.params.values())
    assert N.MultiLayerNet(4, [3], 2).dtype == np.float64
    # weight_init_std * N(0, 1): 39,200 samples estimate the std to ~0.4%.
    assert np.std(net.params["W1"]) == pytest.approx(0.01, rel=0.05)
    assert not np.any(net.params["b1"]) and not np.any(net.params["b2"])


def test_multi_layer_net_is_the_twin_of_mymodel():
    net = N.MultiLayerNet(784, [32, 64, 128, 256], 10, seed=0)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4", "W5", "b5"]
    assert sum(p.size for p in net.params.values()) == MYMODEL_PARAMS
    kinds = [type(layer) for layer in net.layers]
    assert kinds == [L.Affine, A.ReLU] * 4 + [L.Affine]  # raw scores into the softmax
    # He init: std sqrt(2 / fan_in) = 0.0505 for the first layer (25,088 samples).
    assert np.std(net.params["W1"]) == pytest.approx(np.sqrt(2 / 784), rel=0.05)


@pytest.mark.parametrize("hidden_depth", [1, 2, 5])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_dnn_has_an_activation_after_every_affine(hidden_depth, activation):
    net = N.DNN(hidden_depth, num_neuron=6, num_input=3, num_output=2,
                activation=activation, seed=0)
    act = type(A.get(activation))
    assert [type(layer) for layer in net.layers] == [L.Affine, act] * (hidden_depth + 1)
    names = [f"{kind}{i}" for i in range(1, hidden_depth + 2) for kind in ("W", "b")]
    assert list(net.params) == names
    assert net.params["W1"].shape == (3, 6)
    assert net.params[f"W{hidden_depth + 1}"].shape == (6, 2)
    assert isinstance(net.last_layer, L.MeanSquaredErrorLoss)
    assert net.dtype == np.float64


def test_dnn_sigmoid_output_lies_in_zero_one():
    out = N.DNN(3, 8, 4, 2, seed=1).predict(np.random.default_rng(0).normal(0, 5, (10, 4)))
    assert out.shape == (10, 2) and np.all((out > 0) & (out < 1))


def test_simple_net_has_one_bias_free_weight():
    net = N.SimpleNet(seed=0)
    assert list(net.params) == ["W1"]
    assert net.W is net.params["W1"] and net.W.shape == (2, 3) and net.dtype == np.float64


@pytest.mark.parametrize("make, x_shape, out_dim", [
    (lambda: N.SimpleNet(seed=0), (7, 2), 3),
    (lambda: N.TwoLayerNet(12, 5, 4, seed=0), (7, 12), 4),
    (lambda: N.TwoLayerNet(12, 5, 4, seed=0), (7, 3, 4), 4),
    (lambda: N.MultiLayerNet(12, [6, 5], 4, seed=0), (7, 1, 3, 4), 4),
    (lambda: N.DNN(2, 5, 12, 3, seed=0), (7, 12), 3),
], ids=["simple", "two-layer", "two-layer-images", "multi-layer-nchw", "dnn"])
def test_predict_shapes(make, x_shape, out_dim):
    net = make()
    x = np.random.default_rng(0).normal(size=x_shape).astype(net.dtype)
    scores = net.predict(x)
    assert scores.shape == (7, out_dim) and scores.dtype == net.dtype
    if isinstance(net, N.ClassifierNet):
        np.testing.assert_allclose(net.predict_proba(x), F.softmax(scores), rtol=0, atol=0)


@pytest.mark.parametrize("kwargs", [
    dict(input_size=0, hidden_size=5, output_size=3),
    dict(input_size=4, hidden_size=2.5, output_size=3),
    dict(input_size=4, hidden_size=5, output_size=3, activation="swoosh"),
    dict(input_size=4, hidden_size=5, output_size=3, weight_init_std="lecun"),
], ids=["zero-input", "fractional-hidden", "bad-activation", "bad-init"])
def test_two_layer_net_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match="Received"):
        N.TwoLayerNet(**kwargs)


def test_dnn_needs_a_hidden_layer():
    with pytest.raises(ValueError, match="hidden_depth"):
        N.DNN(0, 5, 3, 2)


def test_same_seed_same_weights():
    first, second = N.MultiLayerNet(6, [5, 4], 3, seed=7), N.MultiLayerNet(6, [5, 4], 3, seed=7)
    other = N.MultiLayerNet(6, [5, 4], 3, seed=8)
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], second.params[name])
    assert not np.array_equal(first.params["W1"], other.params["W1"])


BOOK_NAMED = {
    "simple": lambda **seed: N.SimpleNet(**seed),
    "two-layer": lambda **seed: N.TwoLayerNet(6, 5, 3, **seed),
    "multi-layer": lambda **seed: N.MultiLayerNet(6, [5, 4], 3, **seed),
    "dnn": lambda **seed: N.DNN(2, 4, 3, 2, **seed),
}


@pytest.mark.parametrize("make", list(BOOK_NAMED.values()), ids=list(BOOK_NAMED))
def test_np_random_seed_makes_a_book_named_network_repeatable(make):
    np.random.seed(3)
    first = make()
    np.random.seed(3)
    second = make()
    np.random.seed(4)
    other = make()
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], second.params[name])
    assert not np.array_equal(first.params["W1"], other.params["W1"])


def test_without_a_seed_the_weights_are_the_books_draws():
    np.random.seed(0)
    net = N.TwoLayerNet(784, 50, 10)
    np.random.seed(0)
    W1 = 0.01 * np.random.randn(784, 50)  # the book's TwoLayerNet, in its order
    W2 = 0.01 * np.random.randn(50, 10)
    np.testing.assert_array_equal(net.params["W1"], W1)
    np.testing.assert_array_equal(net.params["W2"], W2)


def test_a_seed_draws_from_its_own_generator_and_leaves_np_random_alone():
    np.random.seed(5)
    expected_next = np.random.random()
    np.random.seed(5)
    net = N.MultiLayerNet(784, [32, 64], 10, seed=1, dtype=np.float32)
    assert np.random.random() == expected_next
    rng = np.random.default_rng(1)
    W1 = (np.sqrt(2 / 784) * rng.standard_normal((784, 32))).astype(np.float32)
    np.testing.assert_array_equal(net.params["W1"], W1)


# --- accuracy -------------------------------------------------------------------


def test_accuracy_hand_case():
    net = N.SimpleNet(W=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    x = np.array([[2.0, 1.0], [0.0, 3.0], [-1.0, -2.0]])  # scores argmax: 0, 1, 2
    assert net.accuracy(x, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert net.accuracy(x, np.eye(3)[[0, 1, 2]]) == 1.0


def test_accuracy_integer_one_hot_and_batched_agree():
    rng = np.random.default_rng(1)
    net = N.TwoLayerNet(5, 8, 4, weight_init_std=1.0, seed=1)
    x, t = rng.normal(size=(50, 5)).astype(np.float32), rng.integers(0, 4, 50)
    expected = np.mean(net.predict(x).argmax(axis=1) == t)
    assert 0 < expected < 1
    assert net.accuracy(x, t) == expected
    assert net.accuracy(x, np.eye(4)[t]) == expected
    assert net.accuracy(x, t, batch_size=7) == expected


# --- params is a live view ------------------------------------------------------


def test_in_place_update_of_params_changes_predictions():
    net = N.TwoLayerNet(4, 5, 3, weight_init_std=1.0, dtype=np.float32, seed=2)
    x = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    before = net.predict(x).copy()
    kernel = net.layers[0].params["kernel"]
    net.params["W1"] -= 0.5
    assert net.params["W1"] is kernel  # the layer's own array, updated in place
    assert not np.allclose(net.predict(x), before)
    net.params["W1"] += 0.5
    np.testing.assert_allclose(net.predict(x), before, rtol=1e-6, atol=1e-6)  # float32 round trip


def test_assigning_params_copies_into_the_layer():
    net = N.TwoLayerNet(4, 5, 3, dtype=np.float32, seed=3)
    kernel = net.layers[0].params["kernel"]
    new = np.arange(20, dtype=np.float64).reshape(4, 5)
    net.params["W1"] = new
    assert net.params["W1"] is kernel and kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, new)
    new[0, 0] = 99.0  # the network holds a copy
    assert kernel[0, 0] == 0.0


def test_assigning_params_of_the_wrong_shape_raises():
    net = N.TwoLayerNet(4, 5, 3, seed=3)
    with pytest.raises(ValueError, match="W1"):
        net.params["W1"] = np.zeros((5, 4))
    with pytest.raises(TypeError):
        del net.params["b1"]
    assert len(net.params) == 4


@pytest.mark.parametrize("make", [
    lambda: N.SimpleNet(seed=0),
    lambda: N.TwoLayerNet(4, 5, 3, dtype=np.float64, seed=0),
    lambda: N.DNN(2, 4, 4, 3, seed=0),
], ids=["simple", "two-layer", "dnn"])
def test_numerical_gradient_leaves_parameters_bit_for_bit(make):
    net = make()
    rng = np.random.default_rng(4)
    in_dim = net.params["W1"].shape[0]
    out_dim = net.predict(np.zeros((1, in_dim))).shape[1]
    x = rng.normal(size=(3, in_dim))
    t = rng.random((3, out_dim)) if isinstance(net, N.DNN) else rng.integers(0, out_dim, 3)
    before = {name: param.copy() for name, param in net.params.items()}
    net.numerical_gradient(x, t)
    for name, param in net.params.items():
        np.testing.assert_array_equal(param.view(np.uint8), before[name].view(np.uint8))


# --- the book's SimpleNet example -----------------------------------------------


def test_simple_net_book_example_single_sample():
    # Verbatim from the book: a 1-D input and a 1-D one-hot label.
    net = N.SimpleNet(BOOK_W)
    scores = net.predict(BOOK_X)
    np.testing.assert_allclose(np.ravel(scores), BOOK_SCORES, rtol=0, atol=1e-8)
    assert np.argmax(scores) == 2
    assert net.loss(BOOK_X, BOOK_T) == pytest.approx(BOOK_LOSS, rel=BOOK_LOSS_RTOL)
    dW = net.numerical_gradient(BOOK_X, BOOK_T)["W1"]
    np.testing.assert_allclose(dW, BOOK_DW, rtol=0, atol=BOOK_DW_ATOL)


def test_simple_net_book_example_as_a_batch_of_one():
    net = N.SimpleNet(BOOK_W)
    x, t = BOOK_X[None], BOOK_T[None]  # (1, 2), (1, 3)
    np.testing.assert_allclose(net.predict(x), [BOOK_SCORES], rtol=0, atol=1e-8)
    assert net.loss(x, t) == pytest.approx(BOOK_LOSS, rel=BOOK_LOSS_RTOL)
    assert net.loss(x, [2]) == net.loss(x, t)
    np.testing.assert_allclose(net.numerical_gradient(x, t)["W1"], BOOK_DW, rtol=0,
                               atol=BOOK_DW_ATOL)
    np.testing.assert_allclose(net.gradient(x, t)["W1"], BOOK_DW, rtol=0, atol=BOOK_DW_ATOL)
    # The exact softmax cross-entropy reproduces the printed loss to its 8-decimal weights.
    exact = N.SimpleNet(BOOK_W, loss_variant="logits")
    assert exact.loss(x, t) == pytest.approx(BOOK_LOSS, rel=1e-8)


# --- float64 gradient checks ----------------------------------------------------


@pytest.mark.parametrize("variant", ["logits", "keras"])
@pytest.mark.parametrize("batch", [1, 4], ids=["batch1", "batch4"])
def test_simple_net_gradient_check(variant, batch):
    rng = np.random.default_rng(10)
    net = N.SimpleNet(seed=10, loss_variant=variant)
    x, t = _classification_batch(rng, batch, (2,), 3)
    _max_gradient_error(net, x, t)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("variant", ["logits", "keras"])
@pytest.mark.parametrize("batch, shape", [(1, (6,)), (5, (6,)), (3, (2, 3))],
                         ids=["batch1", "batch5", "images"])
def test_two_layer_net_gradient_check(activation, variant, batch, shape):
    rng = np.random.default_rng(11)
    net = N.TwoLayerNet(6, 7, 4, weight_init_std=0.5, activation=activation,
                        dtype=np.float64, seed=11, loss_variant=variant)
    x, t = _classification_batch(rng, batch, shape, 4)
    assert _relu_margin(net, x) > 1e-3
    _max_gradient_error(net, x, t)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("hidden", [[5], [6, 5, 4]], ids=["1-hidden", "3-hidden"])
@pytest.mark.parametrize("batch", [1, 6], ids=["batch1", "batch6"])
def test_multi_layer_net_gradient_check(activation, hidden, batch):
    rng = np.random.default_rng(20)
    weight_init = "he" if activation == "relu" else "xavier"
    net = N.MultiLayerNet(5, hidden, 3, activation=activation, weight_init=weight_init,
                          dtype=np.float64, seed=20, loss_variant="logits")
    x, t = _classification_batch(rng, batch, (5,), 3)
    assert _relu_margin(net, x) > 1e-3
    _max_gradient_error(net, x, t)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
@pytest.mark.parametrize("hidden_depth", [1, 3, 6])
@pytest.mark.parametrize("batch", [1, 5], ids=["batch1", "batch5"])
def test_dnn_gradient_check(activation, hidden_depth, batch):
    rng = np.random.default_rng(13)
    net = N.DNN(hidden_depth, num_neuron=5, num_input=4, num_output=3,
                activation=activation, seed=13)
    x, y = rng.normal(size=(batch, 4)), rng.random((batch, 3))
    assert _relu_margin(net, x) > 1e-3
    _max_gradient_error(net, x, y)


def test_keras_variant_is_exact_even_when_probabilities_are_clipped():
    rng = np.random.default_rng(14)
    # weight_init_std=10 gives logits in the hundreds: most probabilities
    # underflow below 1e-7 and are clipped.
    net = N.TwoLayerNet(6, 7, 4, weight_init_std=10, activation="tanh",
                        dtype=np.float64, seed=14, loss_variant="keras")
    x, t = _classification_batch(rng, 5, (6,), 4)
    assert np.min(net.predict_proba(x)) < 1e-7
    _max_gradient_error(net, x, t)


def test_book_variant_is_close_when_probabilities_are_not_tiny():
    # The default weight_init_std=0.01 keeps every probability near 1/4, where
    # (y - t) / N is off from the derivative of -log(y_t + 1e-7) by a relative
    # 1e-7 / y_t ~ 4e-7: close, but not to GRAD_RTOL's exactness.
    rng = np.random.default_rng(15)
    net = N.TwoLayerNet(6, 7, 4, activation="sigmoid", dtype=np.float64, seed=15)
    x, t = _classification_batch(rng, 5, (6,), 4)
    assert np.min(net.predict_proba(x)) > 0.2
    backprop = {k: v.copy() for k, v in net.gradient(x, t).items()}
    numerical = net.numerical_gradient(x, t)
    for name in net.params:
        np.testing.assert_allclose(backprop[name], numerical[name], rtol=1e-5, atol=1e-9,
                                   err_msg=name)


@pytest.mark.integration
def test_numpy_ref_imports_no_tensorflow():
    """numpy_ref works with NumPy alone: none of its modules pulls in TF, Keras or SciPy,
    the book's packages (numpy_ref.book) included."""
    import numpy_ref  # pylint: disable=import-outside-toplevel
    modules = ", ".join(info.name for info in pkgutil.walk_packages(numpy_ref.__path__,
                                                                    "numpy_ref."))
    assert "numpy_ref.book.dataset.mnist" in modules
    assert procs.heavy_modules_after(f"import {modules}") == "[]"


def test_one_layer_object_in_two_nodes_is_refused_by_name():
    # The second forward pass would overwrite the cache the first node's backward needs:
    # refused, rather than a silently wrong gradient.
    from numpy_ref.network import Network, Node  # pylint: disable=import-outside-toplevel
    layer = L.Affine(np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="'a' and 'b' hold the same layer object"):
        Network([Node("a", layer, ["input"]), Node("b", layer, ["a"])])
    shared = L.Affine(layer.W, layer.b)  # a layer of its own sharing the arrays: fine
    net = Network([Node("a", layer, ["input"]), Node("b", shared, ["a"])])
    assert list(net.params) == ["a/kernel", "a/bias", "b/kernel", "b/bias"]
