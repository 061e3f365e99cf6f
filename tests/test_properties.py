"""Property-based tests (hypothesis) for `numpy_ref`: random shapes, batch sizes
and dtypes for every layer; backprop against numerical gradients; softmax and
cross-entropy at extreme inputs; no layer touches the caller's arrays.

Every test is derandomized and keeps no example database (property_settings).
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numpy_ref.layers import activations as A
from numpy_ref import functions as F
from numpy_ref import gradient as G
from numpy_ref import layers as L
from property_settings import PROPERTIES

DTYPES = st.sampled_from([np.float32, np.float64])
ACTIVATIONS = ["relu", "sigmoid", "tanh"]
SOFTMAX_LOSSES = [f"softmax-{variant}-{labels}" for variant in L.SoftmaxWithLoss.VARIANTS
                  for labels in ("int", "onehot")]
LOSSES = SOFTMAX_LOSSES + ["mse"]
NODES = ["mul", "add"]
KINDS = ACTIVATIONS + ["affine", "affine-no-bias"] + LOSSES + NODES


def arrays(dtype, shape, bound=4.0):
    """Finite values in [-bound, bound] (hypothesis also tries 0, -0.0 and the bounds)."""
    return hnp.arrays(dtype, shape, elements={"min_value": -bound, "max_value": bound})


def batch_shapes(min_dims=1, max_dims=4):
    """Shapes whose axes (the first is the batch) have 1..4 entries: batch 1 included."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=4)


# --- strategies: a fresh layer of each kind with inputs of a random shape and dtype ----


@st.composite
def softmax_inputs(draw, dtype, one_hot, bound=4.0):
    """(x, t): scores (N, C) or one sample (C,), and integer or one-hot labels."""
    classes = draw(st.integers(1, 6))
    single = draw(st.booleans())
    batch = 1 if single else draw(st.integers(1, 5))
    x = draw(arrays(dtype, (classes,) if single else (batch, classes), bound))
    t = draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    if one_hot:
        t = np.eye(classes, dtype=dtype)[t]  # (N, C)
    return x, (t[0] if single else t)


@st.composite
def affine_inputs(draw, dtype, bias=True, bound=4.0):
    """(W, b, x): x is (N, ...) of rank 2..4, or one sample (D,); D = prod(x.shape[1:])."""
    if draw(st.booleans()):
        x = draw(arrays(dtype, draw(batch_shapes(2, 4)), bound))  # (N, ...) -> (N, D)
        features = int(np.prod(x.shape[1:]))
    else:
        features = draw(st.integers(1, 6))
        x = draw(arrays(dtype, (features,), bound))  # one sample
    units = draw(st.integers(1, 4))
    W = draw(arrays(dtype, (features, units), bound))
    b = draw(arrays(dtype, (units,), bound)) if bias else None
    return W, b, x


@dataclasses.dataclass
class Case:
    """A fresh layer, what its forward and backward receive, and its dtype."""
    layer: object
    args: tuple  # forward's arguments: (x,), (x, t) for a loss, (x, y) for a node
    dout: object  # backward's argument: an array, or a scalar for a loss
    dtype: type
    constructor: tuple = ()  # the arrays the layer was built from


def affine_output_shape(W, x):
    return (W.shape[1],) if x.ndim == 1 else (x.shape[0], W.shape[1])  # (M,) or (N, M)


@st.composite
def cases(draw, kind):
    """A Case of one layer kind, with a random shape and dtype."""
    dtype = draw(DTYPES)
    if kind in ACTIVATIONS:
        x = draw(arrays(dtype, draw(batch_shapes())))
        return Case(A.get(kind), (x,), draw(arrays(dtype, x.shape)), dtype)
    if kind.startswith("affine"):
        W, b, x = draw(affine_inputs(dtype, bias=kind == "affine"))
        dout = draw(arrays(dtype, affine_output_shape(W, x)))
        return Case(L.Affine(W, b), (x,), dout, dtype, (W,) if b is None else (W, b))
    if kind in SOFTMAX_LOSSES:
        _, variant, labels = kind.split("-")
        x, t = draw(softmax_inputs(dtype, one_hot=labels == "onehot"))
        return Case(L.SoftmaxWithLoss(variant), (x, t), draw(st.floats(0.25, 4.0)), dtype)
    shape = draw(batch_shapes(0 if kind in NODES else 1, 3))  # nodes also take 0-d arrays
    x, y = draw(arrays(dtype, shape)), draw(arrays(dtype, shape))
    if kind == "mse":
        return Case(L.MeanSquaredErrorLoss(), (x, y), draw(st.floats(0.25, 4.0)), dtype)
    layer = L.MulLayer() if kind == "mul" else L.AddLayer()
    return Case(layer, (x, y), draw(arrays(dtype, shape)), dtype)


def expected_output_shape(kind, case):
    if kind in LOSSES:
        return ()
    if kind.startswith("affine"):
        return affine_output_shape(case.layer.W, case.args[0])
    return case.args[0].shape


def run_backward(kind, case):
    """The input gradients as a tuple: nodes return (dx, dy), other layers dx."""
    grads = case.layer.backward(case.dout)
    return grads if kind in NODES else (grads,)


# --- shapes and dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@PROPERTIES
@given(data=st.data())
def test_forward_and_backward_keep_shape_and_dtype(kind, data):
    case = data.draw(cases(kind))
    out = case.layer.forward(*case.args)
    assert np.shape(out) == expected_output_shape(kind, case)
    assert np.asarray(out).dtype == case.dtype
    differentiated = case.args if kind in NODES else case.args[:1]  # not a loss's labels
    grads = run_backward(kind, case)
    assert len(grads) == len(differentiated)
    for grad, arg in zip(grads, differentiated):
        assert np.shape(grad) == arg.shape and np.asarray(grad).dtype == case.dtype
    for key, param in getattr(case.layer, "params", {}).items():
        assert case.layer.grads[key].shape == param.shape, key
        assert case.layer.grads[key].dtype == param.dtype == case.dtype, key


# --- no mutation ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@PROPERTIES
@given(data=st.data())
def test_layers_never_modify_the_callers_arrays(kind, data):
    case = data.draw(cases(kind))
    callers = list(case.args)
    if isinstance(case.dout, np.ndarray):
        callers.append(case.dout)
    copies = [np.array(a, copy=True) for a in callers]

    out = case.layer.forward(*case.args)
    grads = run_backward(kind, case)
    # The weights are the constructor's own arrays (the book's semantics): an
    # optimizer's in-place step on params is a step on them.
    params = list(getattr(case.layer, "params", {}).values())
    assert all(any(p is c for c in case.constructor) for p in params)

    for array, copy in zip(callers, copies):
        np.testing.assert_array_equal(array, copy, strict=True)
    # Nor do the results alias them: writing into a result is safe for the caller.
    for result in (out, *grads):
        for array in callers:
            assert not np.shares_memory(result, array)


# --- backprop against numerical gradients (float64) -----------------------------------

# numerical_gradient is the central difference (f(x+h) - f(x-h)) / 2h, h = 1e-4.
# Its error against the true derivative has two parts (Higham's bounds):
# - truncation, h^2/6 * |f'''| * |dout|: every loss below is piecewise linear or
#   quadratic, or smooth with |f'''| <= 2 per unit of dout (tanh has the largest,
#   2; sigmoid 1/8; the softmax cross-entropy's is below 1), and |dout| <= 4 here:
#   at most 1e-8 / 6 * 2 * 4 = 1.4e-8;
# - rounding: f(x +/- h) is a float64 sum of terms whose absolute values add up to
#   `scale`, each computed with at most ~100 roundings (a dot product of <= 64
#   terms, then a sum over the outputs), so it is off by <= 100 * 1.1e-16 * scale;
#   dividing the difference by 2h gives <= 1.1e-10 * scale.
# atol = 3e-8 + 1e-9 * scale covers both with a margin of 2 to 10; a wrong
# formula (a lost factor, sign or term) is off by the size of the gradient itself.
# The loss used is L = sum(forward(x) * R) for a random R, so dL/dout = R.


def grad_atol(scale):
    return 3e-8 + 1e-9 * scale


def assert_gradient(backprop, loss, x, scale, err_msg=""):
    numerical = G.numerical_gradient(loss, x)  # nudges x in place; loss reads it
    np.testing.assert_allclose(backprop, numerical, rtol=0, atol=grad_atol(scale),
                               err_msg=err_msg)


@st.composite
def away_from_zero(draw, shape, low=1e-2, high=4.0):
    """Values with |x| in [low, high]: the ReLU kink at 0 stays 100 h away."""
    magnitude = draw(hnp.arrays(np.float64, shape, elements=st.floats(low, high)))
    positive = draw(hnp.arrays(np.bool_, shape))
    return np.where(positive, magnitude, -magnitude)


@pytest.mark.parametrize("name", ACTIVATIONS)
@PROPERTIES
@given(data=st.data())
def test_activation_gradients(name, data):
    shape = data.draw(batch_shapes(1, 3))
    x = data.draw(away_from_zero(shape))
    R = data.draw(arrays(np.float64, shape, bound=4.0))
    layer = A.get(name)
    out = layer.forward(x)
    dx = layer.backward(R)
    assert_gradient(dx, lambda _: np.sum(layer.forward(x) * R), x, np.sum(np.abs(out * R)))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@PROPERTIES
@given(data=st.data())
def test_affine_gradients(bias, data):
    W, b, x = data.draw(affine_inputs(np.float64, bias=bias, bound=2.0))
    layer = L.Affine(W, b)
    out = layer.forward(x)
    R = data.draw(arrays(np.float64, out.shape, bound=4.0))
    dx = layer.backward(R)
    grads = {key: value.copy() for key, value in layer.grads.items()}
    # scale: the loss with every term made positive, sum |R| (|x| @ |W| + |b|).
    x2 = np.abs(x.reshape(len(x) if x.ndim > 1 else 1, -1))  # (N, D)
    terms = x2 @ np.abs(layer.W) + (0 if b is None else np.abs(layer.b))
    scale = np.sum(np.abs(R).reshape(terms.shape) * terms)
    loss = lambda _: np.sum(layer.forward(x) * R)
    assert_gradient(dx, loss, x, scale, "dx")
    for key, param in layer.params.items():  # nudged in place: the layer's own arrays
        assert_gradient(grads[key], loss, param, scale, key)


@pytest.mark.parametrize("variant", L.SoftmaxWithLoss.VARIANTS)
@pytest.mark.parametrize("one_hot", [False, True], ids=["int", "onehot"])
@PROPERTIES
@given(data=st.data())
def test_softmax_with_loss_gradients(variant, one_hot, data):
    # Scores up to +/-40 saturate the softmax: probabilities far below 1e-7 occur,
    # where the 'keras' clip and the 'book' epsilon matter.
    x, t = data.draw(softmax_inputs(np.float64, one_hot, bound=40.0))
    dout = data.draw(st.floats(0.25, 4.0))
    layer = L.SoftmaxWithLoss(variant)
    layer.forward(x, t)
    dx = layer.backward(dout)
    y, labels = F.as_batch(layer.y, t)  # (N, C), (N,)
    if variant == "keras":
        # The clip has kinks where y or 1 - y equals 1e-7; a nudge of h moves
        # log y and log(1 - y) by at most h, so 10 h away from them the
        # difference quotient sees one smooth piece.
        with np.errstate(divide="ignore"):  # log(0) = -inf is far from the kinks
            for distance in (np.log(y), np.log1p(-y)):
                assume(np.all(np.abs(distance - np.log(F.EPSILON)) > 1e-3))
    expected = dx
    if variant == "book":
        # The book's backward (y - t) / N is the derivative of -log(y_t) (the
        # logits form); its own loss -log(y_t + 1e-7) has, per sample, that
        # derivative times y_t / (y_t + 1e-7) (documented in SoftmaxWithLoss).
        y_t = y[np.arange(len(y)), labels]
        expected = (dx.reshape(y.shape) * (y_t / (y_t + F.EPSILON))[:, None]).reshape(dx.shape)
    # scale: each sample's loss is at most |x_t| + logsumexp(x) <= 2 max|x| + log C.
    scale = dout * (2 * np.max(np.abs(x)) + np.log(y.shape[1]) + 1)
    assert_gradient(expected, lambda _: dout * layer.forward(x, t), x, scale)


@PROPERTIES
@given(data=st.data())
def test_mean_squared_error_gradient(data):
    shape = data.draw(batch_shapes(1, 3))
    y, t = data.draw(arrays(np.float64, shape)), data.draw(arrays(np.float64, shape))
    dout = data.draw(st.floats(0.25, 4.0))
    layer = L.MeanSquaredErrorLoss()
    layer.forward(y, t)
    dy = layer.backward(dout)
    scale = dout * 0.5 * np.mean((np.abs(y) + np.abs(t)) ** 2)
    assert_gradient(dy, lambda _: dout * layer.forward(y, t), y, scale)


@pytest.mark.parametrize("kind", NODES)
@PROPERTIES
@given(data=st.data())
def test_mul_and_add_gradients(kind, data):
    shape = data.draw(batch_shapes(0, 3))
    x, y, R = (data.draw(arrays(np.float64, shape)) for _ in range(3))
    layer = L.MulLayer() if kind == "mul" else L.AddLayer()
    layer.forward(x, y)
    dx, dy = layer.backward(R)
    terms = np.abs(x * y) if kind == "mul" else np.abs(x) + np.abs(y)
    scale = np.sum(np.abs(R) * terms)
    loss = lambda _: np.sum(layer.forward(x, y) * R)
    assert_gradient(dx, loss, x, scale, "dx")
    assert_gradient(dy, loss, y, scale, "dy")


# --- softmax and cross-entropy at the extremes ----------------------------------------


@PROPERTIES
@given(dtype=DTYPES, single=st.booleans(), data=st.data())
def test_softmax_is_finite_and_sums_to_one_for_huge_inputs(dtype, single, data):
    classes = data.draw(st.integers(1, 20))
    shape = (classes,) if single else (data.draw(st.integers(1, 5)), classes)
    x = data.draw(arrays(dtype, shape, bound=1e4))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = F.softmax(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert np.all(np.isfinite(y)) and np.all((y >= 0) & (y <= 1))
    # Each exp, the row sum (pairwise, <= log2(C) roundings), the division and the
    # final sum each add a few units of eps: (2 C + 8) eps bounds them all.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(np.sum(y, axis=-1), 1, rtol=0, atol=(2 * classes + 8) * eps)
    rows = np.atleast_2d(y)
    assert np.all(rows.max(axis=1) >= (1 - 2 * eps) / classes)  # the largest score's share
    for row_x, row_y in zip(np.atleast_2d(x), rows):  # a batch works row by row
        np.testing.assert_allclose(row_y, F.softmax(row_x), rtol=(2 * classes + 8) * eps,
                                   atol=np.finfo(dtype).tiny)  # subnormal shares may differ


@st.composite
def probabilities_with_zeros(draw, dtype):
    """(y, t): rows of probabilities (N, C) with exact zeros, one at a true class."""
    batch, classes = draw(st.integers(1, 5)), draw(st.integers(2, 8))
    y = draw(hnp.arrays(np.float64, (batch, classes), elements=st.floats(0, 1)))
    y[draw(hnp.arrays(np.bool_, y.shape))] = 0.0
    t = draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    y[0, t[0]] = 0.0  # the first sample gives its true class probability 0
    for n in np.flatnonzero(y.sum(axis=1) == 0):
        y[n, (t[n] + 1) % classes] = 1.0  # every row still sums to 1
    return (y / y.sum(axis=1, keepdims=True)).astype(dtype), t


@PROPERTIES
@given(dtype=DTYPES, one_hot=st.booleans(), data=st.data())
def test_cross_entropy_is_finite_when_a_probability_is_zero(dtype, one_hot, data):
    y, t = data.draw(probabilities_with_zeros(dtype))
    assert y[0, t[0]] == 0
    labels = np.eye(y.shape[1], dtype=dtype)[t] if one_hot else t
    for loss_fn in (F.cross_entropy_error, F.keras_sparse_categorical_crossentropy):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            batch_loss, sample_loss = loss_fn(y, labels), loss_fn(y[0], labels[0])
        for loss in (batch_loss, sample_loss):
            # -log(1e-7) = 16.1 is the most a sample can cost; -log(1 + 1e-7)
            # (the book's epsilon at y_t = 1) the least.
            assert np.isfinite(loss) and -1e-6 <= loss <= 16.2, loss_fn.__name__
        assert sample_loss >= 16.1  # the zero probability costs the full -log(1e-7)


@PROPERTIES
@given(dtype=DTYPES, one_hot=st.booleans(), data=st.data())
def test_cross_entropy_from_logits_is_finite_when_a_probability_underflows_to_zero(
        dtype, one_hot, data):
    batch, classes = data.draw(st.integers(1, 5)), data.draw(st.integers(2, 6))
    x = data.draw(arrays(dtype, (batch, classes)))
    t = data.draw(hnp.arrays(np.int64, (batch,), elements=st.integers(0, classes - 1)))
    x[0, t[0]] -= 1e4  # exp(-1e4) is exactly 0 in float32 and float64
    labels = np.eye(classes, dtype=dtype)[t] if one_hot else t
    assert F.softmax(x)[0, t[0]] == 0
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = F.softmax_cross_entropy_with_logits(x, labels)
        layers = {variant: L.SoftmaxWithLoss(variant) for variant in L.SoftmaxWithLoss.VARIANTS}
        values = {variant: layer.forward(x, labels) for variant, layer in layers.items()}
        grads = {variant: layer.backward() for variant, layer in layers.items()}
    # The logits form charges the whole gap: x_t <= 4 - 1e4 and logsumexp >= -4.
    assert np.isfinite(loss) and loss >= (1e4 - 8) / batch
    for variant in values:
        assert np.isfinite(values[variant]) and np.all(np.isfinite(grads[variant])), variant
