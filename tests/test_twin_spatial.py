"""The twins of Keras's pooling, resampling and reshaping layers against Keras.

Each case is the layer on the model's input, then Flatten and a Dense head under a mean
squared error: output, loss, the input gradient and the head's weight gradients must agree
(``keras_twins.assert_agree``).

Tolerances (differences scaled by max(1, max|value|)):
- float64 1e-12: the layers move values or average a few of them; both sides differ only
  in the order of a few additions (window sums, overlapping gradients), a few ulps.
  The bilinear resize computes in float32 on both sides (TensorFlow's kernel does, for
  any input dtype) with the same operations in the same order, so it agrees exactly.
- float32 1e-5: the same reorderings at float32's eps, through the Dense head.
TensorFlow has no float64 MaxPool3D/AvgPool3D: the 3-D pools are checked in float32.
"""

import keras
import numpy as np
import pytest

from keras_twins import F32, F64, assert_agree, mse, twin_of
from numpy_ref.network import serialization
from tfmodels.parity import registry

TOL = {F64: 1e-12, F32: 1e-5}
LAYERS = keras.layers
CF = "channels_first"


def model_around(layer, shape, dtype):
    inputs = keras.Input(shape, dtype=dtype)
    h = layer(inputs)
    if len(h.shape) > 2:
        h = LAYERS.Flatten(dtype=dtype)(h)
    return keras.Model(inputs, LAYERS.Dense(3, dtype=dtype, name="head")(h))


def check(make, shape, dtype, seed=0, integers=False):
    keras.utils.set_random_seed(seed)
    model = model_around(make(dtype), shape, dtype)
    net = twin_of(model, mse(dtype))
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 3, (2, *shape)) if integers else rng.normal(size=(2, *shape)))
    x = x.astype(dtype)
    y = rng.normal(size=(2, 3)).astype(dtype)
    return assert_agree(model, x, y, mse(dtype), TOL[dtype], net=net), net, x


def case(id_, make, shape, dtypes=(F64, F32), integers=False):
    """One param per dtype; where float64 is checked too, the float32 repeat (the same
    code at another rounding) is in the slow tier."""
    return [pytest.param(make, shape, dtype, integers, id=f"{id_}-{dtype}",
                         marks=[pytest.mark.slow] if dtype == F32 and F64 in dtypes else [])
            for dtype in dtypes]


def L_(cls, *args, **kwargs):
    return lambda dtype: cls(*args, dtype=dtype, **kwargs)


CASES = [
    *case("max1d", L_(LAYERS.MaxPooling1D, 3, 2, "same"), (9, 2), integers=True),
    *case("avg1d-same", L_(LAYERS.AveragePooling1D, 2, 1, "same"), (7, 3)),
    *case("avg1d-cf", L_(LAYERS.AveragePooling1D, 2, data_format=CF), (3, 8), (F64,)),
    *case("max2d-cf", L_(LAYERS.MaxPooling2D, 2, 1, "same", data_format=CF), (2, 5, 4),
          integers=True),
    *case("avg2d-cf", L_(LAYERS.AveragePooling2D, 3, 2, "same", data_format=CF), (2, 7, 6)),
    *case("max3d", L_(LAYERS.MaxPooling3D, 2, 1, "same"), (4, 3, 4, 2), (F32,), integers=True),
    *case("max3d-cf", L_(LAYERS.MaxPooling3D, (2, 1, 2), data_format=CF), (2, 4, 3, 4), (F32,)),
    *case("avg3d", L_(LAYERS.AveragePooling3D, 2, 2, "same"), (3, 5, 4, 2), (F32,)),
    *case("gavg1d", L_(LAYERS.GlobalAveragePooling1D), (5, 3)),
    *case("gmax1d-cf-keep", L_(LAYERS.GlobalMaxPooling1D, data_format=CF, keepdims=True),
          (3, 5), integers=True),
    *case("gavg2d-cf-keep", L_(LAYERS.GlobalAveragePooling2D, data_format=CF, keepdims=True),
          (2, 4, 3)),
    *case("gmax2d-cf", L_(LAYERS.GlobalMaxPooling2D, data_format=CF), (2, 4, 3), integers=True),
    *case("gavg3d-keep", L_(LAYERS.GlobalAveragePooling3D, keepdims=True), (2, 3, 4, 2)),
    *case("gmax3d", L_(LAYERS.GlobalMaxPooling3D), (2, 3, 4, 2), integers=True),
    *case("adavg1d", L_(LAYERS.AdaptiveAveragePooling1D, 4), (10, 2)),
    *case("admax1d", L_(LAYERS.AdaptiveMaxPooling1D, 3), (8, 2), integers=True),
    *case("adavg2d-cf", L_(LAYERS.AdaptiveAveragePooling2D, (3, 2), data_format=CF),
          (2, 7, 5)),
    *case("admax2d", L_(LAYERS.AdaptiveMaxPooling2D, (3, 4)), (5, 7, 2), integers=True),
    *case("admax2d-up", L_(LAYERS.AdaptiveMaxPooling2D, (5, 3)), (3, 2, 2)),  # out > in
    *case("adavg3d", L_(LAYERS.AdaptiveAveragePooling3D, (2, 3, 2)), (4, 5, 3, 2), (F32,)),
    *case("admax3d", L_(LAYERS.AdaptiveMaxPooling3D, 2), (3, 5, 4, 2), (F32,),
          integers=True),
    *case("crop1d", L_(LAYERS.Cropping1D, (1, 2)), (6, 2)),
    *case("crop2d-cf", L_(LAYERS.Cropping2D, ((1, 0), (2, 1)), data_format=CF), (2, 5, 6)),
    *case("crop3d", L_(LAYERS.Cropping3D, ((0, 1), (1, 1), (2, 0))), (3, 4, 5, 2), (F64,)),
    *case("pad1d", L_(LAYERS.ZeroPadding1D, (2, 1)), (4, 2), (F64,)),
    *case("pad2d-cf", L_(LAYERS.ZeroPadding2D, ((1, 0), (2, 1)), data_format=CF), (2, 3, 4)),
    *case("pad3d-cf", L_(LAYERS.ZeroPadding3D, (1, 0, 2), data_format=CF), (2, 2, 3, 2),
          (F64,)),
    *case("up1d", L_(LAYERS.UpSampling1D, 3), (4, 2), (F64,)),
    *case("up2d-cf", L_(LAYERS.UpSampling2D, (2, 3), data_format=CF), (2, 3, 2)),
    *case("up2d-bilinear", L_(LAYERS.UpSampling2D, (2, 3), interpolation="bilinear"),
          (3, 4, 2)),
    *case("up2d-bilinear-cf", L_(LAYERS.UpSampling2D, 3, interpolation="bilinear",
                                 data_format=CF), (3, 4, 3), (F64,)),
    *case("up3d", L_(LAYERS.UpSampling3D, (1, 2, 2)), (2, 3, 2, 2), (F64,)),
    *case("permute", L_(LAYERS.Permute, (3, 1, 2)), (2, 3, 4)),
    *case("repeat", L_(LAYERS.RepeatVector, 3), (4,)),
    *case("resizing", L_(LAYERS.Resizing, 5, 7), (4, 3, 3)),
    *case("resizing-down-cf", L_(LAYERS.Resizing, 3, 2, data_format=CF), (2, 7, 5), (F64,)),
    *case("resizing-nearest", L_(LAYERS.Resizing, 6, 4, interpolation="nearest"), (4, 3, 2)),
    *case("resizing-crop", L_(LAYERS.Resizing, 4, 4, crop_to_aspect_ratio=True), (5, 8, 2)),
    *case("resizing-pad", L_(LAYERS.Resizing, 4, 4, pad_to_aspect_ratio=True,
                             fill_value=0.5), (3, 8, 2), (F64,)),
    *case("centercrop", L_(LAYERS.CenterCrop, 3, 4), (6, 7, 2)),
    *case("centercrop-small", L_(LAYERS.CenterCrop, 5, 4), (3, 7, 2)),  # resized
]


@pytest.mark.parametrize("make, shape, dtype, integers", CASES)
def test_layer_agrees_with_keras(make, shape, dtype, integers):
    check(make, shape, dtype, integers=integers)


def test_saved_twins_come_back(tmp_path):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 8, 2), dtype=F64)
    h = LAYERS.ZeroPadding2D(((1, 0), (0, 1)), data_format=CF, dtype=F64)(inputs)
    h = LAYERS.Cropping2D((1, 2), dtype=F64)(h)
    h = LAYERS.UpSampling2D(2, interpolation="bilinear", dtype=F64)(h)
    h = LAYERS.AdaptiveMaxPooling2D((3, 2), dtype=F64)(h)
    h = LAYERS.MaxPooling2D(2, 1, data_format=CF, dtype=F64)(h)
    h = LAYERS.Resizing(4, 3, crop_to_aspect_ratio=True, dtype=F64)(h)
    h = LAYERS.GlobalAveragePooling2D(keepdims=True, data_format=CF, dtype=F64)(h)
    h = LAYERS.Reshape((-1,), dtype=F64)(h)
    h = LAYERS.RepeatVector(2, dtype=F64)(h)
    h = LAYERS.Permute((2, 1), dtype=F64)(h)
    h = LAYERS.AveragePooling1D(1, dtype=F64)(h)
    h = LAYERS.Flatten(dtype=F64)(h)
    model = keras.Model(inputs, LAYERS.Dense(2, dtype=F64)(h))
    net = twin_of(model, mse(F64))
    x = np.random.default_rng(3).normal(size=(2, 6, 8, 2))
    assert_agree(model, x, np.ones((2, 2)), mse(F64), TOL[F64], net=net)
    serialization.save_npz(net, tmp_path / "spatial.npz")
    loaded, _ = serialization.load_npz(tmp_path / "spatial.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))


def test_3d_max_pool_gives_every_near_maximum_the_whole_gradient():
    """TF's MaxPool3DGrad: |x - max| < 1e-5 gets dout, ties are not shared."""
    import tensorflow as tf
    x = np.zeros((1, 2, 2, 2, 1), F32)
    x[0, 0, 0, 0], x[0, 1, 1, 1], x[0, 0, 1, 0] = 1, 1, 1 - 1e-6
    layer = LAYERS.MaxPooling3D(2, dtype=F32)
    twin = registry.builder_for(layer)(layer)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = layer(xt)
    keras_dx = tape.gradient(y, xt, output_gradients=tf.constant([[[[[3.0]]]]])).numpy()
    twin.forward(x)
    dx = twin.backward(np.full((1, 1, 1, 1, 1), 3, F32))
    np.testing.assert_array_equal(dx, keras_dx)
    assert dx.sum() == 9


@pytest.mark.parametrize("layer, option", [
    (lambda: LAYERS.UpSampling2D(2, interpolation="bicubic"), "interpolation='bicubic'"),
    (lambda: LAYERS.Resizing(4, 4, interpolation="lanczos3"), "interpolation='lanczos3'"),
    (lambda: LAYERS.Resizing(4, 4, interpolation="area"), "interpolation='area'"),
    (lambda: LAYERS.Resizing(4, 4, antialias=True), "antialias=True"),
], ids=["bicubic", "lanczos3", "area", "antialias"])
def test_options_without_a_twin_are_refused_by_name(layer, option):
    keras_layer = layer()
    keras_layer.build((None, 8, 8, 3))
    with pytest.raises(ValueError, match=f"{keras_layer.name!r}.*has {option}.*no NumPy twin"):
        registry.builder_for(keras_layer)(keras_layer)


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("size, method", [((7, 9), "bilinear"), ((3, 2), "bilinear"),
                                          ((5, 5), "bilinear"), ((7, 3), "nearest")])
def test_resize_is_tensorflows_to_the_bit(size, method, dtype):
    """Forward and gradient bit for bit: the float32 arithmetic in TF's order, and the
    gradient's float32 products added up in the input's dtype."""
    import tensorflow as tf
    from numpy_ref.layers import resampling
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 5, 4, 3)).astype(dtype)
    twin = resampling.Resize(*size, method)
    out = twin.forward(x)
    dout = rng.normal(size=out.shape).astype(out.dtype)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.image.resize(xt, size, method=method)
    keras_dx = tape.gradient(y, xt, output_gradients=tf.constant(dout)).numpy()
    assert out.dtype == y.dtype.as_numpy_dtype
    np.testing.assert_array_equal(out, y.numpy())
    np.testing.assert_array_equal(twin.backward(dout), keras_dx)
