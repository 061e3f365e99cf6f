"""numpy_ref.layers.dropout: the book's Dropout and the twin of Keras's, in NumPy alone.

Both are elementwise products with a 0/1 mask (and a scale), so their outputs
and gradients are compared exactly; the gradient checks (float64, central
differences, error O(h^2) ~ 1e-8 on these O(1) values; a wrong mask or scale
is off by O(1)) hold the mask fixed, which makes the function deterministic.
"""

import numpy as np
import pytest

from numpy_ref.layers import dropout as D
from numpy_ref.gradient import numerical_gradient
from numpy_ref.network import Network, Node
from numpy_ref.network import serialization


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(4, 5))


# --- the book's Dropout -------------------------------------------------------------------


def test_book_dropout_draws_from_np_random_like_the_book(x):
    layer = D.Dropout(0.3)
    np.random.seed(7)
    out = layer.forward(x, True)  # the book's positional train_flg
    np.random.seed(7)
    mask = np.random.rand(*x.shape) > 0.3  # what the book draws after the same seed
    np.testing.assert_array_equal(layer.mask, mask)
    np.testing.assert_array_equal(out, x * mask)
    dout = np.arange(20.0).reshape(4, 5)
    np.testing.assert_array_equal(layer.backward(dout), dout * mask)
    assert 0 < mask.sum() < mask.size


def test_book_dropout_scales_at_test_time(x):
    layer = D.Dropout(0.25)
    np.testing.assert_array_equal(layer.forward(x, train_flg=False), x * 0.75)
    np.testing.assert_array_equal(layer.forward(x, training=False), x * 0.75)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.full_like(x, 0.75))


def test_book_dropout_defaults_to_training_and_training_wins_over_train_flg(x):
    layer = D.Dropout(0.5, rng=np.random.default_rng(1))
    layer.forward(x)  # the book's default: train_flg=True
    assert layer.train_flg and layer.mask is not None
    layer.forward(x, True, training=False)  # the protocol's keyword decides
    assert not layer.train_flg


def test_book_dropout_with_a_generator(x):
    layer = D.Dropout(0.5, rng=np.random.default_rng(3))
    out = layer.forward(x, True)
    expected = np.random.default_rng(3).random(x.shape) > 0.5
    np.testing.assert_array_equal(out, x * expected)


def test_book_dropout_gradient_check(x):
    layer = D.Dropout(0.4, rng=np.random.default_rng(5))
    w = np.random.default_rng(6).normal(size=x.shape)

    def f(_):
        layer.rng = np.random.default_rng(5)  # the same mask every call
        return np.sum(layer.forward(x, True) * w)

    f(x)
    analytic = layer.backward(w)
    np.testing.assert_allclose(analytic, numerical_gradient(f, x), atol=1e-8, rtol=0)


def test_book_dropout_config_leaves_the_generator_out(tmp_path, x):
    layer = D.Dropout(0.2, rng=np.random.default_rng(0))
    assert layer.get_config() == {"dropout_ratio": 0.2}
    from numpy_ref import layers as L  # pylint: disable=import-outside-toplevel
    net = Network([Node("dense", L.Affine(np.eye(5)), ["input"]),
                   Node("dropout", layer, ["dense"])])
    serialization.save_npz(net, tmp_path / "net.npz")
    loaded, _ = serialization.load_npz(tmp_path / "net.npz")
    np.testing.assert_array_equal(loaded.predict(x), x * 0.8)  # inference: scaled


# --- the Keras twin ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_keras_dropout_scales_the_kept_units_by_one_over_keep(x, dtype):
    x = x.astype(dtype)
    layer = D.KerasDropout(0.3)
    keep = np.random.default_rng(2).random(x.shape) >= 0.3
    layer.fixed_mask = keep
    out = layer.forward(x, training=True)
    scale = np.dtype(dtype).type(1 / (1 - 0.3))  # rounded once from double, as TF does
    assert out.dtype == x.dtype
    np.testing.assert_array_equal(out, np.where(keep, x * scale, 0))
    dout = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dout), np.where(keep, scale, 0).astype(dtype))


def test_keras_dropout_is_the_identity_in_inference_and_at_rate_0(x):
    np.testing.assert_array_equal(D.KerasDropout(0.5).forward(x), x)
    layer = D.KerasDropout(0.0)
    np.testing.assert_array_equal(layer.forward(x, training=True), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_keras_dropout_at_rate_1_drops_everything(x):
    layer = D.KerasDropout(1.0)
    np.testing.assert_array_equal(layer.forward(x, training=True), np.zeros_like(x))
    np.testing.assert_array_equal(layer.backward(x), np.zeros_like(x))


def test_keras_dropout_draws_its_mask_from_its_seed(x):
    big = np.ones((200, 50))
    a, b = D.KerasDropout(0.3, seed=11), D.KerasDropout(0.3, seed=11)
    np.testing.assert_array_equal(a.forward(big, True), b.forward(big, True))
    first = a.mask
    assert abs(first.mean() - 0.7) < 0.02  # 10,000 draws: the standard error is 0.005
    a.forward(big, True)
    assert not np.array_equal(a.mask, first)  # each training pass draws anew


def test_keras_dropout_noise_shape_shares_a_draw_along_axes_of_size_1():
    layer = D.KerasDropout(0.5, noise_shape=(None, 1, None), seed=0)
    out = layer.forward(np.ones((6, 4, 5)), training=True)
    assert layer.mask.shape == (6, 1, 5)
    assert np.all(out == out[:, :1, :])  # the same units dropped at every step


def test_keras_dropout_gradient_check(x):
    layer = D.KerasDropout(0.4, noise_shape=(None, 1), seed=3)
    layer.fixed_mask = np.array([[True], [False], [True], [True]])
    w = np.random.default_rng(6).normal(size=x.shape)

    def f(_):
        return np.sum(layer.forward(x, training=True) * w)

    f(x)
    np.testing.assert_allclose(layer.backward(w), numerical_gradient(f, x), atol=1e-8, rtol=0)


def test_keras_dropout_refuses_a_bad_rate_or_mask(x):
    with pytest.raises(ValueError, match="rate must be in"):
        D.KerasDropout(1.5)
    layer = D.KerasDropout(0.5)
    layer.fixed_mask = np.ones((3, 5), bool)
    with pytest.raises(ValueError, match=r"fixed_mask of shape \(3, 5\) does not broadcast"):
        layer.forward(x, training=True)
    with pytest.raises(ValueError, match="noise_shape"):
        D.KerasDropout(0.5, noise_shape=(None,)).forward(x, training=True)


def test_keras_dropout_config_round_trip():
    layer = D.KerasDropout(0.3, noise_shape=(None, 1, 4), seed=5)
    config = layer.get_config()
    assert config == {"rate": 0.3, "noise_shape": (None, 1, 4), "seed": 5}
    again = D.KerasDropout.from_config(config)
    x = np.ones((2, 3, 4))
    np.testing.assert_array_equal(again.forward(x, True), layer.forward(x, True))
