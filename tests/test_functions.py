"""Hand-computed cases for `numpy_ref.functions`: activations, softmax and losses.

Expected values are written out from their definitions with `math` (not with
the function under test), or copied from the book where it prints them.
"""

import math

import numpy as np
import pytest

from numpy_ref import functions as F

# Float64 values computed two ways (math on scalars vs NumPy on arrays) agree to
# a few ulps; 1e-12 leaves room for that and nothing else.
RTOL64 = 1e-12

# The book's cross-entropy example: the network is 60% sure of the right class 2.
BOOK_Y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
BOOK_T = 2
BOOK_T_ONE_HOT = np.eye(10)[BOOK_T]
# ... and a wrong guess: 60% on class 7.
BOOK_Y_WRONG = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])


def _sigmoid(v):
    return 1 / (1 + math.exp(-v))


# --- activations ----------------------------------------------------------------


def test_step_function_is_one_above_zero_only():
    out = F.step_function(np.array([-1.0, 0.0, 1e-9, 2.0]))
    np.testing.assert_array_equal(out, [0, 0, 1, 1])
    assert np.issubdtype(out.dtype, np.integer)


def test_sigmoid_hand_values():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    np.testing.assert_allclose(F.sigmoid(x), [_sigmoid(v) for v in x], rtol=RTOL64, atol=0)
    assert F.sigmoid(np.array(0.0)) == 0.5


def test_sigmoid_is_finite_and_silent_at_plus_minus_1000():
    # A naive 1 / (1 + exp(-x)) overflows in exp(1000); errstate turns the
    # overflow warning into an error, so this also proves no branch overflows.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = F.sigmoid(np.array([-1000.0, 1000.0]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, [0.0, 1.0], rtol=0, atol=1e-300)


def test_sigmoid_is_symmetric():
    x = np.random.default_rng(0).normal(0, 3, 20)
    # 1 - sigmoid(x) loses a few ulps of sigmoid(-x) when sigmoid(x) is near 1.
    np.testing.assert_allclose(F.sigmoid(-x), 1 - F.sigmoid(x), rtol=1e-10, atol=1e-15)


def test_relu_hand_values():
    np.testing.assert_array_equal(F.relu(np.array([-2.0, -0.0, 0.0, 0.5, 3.0])),
                                  [0.0, 0.0, 0.0, 0.5, 3.0])


def test_tanh_hand_values():
    x = np.array([-1.5, 0.0, 0.5])
    expected = [(math.exp(v) - math.exp(-v)) / (math.exp(v) + math.exp(-v)) for v in x]
    np.testing.assert_allclose(F.tanh(x), expected, rtol=RTOL64, atol=1e-300)


def test_identity_function_returns_its_input():
    x = np.array([[-1.0, 2.5], [0.0, 7.0]])
    out = F.identity_function(x)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("fn", [F.sigmoid, F.relu, F.tanh, F.softmax, F.identity_function],
                         ids=lambda fn: fn.__name__)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_activations_keep_the_float_dtype(fn, dtype):
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(dtype)
    assert fn(x).dtype == dtype


# --- softmax --------------------------------------------------------------------


def test_softmax_hand_values_from_the_book():
    x = np.array([0.3, 2.9, 4.0])
    exps = [math.exp(v) for v in x]
    expected = [e / sum(exps) for e in exps]
    out = F.softmax(x)
    np.testing.assert_allclose(out, expected, rtol=RTOL64, atol=0)
    # The book prints [0.01821127 0.24519181 0.73659691].
    np.testing.assert_allclose(out, [0.01821127, 0.24519181, 0.73659691], rtol=0, atol=5e-9)
    assert out.sum() == pytest.approx(1.0, abs=1e-15)


def test_softmax_does_not_overflow_on_large_inputs():
    x = np.array([1010.0, 1000.0, 990.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # a naive exp(1010) would overflow
        out = F.softmax(x)
    # Softmax is shift-invariant: the same as softmax([20, 10, 0]).
    exps = [math.exp(v - 990.0) for v in x]
    np.testing.assert_allclose(out, [e / sum(exps) for e in exps], rtol=RTOL64, atol=0)
    # The book prints [9.99954600e-01 4.53978686e-05 2.06106005e-09].
    np.testing.assert_allclose(out, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09],
                               rtol=1e-8, atol=0)


def test_softmax_of_a_batch_works_row_by_row():
    x = np.random.default_rng(2).normal(0, 3, size=(5, 4))
    out = F.softmax(x)
    assert out.shape == (5, 4)
    for row_in, row_out in zip(x, out):
        np.testing.assert_array_equal(row_out, F.softmax(row_in))
    np.testing.assert_allclose(out.sum(axis=1), np.ones(5), rtol=0, atol=1e-15)
    # The study notes' pitfall: a softmax written for 1-D input normalises over the
    # whole array, so the rows of a batch no longer sum to 1 each.
    mixed = np.exp(x - x.max()) / np.sum(np.exp(x - x.max()))
    assert not np.allclose(mixed.sum(axis=1), 1.0)


# --- cross-entropy --------------------------------------------------------------


def test_cross_entropy_error_book_example():
    expected = -math.log(0.6 + 1e-7)  # the book prints 0.510825457099338
    assert F.cross_entropy_error(BOOK_Y, BOOK_T_ONE_HOT) == pytest.approx(expected, rel=RTOL64)
    assert expected == pytest.approx(0.510825457099338, rel=1e-14)
    # The wrong guess costs more: the book prints 2.302584092994546.
    assert F.cross_entropy_error(BOOK_Y_WRONG, BOOK_T_ONE_HOT) == pytest.approx(
        -math.log(0.1 + 1e-7), rel=RTOL64)


@pytest.mark.parametrize("labels", [BOOK_T, np.array(BOOK_T), np.array([BOOK_T]), BOOK_T_ONE_HOT],
                         ids=["int", "0d-array", "1-element", "one-hot"])
def test_cross_entropy_error_single_sample_label_forms_agree(labels):
    assert F.cross_entropy_error(BOOK_Y, labels) == pytest.approx(
        -math.log(0.6 + 1e-7), rel=RTOL64)


def test_cross_entropy_error_batch_is_the_mean_of_samples_for_both_label_forms():
    y = np.stack([BOOK_Y, BOOK_Y_WRONG, np.full(10, 0.1)])
    t = np.array([2, 2, 9])
    expected = -(math.log(0.6 + 1e-7) + math.log(0.1 + 1e-7) + math.log(0.1 + 1e-7)) / 3
    assert F.cross_entropy_error(y, t) == pytest.approx(expected, rel=RTOL64)
    assert F.cross_entropy_error(y, np.eye(10)[t]) == F.cross_entropy_error(y, t)


def test_cross_entropy_error_takes_a_column_of_labels():
    # The book's ch07 gradient check passes its one label as np.array([1]).reshape((1, 1)).
    y = np.stack([BOOK_Y, BOOK_Y_WRONG])
    t = np.array([2, 7])
    assert F.cross_entropy_error(y, t.reshape(2, 1)) == F.cross_entropy_error(y, t)


def test_cross_entropy_error_is_finite_when_the_true_probability_is_zero():
    # The 1e-7 inside the log turns log(0) = -inf into log(1e-7).
    loss = F.cross_entropy_error(BOOK_Y, 3)
    assert loss == pytest.approx(-math.log(1e-7), rel=RTOL64)  # 16.118...


def test_cross_entropy_error_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="Labels"):
        F.cross_entropy_error(np.full((2, 3), 1 / 3), np.array([0, 1, 2]))


def test_keras_crossentropy_clips_and_renormalises():
    y = np.array([[0.0, 0.3, 0.7],     # a zero is clipped up to 1e-7
                  [0.2, 0.3, 0.5]])    # nothing clipped: plain -log(p_t)
    t = np.array([1, 2])
    eps = 1e-7
    row0 = -math.log(0.3 / (eps + 0.3 + 0.7))  # renormalised: the row sums to 1 + 1e-7
    row1 = -math.log(0.5 / (0.2 + 0.3 + 0.5))
    expected = (row0 + row1) / 2
    assert F.keras_sparse_categorical_crossentropy(y, t) == pytest.approx(expected, rel=RTOL64)
    assert F.keras_sparse_categorical_crossentropy(y, np.eye(3)[t]) == pytest.approx(
        expected, rel=RTOL64)


def test_keras_crossentropy_is_finite_at_zero_and_differs_from_the_book():
    y, t = np.array([0.0, 0.0, 1.0]), 0
    eps = 1e-7
    expected = -math.log(eps / (eps + eps + (1 - eps)))  # 1 is clipped down to 1 - 1e-7
    loss = F.keras_sparse_categorical_crossentropy(y, t)
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=RTOL64)
    # The book adds 1e-7 instead of renormalising: -log(1e-7) vs -log(1e-7 / (1 + 1e-7)),
    # log(1 + 1e-7) apart. Both losses are ~16, so each carries ~1e-15 of rounding:
    # relative to a 1e-7 difference that is 1e-8, hence rel=1e-6.
    assert loss - F.cross_entropy_error(y, t) == pytest.approx(math.log1p(1e-7), rel=1e-6)


def test_softmax_cross_entropy_with_logits_hand_value():
    z, t = np.array([1.0, 2.0, 3.0]), 2
    expected = math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 3.0
    assert F.softmax_cross_entropy_with_logits(z, t) == pytest.approx(expected, rel=RTOL64)
    assert F.softmax_cross_entropy_with_logits(z, np.eye(3)[t]) == pytest.approx(
        expected, rel=RTOL64)


def test_softmax_cross_entropy_with_logits_large_logits_and_batch():
    z = np.array([[1000.0, 0.0], [0.5, 0.5]])
    t = np.array([1, 0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = F.softmax_cross_entropy_with_logits(z, t)
    # Row 0: -log(e^0 / (e^1000 + e^0)) = 1000 + log(1 + e^-1000) = 1000; row 1: log 2.
    assert loss == pytest.approx((1000.0 + math.log(2)) / 2, rel=RTOL64)


def test_softmax_cross_entropy_with_logits_equals_log_of_softmax():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 5))
    t = rng.integers(0, 5, 6)
    expected = -np.mean(np.log(F.softmax(z)[np.arange(6), t]))
    assert F.softmax_cross_entropy_with_logits(z, t) == pytest.approx(expected, rel=RTOL64)


# --- squared errors -------------------------------------------------------------


def test_mean_squared_error_is_half_the_mean():
    y = np.array([[1.0, 2.0], [3.0, 4.0]])
    t = np.array([[1.0, 0.0], [0.0, 4.0]])
    # Squared differences 0, 4, 9, 0: mean 13/4, half of it 1.625.
    assert F.mean_squared_error(y, t) == 1.625


def test_sum_squared_error_book_example():
    # The book prints 0.09750000000000003 for the right guess, 0.5975 for the wrong one.
    assert F.sum_squared_error(BOOK_Y, BOOK_T_ONE_HOT) == pytest.approx(0.0975, rel=RTOL64)
    assert F.sum_squared_error(BOOK_Y_WRONG, BOOK_T_ONE_HOT) == pytest.approx(0.5975, rel=RTOL64)
