"""`numpy_ref.layers.activations`: every registered activation against Keras/TensorFlow.

Forward values and TF's gradients (`tf.GradientTape`) in float64 and float32,
on random higher-rank inputs and on hand-picked points (the kinks, the
thresholds of softplus, +-0, large |x|); backward against numerical
differentiation; `get_config` round trips; hand-computed values; bad names
and arguments.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_ref.layers import activations as A
from numpy_ref.layers import core
from numpy_ref import functions as F
from numpy_ref import gradient as G
from numpy_ref import layers as L

# Tolerances bound |numpy - keras| <= tol * (1 + |keras|).
# float64: TF's elementary functions (Eigen's exp, tanh, log1p, ...) and NumPy's
# differ by up to a few ulps, and the formulas are TF's, so the two sides agree
# to rounding: the largest difference measured is 5.3e-14, the gelu(approximate)
# gradient near |x| = 7, where a 1-ulp difference of tanh(u) ~ 1 is multiplied by
# 0.7979 * (1 + 3 * 0.044715 * x^2) * x / 2 ~ 20 and by dout; all else <= 1.8e-15.
TOL64 = 1e-13
# float32: the same disagreements at float32's eps = 1.2e-7, Eigen's float32
# tanh/exp/logistic being a few ulps off the correctly rounded value: measured
# <= 3.5e-7 (3 ulps at 1), so 2e-6; gelu(approximate) and mish, whose gradients
# multiply tanh's difference by x (up to 1.2e-6 measured), get 5e-6.
TOL32 = 2e-6
# Numerical gradient (float64, h = 1e-4), as in test_layers: truncation h^2/6 |f'''|
# ~ 2e-9 |f'''| plus rounding ~1e-12, far below these, far above any wrong formula.
GRAD_RTOL, GRAD_ATOL = 1e-6, 1e-8


def _keras(name, **kwargs):
    return lambda x, dtype: getattr(keras.activations, name)(x, **kwargs)


# (id, registry name, constructor kwargs, float32 tolerance, reference)
CASES = [
    ("linear", "linear", {}, TOL32, None),
    ("relu", "relu", {}, TOL32, None),
    ("relu-negative_slope", "relu", {"negative_slope": 0.1}, TOL32, None),  # leaky_relu op
    ("relu-max_value-6", "relu", {"max_value": 6.0}, TOL32, None),  # relu6 op
    ("relu-max_value", "relu", {"max_value": 2.5}, TOL32, None),  # clip
    ("relu-threshold", "relu", {"threshold": 0.5}, TOL32, None),  # where
    ("relu-slope-max6", "relu", {"negative_slope": 0.1, "max_value": 6.0}, TOL32, None),
    ("relu-all", "relu", {"negative_slope": 0.3, "threshold": 0.5, "max_value": 2.0}, TOL32, None),
    ("relu-threshold-max6", "relu", {"threshold": 0.5, "max_value": 6.0}, TOL32, None),
    # 0.1 and 0.3 are not float32 numbers: Keras casts them through float32
    ("relu-inexact", "relu", {"negative_slope": 0.1, "threshold": 0.1, "max_value": 0.3}, TOL32,
     None),
    ("ReLU-layer", "relu", {"negative_slope": 0.2, "threshold": 0.3, "max_value": 2.5}, TOL32,
     lambda x, dtype: keras.layers.ReLU(negative_slope=0.2, threshold=0.3, max_value=2.5,
                                        dtype=dtype)(x)),
    ("relu6", "relu6", {}, TOL32, None),
    ("leaky_relu", "leaky_relu", {}, TOL32, None),
    ("leaky_relu-0.1", "leaky_relu", {"negative_slope": 0.1}, TOL32, None),
    ("LeakyReLU-layer", "leaky_relu", {"negative_slope": 0.3}, TOL32,
     lambda x, dtype: keras.layers.LeakyReLU(dtype=dtype)(x)),  # the layer's default 0.3
    ("sigmoid", "sigmoid", {}, TOL32, None),
    ("tanh", "tanh", {}, TOL32, None),
    ("softmax", "softmax", {}, TOL32, None),
    ("softmax-axis1", "softmax", {"axis": 1}, TOL32, None),
    ("softmax-axes", "softmax", {"axis": (1, 2)}, TOL32, None),
    ("log_softmax", "log_softmax", {}, TOL32, None),
    ("log_softmax-axis0", "log_softmax", {"axis": 0}, TOL32, None),
    ("elu", "elu", {}, TOL32, None),
    ("elu-alpha", "elu", {"alpha": 0.1}, TOL32, None),
    ("ELU-layer", "elu", {"alpha": 0.5}, TOL32,
     lambda x, dtype: keras.layers.ELU(alpha=0.5, dtype=dtype)(x)),
    ("selu", "selu", {}, TOL32, None),
    ("celu", "celu", {}, TOL32, None),
    ("celu-alpha", "celu", {"alpha": 0.1}, TOL32, None),
    ("softplus", "softplus", {}, TOL32, None),
    ("softsign", "softsign", {}, TOL32, None),
    ("silu", "silu", {}, TOL32, None),
    ("swish", "swish", {}, TOL32, None),
    ("gelu", "gelu", {}, TOL32, None),
    ("gelu-approximate", "gelu", {"approximate": True}, 5e-6, None),
    ("hard_sigmoid", "hard_sigmoid", {}, TOL32, None),
    ("hard_silu", "hard_silu", {}, TOL32, None),
    ("hard_swish", "hard_swish", {}, TOL32, None),
    ("exponential", "exponential", {}, TOL32, None),
    ("mish", "mish", {}, 5e-6, None),
    ("log_sigmoid", "log_sigmoid", {}, TOL32, None),
    ("tanh_shrink", "tanh_shrink", {}, TOL32, None),
    ("squareplus", "squareplus", {}, TOL32, None),
    ("squareplus-b", "squareplus", {"b": 0.1}, TOL32, None),
    ("sparse_plus", "sparse_plus", {}, TOL32, None),
    ("soft_shrink", "soft_shrink", {}, TOL32, None),
    ("soft_shrink-threshold", "soft_shrink", {"threshold": 0.1}, TOL32, None),
    ("hard_tanh", "hard_tanh", {}, TOL32, None),
]
CASE_IDS = [case[0] for case in CASES]

# Kinks, thresholds and cast-sensitive values of the activations above, signed
# zeros, softplus's shortcut thresholds (+-34.04 in float64, +-13.94 in float32),
# and large |x| where exp over- or underflows: 48 values, shaped (3, 4, 4).
SPECIAL = np.array([
    0.0, -0.0, 1e-10, -1e-10, 1e-5, -1e-5, 0.1, -0.1, 0.10000000149011612, 0.3, -0.3,
    0.30000001192092896, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 2.5, -2.5, 3.0, -3.0, 6.0, -6.0,
    7.0, -7.0, 8.0, -8.0, 13.94, -13.94, 20.0, -20.0, 30.0, -30.0, 34.05, -34.05, 40.0, -40.0,
    88.0, -88.0, 700.0, -700.0, 0.25, -0.75, 1.5, 4.0, 5.5, -5.5]).reshape(3, 4, 4)
KINKS = np.array([-3, -2.5, -1, -0.5, -0.3, -0.1, 0, 0.1, 0.3, 0.5, 1, 2, 2.5, 3, 6])


def _inputs(kind, dtype):
    if kind == "special":
        return SPECIAL.astype(dtype)
    return np.random.default_rng(0).normal(0, 3, size=(2, 3, 4, 5)).astype(dtype)


def _keras_forward_backward(case, x, dout):
    _, name, kwargs, _, reference = case
    reference = reference or _keras(name, **kwargs)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = reference(xt, x.dtype.name)
    return y.numpy(), tape.gradient(y, xt, output_gradients=tf.constant(dout)).numpy()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("kind", ["random", "special"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_forward_and_gradient_match_keras(case, kind, dtype):
    _, name, kwargs, tol32, _ = case
    x = _inputs(kind, dtype)
    dout = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    expected_y, expected_dx = _keras_forward_backward(case, x, dout)

    layer = A.get(name, **kwargs)
    with np.errstate(over="ignore"):  # float32 exp(88) overflows to inf, as in TF
        y = layer.forward(x.copy())
    dout_before = dout.copy()
    dx = layer.backward(dout)

    np.testing.assert_array_equal(dout, dout_before)  # backward never mutates dout
    assert y.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape
    rtol = atol = TOL64 if dtype == np.float64 else tol32
    with np.errstate(invalid="ignore"):  # inf - inf inside assert_allclose's report
        np.testing.assert_allclose(y, expected_y, rtol=rtol, atol=atol, err_msg="forward")
        np.testing.assert_allclose(dx, expected_dx, rtol=rtol, atol=atol, err_msg="backward")


def _away_from_kinks(rng, shape):
    """Values at least 0.02 from every kink, so that x +- h never crosses one."""
    pool = rng.normal(0, 2, 400)
    pool = pool[np.min(np.abs(pool[:, None] - KINKS[None, :]), axis=1) > 0.02]
    return pool[:math.prod(shape)].reshape(shape)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backward_matches_numerical_gradient(case):
    _, name, kwargs, _, _ = case
    rng = np.random.default_rng(2)
    x = _away_from_kinks(rng, (2, 2, 3))
    dout = rng.normal(size=x.shape)
    layer = A.get(name, **kwargs)
    layer.forward(x)
    dx = layer.backward(dout)
    numerical = G.numerical_gradient(lambda v: np.sum(layer.forward(v) * dout), x)
    np.testing.assert_allclose(dx, numerical, rtol=GRAD_RTOL, atol=GRAD_ATOL)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_config_round_trip_gives_the_same_numbers(case):
    _, name, kwargs, _, _ = case
    layer = A.get(name, **kwargs)
    config = json.loads(json.dumps(layer.get_config()))  # JSON-able, as networks save it
    for rebuilt in (type(layer).from_config(config), A.get(A.name_of(layer), **config)):
        assert type(rebuilt) is type(layer)
        x = SPECIAL.copy()
        dout = np.random.default_rng(3).normal(size=x.shape)
        np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))
        np.testing.assert_array_equal(rebuilt.backward(dout), layer.backward(dout))


def test_dense_saves_its_activation_options():
    kernel, bias = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.1, -0.2])
    dense = core.Dense(kernel, bias, A.get("relu", max_value=2.0, negative_slope=0.1))
    config = dense.get_config()
    assert config == {"activation": "relu", "negative_slope": 0.1, "max_value": 2.0,
                      "threshold": 0.0}
    rebuilt = core.Dense.from_config(config, {"kernel": kernel, "bias": bias})
    x = np.array([[1.0, 2.0], [-3.0, 0.5]])
    np.testing.assert_array_equal(rebuilt.forward(x), dense.forward(x))


# --- hand-computed values --------------------------------------------------------


def test_relu_options_hand_values():
    # y = clip(x if x > 1 else 0, 0, 3) - 0.1 * max(1 - x, 0)
    layer = A.get("relu", negative_slope=0.1, threshold=1.0, max_value=3.0)
    x = np.array([-4.0, 0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(layer.forward(x), [-0.5, -0.1, 0.0, 2.0, 3.0, 3.0],
                               rtol=1e-15, atol=0)
    # TF: the where passes nothing at x == threshold, the clip passes at x == max_value.
    np.testing.assert_array_equal(layer.backward(np.ones(6)), [0.1, 0.1, 0.0, 1.0, 1.0, 0.0])


def test_max_value_six_takes_the_relu6_path_which_blocks_the_gradient_at_six():
    x = np.array([0.0, 6.0, 6.5])
    for max_value, expected in ((6.0, [0.0, 0.0, 0.0]), (6.5, [0.0, 1.0, 1.0])):
        layer = A.get("relu", max_value=max_value)
        layer.forward(x)
        np.testing.assert_array_equal(layer.backward(np.ones(3)), expected, err_msg=max_value)


def test_leaky_relu_uses_the_float32_slope_even_in_float64():
    layer = A.get("leaky_relu")  # Keras's activation default, 0.2
    y = layer.forward(np.array([-1.5, 0.0, 2.0]))
    slope = 0.20000000298023224  # float32(0.2)
    np.testing.assert_array_equal(y, [-1.5 * slope, 0.0, 2.0])
    np.testing.assert_array_equal(layer.backward(np.ones(3)), [slope, slope, 1.0])


def test_selu_hand_values():
    scale_alpha, scale = 1.7580993408473768599, 1.0507009873554804934
    layer = A.get("selu")
    y = layer.forward(np.array([-1.0, 2.0]))
    expected = [scale_alpha * (math.exp(-1.0) - 1), 2 * scale]
    np.testing.assert_allclose(y, expected, rtol=1e-15, atol=0)
    # TF's SeluGrad works from the output: dout * (y + scale_alpha) below 0.
    np.testing.assert_allclose(layer.backward(np.ones(2)), [expected[0] + scale_alpha, scale],
                               rtol=1e-15, atol=0)


def test_elu_is_exp_minus_one_like_tf_not_expm1():
    x = np.array([-1e-10])
    assert A.get("elu").forward(x)[0] == math.exp(-1e-10) - 1 != math.expm1(-1e-10)
    assert A.get("elu").forward(x.astype(np.float32))[0] == 0  # exp(-1e-10) rounds to 1


def test_elu_alpha_gradient_at_zero_is_alpha():
    layer = A.get("elu", alpha=0.5)
    layer.forward(np.array([-1.0, 0.0, 1.0]))
    np.testing.assert_allclose(layer.backward(np.ones(3)), [0.5 * math.exp(-1.0), 0.5, 1.0],
                               rtol=1e-15, atol=0)


def test_gradients_at_the_kinks_take_tfs_side():
    cases = {"relu": 0.0, "celu": 2.0, "hard_tanh": 1.0, "relu6": 0.0, "soft_shrink": 0.0}
    points = {"relu": 0.0, "celu": 0.0, "hard_tanh": 1.0, "relu6": 6.0, "soft_shrink": 0.5}
    for name, expected in cases.items():
        layer = A.get(name)
        layer.forward(np.array([points[name]]))
        assert layer.backward(np.ones(1))[0] == expected, name


def test_gelu_hand_values():
    c = 0.7071067690849304  # float32(1 / sqrt(2)), TF's constant even in float64
    x = np.array([-3.0, 1.0, 2.0])
    expected = [0.5 * v * math.erfc(-v * c) for v in x]
    np.testing.assert_allclose(A.get("gelu").forward(x), expected, rtol=1e-15, atol=0)
    approx = [0.5 * v * (1 + math.tanh(0.7978845608028654 * (v + 0.044714998453855515 * v ** 3)))
              for v in x]
    np.testing.assert_allclose(A.get("gelu", approximate=True).forward(x), approx,
                               rtol=1e-15, atol=0)


def test_softplus_shortcuts():
    x = np.array([-40.0, 0.0, 40.0])
    y = A.get("softplus").forward(x)
    assert y[0] == math.exp(-40.0) and y[2] == 40.0  # below -34.04: exp; above 34.04: x
    assert y[1] == pytest.approx(math.log(2), rel=1e-15)


def test_erfc_is_accurate_to_a_few_ulps():
    x = np.concatenate([np.linspace(-6, 26, 20001), np.random.default_rng(4).normal(0, 3, 2000)])
    expected = np.array([math.erfc(v) for v in x])
    # Both sides are within ~3 ulps of the true value (checked against mpmath when
    # the coefficients were fitted), so they agree within ~5 ulps = 1.1e-15.
    np.testing.assert_allclose(F.erfc(x), expected, rtol=1.5e-15, atol=0)
    np.testing.assert_array_equal(F.erfc(np.array([np.inf, -np.inf, 30.0])), [0.0, 2.0, 0.0])
    assert np.isnan(F.erfc(np.array([np.nan]))[0])


# --- the registry -----------------------------------------------------------------


def test_registry_names_and_aliases():
    assert isinstance(A.get("relu"), L.Relu)  # the book's Relu, with Keras's options
    assert A.name_of(L.Relu()) == "relu"
    assert type(A.get("swish")) is type(A.get("silu"))
    assert A.name_of(A.get("swish")) == "silu"
    assert A.name_of(A.get("hard_swish")) == "hard_silu"
    assert A.name_of(F.sigmoid) == "sigmoid" and A.name_of(None) == "linear"
    assert A.get("relu").get_config() == {"negative_slope": 0.0, "max_value": None,
                                          "threshold": 0.0}


@pytest.mark.parametrize("make", [
    lambda: A.get("swoosh"),
    lambda: A.name_of(42),
    lambda: A.get("relu", max_value=-1.0),
    lambda: A.get("relu", negative_slope=None),
    lambda: A.get("relu", threshold=-0.5),
    lambda: A.get("leaky_relu", negative_slope=-0.2),
], ids=["unknown-name", "not-a-name", "relu-max_value", "relu-slope-none", "relu-threshold",
        "leaky-slope"])
def test_bad_names_and_arguments_raise(make):
    with pytest.raises(ValueError, match="Received"):
        make()


def test_an_argument_the_activation_does_not_take_is_a_type_error():
    with pytest.raises(TypeError, match="beta"):
        A.get("elu", beta=2.0)
    with pytest.raises(TypeError, match="axis"):
        A.get("sigmoid", axis=1)


def test_unknown_name_lists_the_supported_ones():
    with pytest.raises(ValueError, match=r"gelu.*Received: activation='swoosh'"):
        A.get("swoosh")
