"""Tests for `numpy_ref.layers`: hand-computed forward/backward, dtypes, no
mutation of the caller's arrays, and float64 gradient checks against
`numpy_ref.gradient.numerical_gradient`.
"""

import math

import numpy as np
import pytest

from numpy_ref.layers import activations as A
from numpy_ref import functions as F
from numpy_ref import gradient as G
from numpy_ref import layers as L

# Hand-computed float64 values differ from the layer's by a few ulps at most.
RTOL64, ATOL64 = 1e-12, 1e-15

# Gradient checks run in float64 with the central difference of h = 1e-4. Its
# truncation error is h^2 / 6 * |f'''| ~ 2e-9 * |f'''| and its rounding error
# eps * |L| / h ~ 1e-16 * 10 / 1e-4 = 1e-11, so on O(1) gradients backprop and
# numerical agree to ~1e-9..1e-8 (measured here: max |difference| 6e-9, under 1%
# of the tolerance below). rtol 1e-6 / atol 1e-8 leaves that margin and still
# catches any wrong formula (a wrong factor or a missing term is off by far more).
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-8


# --- the study notes' computational graph: apples and oranges --------------------


def test_apple_example():
    apple, apple_num, tax = 100, 2, 1.1
    mul_apple, mul_tax = L.MulLayer(), L.MulLayer()
    apple_price = mul_apple.forward(apple, apple_num)
    price = mul_tax.forward(apple_price, tax)
    assert price == pytest.approx(220, rel=RTOL64)

    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert dapple == pytest.approx(2.2, rel=RTOL64)
    assert dapple_num == pytest.approx(110, rel=RTOL64)
    assert dtax == pytest.approx(200, rel=RTOL64)


def test_apple_and_orange_example():
    apple, apple_num, orange, orange_num, tax = 100, 2, 150, 3, 1.1
    mul_apple, mul_orange, add_fruit, mul_tax = L.MulLayer(), L.MulLayer(), L.AddLayer(), L.MulLayer()
    apple_price = mul_apple.forward(apple, apple_num)  # 200
    orange_price = mul_orange.forward(orange, orange_num)  # 450
    all_price = add_fruit.forward(apple_price, orange_price)  # 650
    price = mul_tax.forward(all_price, tax)
    assert price == pytest.approx(715, rel=RTOL64)

    dall_price, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add_fruit.backward(dall_price)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    expected = {"dapple": 2.2, "dapple_num": 110, "dorange": 3.3, "dorange_num": 165, "dtax": 650}
    got = {"dapple": dapple, "dapple_num": dapple_num, "dorange": dorange,
           "dorange_num": dorange_num, "dtax": dtax}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=RTOL64), name


def test_add_layer_backward_returns_fresh_arrays():
    dout = np.array([1.0, 2.0])
    dx, dy = L.AddLayer().backward(dout)
    np.testing.assert_array_equal(dx, dout)
    np.testing.assert_array_equal(dy, dout)
    assert not np.shares_memory(dx, dout) and not np.shares_memory(dy, dout)


# --- hand-computed forward and backward -------------------------------------------


def test_relu_hand_values():
    layer = L.Relu()
    x = np.array([[1.0, -0.5, 0.0], [-2.0, 3.0, 1e-9]])
    np.testing.assert_array_equal(layer.forward(x), [[1.0, 0.0, 0.0], [0.0, 3.0, 1e-9]])
    dout = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    # The gradient passes where x > 0 only (0 at the kink x == 0, as TF does).
    np.testing.assert_array_equal(layer.backward(dout), [[1.0, 0.0, 0.0], [0.0, 5.0, 6.0]])


def test_sigmoid_hand_values():
    layer = L.Sigmoid()
    x = np.array([0.0, math.log(3.0)])  # sigmoid(log 3) = 3 / 4
    np.testing.assert_allclose(layer.forward(x), [0.5, 0.75], rtol=RTOL64, atol=0)
    # y (1 - y) = 1/4 and 3/16.
    np.testing.assert_allclose(layer.backward(np.array([2.0, 1.0])), [0.5, 0.1875],
                               rtol=RTOL64, atol=0)


def test_tanh_hand_values():
    layer = L.Tanh()
    x = np.array([0.0, math.atanh(0.5)])
    np.testing.assert_allclose(layer.forward(x), [0.0, 0.5], rtol=RTOL64, atol=ATOL64)
    # 1 - y^2 = 1 and 3/4.
    np.testing.assert_allclose(layer.backward(np.array([2.0, 1.0])), [2.0, 0.75],
                               rtol=RTOL64, atol=0)


AFFINE_X = np.array([[1.0, 2.0], [3.0, 4.0]])
AFFINE_W = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
AFFINE_B = np.array([0.5, -0.5, 1.0])
AFFINE_DOUT = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])


def test_affine_hand_values():
    layer = L.Affine(AFFINE_W, AFFINE_B)
    # x @ W = [[5, 2, -1], [11, 4, -3]], plus b.
    np.testing.assert_array_equal(layer.forward(AFFINE_X), [[5.5, 1.5, 0.0], [11.5, 3.5, -2.0]])
    dx = layer.backward(AFFINE_DOUT)
    np.testing.assert_array_equal(dx, [[0.0, 2.0], [0.0, 1.0]])  # dout @ W.T
    np.testing.assert_array_equal(layer.grads["kernel"], [[1.0, 3.0, 1.0], [2.0, 4.0, 2.0]])  # x.T @ dout
    np.testing.assert_array_equal(layer.grads["bias"], [1.0, 1.0, 1.0])  # sum over the batch
    # The book's attribute names read the same arrays.
    assert layer.W is layer.params["kernel"] and layer.b is layer.params["bias"]
    assert layer.dW is layer.grads["kernel"] and layer.db is layer.grads["bias"]


def test_affine_without_bias():
    layer = L.Affine(AFFINE_W)
    assert set(layer.params) == {"kernel"} and layer.grads == {}  # no gradient before backward
    assert layer.b is None
    np.testing.assert_array_equal(layer.forward(AFFINE_X), [[5.0, 2.0, -1.0], [11.0, 4.0, -3.0]])
    np.testing.assert_array_equal(layer.backward(AFFINE_DOUT), [[0.0, 2.0], [0.0, 1.0]])
    np.testing.assert_array_equal(layer.grads["kernel"], [[1.0, 3.0, 1.0], [2.0, 4.0, 2.0]])
    assert set(layer.grads) == {"kernel"} and layer.db is None


def test_affine_flattens_a_4d_input_and_restores_its_shape_in_backward():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2, 2))  # (N, C, H, W) -> (N, 12)
    W, b = rng.normal(size=(12, 5)), rng.normal(size=5)
    layer = L.Affine(W, b)
    out = layer.forward(x)
    np.testing.assert_allclose(out, x.reshape(2, 12) @ W + b, rtol=RTOL64, atol=ATOL64)
    dout = rng.normal(size=(2, 5))
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    np.testing.assert_allclose(dx, (dout @ W.T).reshape(x.shape), rtol=RTOL64, atol=ATOL64)
    np.testing.assert_allclose(layer.grads["kernel"], x.reshape(2, 12).T @ dout,
                               rtol=RTOL64, atol=ATOL64)


def test_affine_single_sample_forward_is_x_at_w_plus_b():
    # A 1-D input is one sample; its output is x @ W + b, shape (M,), as for
    # np.dot in the book and for Keras Dense on a 1-D input.
    layer = L.Affine(AFFINE_W, AFFINE_B)
    out = layer.forward(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(out, np.array([1.0, 2.0]) @ AFFINE_W + AFFINE_B)  # [5.5, 1.5, 0]


def test_affine_single_sample_backward():
    layer = L.Affine(AFFINE_W, AFFINE_B)
    x = np.array([1.0, 2.0])
    layer.forward(x)
    dout = np.array([1.0, 0.0, 1.0])
    dx = layer.backward(dout)
    assert dx.shape == (2,)
    np.testing.assert_array_equal(dx, AFFINE_W @ dout)  # [0, 2]
    np.testing.assert_array_equal(layer.grads["kernel"], np.outer(x, dout))
    np.testing.assert_array_equal(layer.grads["bias"], dout)


def test_affine_rejects_the_wrong_number_of_features():
    with pytest.raises(ValueError, match="input features"):
        L.Affine(AFFINE_W).forward(np.ones((2, 3)))


SOFTMAX_X = np.array([[0.3, 2.9, 4.0], [1.0, 2.0, 3.0]])
SOFTMAX_T = np.array([2, 0])


def _softmax_rows_by_hand(x):
    rows = []
    for row in x:
        exps = [math.exp(v) for v in row]
        rows.append([e / sum(exps) for e in exps])
    return np.array(rows)


@pytest.mark.parametrize("variant", L.SoftmaxWithLoss.VARIANTS)
@pytest.mark.parametrize("labels", [SOFTMAX_T, np.eye(3)[SOFTMAX_T]], ids=["int", "one-hot"])
def test_softmax_with_loss_hand_values(variant, labels):
    y = _softmax_rows_by_hand(SOFTMAX_X)
    p0, p1 = y[0, 2], y[1, 0]
    expected_loss = {
        "book": -(math.log(p0 + 1e-7) + math.log(p1 + 1e-7)) / 2,
        # No probability is below 1e-7, so the logits and Keras forms are plain -log p.
        "logits": -(math.log(p0) + math.log(p1)) / 2,
        "keras": -(math.log(p0) + math.log(p1)) / 2,
    }[variant]
    layer = L.SoftmaxWithLoss(variant)
    loss = layer.forward(SOFTMAX_X, labels)
    assert loss == pytest.approx(expected_loss, rel=RTOL64)
    np.testing.assert_allclose(layer.y, y, rtol=RTOL64, atol=0)
    # dL/dx = (y - t) / N for both label forms; the Keras variant's exact
    # derivative through the clip equals it when nothing was clipped.
    expected_dx = (y - np.eye(3)[SOFTMAX_T]) / 2
    np.testing.assert_allclose(layer.backward(), expected_dx, rtol=RTOL64, atol=ATOL64)
    np.testing.assert_allclose(layer.backward(2.5), 2.5 * expected_dx, rtol=RTOL64, atol=ATOL64)


@pytest.mark.parametrize("variant", L.SoftmaxWithLoss.VARIANTS)
def test_softmax_with_loss_int_and_one_hot_give_identical_backward(variant):
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(5, 4)), rng.integers(0, 4, 5)
    by_int, by_one_hot = L.SoftmaxWithLoss(variant), L.SoftmaxWithLoss(variant)
    assert by_int.forward(x, t) == by_one_hot.forward(x, np.eye(4)[t])
    np.testing.assert_array_equal(by_int.backward(), by_one_hot.backward())


@pytest.mark.parametrize("variant", L.SoftmaxWithLoss.VARIANTS)
def test_softmax_with_loss_single_sample(variant):
    x = SOFTMAX_X[0]
    layer = L.SoftmaxWithLoss(variant)
    loss = layer.forward(x, 2)
    assert loss == pytest.approx(L.SoftmaxWithLoss(variant).forward(x[None], [2]), rel=RTOL64)
    dx = layer.backward()
    assert dx.shape == (3,)
    np.testing.assert_allclose(dx, _softmax_rows_by_hand(x[None])[0] - [0, 0, 1],
                               rtol=RTOL64, atol=ATOL64)


def test_mean_squared_error_loss_hand_values():
    layer = L.MeanSquaredErrorLoss()
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[1.0, 0.0], [0.0, 4.0]])
    assert layer.forward(y, t) == 1.625  # 1/2 * mean(0, 4, 9, 0)
    np.testing.assert_array_equal(layer.backward(), [[0.0, 0.5], [0.75, 0.0]])  # (y - t) / 4
    np.testing.assert_array_equal(layer.backward(2.0), [[0.0, 1.0], [1.5, 0.0]])


# --- constructor arguments --------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: L.Affine(np.ones(3)),
    lambda: L.Affine(np.ones((2, 3, 4))),
    lambda: L.Affine(np.ones((2, 3)), np.ones(2)),
    lambda: L.Affine(np.ones((2, 3)), np.ones((1, 3))),
    lambda: L.SoftmaxWithLoss("mse"),
    lambda: A.get("swoosh"),
], ids=["affine-1d-W", "affine-3d-W", "affine-bias-length", "affine-2d-bias",
        "softmax-variant", "activation-name"])
def test_bad_constructor_arguments_raise(make):
    with pytest.raises(ValueError, match="Received"):
        make()


@pytest.mark.parametrize("name, fn, cls", [("relu", F.relu, A.ReLU),  # the book's Relu + options
                                           ("sigmoid", F.sigmoid, L.Sigmoid),
                                           ("tanh", F.tanh, L.Tanh)],
                         ids=["relu", "sigmoid", "tanh"])
def test_activation_layer_by_name_or_function(name, fn, cls):
    assert type(A.get(name)) is cls
    assert type(A.get(fn)) is cls
    assert A.get(name) is not A.get(name)  # fresh each time


# --- dtypes and no mutation -------------------------------------------------------


def _make_layer(name, rng, dtype):
    """A layer and a function running it forward on x (losses get their labels)."""
    if name == "affine":
        layer = L.Affine(rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=3).astype(dtype))
        return layer, layer.forward
    if name == "affine-no-bias":
        layer = L.Affine(rng.normal(size=(4, 3)).astype(dtype))
        return layer, layer.forward
    if name.startswith("softmax-"):
        layer = L.SoftmaxWithLoss(name.removeprefix("softmax-"))
        t = np.array([0, 3, 1, 2, 3])
        return layer, lambda x: layer.forward(x, t)
    if name == "mse":
        layer = L.MeanSquaredErrorLoss()
        t = rng.normal(size=(5, 4)).astype(dtype)
        return layer, lambda x: layer.forward(x, t)
    layer = A.get(name)
    return layer, layer.forward


LAYER_NAMES = ["relu", "sigmoid", "tanh", "affine", "affine-no-bias",
               "softmax-book", "softmax-logits", "softmax-keras", "mse"]
LOSS_NAMES = {"softmax-book", "softmax-logits", "softmax-keras", "mse"}


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_layers_keep_the_dtype(name, dtype):
    rng = np.random.default_rng(2)
    layer, forward = _make_layer(name, rng, dtype)
    x = rng.normal(size=(5, 4)).astype(dtype)
    out = forward(x)
    assert np.asarray(out).dtype == dtype
    dout = 1 if name in LOSS_NAMES else np.ones(out.shape, dtype=dtype)
    assert layer.backward(dout).dtype == dtype
    for key, grad in layer.grads.items():
        assert grad.dtype == dtype, key


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layers_do_not_modify_the_callers_arrays(name):
    rng = np.random.default_rng(3)
    layer, forward = _make_layer(name, rng, np.float64)
    x = rng.normal(size=(5, 4))
    x_before = x.copy()
    out = forward(x)
    if name in LOSS_NAMES:
        dx = layer.backward(1)
    else:
        dout = rng.normal(size=out.shape)
        dout_before = dout.copy()
        dx = layer.backward(dout)
        np.testing.assert_array_equal(dout, dout_before)
        assert not np.shares_memory(dx, dout)
        assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, x_before)
    assert not np.shares_memory(dx, x)


def test_affine_computes_with_the_arrays_it_is_given():
    # The book's semantics: its TwoLayerNet updates params["W1"] in place and
    # expects its Affine layers, built around those arrays, to see the change.
    W, b = np.ones((2, 3)), np.zeros(3)
    layer = L.Affine(W, b)
    assert layer.params["kernel"] is W and layer.params["bias"] is b
    W -= 0.5  # an optimizer's in-place update of the caller's array ...
    b += 1.0
    np.testing.assert_array_equal(layer.forward(np.ones((1, 2))), [[2.0, 2.0, 2.0]])


def test_assigning_the_book_names_rebinds_the_weights():
    # The book's load_params assigns layer.W and layer.b; the layer then computes with them.
    layer = L.Affine(np.ones((2, 3)), np.zeros(3))
    W, b = np.full((2, 3), 2.0), np.ones(3)
    layer.W, layer.b = W, b
    assert layer.params["kernel"] is W and layer.params["bias"] is b
    np.testing.assert_array_equal(layer.forward(np.ones((1, 2))), [[5.0, 5.0, 5.0]])


def test_softmax_with_loss_backward_leaves_its_cache_intact():
    layer = L.SoftmaxWithLoss()
    layer.forward(SOFTMAX_X, SOFTMAX_T)
    first = layer.backward()
    first += 100.0  # a caller scribbling on the returned gradient
    np.testing.assert_allclose(layer.backward(), (layer.y - np.eye(3)[SOFTMAX_T]) / 2,
                               rtol=RTOL64, atol=ATOL64)


# --- float64 gradient checks --------------------------------------------------------


def _assert_layer_gradients(layer, x, rng):
    """Backprop vs central differences for L = sum(forward(x) * R), so dL/dout = R."""
    out = layer.forward(x)
    R = rng.normal(size=out.shape)
    dx = layer.backward(R)
    grads = {key: value.copy() for key, value in layer.grads.items()}

    loss = lambda _: np.sum(layer.forward(x) * R)  # reads the perturbed array in place
    np.testing.assert_allclose(dx, G.numerical_gradient(loss, x), rtol=GRAD_RTOL, atol=GRAD_ATOL)
    for key, param in layer.params.items():
        np.testing.assert_allclose(grads[key], G.numerical_gradient(loss, param),
                                   rtol=GRAD_RTOL, atol=GRAD_ATOL, err_msg=key)


def _away_from_zero(rng, shape, margin=1e-2):
    """Normal samples with |x| >= margin: the ReLU kink at 0 is not differentiable."""
    x = rng.normal(size=shape)
    return np.where(np.abs(x) < margin, np.copysign(margin, x) + x, x)


SHAPES = [(1, 4), (5, 4), (3, 2, 2)]
SHAPE_IDS = ["batch1", "batch5", "3d"]


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_activation_gradients(name, shape):
    rng = np.random.default_rng(4)
    x = 2 * _away_from_zero(rng, shape)
    assert np.min(np.abs(x)) >= 1e-2  # far from the ReLU kink compared with h = 1e-4
    _assert_layer_gradients(A.get(name), x, rng)


@pytest.mark.parametrize("shape", [(1, 4), (6, 4), (4,), (2, 2, 2)],
                         ids=["batch1", "batch6", "1d", "3d"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_affine_gradients(shape, bias):
    rng = np.random.default_rng(5)
    layer = L.Affine(rng.normal(size=(4, 3)), rng.normal(size=3) if bias else None)
    _assert_layer_gradients(layer, rng.normal(size=shape), rng)


@pytest.mark.parametrize("variant", ["logits", "keras"])
@pytest.mark.parametrize("batch", [1, 7], ids=["batch1", "batch7"])
@pytest.mark.parametrize("scale", [1.0, 30.0], ids=["moderate", "saturated"])
def test_softmax_with_loss_gradient_is_exact(variant, batch, scale):
    # 'logits' is the exact softmax cross-entropy; 'keras' differentiates through
    # the clip, so it stays exact even when probabilities fall below 1e-7
    # (scale 30 makes logits ~N(0, 30^2): many probabilities are clipped).
    rng = np.random.default_rng(6)
    x = scale * rng.normal(size=(batch, 5))
    t = rng.integers(0, 5, batch)
    if scale > 1 and batch > 1:
        assert np.min(F.softmax(x)) < 1e-7
    layer = L.SoftmaxWithLoss(variant)
    layer.forward(x, t)
    dx = layer.backward()
    numerical = G.numerical_gradient(lambda _: layer.forward(x, t), x)
    np.testing.assert_allclose(dx, numerical, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_book_softmax_with_loss_gradient_is_close_only_without_tiny_probabilities():
    # The book's backward (y - t) / N is the derivative of -log(y_t), not of
    # -log(y_t + 1e-7): the two differ by the factor y_t / (y_t + 1e-7).
    rng = np.random.default_rng(7)
    t = rng.integers(0, 5, 6)
    layer = L.SoftmaxWithLoss("book")

    x = rng.normal(size=(6, 5))  # probabilities ~0.2: relative gap ~1e-7 / 0.2 = 5e-7
    assert np.min(F.softmax(x)) > 1e-3
    layer.forward(x, t)
    dx = layer.backward()
    numerical = G.numerical_gradient(lambda _: layer.forward(x, t), x)
    np.testing.assert_allclose(dx, numerical, rtol=1e-5, atol=1e-8)

    x = 40 * rng.normal(size=(6, 5))  # some true-class probabilities far below 1e-7
    assert np.min(F.softmax(x)[np.arange(6), t]) < 1e-9
    layer.forward(x, t)
    dx = layer.backward()
    numerical = G.numerical_gradient(lambda _: layer.forward(x, t), x)
    assert np.max(np.abs(dx - numerical)) > 0.1  # ~1/N: the true loss is flat there


@pytest.mark.parametrize("shape", [(1, 3), (5, 3), (4,)], ids=["batch1", "batch5", "1d"])
def test_mean_squared_error_loss_gradient(shape):
    rng = np.random.default_rng(8)
    y, t = rng.normal(size=shape), rng.normal(size=shape)
    layer = L.MeanSquaredErrorLoss()
    layer.forward(y, t)
    dy = layer.backward()
    numerical = G.numerical_gradient(lambda _: layer.forward(y, t), y)
    np.testing.assert_allclose(dy, numerical, rtol=GRAD_RTOL, atol=GRAD_ATOL)
