"""numpy_ref's convolution and pooling: im2col/col2im against loop references, the book's
``Convolution`` and ``Pooling`` by hand, and every layer's gradients against
``numpy_ref.gradient.numerical_gradient`` in float64.

Tolerances:
- im2col, the pooling maxima and col2im of one window per pixel copy or add numbers
  without rounding: exact.
- col2im with overlaps sums in a different order than the loop reference, and the layers
  against hand values and loop references differ by summation order only:
  a few ulps, rtol 1e-12 on O(1) values (float64).
- Gradient checks: central differences with h = 1e-4 agree with backprop to ~1e-9 on
  O(1) gradients in float64 (truncation h^2/6 |f'''|, rounding eps |L| / h ~ 1e-12);
  rtol 1e-6 / atol 1e-8 as in test_layers.py.
"""

import json

import numpy as np
import pytest

from numpy_ref.layers import conv, im2col as I, pooling
from numpy_ref import gradient as G
from numpy_ref import layers as L
from numpy_ref import network

RTOL64 = 1e-12
GRAD_TOL = dict(rtol=1e-6, atol=1e-8)


def loop_im2col(x, fh, fw, stride=1, pad=0):
    """One window at a time, straight from the definition."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    col = np.zeros((n * oh * ow, c * fh * fw), x.dtype)
    for i in range(n):
        for p in range(oh):
            for q in range(ow):
                window = xp[i, :, p * stride:p * stride + fh, q * stride:q * stride + fw]
                col[(i * oh + p) * ow + q] = window.reshape(-1)  # (C, fh, fw) order
    return col


def loop_col2im(col, shape, fh, fw, stride=1, pad=0):
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), col.dtype)
    for i in range(n):
        for p in range(oh):
            for q in range(ow):
                xp[i, :, p * stride:p * stride + fh, q * stride:q * stride + fw] += \
                    col[(i * oh + p) * ow + q].reshape(c, fh, fw)
    return xp[:, :, pad:pad + h, pad:pad + w]


def loop_conv2d_nhwc(x, kernel, bias, strides, pads, dilation):
    """Keras's Conv2D by its definition, one output pixel at a time."""
    (top, bottom), (left, right) = pads
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    kh, kw, _, f = kernel.shape
    (sh, sw), (dh, dw) = strides, dilation
    oh = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oh, ow, f))
    for p in range(oh):
        for q in range(ow):
            window = xp[:, p * sh:p * sh + (kh - 1) * dh + 1:dh,
                        q * sw:q * sw + (kw - 1) * dw + 1:dw, :]  # (N, kh, kw, C)
            out[:, p, q] = np.tensordot(window, kernel, axes=3)
    return out + (0 if bias is None else bias)


# (shape N, C, H, W), filter_h, filter_w, stride, pad
GEOMETRIES = [
    ((2, 3, 7, 6), 3, 2, 1, 0),
    ((1, 1, 5, 5), 2, 2, 2, 1),  # batch 1
    ((3, 2, 9, 8), 3, 3, 2, 2),
    ((2, 4, 6, 6), 1, 1, 1, 0),
    ((2, 2, 8, 7), 5, 4, 3, 1),  # stride not dividing the padded size
    ((1, 3, 4, 4), 4, 4, 1, 0),  # one window
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, fh, fw, stride, pad", GEOMETRIES)
def test_im2col_is_the_book_layout(shape, fh, fw, stride, pad, dtype):
    x = np.random.default_rng(0).normal(size=shape).astype(dtype)
    col = I.im2col(x, fh, fw, stride, pad)
    assert col.dtype == dtype
    np.testing.assert_array_equal(col, loop_im2col(x, fh, fw, stride, pad))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, fh, fw, stride, pad", GEOMETRIES)
def test_col2im_sums_overlaps_like_the_loop(shape, fh, fw, stride, pad, dtype):
    rng = np.random.default_rng(1)
    col = rng.normal(size=loop_im2col(np.zeros(shape), fh, fw, stride, pad).shape).astype(dtype)
    img = I.col2im(col, shape, fh, fw, stride, pad)
    assert img.shape == shape and img.dtype == dtype
    # float32 additions in another order differ by ulps of the sums (~10 terms of O(1)).
    tol = dict(rtol=RTOL64, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(img, loop_col2im(col, shape, fh, fw, stride, pad), **tol)
    # the adjoint of im2col: <im2col(x), col> == <x, col2im(col)>
    x = rng.normal(size=shape)
    col64 = col.astype(np.float64)
    assert np.sum(I.im2col(x, fh, fw, stride, pad) * col64) == pytest.approx(
        np.sum(x * I.col2im(col64, shape, fh, fw, stride, pad)), rel=1e-12)


def test_col2im_reads_any_memory_layout():
    shape, rng = (2, 3, 6, 5), np.random.default_rng(2)
    col = rng.normal(size=(2 * 4 * 3, 3 * 3 * 3))
    expected = loop_col2im(col, shape, 3, 3)
    for layout in (col, np.asfortranarray(col), col[:, ::-1][:, ::-1], col.tolist()):
        np.testing.assert_allclose(I.col2im(layout, shape, 3, 3), expected, rtol=RTOL64)


def test_im2col_and_col2im_check_their_shapes():
    with pytest.raises(ValueError, match="does not fit"):
        I.im2col(np.zeros((1, 1, 3, 3)), 4, 4)
    with pytest.raises(ValueError, match="rank 4"):
        I.im2col(np.zeros((3, 3)), 2, 2)
    with pytest.raises(ValueError, match=r"shape \(4, 4\).*Received: \(4, 5\)"):
        I.col2im(np.zeros((4, 5)), (1, 1, 3, 3), 2, 2)


@pytest.mark.parametrize("size, kernel, stride, dilation, expected", [
    (28, 5, 1, 1, (2, 2)), (28, 2, 2, 1, (0, 0)), (7, 2, 2, 1, (0, 1)), (7, 3, 2, 1, (1, 1)),
    (6, 4, 3, 1, (0, 1)), (5, 3, 1, 2, (2, 2)), (4, 1, 3, 1, (0, 0)), (10, 4, 1, 1, (1, 2)),
])
def test_same_padding_is_tensorflow_rule(size, kernel, stride, dilation, expected):
    # pad_total = max((ceil(size/stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    assert I.same_padding(size, kernel, stride, dilation) == expected


# --- the book's Convolution and Pooling --------------------------------------------


def test_convolution_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0 1 2] [3 4 5] [6 7 8]]
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])  # (2, 1, 2, 2)
    layer = conv.Convolution(W, np.array([0.0, 1.0]))
    out = layer.forward(x)
    # filter 0: x[p, q] - x[p+1, q+1] = -4 everywhere; filter 1: window mean * 2 + 1
    np.testing.assert_allclose(out, [[[[-4, -4], [-4, -4]], [[5, 7], [11, 13]]]], rtol=RTOL64)
    dout = np.ones_like(out)
    dx = layer.backward(dout)
    # each pixel receives sum over the windows covering it of the filter weights there
    # filters summed: S = [[1.5, 0.5], [0.5, -0.5]]; e.g. dx[0, 1] = S[0, 0] + S[0, 1]
    np.testing.assert_allclose(dx[0, 0], [[1.5, 2.0, 0.5], [2.0, 2.0, 0.0], [0.5, 0.0, -0.5]],
                               rtol=RTOL64)
    np.testing.assert_allclose(layer.db, [4, 4], rtol=RTOL64)
    np.testing.assert_allclose(layer.dW[0, 0], [[8, 12], [20, 24]], rtol=RTOL64)
    # the book's attributes
    np.testing.assert_array_equal(layer.col, loop_im2col(x, 2, 2))
    np.testing.assert_array_equal(layer.col_W, W.reshape(2, -1).T)
    assert layer.x is x and layer.W is W


def test_convolution_uses_its_arrays_and_reuses_no_stale_columns():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(3, 2, 3, 3)), np.zeros(3)
    layer = conv.Convolution(W, b, stride=1, pad=1)
    x1, x2 = rng.normal(size=(2, 2, 5, 5)), rng.normal(size=(2, 2, 5, 5))
    y1 = layer.forward(x1).copy()
    W *= 2  # in place: the layer computes with this array
    b += 1
    np.testing.assert_allclose(layer.forward(x1), 2 * y1 + 1, rtol=RTOL64)
    layer.forward(x2)  # the column buffer is reused: it must hold x2's windows now
    np.testing.assert_array_equal(layer.col, loop_im2col(x2, 3, 3, 1, 1))
    y3 = layer.forward(x2[:1])  # a smaller batch gets its own geometry and buffer
    np.testing.assert_array_equal(layer.col, loop_im2col(x2[:1], 3, 3, 1, 1))
    assert y3.shape == (1, 3, 5, 5)


def test_convolution_of_float32_images_with_float64_filters_is_the_float64_result():
    # The book's setting: float32 MNIST, float64 filters. The columns are built in float64
    # (no converted copy per product); float32 -> float64 is exact, so the results equal
    # those of float64 images bit for bit.
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    x32 = rng.normal(size=(2, 2, 6, 6)).astype(np.float32)
    narrow, wide = conv.Convolution(W, b, 1, 1), conv.Convolution(W, b, 1, 1)
    out = narrow.forward(x32)
    assert narrow.col.dtype == np.float64 and out.dtype == np.float64
    np.testing.assert_array_equal(out, wide.forward(x32.astype(np.float64)))
    dout = rng.normal(size=out.shape)
    narrow.backward(dout)
    wide.backward(dout)
    for key in ("kernel", "bias"):
        np.testing.assert_array_equal(narrow.grads[key], wide.grads[key], err_msg=key)


def _check_gradients(layer, x, weights=True, seed=0):
    """Backprop of L = sum(forward(x) * r) against central differences, float64."""
    r = np.random.default_rng(seed).normal(size=layer.forward(x).shape)

    def loss(_):
        return float(np.sum(layer.forward(x) * r))

    layer.forward(x)
    dx = layer.backward(r.copy())
    grads = dict(layer.grads)
    np.testing.assert_allclose(dx, G.numerical_gradient(loss, x), **GRAD_TOL)
    if weights:
        for key, value in layer.params.items():
            np.testing.assert_allclose(grads[key], G.numerical_gradient(loss, value),
                                       err_msg=key, **GRAD_TOL)


@pytest.mark.parametrize("stride, pad", [(1, 0), (2, 1), (3, 2)])
def test_convolution_gradients(stride, pad):
    rng = np.random.default_rng(4)
    layer = conv.Convolution(rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3), stride, pad)
    _check_gradients(layer, rng.normal(size=(2, 2, 6, 5)))


def test_convolution_backward_leaves_dout_alone_and_backward_weights_agrees():
    rng = np.random.default_rng(5)
    layer = conv.Convolution(rng.normal(size=(2, 1, 3, 3)), None, 1, 1)
    x = rng.normal(size=(2, 1, 4, 4))
    dout = rng.normal(size=layer.forward(x).shape)
    kept = dout.copy()
    layer.backward(dout)
    np.testing.assert_array_equal(dout, kept)
    full = layer.dW.copy()
    layer.backward_weights(dout)
    np.testing.assert_array_equal(layer.dW, full)
    assert "bias" not in layer.params and layer.db is None


def test_pooling_by_hand_with_ties_going_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 2.0, 2.0],
                    [3.0, 0.0, 2.0, 1.0],
                    [0.0, 0.0, -1.0, 5.0],
                    [4.0, 0.0, -2.0, 5.0]]]])
    layer = pooling.Pooling(2, 2, stride=2)
    np.testing.assert_array_equal(layer.forward(x), [[[[3.0, 2.0], [4.0, 5.0]]]])
    # the book's arg_max: row-major window index of the first maximum, as np.argmax
    np.testing.assert_array_equal(layer.arg_max, [1, 0, 2, 1])
    expected_arg = loop_im2col(x, 2, 2, 2).reshape(-1, 4).argmax(axis=1)
    np.testing.assert_array_equal(layer.arg_max, expected_arg)
    dx = layer.backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]))
    np.testing.assert_array_equal(dx, [[[[0, 10, 20, 0], [0, 0, 0, 0], [0, 0, 0, 40],
                                         [30, 0, 0, 0]]]])


def test_pooling_is_the_book_formula_on_random_input():
    """The book's Pooling: max and argmax of im2col's rows, gradients added back by col2im."""
    rng = np.random.default_rng(6)
    x = rng.integers(-2, 3, size=(2, 3, 7, 6)).astype(np.float64)  # many ties
    layer = pooling.Pooling(3, 2, stride=1, pad=1)  # the book's default stride, overlaps
    col = loop_im2col(x, 3, 2, 1, 1).reshape(-1, 6)  # rows (N, oh, ow, C)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, col.max(axis=1).reshape(2, 7, 7, 3).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(layer.arg_max, col.argmax(axis=1))
    dout = rng.normal(size=out.shape)
    dmax = np.zeros((dout.size, 6))
    dmax[np.arange(dout.size), col.argmax(axis=1)] = dout.transpose(0, 2, 3, 1).reshape(-1)
    book_dx = loop_col2im(dmax.reshape(-1, 3 * 6), x.shape, 3, 2, 1, 1)
    np.testing.assert_allclose(layer.backward(dout), book_dx, rtol=RTOL64, atol=1e-15)


@pytest.mark.parametrize("pool, stride, pad", [((2, 2), 2, 0), ((3, 2), 1, 0), ((2, 3), 2, 1)])
def test_pooling_gradients(pool, stride, pad):
    x = np.random.default_rng(7).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6) / 10.0
    _check_gradients(pooling.Pooling(*pool, stride=stride, pad=pad), x)  # distinct values


def test_the_book_chain_convolution_relu_pooling():
    """The book's ch07 order. The convolution's output is the transposed view of an
    (N, H, W, C) array, as in the book; the gradients coming back keep that memory
    order (so Relu multiplies arrays of one order) and are right."""
    rng = np.random.default_rng(13)
    conv_layer = conv.Convolution(rng.normal(size=(4, 2, 3, 3)), rng.normal(size=4), 1, 1)
    relu, pool = L.Relu(), pooling.Pooling(2, 2, stride=2)
    x = rng.normal(size=(2, 2, 6, 6))
    r = rng.normal(size=(2, 4, 3, 3))

    def loss(_):
        return float(np.sum(pool.forward(relu.forward(conv_layer.forward(x))) * r))

    y = conv_layer.forward(x)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous  # stored (N, H, W, C)
    pool.forward(relu.forward(y))
    dpool = pool.backward(r)
    assert dpool.transpose(0, 2, 3, 1).flags.c_contiguous  # the order of its input
    dx = conv_layer.backward(relu.backward(dpool))
    np.testing.assert_allclose(dx, G.numerical_gradient(loss, x), **GRAD_TOL)
    dW = conv_layer.dW.copy()
    np.testing.assert_allclose(dW, G.numerical_gradient(loss, conv_layer.W), **GRAD_TOL)


# --- the Keras twins, against their definitions ------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel_shape, strides, padding, dilation", [
    ((3, 3, 2, 4), (1, 1), "valid", (1, 1)),
    ((3, 2, 2, 4), (2, 3), "same", (1, 1)),
    ((2, 3, 2, 3), (1, 1), "same", (2, 3)),
    ((3, 3, 2, 2), (2, 2), "valid", (2, 1)),  # both (Keras refuses the pair; TF's op does not)
    ((1, 1, 2, 5), (1, 1), "valid", (1, 1)),
    ((2, 2, 24, 3), (1, 1), "valid", (1, 1)),  # many channels: the row-major im2col
])
def test_conv2d_is_its_definition(kernel_shape, strides, padding, dilation, dtype):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2, 8, 7, kernel_shape[2])).astype(dtype)
    kernel, bias = rng.normal(size=kernel_shape).astype(dtype), rng.normal(size=kernel_shape[3])
    layer = conv.Conv2D(kernel, bias.astype(dtype), strides, padding, dilation)
    pads = conv.keras_pads(padding, x.shape[1:3], kernel_shape[:2], strides, dilation)
    expected = loop_conv2d_nhwc(x.astype(np.float64), kernel.astype(np.float64), bias,
                                strides, pads, dilation)
    out = layer.forward(x)
    assert out.dtype == dtype and out.shape == expected.shape
    # float32: sums of up to 96 products of O(1) numbers, rounded in another order.
    tol = dict(rtol=RTOL64, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, expected, **tol)


@pytest.mark.parametrize("strides, padding, dilation, activation", [
    ((1, 1), "valid", (1, 1), "tanh"),
    ((2, 2), "same", (1, 1), "linear"),
    ((1, 2), "same", (1, 1), "sigmoid"),
    ((1, 1), "same", (2, 2), "linear"),
    ((1, 1), "valid", (1, 1), "softplus"),
])
def test_conv2d_gradients(strides, padding, dilation, activation):
    rng = np.random.default_rng(9)
    layer = conv.Conv2D(rng.normal(size=(3, 2, 3, 2)) / 2, rng.normal(size=2), strides,
                        padding, dilation, activation)
    _check_gradients(layer, rng.normal(size=(2, 6, 5, 3)))


def test_conv2d_with_many_channels_takes_the_row_major_path_and_agrees():
    rng = np.random.default_rng(10)
    layer = conv.Conv2D(rng.normal(size=(2, 2, 12, 2)) / 4, None)
    x = rng.normal(size=(1, 3, 3, 12))
    assert layer.windows(x.shape).row_major
    _check_gradients(layer, x)


@pytest.mark.parametrize("make", [
    lambda: pooling.MaxPooling2D((2, 3), None, "valid"),
    lambda: pooling.MaxPooling2D(3, 1, "same"),
    lambda: pooling.MaxPooling2D(2, 2, "same"),
    lambda: pooling.AveragePooling2D(2, None, "valid"),
    lambda: pooling.AveragePooling2D(3, 2, "same"),
    lambda: pooling.AveragePooling2D((2, 3), 1, "same"),
    lambda: pooling.GlobalAveragePooling2D(),
    lambda: pooling.GlobalMaxPooling2D(keepdims=True),
    lambda: conv.ZeroPadding2D(((1, 2), (0, 3))),
], ids=["max-valid", "max-same-overlap", "max-same", "avg-valid", "avg-same",
        "avg-same-overlap", "global-avg", "global-max", "zero-padding"])
def test_keras_pooling_gradients(make):
    x = np.random.default_rng(11).permutation(2 * 7 * 5 * 3).reshape(2, 7, 5, 3) / 10.0
    _check_gradients(make(), x, weights=False)


def test_average_pooling_same_divides_by_the_real_cells():
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    out = pooling.AveragePooling2D(2, 2, "same").forward(x)
    # windows: [[0 1] [3 4]] -> 2, [[2] [5]] -> 3.5, [[6 7]] -> 6.5, [[8]] -> 8
    np.testing.assert_array_equal(out.reshape(-1), [2.0, 3.5, 6.5, 8.0])


def test_global_max_pooling_shares_tied_gradients():
    x = np.array([[[[1.0], [3.0]], [[3.0], [3.0]]]])  # three maxima
    layer = pooling.GlobalMaxPooling2D()
    np.testing.assert_array_equal(layer.forward(x), [[3.0]])
    np.testing.assert_allclose(layer.backward(np.array([[6.0]]))[0, :, :, 0],
                               [[0.0, 2.0], [2.0, 2.0]], rtol=RTOL64)


def test_max_pooling_same_never_picks_the_padding():
    x = -np.ones((1, 3, 3, 1))
    layer = pooling.MaxPooling2D(2, 2, "same")
    np.testing.assert_array_equal(layer.forward(x), -np.ones((1, 2, 2, 1)))
    assert layer.backward(np.ones((1, 2, 2, 1))).sum() == 4


def test_zero_padding_forms():
    assert conv.zero_padding(2) == ((2, 2), (2, 2))
    assert conv.zero_padding((1, 3)) == ((1, 1), (3, 3))
    assert conv.zero_padding(((0, 1), (2, 3))) == ((0, 1), (2, 3))
    for bad in (-1, (1, 2, 3), ((1, 2), (3,)), "same"):
        with pytest.raises(ValueError, match="padding must be"):
            conv.zero_padding(bad)


def test_layers_refuse_bad_arguments_by_name():
    with pytest.raises(ValueError, match=r"kernel of shape \(kh, kw, C, F\)"):
        conv.Conv2D(np.zeros((3, 3, 2)))
    with pytest.raises(ValueError, match=r"W of shape \(FN, C, FH, FW\) and b of shape \(FN,\)"):
        conv.Convolution(np.zeros((2, 1, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="padding must be one of"):
        conv.Conv2D(np.zeros((3, 3, 1, 1)), padding="full")
    with pytest.raises(ValueError, match="strides must be"):
        pooling.MaxPooling2D(2, 0)
    with pytest.raises(ValueError, match=r"expects images \(N, H, W, 2\)"):
        conv.Conv2D(np.zeros((3, 3, 2, 1))).forward(np.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match=r"expects images \(N, 2, H, W\)"):
        conv.Convolution(np.zeros((1, 2, 3, 3))).forward(np.zeros((1, 5, 5, 2)))


# --- saving -----------------------------------------------------------------------


def test_every_layer_is_rebuilt_from_its_config():
    rng = np.random.default_rng(12)
    kernel = rng.normal(size=(3, 3, 2, 4))
    layers = [conv.Conv2D(kernel, np.zeros(4), (2, 1), "same", 1, "elu"),
              conv.Convolution(rng.normal(size=(2, 3, 2, 2)), np.ones(2), 2, 1),
              pooling.Pooling(2, 3, 2, 1), pooling.MaxPooling2D(3, 2, "same"),
              pooling.AveragePooling2D((1, 2)), pooling.GlobalAveragePooling2D(True),
              pooling.GlobalMaxPooling2D(), conv.ZeroPadding2D((1, 2))]
    for layer in layers:
        config = json.loads(json.dumps(layer.get_config()))  # as a saved file holds it
        cls = network.layer_class(L.class_key(type(layer)))
        rebuilt = cls.from_config(config, layer.params, layer.state)
        assert json.dumps(rebuilt.get_config()) == json.dumps(layer.get_config())
        x = rng.normal(size=(2, 3, 6, 5) if isinstance(layer, (conv.Convolution, pooling.Pooling))
                       else (2, 6, 5, 2))
        np.testing.assert_array_equal(rebuilt.forward(x), layer.forward(x))
