"""Tests for ``numpy_ref.book``, the book's ``common`` and ``dataset`` packages on numpy_ref.

Tolerances: the optimizer steps and the weight decay term are computed here with the same
operations in the same order, so they agree to the last bit (exact, or rtol 1e-15 where the
order of a sum differs). Gradient checks are float64 central differences (h = 1e-4) against
backprop, ~1e-9 on O(1) gradients: rtol 1e-6 / atol 1e-8 as in test_networks.py. They
swap the book's loss, -log(y_t + 1e-7), for the exact -log(y_t) (the 'logits' variant),
whose derivative backprop computes (the book's differs from it by a relative 1e-7 / y_t),
and keep every ReLU and max-pooling input farther than 1e-3 from a kink (a difference
quotient straddling one is wrong by up to the gradient itself).
"""

import io
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from numpy_ref import gradient as G
from numpy_ref import layers as NL
from numpy_ref.book import functions as BF
from numpy_ref.book import gradient as BG
from numpy_ref.book import layers as BL
from numpy_ref.book import deep_convnet, multi_layer_net, multi_layer_net_extend
from numpy_ref.book import optimizer as O, safe_pickle, simple_convnet, trainer, util
from numpy_ref.book.dataset import mnist as book_mnist
from numpy_ref.book.dataset.idx import MnistFileError
from numpy_ref.network.serialization import NpzFileError
from test_mnist_reader import write_mnist_dir

GRAD_TOL = dict(rtol=1e-6, atol=1e-8)


# --- functions, gradient, util ----------------------------------------------------------


def test_sigmoid_grad_is_the_derivative_of_sigmoid():
    x = np.linspace(-6, 6, 25)
    expected = [G.numerical_diff(BF.sigmoid, v) for v in x]  # O(h^2) ~ 1e-9
    np.testing.assert_allclose(BF.sigmoid_grad(x), expected, rtol=0, atol=1e-9)
    assert BF.sigmoid_grad(0.0) == 0.25


def test_relu_grad_is_one_from_zero_on():
    np.testing.assert_array_equal(BF.relu_grad(np.array([-2.0, -1e-9, 0.0, 3.0])),
                                  [0.0, 0.0, 1.0, 1.0])


def test_the_books_mean_squared_error_is_half_the_sum():
    # The book's ch04 example: 0.0975 for the right label, 0.5975 for a wrong one.
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert BF.mean_squared_error(y, np.eye(10)[2]) == pytest.approx(0.0975, rel=1e-12)
    assert BF.mean_squared_error(y, np.eye(10)[7]) == pytest.approx(0.5975, rel=1e-12)


def test_softmax_loss_is_cross_entropy_of_softmax():
    x, t = np.array([[0.3, 2.9, 4.0], [1.0, -1.0, 0.0]]), np.array([2, 0])
    assert BF.softmax_loss(x, t) == BF.cross_entropy_error(BF.softmax(x), t)


def test_star_imports_bring_what_the_books_do():
    namespace = {}
    exec("from numpy_ref.book.layers import *", namespace)  # pylint: disable=exec-used
    for name in ("np", "Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "Convolution",
                 "Pooling", "sigmoid", "softmax", "cross_entropy_error", "im2col", "col2im"):
        assert name in namespace, name
    for module in ("functions", "gradient", "util", "optimizer"):
        namespace = {}
        exec(f"from numpy_ref.book.{module} import *", namespace)  # pylint: disable=exec-used
        assert namespace["np"] is np, module


def test_numerical_gradient_2d_differentiates_each_row():
    X = np.array([[1.0, -2.0], [3.0, 0.5], [0.0, 4.0]])
    grad = BG.numerical_gradient_2d(lambda row: np.sum(row ** 2), X)
    np.testing.assert_allclose(grad, 2 * X, rtol=1e-9)  # exact for a quadratic, to rounding
    np.testing.assert_allclose(BG.numerical_gradient_2d(lambda v: np.sum(v ** 2), X[0]),
                               2 * X[0], rtol=1e-9)


def _smooth_by_definition(x):
    """Kaiser(11, 2)-weighted mean of x[i-5 .. i+5], indices past the start reflected
    (x[-j] = x[j]) and past the end mirrored with the last point repeated."""
    n, w = len(x), np.kaiser(11, 2)
    w = w / w.sum()
    out = np.zeros(n)
    for i in range(n):
        for d in range(-5, 6):
            j = i + d
            j = -j if j < 0 else (2 * n - 1 - j if j >= n else j)
            out[i] += w[d + 5] * x[j]
    return out


def test_smooth_curve_is_a_centred_kaiser_mean():
    x = np.random.default_rng(0).normal(size=40)
    smooth = util.smooth_curve(list(x))  # the book passes lists of losses
    assert smooth.shape == (40,)
    np.testing.assert_allclose(smooth, _smooth_by_definition(x), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(util.smooth_curve(np.full(20, 2.5)), 2.5, rtol=1e-15)


def test_shuffle_dataset_keeps_pairs_and_follows_the_global_seed():
    x = np.arange(24.0).reshape(6, 1, 2, 2)
    t = np.arange(6)
    np.random.seed(3)
    xs, ts = util.shuffle_dataset(x, t)
    np.testing.assert_array_equal(xs, x[ts])
    assert sorted(ts) == list(t) and list(ts) != list(t)
    np.random.seed(3)
    np.testing.assert_array_equal(util.shuffle_dataset(x, t)[1], ts)


def test_conv_output_size_divides_as_the_book_does():
    assert util.conv_output_size(28, 5) == 24.0
    assert util.conv_output_size(7, 3, stride=2, pad=1) == 4.0
    assert util.conv_output_size(28, 5, stride=2) == 12.5  # a true division


# --- optimizers -----------------------------------------------------------------------


def _steps(optimizer, param, grads):
    """The parameter after one update per gradient; the same array throughout."""
    params = {"p": param}
    for g in grads:
        optimizer.update(params, {"p": g})
        assert params["p"] is param  # updated in place
    return param


GRADS = [np.array([0.5, -2.0, 1e-3]), np.array([-1.0, 0.25, 3.0])]


def test_sgd_and_momentum_formulas():
    p0 = np.array([1.0, 2.0, -3.0])
    expected = p0 - 0.01 * GRADS[0] - 0.01 * GRADS[1]
    np.testing.assert_array_equal(_steps(O.SGD(), p0.copy(), GRADS), expected)
    v1 = -0.01 * GRADS[0]
    v2 = 0.9 * v1 - 0.01 * GRADS[1]
    np.testing.assert_array_equal(_steps(O.Momentum(), p0.copy(), GRADS), p0 + v1 + v2)


def test_nesterov_formula():
    p, v = np.array([1.0, 2.0, -3.0]), np.zeros(3)
    expected = p.copy()
    for g in GRADS:
        v = 0.9 * v - 0.01 * g
        expected = expected + 0.9 * 0.9 * v - (1 + 0.9) * 0.01 * g
    np.testing.assert_allclose(_steps(O.Nesterov(), p, GRADS), expected, rtol=1e-15)


def test_adagrad_starts_from_zero_with_epsilon_outside_the_root():
    p, h = np.array([1.0, 2.0, -3.0]), np.zeros(3)
    expected = p.copy()
    for g in GRADS:
        h = h + g * g
        expected = expected - 0.01 * g / (np.sqrt(h) + 1e-7)
    np.testing.assert_array_equal(_steps(O.AdaGrad(), p, GRADS), expected)


def test_rmsprop_book_defaults_and_formula():
    opt = O.RMSprop()
    assert (opt.lr, opt.decay_rate) == (0.01, 0.99)
    p, h = np.array([1.0, 2.0, -3.0]), np.zeros(3)
    expected = p.copy()
    for g in GRADS:
        h = h * 0.99 + (1 - 0.99) * g * g
        expected = expected - 0.01 * g / (np.sqrt(h) + 1e-7)
    np.testing.assert_allclose(_steps(opt, p, GRADS), expected, rtol=1e-15)


def test_adam_as_the_book_writes_it():
    opt = O.Adam()
    assert (opt.lr, opt.beta1, opt.beta2) == (0.001, 0.9, 0.999)
    p, m, v = np.array([1.0, 2.0, -3.0]), np.zeros(3), np.zeros(3)
    expected = p.copy()
    for it, g in enumerate(GRADS, start=1):
        lr_t = 0.001 * np.sqrt(1.0 - 0.999 ** it) / (1.0 - 0.9 ** it)
        m = m + (1 - 0.9) * (g - m)
        v = v + (1 - 0.999) * (g ** 2 - v)
        expected = expected - lr_t * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(_steps(opt, p, GRADS), expected, rtol=1e-15)
    assert opt.iter == 2


@pytest.mark.parametrize("make", [O.SGD, O.Momentum, O.Nesterov, O.AdaGrad, O.RMSprop,
                                  O.Adam])
def test_optimizers_update_plain_floats_like_arrays(make):
    # ch06 keeps a point as params['x'], params['y'], two Python floats.
    floats, arrays = {"x": -7.0, "y": 2.0}, {"x": np.array(-7.0), "y": np.array(2.0)}
    by_float, by_array = make(lr=0.1), make(lr=0.1)
    for _ in range(3):
        by_float.update(floats, {"x": floats["x"] / 10, "y": 2 * floats["y"]})
        by_array.update(arrays, {"x": arrays["x"] / 10, "y": 2 * arrays["y"]})
    for key in ("x", "y"):
        assert np.ndim(floats[key]) == 0 and floats[key] == arrays[key], key
    assert floats["x"] != -7.0


def test_the_book_optimizers_differ_from_the_keras_ones():
    # numpy_ref.optim.optimizers.AdaGrad is Keras's (accumulator from 0.1, epsilon in the root):
    # a first step of lr * g / sqrt(0.1 + g^2), against the book's lr * g / (|g| + 1e-7).
    from numpy_ref.optim import optimizers as keras_like  # pylint: disable=import-outside-toplevel
    book = _steps(O.AdaGrad(lr=0.1), np.zeros(1), [np.array([0.5])])
    keras = np.zeros(1)
    keras_like.AdaGrad(learning_rate=0.1).update({"p": keras}, {"p": np.array([0.5])})
    assert book[0] == pytest.approx(-0.1, rel=1e-6)
    assert keras[0] == pytest.approx(-0.1 * 0.5 / np.sqrt(0.35), rel=1e-6)


# --- MultiLayerNet --------------------------------------------------------------------


def test_multi_layer_net_has_the_books_names_and_float64():
    net = multi_layer_net.MultiLayerNet(784, [100, 50], 10)
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2",
                                "Activation_function2", "Affine3"]
    assert [type(layer) for layer in net.layers.values()] == [NL.Affine, NL.Relu] * 2 + [
        NL.Affine]
    assert isinstance(net.last_layer, NL.SoftmaxWithLoss)
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert all(p.dtype == np.float64 for p in net.params.values())
    assert net.hidden_layer_num == 2 and net.hidden_size_list == [100, 50]
    assert net.layers["Affine2"].W is net.params["W2"]
    # He: std sqrt(2 / fan_in); 78,400 samples estimate it to ~0.3%.
    assert np.std(net.params["W1"]) == pytest.approx(np.sqrt(2 / 784), rel=0.02)


@pytest.mark.parametrize("weight_init_std, std", [
    ("relu", np.sqrt(2 / 400)), ("He", np.sqrt(2 / 400)), ("sigmoid", np.sqrt(1 / 400)),
    ("xavier", np.sqrt(1 / 400)), (0.01, 0.01)])
def test_weight_init_std_names(weight_init_std, std):
    np.random.seed(0)
    net = multi_layer_net.MultiLayerNet(400, [300], 10, activation="sigmoid",
                                        weight_init_std=weight_init_std)
    np.random.seed(0)
    expected = std * np.random.randn(400, 300)  # the book's draw: W1 first
    np.testing.assert_array_equal(net.params["W1"], expected)
    assert isinstance(net.layers["Activation_function1"], NL.Sigmoid)


def test_multi_layer_net_refuses_unknown_names():
    with pytest.raises(ValueError, match="activation must be one of"):
        multi_layer_net.MultiLayerNet(4, [3], 2, activation="tanh")
    with pytest.raises(ValueError, match="weight_init_std must be one of"):
        multi_layer_net.MultiLayerNet(4, [3], 2, weight_init_std="glorot")


def _kink_margin(net, x, kinds=(NL.Relu,)):
    """Smallest |input| of any layer of the given kinds in a forward pass of x."""
    margin = np.inf
    for layer in net.layers.values():
        if isinstance(layer, kinds):
            margin = min(margin, float(np.min(np.abs(x))))
        x = layer.forward(x)
    return margin


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("weight_decay_lambda", [0, 0.3])
def test_multi_layer_net_gradient_matches_numerical(activation, weight_decay_lambda):
    np.random.seed(1)
    net = multi_layer_net.MultiLayerNet(6, [5, 4], 3, activation=activation,
                                        weight_init_std=0.5,
                                        weight_decay_lambda=weight_decay_lambda)
    x, t = np.random.randn(4, 6), np.array([0, 2, 1, 2])
    assert _kink_margin(net, x) > 1e-3
    _assert_gradients_match(net, x, t)


def _assert_gradients_match(net, x, t):
    """Backprop against central differences of the exact cross-entropy."""
    net.last_layer = NL.SoftmaxWithLoss("logits")
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    numerical = net.numerical_gradient(x, t)
    assert list(grads) == list(numerical) == list(net.params)
    for name in net.params:
        np.testing.assert_allclose(grads[name], numerical[name], err_msg=name, **GRAD_TOL)


def test_weight_decay_adds_the_books_term_to_loss_and_gradient():
    np.random.seed(2)
    plain = multi_layer_net.MultiLayerNet(6, [5], 3)
    np.random.seed(2)
    decayed = multi_layer_net.MultiLayerNet(6, [5], 3, weight_decay_lambda=0.1)
    x, t = np.random.randn(4, 6), np.eye(3)[[0, 2, 1, 2]]
    penalty = 0.5 * 0.1 * (np.sum(plain.params["W1"] ** 2) + np.sum(plain.params["W2"] ** 2))
    assert decayed.loss(x, t) == pytest.approx(plain.loss(x, t) + penalty, rel=1e-15)
    base, grads = plain.gradient(x, t), decayed.gradient(x, t)
    for name in ("W1", "W2"):
        np.testing.assert_allclose(grads[name], base[name] + 0.1 * plain.params[name],
                                   rtol=1e-15, atol=1e-17)
        np.testing.assert_array_equal(decayed.layers[f"Affine{name[1]}"].dW, base[name])
    for name in ("b1", "b2"):
        np.testing.assert_array_equal(grads[name], base[name])  # biases are not decayed


def test_updating_params_in_place_changes_the_network():
    np.random.seed(3)
    net = multi_layer_net.MultiLayerNet(6, [5], 3)
    x = np.random.randn(2, 6)
    before = net.predict(x).copy()
    net.params["b2"] += 1.0  # in place, as the book's optimizers do
    np.testing.assert_allclose(net.predict(x), before + 1.0, rtol=1e-15)
    net.params["b2"] = np.zeros(3)  # assignment copies into the layer's array
    np.testing.assert_allclose(net.predict(x), before, rtol=1e-15)


# --- SimpleConvNet --------------------------------------------------------------------


def test_simple_convnet_has_the_books_shapes_and_names():
    net = simple_convnet.SimpleConvNet()
    assert list(net.layers) == ["Conv1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    shapes = {k: v.shape for k, v in net.params.items()}
    assert shapes == {"W1": (30, 1, 5, 5), "b1": (30,), "W2": (4320, 100), "b2": (100,),
                      "W3": (100, 10), "b3": (10,)}
    assert all(p.dtype == np.float64 for p in net.params.values())
    assert net.layers["Conv1"].W is net.params["W1"] and net.layers["Affine2"].b is net.params[
        "b3"]
    assert net.predict(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)


def test_simple_convnet_other_geometries():
    net = simple_convnet.SimpleConvNet(input_dim=(3, 13, 11), conv_param={
        "filter_num": 4, "filter_size": 3, "pad": 1, "stride": 2}, hidden_size=7, output_size=5)
    # conv: (13 + 2 - 3) // 2 + 1 = 7, (11 + 2 - 3) // 2 + 1 = 6; pooled 3 x 3, 4 filters.
    assert net.params["W1"].shape == (4, 3, 3, 3) and net.params["W2"].shape == (36, 7)
    assert net.predict(np.zeros((2, 3, 13, 11))).shape == (2, 5)


def test_simple_convnet_gradient_matches_numerical():
    np.random.seed(4)
    net = simple_convnet.SimpleConvNet(input_dim=(2, 7, 7), conv_param={
        "filter_num": 3, "filter_size": 3, "pad": 1, "stride": 1}, hidden_size=6,
        output_size=4, weight_init_std=0.3)
    x, t = np.random.randn(3, 2, 7, 7), np.array([1, 3, 0])
    assert _kink_margin(net, x, (NL.Relu,)) > 1e-3
    net.predict(x)
    conv = net.values["Relu1"]  # pooling inputs: no two window entries within 2h
    windows = np.sort(conv[:, :, :6, :6].reshape(3, 3, 3, 2, 3, 2).transpose(
        0, 1, 2, 4, 3, 5).reshape(3, 3, 3, 3, 4), axis=-1)
    positive = windows[..., -1] > 0  # an all-zero window stays one under +-h: no switch
    assert np.min((windows[..., -1] - windows[..., -2])[positive]) > 1e-3
    _assert_gradients_match(net, x, t)


def test_simple_convnet_accuracy_counts_every_image():
    np.random.seed(5)
    net = simple_convnet.SimpleConvNet(input_dim=(1, 8, 8), hidden_size=5, output_size=3,
                                       conv_param={"filter_size": 3})
    x = np.random.rand(250, 1, 8, 8)
    labels = net.predict(x).argmax(axis=1)
    t = labels.copy()
    t[:50] = (t[:50] + 1) % 3  # 50 wrong
    t[-10:] = (t[-10:] + 1) % 3  # and 10 in the last, short batch
    assert net.accuracy(x, t) == 190 / 250
    assert net.accuracy(x, np.eye(3)[t], batch_size=7) == 190 / 250


# --- MultiLayerNetExtend --------------------------------------------------------------


def test_extend_has_the_books_layers_and_multi_layer_nets_weights():
    np.random.seed(6)
    plain = multi_layer_net.MultiLayerNet(8, [6, 5], 3)
    np.random.seed(6)
    net = multi_layer_net_extend.MultiLayerNetExtend(8, [6, 5], 3, use_dropout=True,
                                                     dropout_ration=0.3, use_batchnorm=True)
    assert list(net.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
                                "Affine2", "BatchNorm2", "Activation_function2", "Dropout2",
                                "Affine3"]
    assert sorted(net.params) == sorted(["W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1",
                                         "gamma2", "beta2"])
    for name in plain.params:  # the book draws the weights before building the layers
        np.testing.assert_array_equal(net.params[name], plain.params[name])
    np.testing.assert_array_equal(net.params["gamma2"], np.ones(5))
    np.testing.assert_array_equal(net.params["beta1"], np.zeros(6))
    assert all(p.dtype == np.float64 for p in net.params.values())
    assert net.layers["BatchNorm2"].gamma is net.layers["BatchNorm2"].params["gamma"]
    assert net.layers["Dropout1"].dropout_ratio == 0.3 and net.layers["BatchNorm1"].momentum == 0.9
    bare = multi_layer_net_extend.MultiLayerNetExtend(8, [6], 3)
    assert list(bare.layers) == ["Affine1", "Activation_function1", "Affine2"]


class _FixedDraws:
    """A stand-in generator whose ``random(shape)`` repeats one draw per shape, so a
    dropout layer keeps its mask from one forward pass to the next."""

    def __init__(self, seed):
        self.source, self.draws = np.random.default_rng(seed), {}

    def random(self, shape):
        return self.draws.setdefault(shape, self.source.random(shape))


@pytest.mark.parametrize("use_dropout", [False, True])
def test_extend_gradient_matches_numerical_in_training_mode(use_dropout):
    np.random.seed(7)
    net = multi_layer_net_extend.MultiLayerNetExtend(
        6, [5, 4], 3, activation="sigmoid", weight_init_std=0.5, weight_decay_lambda=0.2,
        use_dropout=use_dropout, dropout_ration=0.3, use_batchnorm=True)
    if use_dropout:
        for i in (1, 2):  # the same masks in every evaluation of the loss
            net.layers[f"Dropout{i}"].rng = _FixedDraws(i)
    x, t = np.random.randn(4, 6), np.array([0, 2, 1, 2])
    net.last_layer = NL.SoftmaxWithLoss("logits")
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    numerical = net.numerical_gradient(x, t)  # training mode, batch statistics, as the book
    assert sorted(grads) == sorted(numerical) == sorted(net.params)
    for name in net.params:
        np.testing.assert_allclose(grads[name], numerical[name], err_msg=name, **GRAD_TOL)
    if use_dropout:
        assert not net.layers["Dropout1"].mask.all()  # units were dropped


def test_extend_modes_follow_train_flg():
    np.random.seed(8)
    net = multi_layer_net_extend.MultiLayerNetExtend(6, [5], 3, use_dropout=True,
                                                     dropout_ration=0.5, use_batchnorm=True)
    x, t = np.random.randn(10, 6), np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    bn = net.layers["BatchNorm1"]
    np.testing.assert_array_equal(bn.running_mean, 0)
    net.predict(x)  # inference: the running statistics are read, not updated
    np.testing.assert_array_equal(bn.running_mean, 0)
    train_loss = net.loss(x, t, train_flg=True)
    np.testing.assert_allclose(bn.running_mean, 0.1 * (x @ net.params["W1"]
                                                        + net.params["b1"]).mean(axis=0),
                               rtol=1e-13, atol=1e-15)  # momentum 0.9 from zeros
    assert net.layers["Dropout1"].train_flg is True
    assert net.loss(x, t) != train_loss and net.layers["Dropout1"].train_flg is False
    np.testing.assert_array_equal(net.predict(x), net.predict(x))  # no draws at inference


# --- DeepConvNet --------------------------------------------------------------------


def test_deep_convnet_is_the_books_list_with_its_weights():
    np.random.seed(9)
    net = deep_convnet.DeepConvNet()
    kinds = [type(layer).__name__ for layer in net.layers]
    conv_relu = ["Convolution", "Relu"]
    assert kinds == (conv_relu * 2 + ["Pooling"]) * 3 + ["Affine", "Relu", "Dropout", "Affine",
                                                         "Dropout"]
    assert all(net.layers[i].W is net.params[f"W{k}"]
               for k, i in enumerate((0, 2, 5, 7, 10, 12, 15, 18), start=1))
    assert [net.layers[i].pad for i in (0, 2, 5, 7, 10, 12)] == [1, 1, 1, 2, 1, 1]
    np.random.seed(9)  # the book's draw: W1 .. W8 in order, He std from each fan-in
    fan_ins = [9, 16 * 9, 16 * 9, 32 * 9, 32 * 9, 64 * 9, 64 * 16, 50]
    for k, fan_in in enumerate(fan_ins, start=1):
        expected = np.sqrt(2.0 / fan_in) * np.random.randn(*net.params[f"W{k}"].shape)
        np.testing.assert_array_equal(net.params[f"W{k}"], expected)
        np.testing.assert_array_equal(net.params[f"b{k}"], 0)
    assert net.params["W7"].shape == (1024, 50) and net.params["W8"].shape == (50, 10)
    svhn = deep_convnet.DeepConvNet(input_dim=(3, 32, 32))
    assert svhn.params["W1"].shape == (16, 3, 3, 3)
    assert svhn.predict(np.zeros((2, 3, 32, 32))).shape == (2, 10)


def _pool_margin(net):
    """Smallest gap between the two largest entries of any 2x2 pooling window with a
    positive maximum, in the last forward pass (an all-zero window stays one under +-h)."""
    margin = np.inf
    for node in net.nodes:
        if isinstance(node.layer, BL.Pooling):
            v = net.values[node.inputs[0]]
            n, c, h, w = v.shape
            v = v[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
            windows = np.sort(v.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4))
            positive = windows[..., -1] > 0
            if positive.any():
                margin = min(margin, np.min((windows[..., -1] - windows[..., -2])[positive]))
    return margin


def test_deep_convnet_gradient_matches_numerical():
    np.random.seed(15)  # a draw with every kink farther than 1e-3 (asserted below)
    small = {"filter_num": 2}
    net = deep_convnet.DeepConvNet(input_dim=(1, 8, 8), conv_param_1=small, conv_param_2=small,
                                   conv_param_3=small, conv_param_4=small, conv_param_5=small,
                                   conv_param_6=small, hidden_size=5, output_size=3)
    for layer in net.layers:  # ratio 0: training and inference passes are one function
        if isinstance(layer, BL.Dropout):
            layer.dropout_ratio = 0.0
    for name in net.params:  # zero biases give exact zeros where a window sees only zeros
        if name.startswith("b"):
            net.params[name] = 0.1 * np.random.randn(*net.params[name].shape)
    x, t = np.random.randn(2, 1, 8, 8), np.array([2, 0])
    net.predict(x)
    relu_inputs = [net.values[node.inputs[0]] for node in net.nodes
                   if isinstance(node.layer, NL.Relu)]
    assert min(np.min(np.abs(v)) for v in relu_inputs) > 1e-3  # no kink within h
    assert _pool_margin(net) > 1e-3
    _assert_gradients_match(net, x, t)


def test_deep_convnet_trains_with_dropout_and_predicts_without():
    np.random.seed(11)
    net = deep_convnet.DeepConvNet(input_dim=(1, 12, 12), hidden_size=8, output_size=4)
    x, t = np.random.rand(6, 1, 12, 12), np.array([0, 1, 2, 3, 0, 1])
    assert net.loss(x, t) != net.loss(x, t)  # the book's loss: dropout on, fresh masks
    np.testing.assert_array_equal(net.predict(x), net.predict(x, train_flg=False))
    assert net.accuracy(x, t, batch_size=4) == np.mean(net.predict(x).argmax(axis=1) == t)


def test_a_number_as_the_bias_is_every_filters_bias():
    w = np.random.default_rng(12).normal(size=(2, 1, 3, 3))
    x = np.random.default_rng(13).normal(size=(1, 1, 5, 5))
    np.testing.assert_array_equal(BL.Convolution(w, 0).forward(x),
                                  BL.Convolution(w, np.zeros(2)).forward(x))
    np.testing.assert_array_equal(BL.Convolution(w, 1.5).b, [1.5, 1.5])
    np.testing.assert_array_equal(BL.Affine(np.ones((3, 2)), 0).forward(np.ones((1, 3))), [[3, 3]])


def test_save_params_writes_an_npz_under_the_exact_name(tmp_path):
    np.random.seed(6)
    net = simple_convnet.SimpleConvNet(input_dim=(1, 8, 8), hidden_size=5, output_size=3)
    path = tmp_path / "params.pkl"
    net.save_params(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.pkl"]
    assert path.read_bytes()[:2] == b"PK"  # a zip archive, not a pickle
    with np.load(path, allow_pickle=False) as saved:
        assert sorted(saved.files) == sorted(net.params)
        np.testing.assert_array_equal(saved["W1"], net.params["W1"])

    other = simple_convnet.SimpleConvNet(input_dim=(1, 8, 8), hidden_size=5, output_size=3)
    x = np.random.rand(4, 1, 8, 8)
    other.load_params(str(path))
    np.testing.assert_array_equal(other.predict(x), net.predict(x))
    assert other.layers["Conv1"].W is other.params["W1"]


class _Boom:
    """Unpickling it would create a file: proof that a loader unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_params_refuses_pickles_and_foreign_files(tmp_path):
    net = simple_convnet.SimpleConvNet(input_dim=(1, 8, 8), hidden_size=5, output_size=3)
    marker = tmp_path / "unpickled"
    pickled = tmp_path / "params.pkl"
    pickled.write_bytes(pickle.dumps({"W1": _Boom(str(marker))}))
    with pytest.raises(NpzFileError, match="params.pkl"):
        net.load_params(str(pickled))
    assert not marker.exists()
    with pytest.raises(NpzFileError, match="no such file"):
        net.load_params(str(tmp_path / "missing.pkl"))

    bigger = simple_convnet.SimpleConvNet(input_dim=(1, 8, 8), hidden_size=6, output_size=3)
    bigger.save_params(str(tmp_path / "bigger.pkl"))
    with pytest.raises(NpzFileError, match="W2 has shape"):
        net.load_params(str(tmp_path / "bigger.pkl"))
    np.savez(tmp_path / "few.npz", W1=net.params["W1"])
    with pytest.raises(NpzFileError, match="holds"):
        net.load_params(str(tmp_path / "few.npz"))


# --- safe_pickle: the book's pickled weights, nothing else ------------------------------


def _book_like_weights():
    """What ch03's sample_weight.pkl and the book's save_params hold: float arrays by name
    (and here some more of what such files may carry)."""
    rng = np.random.default_rng(3)
    return {"W1": rng.normal(size=(6, 4)).astype(np.float32), "b1": np.zeros(4, np.float32),
            "W2": rng.normal(size=(4, 3)), "t": np.arange(5), "lr": np.float64(0.1),
            "dtype": np.dtype(">f4"), "names": ["W1", "b1"], "shape": (6, 4), "ok": True,
            "none": None, "raw": b"\x00\xff", "big": 2 ** 70,
            "ordered": OrderedDict(a=np.ones((2, 2), np.float16))}


def _assert_same(loaded, original):
    assert type(loaded) is type(original)
    if isinstance(original, np.ndarray):
        assert loaded.dtype == original.dtype and loaded.shape == original.shape
        np.testing.assert_array_equal(loaded, original)
    elif isinstance(original, dict):
        assert list(loaded) == list(original)
        for key, value in original.items():
            _assert_same(loaded[key], value)
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original)
        for a, b in zip(loaded, original):
            _assert_same(a, b)
    else:
        assert loaded == original


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_safe_pickle_loads_a_dict_of_arrays_in_every_protocol(protocol, tmp_path):
    weights = _book_like_weights()
    path = tmp_path / "sample_weight.pkl"
    path.write_bytes(pickle.dumps(weights, protocol=protocol))
    with open(path, "rb") as f:
        _assert_same(safe_pickle.load(f), weights)
    _assert_same(safe_pickle.loads(path.read_bytes()), weights)
    with open(path, "rb") as f:
        _assert_same(safe_pickle.Unpickler(f).load(), weights)


class _System:
    """Unpickling it would run a shell command (``touch <marker>``)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os  # pylint: disable=import-outside-toplevel
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("payload", [_System, _Boom])
def test_safe_pickle_refuses_any_other_global_without_running_it(payload, tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "sample_weight.pkl"
    path.write_bytes(pickle.dumps({"W1": np.zeros(3), "b1": payload(str(marker))}))
    function = payload("x").__reduce__()[0]  # os.system is posix.system, open io.open
    expected = f"{function.__module__}.{function.__name__}"
    with open(path, "rb") as f, pytest.raises(safe_pickle.PickleFileError) as refused:
        safe_pickle.load(f)
    message = str(refused.value)
    assert message.startswith(f"{path}: refused: ") and expected in message
    assert "\n" not in message
    with pytest.raises(safe_pickle.PickleFileError, match=f"the pickled bytes: .*{expected}"):
        safe_pickle.loads(path.read_bytes())
    assert not marker.exists()
    # A global of the allowed modules that is no array reconstruction is refused too.
    for module, name in (("numpy", "load"), ("collections", "namedtuple"),
                         ("numpy.core.multiarray", "frombuffer")):
        data = b"\x80\x04c" + f"{module}\n{name}\n".encode() + b"."
        with pytest.raises(safe_pickle.PickleFileError, match=f"{module}.{name};"):
            safe_pickle.loads(data)


def test_safe_pickle_names_the_file_of_a_damaged_pickle(tmp_path):
    path = tmp_path / "params.pkl"
    path.write_bytes(pickle.dumps({"W1": np.zeros((30, 30))})[:500])
    with open(path, "rb") as f, pytest.raises(safe_pickle.PickleFileError,
                                               match=f"^{path}: could not be unpickled"):
        safe_pickle.load(f)
    codec = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    with pytest.raises(safe_pickle.PickleFileError, match="latin1"):
        safe_pickle.loads(codec)  # bytes are rebuilt for Latin-1 only, no other codec


def test_standing_in_for_pickle_covers_the_module_and_is_undone():
    import _pickle  # pylint: disable=import-outside-toplevel
    originals = pickle.load, pickle.loads, pickle.Unpickler
    c_originals = _pickle.load, _pickle.loads, _pickle.Unpickler
    data = pickle.dumps({"W1": np.ones(2)})
    with safe_pickle.standing_in_for_pickle():
        from pickle import load, loads, Unpickler  # pylint: disable=import-outside-toplevel
        assert (load, loads, Unpickler) == (safe_pickle.load, safe_pickle.loads,
                                            safe_pickle.Unpickler)
        assert pickle._Unpickler is safe_pickle.Unpickler  # pylint: disable=protected-access
        np.testing.assert_array_equal(pickle.loads(data)["W1"], [1, 1])
        with pytest.raises(safe_pickle.PickleFileError, match="io.open"):
            pickle.loads(pickle.dumps(_Boom("never")))
        # The C module behind pickle too: the probe's book script imported _pickle and
        # ran a crafted pickle through _pickle.load.
        assert (_pickle.load, _pickle.loads, _pickle.Unpickler) == (
            safe_pickle.load, safe_pickle.loads, safe_pickle.Unpickler)
        with pytest.raises(safe_pickle.PickleFileError, match="io.open"):
            _pickle.loads(pickle.dumps(_Boom("never")))
        with pytest.raises(safe_pickle.PickleFileError, match="io.open"):
            _pickle.load(io.BytesIO(pickle.dumps(_Boom("never"))))
        with pytest.raises(safe_pickle.PickleFileError, match="io.open"):
            _pickle.Unpickler(io.BytesIO(pickle.dumps(_Boom("never")))).load()
    assert (pickle.load, pickle.loads, pickle.Unpickler) == originals
    assert (_pickle.load, _pickle.loads, _pickle.Unpickler) == c_originals


# --- Trainer --------------------------------------------------------------------------


def _blobs(n, seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    return rng.normal(size=(n, 4)) + 3 * np.eye(3, 4)[t], t


def test_trainer_prints_and_records_as_the_book(capsys):
    np.random.seed(7)
    (x, t), (x_test, t_test) = _blobs(250, 0), _blobs(60, 1)
    net = multi_layer_net.MultiLayerNet(4, [8], 3)
    run = trainer.Trainer(net, x, t, x_test, t_test, epochs=4, mini_batch_size=100,
                          optimizer="AdaGrad", optimizer_param={"lr": 0.1},
                          evaluate_sample_num_per_epoch=50)
    run.train()
    # 250 / 100 = 2.5 steps per epoch: 10 steps, epochs counted at steps 0 and 5 only
    # (the book's `current_iter % iter_per_epoch == 0`).
    assert run.max_iter == 10 and len(run.train_loss_list) == 10
    assert len(run.train_acc_list) == len(run.test_acc_list) == 2
    assert isinstance(run.optimizer, O.AdaGrad) and run.optimizer.lr == 0.1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"train loss:{run.train_loss_list[0]}"
    assert lines[1] == (f"=== epoch:1, train acc:{run.train_acc_list[0]}, "
                        f"test acc:{run.test_acc_list[0]} ===")
    assert lines[-2:] == ["=============== Final Test Accuracy ===============",
                          f"test acc:{net.accuracy(x_test, t_test)}"]
    assert len(lines) == 10 + 2 + 2


def test_trainer_learns_and_stays_quiet_when_asked(capsys):
    np.random.seed(8)
    (x, t), (x_test, t_test) = _blobs(300, 2), _blobs(100, 3)
    net = multi_layer_net.MultiLayerNet(4, [16], 3)
    run = trainer.Trainer(net, x, t, x_test, t_test, epochs=15, mini_batch_size=30,
                          optimizer="adam", optimizer_param={"lr": 0.01}, verbose=False)
    run.train()
    assert capsys.readouterr().out == ""
    assert np.mean(run.train_loss_list[-10:]) < 0.5 * np.mean(run.train_loss_list[:10])
    assert run.test_acc_list[-1] > 0.8  # separable blobs: ~0.95 after training


def test_trainer_refuses_unknown_optimizers():
    x, t = _blobs(10, 4)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        trainer.Trainer(multi_layer_net.MultiLayerNet(4, [3], 3), x, t, x, t,
                        optimizer="lion")


# --- dataset.mnist --------------------------------------------------------------------


def test_load_mnist_reads_dataset_dir_with_the_books_types(tmp_path, monkeypatch):
    written = write_mnist_dir(tmp_path)
    monkeypatch.setattr(book_mnist, "dataset_dir", str(tmp_path))
    (x, t), (x_test, t_test) = book_mnist.load_mnist()
    assert x.dtype == np.float32 and x.shape == (5, 784) and t.dtype == np.uint8
    np.testing.assert_array_equal(t, written["train"][1])
    (x, t), _ = book_mnist.load_mnist(normalize=False, flatten=False, one_hot_label=True)
    assert x.dtype == np.uint8 and x.shape == (5, 1, 28, 28)
    assert t.dtype == np.float64 and t.shape == (5, 10)
    np.testing.assert_array_equal(t.argmax(axis=1), written["train"][1])


def test_load_mnist_without_a_directory_says_how_to_set_one(monkeypatch):
    monkeypatch.setattr(book_mnist, "dataset_dir", None)
    with pytest.raises(MnistFileError, match="dataset_dir"):
        book_mnist.load_mnist()


def test_book_layers_are_numpy_refs():
    assert BL.Affine is NL.Affine and BL.Relu is NL.Relu
    assert BL.Convolution.__module__ == "numpy_ref.layers.conv"


def test_rebound_weights_are_the_ones_a_layer_uses():
    # The book's own chapter networks load saved weights by rebinding ``layer.W`` and
    # ``layer.b`` to new arrays; ch08's half-float check then rounds those arrays in
    # place (``param[...] = param.astype(np.float16)``) and feeds float16 images.
    rng = np.random.default_rng(14)
    x = rng.normal(size=(2, 1, 6, 6))
    conv = BL.Convolution(np.zeros((2, 1, 3, 3)), np.zeros(2))
    affine = BL.Affine(np.zeros((8, 3)), 0)
    conv.W, conv.b = rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2)
    affine.W, affine.b = rng.normal(size=(8, 3)), rng.normal(size=3)
    fresh = BL.Convolution(conv.W.copy(), conv.b.copy())
    np.testing.assert_array_equal(conv.forward(x), fresh.forward(x))
    flat = x[:, 0, :2, :4]
    np.testing.assert_array_equal(affine.forward(flat), flat.reshape(2, 8) @ affine.W + affine.b)

    for array in (conv.W, conv.b):
        array[...] = array.astype(np.float16)
    x16 = x.astype(np.float16)
    out = conv.forward(x16)
    assert out.dtype == np.float64  # as the book's im2col, which fills float64 columns
    expected = BL.Convolution(conv.W.copy(), conv.b.copy()).forward(x16.astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def _book_rows(x, fh, fw, stride, pad):
    """The book's im2col matrix, built our own way: row (n, p, q) is the window of output
    (p, q) of image n, (C, fh, fw) flattened; row-major, float64, as the book's."""
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)]).astype(np.float64)
    n, c, h, w = xp.shape
    oh, ow = (h - fh) // stride + 1, (w - fw) // stride + 1
    rows = [xp[i, :, p * stride:p * stride + fh, q * stride:q * stride + fw].reshape(-1)
            for i in range(n) for p in range(oh) for q in range(ow)]
    return np.array(rows), (n, oh, ow)


@pytest.mark.parametrize("shape, fn, size, pad", [((100, 1, 28, 28), 30, 5, 0),
                                                  ((8, 64, 10, 10), 64, 3, 1)],
                         ids=["ch07-conv", "ch08-conv-K576"])
def test_book_convolution_rounds_as_the_books_code(shape, fn, size, pad):
    # The book's forward is np.dot(col, col_W) + b and its db np.sum(dout, axis=0); a bias
    # folded into the product ([col 1] @ [W; b]) or summed by it rounds otherwise, and the
    # book's scripts print losses to the last digit.
    rng = np.random.default_rng(0)
    x = rng.random(shape).astype(np.float32)  # the book's MNIST images are float32
    W, b = 0.1 * rng.standard_normal((fn, shape[1], size, size)), rng.standard_normal(fn)
    col, (n, oh, ow) = _book_rows(x, size, size, 1, pad)
    col_W = W.reshape(fn, -1).T
    expected = (np.dot(col, col_W) + b).reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
    layer = BL.Convolution(W, b, 1, pad)
    out = layer.forward(x)
    assert out.tobytes() == np.ascontiguousarray(expected).tobytes()
    dout = rng.standard_normal(out.shape)
    layer.backward(dout)
    dz = dout.transpose(0, 2, 3, 1).reshape(-1, fn)
    assert layer.db.tobytes() == np.sum(dz, axis=0).tobytes()
    assert layer.dW.tobytes() == np.dot(col.T, dz).T.reshape(W.shape).tobytes()


@pytest.mark.parametrize("one_hot", [False, True])
def test_book_softmax_with_loss_divides_its_gradient_by_the_batch_as_the_book(one_hot):
    rng = np.random.default_rng(1)
    scores, labels = rng.standard_normal((7, 10)), rng.integers(0, 10, 7)
    t = np.eye(10)[labels] if one_hot else labels
    layer = BL.SoftmaxWithLoss()
    layer.forward(scores, t)
    expected = layer.y.copy()
    expected[np.arange(7), labels] -= 1
    assert layer.backward().tobytes() == (expected / 7).tobytes()  # not * (1 / 7)
    assert layer.backward(2.0).tobytes() == (expected / 7 * 2.0).tobytes()
