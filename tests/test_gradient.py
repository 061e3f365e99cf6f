"""Tests for `numpy_ref.gradient`: numerical differentiation and gradient descent."""

import numpy as np
import pytest

from numpy_ref import gradient as G

# The central difference is exact for a quadratic (its third derivative is 0),
# so only rounding remains: ~eps * |f| / h = 1e-16 * 10 / 1e-4 = 1e-11.
QUADRATIC_ATOL = 1e-9


def function_1(x):
    """The book's f(x) = 0.01 x^2 + 0.1 x, derivative 0.02 x + 0.1."""
    return 0.01 * x ** 2 + 0.1 * x


def function_2(x):
    """The book's f(x0, x1) = x0^2 + x1^2, gradient (2 x0, 2 x1)."""
    return np.sum(x ** 2)


@pytest.mark.parametrize("x, expected", [(5.0, 0.2), (10.0, 0.3)], ids=["x=5", "x=10"])
def test_numerical_diff_book_example(x, expected):
    # The book prints 0.1999999999990898 and 0.2999999999986347.
    assert G.numerical_diff(function_1, x) == pytest.approx(expected, rel=0, abs=QUADRATIC_ATOL)


def test_forward_difference_with_h_1e_50_fails_in_float32():
    h = np.float32(1e-50)
    assert h == 0  # 1e-50 is far below float32's smallest subnormal (~1.4e-45)
    x = np.float32(5.0)
    assert x + h == x  # so f(x + h) - f(x) is 0 and the "derivative" is 0 / 0
    with np.errstate(invalid="ignore", divide="ignore"):
        forward = (function_1(x + h) - function_1(x)) / h
    assert not np.isfinite(forward)
    # The central difference with h = 1e-4 gets it right even in float32:
    # rounding ~ 1e-7 * |f| / h ~ 1e-3 for |f| ~ 0.75.
    assert G.numerical_diff(function_1, x) == pytest.approx(0.2, abs=5e-3)


@pytest.mark.parametrize("point, expected", [((3.0, 4.0), (6.0, 8.0)),
                                             ((0.0, 2.0), (0.0, 4.0)),
                                             ((3.0, 0.0), (6.0, 0.0))],
                         ids=["(3,4)", "(0,2)", "(3,0)"])
def test_numerical_gradient_book_example(point, expected):
    grad = G.numerical_gradient(function_2, np.array(point))
    np.testing.assert_allclose(grad, expected, rtol=0, atol=QUADRATIC_ATOL)


@pytest.mark.parametrize("shape", [(), (4,), (3, 5), (2, 3, 4)], ids=["0-d", "1-d", "2-d", "3-d"])
def test_numerical_gradient_of_any_shape(shape):
    rng = np.random.default_rng(0)
    c = rng.uniform(0.5, 2.0, shape)
    x = rng.normal(size=shape)
    grad = G.numerical_gradient(lambda w: np.sum(c * w ** 2), x)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, 2 * c * x, rtol=0, atol=QUADRATIC_ATOL)


def test_numerical_gradient_of_a_non_quadratic():
    x = np.random.default_rng(1).normal(size=(3, 4))
    grad = G.numerical_gradient(lambda w: np.sum(np.sin(w)), x)
    # Truncation error h^2 / 6 * |f'''| <= 1.7e-9; rounding ~1e-16 * 12 / 1e-4 ~ 1e-11.
    np.testing.assert_allclose(grad, np.cos(x), rtol=0, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.int64, np.int32], ids=["int64", "int32"])
def test_numerical_gradient_of_an_integer_array(dtype):
    # The book's pitfall: x[i] = 3 + 1e-4 stored in an int array is 3, so the
    # gradient would silently come out as 0.
    x = np.array([3, 4], dtype=dtype)
    before = x.copy()
    grad = G.numerical_gradient(function_2, x)
    np.testing.assert_allclose(grad, [6.0, 8.0], rtol=0, atol=QUADRATIC_ATOL)
    assert np.issubdtype(grad.dtype, np.floating)
    np.testing.assert_array_equal(x, before)
    assert x.dtype == dtype


def test_numerical_gradient_of_a_list():
    np.testing.assert_allclose(G.numerical_gradient(function_2, [3.0, 4.0]), [6.0, 8.0],
                               rtol=0, atol=QUADRATIC_ATOL)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_numerical_gradient_restores_float_arrays_bit_for_bit(dtype):
    # Random values: x + h - h != x for most of them, so a restore by
    # subtraction would leave rounding behind; the function must store and put back.
    x = np.random.default_rng(2).normal(size=(4, 5)).astype(dtype)
    before = x.copy()
    G.numerical_gradient(lambda w: np.sum(np.exp(w)), x)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x.view(np.uint8), before.view(np.uint8))


def test_numerical_gradient_perturbs_float_arrays_in_place():
    # The book's `lambda w: net.loss(x, t)` ignores its argument: it only works
    # if the nudged values live in the very array that the network reads.
    x = np.array([1.0, -2.0, 0.5])
    seen = []

    def reads_the_closure(_):
        seen.append(x.copy())
        return np.sum(x ** 2)

    grad = G.numerical_gradient(reads_the_closure, x)
    np.testing.assert_allclose(grad, 2 * x, rtol=0, atol=QUADRATIC_ATOL)
    assert len(seen) == 2 * x.size
    np.testing.assert_array_equal(seen[0], [1.0 + G.H, -2.0, 0.5])
    np.testing.assert_array_equal(seen[1], [1.0 - G.H, -2.0, 0.5])


def test_gradient_descent_book_example():
    init_x = np.array([-3.0, 4.0])
    before = init_x.copy()
    x, history = G.gradient_descent(function_2, init_x, lr=0.1, step_num=100)
    # Each exact step multiplies x by (1 - 2 * lr) = 0.8: the book prints
    # [-6.11110793e-10, 8.14814391e-10] = 0.8^100 * (-3, 4).
    np.testing.assert_allclose(x, 0.8 ** 100 * before, rtol=1e-6, atol=0)
    assert np.all(np.abs(x) < 1e-9)
    assert history.shape == (101, 2)
    np.testing.assert_array_equal(history[0], before)
    np.testing.assert_array_equal(history[-1], x)
    np.testing.assert_allclose(history, 0.8 ** np.arange(101)[:, None] * before, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(init_x, before)


def test_gradient_descent_with_a_large_learning_rate_diverges():
    init_x = np.array([-3.0, 4.0])
    x, history = G.gradient_descent(function_2, init_x, lr=10.0, step_num=100)
    # Each step multiplies x by -19 until x is so large that x + 1e-4 == x and the
    # numerical gradient vanishes: the book ends at ~[-2.6e13, -1.3e12].
    assert np.linalg.norm(x) > 1e10
    assert np.linalg.norm(history[1]) > np.linalg.norm(history[0])


def test_gradient_descent_with_a_tiny_learning_rate_barely_moves():
    init_x = np.array([-3.0, 4.0])
    x, _ = G.gradient_descent(function_2, init_x, lr=1e-10, step_num=100)
    # 100 steps of 1e-10 * 2x move each coordinate by ~2e-8 * |x| (the book
    # prints [-2.99999994, 3.99999992]).
    assert np.all(x != init_x)
    np.testing.assert_allclose(x, init_x * (1 - 2e-10) ** 100, rtol=1e-12, atol=0)
