"""`numpy_ref.losses`: every registered loss against `keras.losses` with the TF backend.

Loss values and gradients with respect to y_pred (`tf.GradientTape`) in
float64, float32, and float64 inputs to a float32 loss; probabilities exactly
at 0, 1 and the clip bounds; batches of one; higher-rank inputs; integer vs
one-hot labels; every reduction; backward against numerical differentiation;
config round trips; hand-computed values; bad names and arguments.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_ref import gradient as G
from numpy_ref import losses
from numpy_ref.losses import divergence

# Tolerances bound |numpy - keras| <= tol * (1 + |keras|).
# float64: the same operations in the same order, up to TF's (Eigen's) log/exp
# against NumPy's and the order of summation: measured <= 4.2e-16.
TOL64 = 1e-13
# float32 computations: the same few-ulp differences at float32's eps = 1.2e-7,
# measured <= 1.8e-7 (1.5 ulps); 1e-6 leaves room for a different summation order.
TOL32 = 1e-6
# Numerical gradient (float64, h = 1e-4) on inputs away from clip bounds and kinks,
# with probabilities in [0.05, 0.95]: its truncation error h^2 / 6 * |f'''|, with
# |f'''| up to 2 / 0.05^3 for a log, reaches ~3e-5 relative and, where a gradient
# nearly cancels (0.0003 measured), ~1e-7 absolute. A wrong term is off by >= 1e-3.
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-6

N, C = 5, 4
# Probabilities at 0, 1, just outside and exactly at the clip bounds [1e-7, 1 - 1e-7].
EDGE_VALUES = [0.0, 1.0, 1e-9, 1 - 1e-9, 1e-7, 1 - 1e-7]


def _probabilities(rng, shape, edges=False, smooth=False):
    """Rows of probabilities summing to 1 along the last axis."""
    p = rng.dirichlet(np.full(shape[-1], 20.0 if smooth else 1.0), size=shape[:-1])
    if edges:
        rows = p.reshape(-1, shape[-1])
        rows[0] = [0.0, 1.0] + [0.0] * (shape[-1] - 2)
        rows[1, :2] = [1e-7, 1 - 1e-7]
        rows[2, :2] = [1e-9, 1 - 1e-9]
    return p


def _binary(rng, shape, edges=False, smooth=False):
    p = rng.uniform(0.05, 0.95, shape) if smooth else rng.uniform(0, 1, shape)
    if edges:
        p.reshape(-1)[:len(EDGE_VALUES)] = EDGE_VALUES
    return p


def _labels(rng, shape):
    return rng.integers(0, shape[-1], shape[:-1])


def _one_hot(rng, shape):
    return np.eye(shape[-1])[_labels(rng, shape)]


def _bits(rng, shape):
    return rng.integers(0, 2, shape).astype(float)


# (id, class name, kwargs, make(rng, smooth) -> (y_pred, y_true), numerically checkable)
CASES = [
    ("scce", "SparseCategoricalCrossentropy", {},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), _labels(r, (N, C))), True),
    ("scce-edges", "SparseCategoricalCrossentropy", {},
     lambda r, s: (_probabilities(r, (N, C), edges=True), _labels(r, (N, C))), False),
    ("scce-logits", "SparseCategoricalCrossentropy", {"from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C)), _labels(r, (N, C))), True),
    ("scce-rank3-labels-n-t-1", "SparseCategoricalCrossentropy", {},
     lambda r, s: (_probabilities(r, (N, 3, C), smooth=s), _labels(r, (N, 3, C))[..., None]),
     True),
    ("scce-batch-of-1", "SparseCategoricalCrossentropy", {},
     lambda r, s: (_probabilities(r, (1, C), smooth=s), np.array([2])), True),
    ("scce-ignore_class", "SparseCategoricalCrossentropy", {"ignore_class": 2},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), np.array([2, 0, 2, 1, 3])), True),
    ("scce-ignore_class-logits-rank3", "SparseCategoricalCrossentropy",
     {"ignore_class": -1, "from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, 3, C)), np.array([[-1, 0, 3]] * N)), True),
    ("scce-ignore_class-sum", "SparseCategoricalCrossentropy",
     {"ignore_class": 2, "reduction": "sum"},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), np.array([2, 0, 2, 1, 3])), True),
    ("scce-ignore_class-mean_with_sample_weight", "SparseCategoricalCrossentropy",
     {"ignore_class": 2, "reduction": "mean_with_sample_weight"},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), np.array([2, 0, 2, 1, 3])), True),
    ("scce-ignore_class-none", "SparseCategoricalCrossentropy",
     {"ignore_class": 2, "reduction": None},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), np.array([2, 0, 2, 1, 3])), True),
    ("scce-ignore-everything", "SparseCategoricalCrossentropy", {"ignore_class": 1},
     lambda r, s: (_probabilities(r, (3, C), smooth=s), np.array([1, 1, 1])), True),
    ("cce", "CategoricalCrossentropy", {},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), _one_hot(r, (N, C))), True),
    ("cce-edges", "CategoricalCrossentropy", {},
     lambda r, s: (_probabilities(r, (N, C), edges=True), _one_hot(r, (N, C))), False),
    ("cce-unnormalised", "CategoricalCrossentropy", {},
     lambda r, s: (r.uniform(0.2, 2, (N, C)), r.uniform(0, 1, (N, C))), True),
    ("cce-logits", "CategoricalCrossentropy", {"from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C)), _one_hot(r, (N, C))), True),
    # TF's gradient is softmax - t even when t does not sum to 1 (not the derivative)
    ("cce-logits-soft-labels", "CategoricalCrossentropy", {"from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C)), r.uniform(0, 1, (N, C))), False),
    ("cce-label_smoothing", "CategoricalCrossentropy", {"label_smoothing": 0.1},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), _one_hot(r, (N, C))), True),
    ("cce-label_smoothing-logits", "CategoricalCrossentropy",
     {"label_smoothing": 0.2, "from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C)), _one_hot(r, (N, C))), True),
    ("cce-axis1", "CategoricalCrossentropy", {"axis": 1},
     lambda r, s: (np.swapaxes(_probabilities(r, (N, 3, C), smooth=s), 1, 2),
                   np.swapaxes(_one_hot(r, (N, 3, C)), 1, 2)), True),
    ("cce-axis1-logits", "CategoricalCrossentropy", {"axis": 1, "from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C, 3)), np.swapaxes(_one_hot(r, (N, 3, C)), 1, 2)), True),
    ("cce-rank3-mean", "CategoricalCrossentropy", {"reduction": "mean"},
     lambda r, s: (_probabilities(r, (N, 3, C), smooth=s), _one_hot(r, (N, 3, C))), True),
    ("bce", "BinaryCrossentropy", {},
     lambda r, s: (_binary(r, (N, C), smooth=s), _bits(r, (N, C))), True),
    ("bce-edges", "BinaryCrossentropy", {},
     lambda r, s: (_binary(r, (N, C), edges=True), _bits(r, (N, C))), False),
    ("bce-logits", "BinaryCrossentropy", {"from_logits": True},
     lambda r, s: (np.r_[r.normal(0, 3, (N, C)), [[0.0, -0.0, 40.0, -800.0]]],
                   _bits(r, (N + 1, C))), False),
    ("bce-logits-smooth", "BinaryCrossentropy", {"from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C)), _bits(r, (N, C))), True),
    ("bce-label_smoothing", "BinaryCrossentropy", {"label_smoothing": 0.1},
     lambda r, s: (_binary(r, (N, C), smooth=s), _bits(r, (N, C))), True),
    ("bce-label_smoothing-logits", "BinaryCrossentropy",
     {"label_smoothing": 0.1, "from_logits": True},
     lambda r, s: (r.normal(0, 3, (N, C)), _bits(r, (N, C))), True),
    ("bce-axis0", "BinaryCrossentropy", {"axis": 0},
     lambda r, s: (_binary(r, (N, C), smooth=s), _bits(r, (N, C))), True),
    ("bce-pred-n-1-true-n", "BinaryCrossentropy", {},
     lambda r, s: (_binary(r, (N, 1), smooth=s), _bits(r, (N,))), True),
    ("bce-pred-n-true-n-1", "BinaryCrossentropy", {},
     lambda r, s: (_binary(r, (N,), smooth=s), _bits(r, (N, 1))), True),
    ("bce-rank3-soft-none", "BinaryCrossentropy", {"reduction": "none"},
     lambda r, s: (_binary(r, (N, 3, C), smooth=s), r.uniform(0, 1, (N, 3, C))), True),
    ("mse", "MeanSquaredError", {},
     lambda r, s: (r.normal(size=(N, C)), r.normal(size=(N, C))), True),
    ("mse-rank3-sum", "MeanSquaredError", {"reduction": "sum"},
     lambda r, s: (r.normal(size=(N, 3, C)), r.normal(size=(N, 3, C))), True),
    ("mse-pred-n-1-true-n", "MeanSquaredError", {},
     lambda r, s: (r.normal(size=(N, 1)), r.normal(size=N)), True),
    ("mse-batch-of-1", "MeanSquaredError", {},
     lambda r, s: (r.normal(size=(1, C)), r.normal(size=(1, C))), True),
    ("mae", "MeanAbsoluteError", {},
     lambda r, s: (r.normal(size=(N, C)), r.normal(size=(N, C))), True),
    ("mae-zero-error", "MeanAbsoluteError", {},
     lambda r, s: (np.zeros((2, C)), np.zeros((2, C))), False),
    ("huber", "Huber", {},
     lambda r, s: (r.normal(size=(N, C)), r.normal(size=(N, C))), True),
    ("huber-delta", "Huber", {"delta": 0.3},
     lambda r, s: (r.normal(size=(N, C)), r.normal(size=(N, C))), True),
    ("log_cosh", "LogCosh", {},
     lambda r, s: (r.normal(0, 3, (N, C)), r.normal(size=(N, C))), True),
    ("kl_divergence", "KLDivergence", {},
     lambda r, s: (np.c_[_probabilities(r, (N, C - 1), edges=not s, smooth=s),
                         np.full(N, 0.5 if s else 1.5)],
                   np.c_[_probabilities(r, (N, C - 1)), np.zeros(N)]), True),
    ("poisson", "Poisson", {},
     lambda r, s: (r.uniform(0.5, 3, (N, C)), r.integers(0, 4, (N, C)).astype(float)), True),
    ("hinge-01-labels", "Hinge", {},
     lambda r, s: (r.normal(size=(N, C)), _bits(r, (N, C))), True),
    ("hinge-margin-ties", "Hinge", {},
     lambda r, s: (np.array([[1.0, -1.0, 0.5, 2.0]]), np.array([[1.0, -1.0, -1.0, 1.0]])), False),
    ("squared_hinge", "SquaredHinge", {},
     lambda r, s: (r.normal(size=(N, C)), r.choice([-1.0, 1.0], (N, C))), True),
    ("categorical_hinge", "CategoricalHinge", {},
     lambda r, s: (r.normal(size=(N, C)), _one_hot(r, (N, C))), True),
    ("categorical_hinge-tied-maxima", "CategoricalHinge", {},
     lambda r, s: (np.array([[0.5, 0.5, 0.5, -1.0], [0.2, 0.9, 0.9, 0.1]]),
                   np.array([[0, 0, 0, 1.0], [1.0, 0, 0, 0]])), False),
    ("categorical_focal", "CategoricalFocalCrossentropy", {},
     lambda r, s: (_probabilities(r, (N, C), edges=not s, smooth=s), _one_hot(r, (N, C))), True),
    ("categorical_focal-logits", "CategoricalFocalCrossentropy",
     {"from_logits": True, "gamma": 1.5, "alpha": 0.3},
     lambda r, s: (r.normal(0, 3, (N, C)), _one_hot(r, (N, C))), True),
    ("categorical_focal-alpha-list", "CategoricalFocalCrossentropy",
     {"label_smoothing": 0.1, "alpha": [0.1, 0.2, 0.3, 0.15]},
     lambda r, s: (_probabilities(r, (N, C), smooth=s), _one_hot(r, (N, C))), True),
    ("binary_focal", "BinaryFocalCrossentropy", {},
     lambda r, s: (_binary(r, (N, C), edges=not s, smooth=s), _bits(r, (N, C))), True),
    ("binary_focal-logits-balanced", "BinaryFocalCrossentropy",
     {"from_logits": True, "apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5},
     lambda r, s: (r.normal(0, 3, (N, C)), _bits(r, (N, C))), True),
    ("binary_focal-smoothing-balanced", "BinaryFocalCrossentropy",
     {"label_smoothing": 0.1, "apply_class_balancing": True},
     lambda r, s: (_binary(r, (N, C), smooth=s), _bits(r, (N, C))), True),
]
CASE_IDS = [case[0] for case in CASES]
SMOOTH_CASES = [case for case in CASES if case[4]]


def _loss_class(name):
    return getattr(losses, name)


def _case_inputs(case, smooth=False):
    return case[3](np.random.default_rng(CASE_IDS.index(case[0])), smooth)


def _dout_for(shape):
    """1 for a scalar loss; distinct weights for per-sample losses (reduction none)."""
    return np.linspace(0.5, 1.5, math.prod(shape)).reshape(shape) if shape else np.array(1.0)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype, loss_dtype", [("float64", "float64"), ("float32", "float32"),
                                                ("float64", "float32")],
                         ids=["float64", "float32", "float64-into-float32-loss"])
def test_loss_and_gradient_match_keras(case, dtype, loss_dtype):
    _, name, kwargs, _, _ = case
    y_pred, y_true = _case_inputs(case)
    y_pred = y_pred.astype(dtype)

    keras_loss = getattr(keras.losses, name)(**kwargs, dtype=loss_dtype)
    yp = tf.constant(y_pred)
    with tf.GradientTape() as tape:
        tape.watch(yp)
        expected = keras_loss(y_true, yp)
    dout = _dout_for(tuple(expected.shape)).astype(loss_dtype)
    expected_grad = tape.gradient(expected, yp, output_gradients=tf.constant(dout)).numpy()

    loss = _loss_class(name)(**kwargs, dtype=loss_dtype)
    value = loss.forward(y_pred, y_true)
    grad = loss.backward(dout)

    assert np.asarray(value).dtype == loss_dtype and np.shape(value) == expected.shape
    assert grad.dtype == dtype and grad.shape == y_pred.shape
    tol = TOL64 if loss_dtype == "float64" else TOL32
    np.testing.assert_allclose(value, expected.numpy(), rtol=tol, atol=tol, err_msg="loss")
    np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol, err_msg="gradient")


@pytest.mark.parametrize("case", SMOOTH_CASES, ids=[case[0] for case in SMOOTH_CASES])
def test_backward_matches_numerical_gradient(case):
    _, name, kwargs, _, _ = case
    y_pred, y_true = _case_inputs(case, smooth=True)
    loss = _loss_class(name)(**kwargs)
    dout = _dout_for(np.shape(loss.forward(y_pred, y_true)))
    grad = loss.backward(dout)
    numerical = G.numerical_gradient(lambda v: np.sum(dout * loss.forward(v, y_true)), y_pred)
    np.testing.assert_allclose(grad, numerical, rtol=GRAD_RTOL, atol=GRAD_ATOL)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_config_round_trip_gives_the_same_numbers(case):
    _, name, kwargs, _, _ = case
    y_pred, y_true = _case_inputs(case)
    loss = _loss_class(name)(**kwargs)
    config = json.loads(json.dumps(loss.get_config()))  # JSON-able
    rebuilt = type(loss).from_config(config)
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(rebuilt.forward(y_pred, y_true), loss.forward(y_pred, y_true))
    dout = _dout_for(np.shape(loss.forward(y_pred, y_true)))
    np.testing.assert_array_equal(rebuilt.backward(dout), loss.backward(dout))


def test_defaults_and_config_match_keras():
    for name, cls in losses.LOSSES.items():
        mine = cls().get_config()
        theirs = getattr(keras.losses, cls.__name__)().get_config()
        for key, value in mine.items():
            if key != "dtype":  # Keras: None = floatx; here None = y_pred's dtype
                assert theirs.get(key, value) == value, (name, key)


# --- the reductions and their backward ----------------------------------------------


def test_reductions_relate_as_documented_and_none_backward_is_a_vector_jacobian():
    rng = np.random.default_rng(5)
    y_pred, y_true = rng.normal(size=(N, 3, C)), rng.normal(size=(N, 3, C))
    per_sample = losses.MeanSquaredError(reduction=None)
    values = per_sample.forward(y_pred, y_true)
    assert values.shape == (N, 3)
    dout = rng.normal(size=values.shape)
    vjp = per_sample.backward(dout)
    for reduction, expected, dvalues in (("sum", values.sum(), 1.0),
                                         ("sum_over_batch_size", values.mean(), 1 / values.size),
                                         ("mean", values.mean(), 1 / values.size)):
        loss = losses.MeanSquaredError(reduction=reduction)
        assert loss.forward(y_pred, y_true) == pytest.approx(expected, rel=1e-15)
        per_sample.forward(y_pred, y_true)
        np.testing.assert_allclose(loss.backward(), per_sample.backward(dvalues), rtol=1e-15)
    # backward(dout) with reduction=None is the gradient of sum(dout * values)
    np.testing.assert_allclose(vjp, (y_pred - y_true) * (2 / C) * dout[..., None], rtol=1e-14)


def test_ignored_samples_drop_out_of_the_mean():
    y_pred = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    loss = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    value = loss.forward(y_pred, np.array([1, -1, 0]))
    assert value == pytest.approx(-(math.log(0.8) + math.log(0.5)) / 2, rel=1e-14)
    assert not np.any(loss.backward()[1])


# --- hand-computed values ---------------------------------------------------------


def test_mean_squared_error_hand_values():
    y_pred, y_true = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [0.0, 4.0]])
    loss = losses.get("mse")
    # per sample: mean of 0, 4 and of 9, 0 -> 2 and 4.5; the batch mean 3.25
    assert loss.forward(y_pred, y_true) == 3.25
    np.testing.assert_array_equal(loss.backward(), [[0.0, 1.0], [1.5, 0.0]])  # (y - t) / 2


def test_sparse_categorical_crossentropy_hand_values():
    # Keras's documentation example: 1.177
    y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    loss = losses.get("sparse_categorical_crossentropy")
    value = loss.forward(y_pred, np.array([1, 2]))
    eps = 1e-7  # the 0 is clipped up to 1e-7, then the row renormalised
    expected = (-math.log(0.95 / (0.05 + 0.95 + eps)) - math.log(0.1)) / 2
    assert value == pytest.approx(expected, rel=1e-14)
    assert value == pytest.approx(1.177, abs=5e-4)


def test_binary_crossentropy_at_exact_zero_and_one():
    loss = losses.BinaryCrossentropy()
    value = loss.forward(np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]))
    assert value == pytest.approx(-math.log(1 - 1e-7), rel=1e-12)  # both clipped
    np.testing.assert_array_equal(loss.backward(), [[0.0, 0.0]])  # outside the clip: blocked
    loss.forward(np.array([[1e-7, 1 - 1e-7]]), np.array([[1.0, 0.0]]))  # at the bounds: passes
    np.testing.assert_allclose(loss.backward(), [[-0.5 / 1e-7, 0.5 / 1e-7]], rtol=1e-9)


def test_categorical_hinge_shares_the_gradient_among_tied_maxima():
    loss = losses.get("categorical_hinge")
    # pos = -1, neg = 0.5 (three ties): max(0.5 + 1 + 1, 0) = 2.5
    assert loss.forward(np.array([[0.5, 0.5, 0.5, -1.0]]), np.array([[0, 0, 0, 1.0]])) == 2.5
    np.testing.assert_allclose(loss.backward(), [[1 / 3, 1 / 3, 1 / 3, -1.0]], rtol=1e-15)


def test_log_cosh_subtracts_float32_log_2_like_keras():
    loss = losses.get("log_cosh")
    x = np.array([[0.3, -1.2]])
    exact = np.mean(np.log(np.cosh(x)))
    assert loss.forward(x, np.zeros_like(x)) - exact == pytest.approx(
        math.log(2) - float(np.float32(math.log(2))), rel=1e-6)


def test_integer_and_one_hot_labels_give_the_same_crossentropy():
    rng = np.random.default_rng(6)
    probs, logits = _probabilities(rng, (N, C), smooth=True), rng.normal(size=(N, C))
    labels = _labels(rng, (N, C))
    for y_pred, from_logits in ((probs, False), (logits, True)):
        sparse = losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        dense = losses.CategoricalCrossentropy(from_logits=from_logits)
        assert sparse.forward(y_pred, labels) == pytest.approx(
            dense.forward(y_pred, np.eye(C)[labels]), rel=1e-14)
        np.testing.assert_allclose(sparse.backward(), dense.backward(), rtol=1e-13, atol=1e-16)
        assert sparse.forward(y_pred, labels[:, None]) == sparse.forward(y_pred, labels)


# --- the registry and bad arguments -----------------------------------------------


def test_registry_names_and_aliases():
    assert type(losses.get("mse")) is type(losses.get("mean_squared_error"))
    assert type(losses.get("kld")) is divergence.KLDivergence
    assert losses.get("binary_crossentropy", from_logits=True).from_logits
    assert losses.get("mse") is not losses.get("mse")  # fresh each time


@pytest.mark.parametrize("make", [
    lambda: losses.get("cross_entropy"),
    lambda: losses.MeanSquaredError(reduction="average"),
    lambda: losses.SparseCategoricalCrossentropy(axis=1),
    lambda: losses.CategoricalCrossentropy().forward(np.ones((2, 3)) / 3, np.array([0, 1])),
    lambda: losses.SparseCategoricalCrossentropy().forward(np.ones((2, 3)) / 3, np.eye(3)[:2]),
], ids=["unknown-name", "bad-reduction", "sparse-axis", "cce-integer-labels",
        "scce-one-hot-labels"])
def test_bad_names_and_arguments_raise(make):
    with pytest.raises(ValueError, match="Received"):
        make()


def test_an_argument_the_loss_does_not_take_is_a_type_error():
    with pytest.raises(TypeError, match="from_logits"):
        losses.get("mse", from_logits=True)
