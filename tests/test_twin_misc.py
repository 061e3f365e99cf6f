"""The twins of ``Dot``, ``Discretization``, ``CategoryEncoding``, ``SpectralNormalization``,
``AutoContrast``, ``Equalization`` and ``MaxNumBoundingBoxes``, a ``Pipeline`` traced
through, and the refusals of the layers left without a twin.

Each model holds the layer under test on the model's input(s), then a ``Dense`` head,
under a mean squared error; both sides run one batch in inference and in training mode
and must agree on the output, the loss, the gradients with respect to the inputs and
every weight, and the non-trainable state after the pass (``keras_twins``).
The encoding layers pass no gradient to their input (Keras's is None; the twin's is
zeros): their models are checked on the output, the loss and the weight gradients.

Tolerances (differences scaled by the values' size, ``keras_twins.scaled``):
- float64, 1e-12: the same IEEE operations up to summation order (the matrix products,
  the min/max sums, the power iteration's norms): a few ulps; measured <= 1.1e-15.
  A wrong formula (a missed tie, a gradient through sigma) is off by far more.
- float32, 2e-6: the same at float32's eps = 1.2e-7; measured <= 2.7e-7.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import F32, F64, assert_agree, mse, scaled, targets_like, twin_of
from numpy_ref.network import serialization
from tfmodels import parity
from tfmodels.parity import registry

L = keras.layers
TOL = {F64: 1e-12, F32: 2e-6}


def head_model(make, shapes, dtype, input_dtypes=None):
    """make(inputs) -> tensor, then Flatten (above rank 2) and a Dense(3) head."""
    inputs = [keras.Input(shape, dtype=(input_dtypes or [dtype] * len(shapes))[i])
              for i, shape in enumerate(shapes)]
    h = make(inputs if len(inputs) > 1 else inputs[0])
    if len(h.shape) > 2:
        h = L.Flatten(dtype=dtype)(h)
    return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                       L.Dense(3, dtype=dtype, name="head")(h))


class Around(keras.Model):
    """layer, Flatten, Dense(3) as a subclassed model: a functional model leaves
    ``Equalization`` out (its ``compute_output_spec`` returns its input tensor itself)."""

    def __init__(self, layer, dtype):
        super().__init__(dtype=dtype)
        self.inner, self.flatten = layer, L.Flatten(dtype=dtype)
        self.head = L.Dense(3, dtype=dtype, name="head")

    def call(self, x):
        return self.head(self.flatten(self.inner(x)))


def agree_in_both_modes(model, xs, dtype, seed=0):
    """The twin against Keras in inference, then in training (a fresh twin each time: a
    training pass changes SpectralNormalization's kernel on both sides)."""
    rng = np.random.default_rng(seed)
    x = xs if len(xs) > 1 else xs[0]
    found = {}
    for training in (False, True):
        net = twin_of(model, mse(dtype), x)
        found[training] = assert_agree(model, x, targets_like(net, x, rng), mse(dtype),
                                       TOL[dtype], net=net, training=training)
    return found


def normal(shape, dtype, seed=1, scale=2.0):
    return np.random.default_rng(seed).normal(0, scale, shape).astype(dtype)


# --- Dot --------------------------------------------------------------------------------

DOTS = [  # (axes, normalize, input shapes)
    (1, False, [(5,), (5,)]),
    ((2, 1), True, [(3, 4), (4, 2)]),
    ((1, 2), False, [(4, 3, 2), (5, 4)]),
    (-1, True, [(3, 4), (2, 4)]),
]


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("axes, normalize, shapes", DOTS, ids=lambda v: str(v))
def test_dot(axes, normalize, shapes, dtype):
    keras.utils.set_random_seed(0)
    model = head_model(lambda xs: L.Dot(axes, normalize=normalize, dtype=dtype)(xs), shapes,
                       dtype)
    agree_in_both_modes(model, [normal((4, *s), dtype, seed=i) for i, s in enumerate(shapes)],
                        dtype)


def test_dot_output_shapes_match_keras_batch_dot():
    """Both (N, K) inputs give (N, 1), as Keras's batch_dot returns."""
    from numpy_ref.layers.dot import Dot
    x, y = normal((2, 4), F64), normal((2, 4), F64, seed=2)
    out = Dot(1).forward([x, y])
    np.testing.assert_allclose(out, L.Dot(1, dtype=F64)([x, y]).numpy(), rtol=1e-15)
    assert out.shape == (2, 1)


# --- SpectralNormalization ---------------------------------------------------------------

SPECTRAL = {
    "dense": (lambda d: L.Dense(4, activation="tanh", dtype=d), (5,), 2),
    "conv2d": (lambda d: L.Conv2D(3, 2, dtype=d), (5, 5, 2), 1),
}


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("name", SPECTRAL)
def test_spectral_normalization(name, dtype):
    """Training normalises the kernel and moves vector_u (state compared); the weight
    gradients are the wrapped layer's at the normalised kernel."""
    keras.utils.set_random_seed(0)
    make, shape, iterations = SPECTRAL[name]
    model = head_model(lambda x: L.SpectralNormalization(make(dtype), iterations,
                                                         dtype=dtype)(x), [shape], dtype)
    found = agree_in_both_modes(model, [normal((3, *shape), dtype)], dtype)
    assert found[True]["state"] <= TOL[dtype]


def test_spectral_normalization_updates_the_kernel_as_keras_does():
    keras.utils.set_random_seed(0)
    layer = L.SpectralNormalization(L.Dense(4, dtype=F64), power_iterations=3, dtype=F64)
    model = head_model(layer, [(5,)], F64)
    net = parity.twin(model)
    x = normal((3, 5), F64)
    net.forward(x, training=True)
    model(x, training=True)
    for variable in (layer.layer.kernel, layer.vector_u):
        np.testing.assert_allclose(net.params.get(variable.path, net.state.get(variable.path)),
                                   variable.numpy(), rtol=0, atol=1e-14)
    assert abs(np.linalg.svd(layer.layer.kernel.numpy(), compute_uv=False)[0] - 1) < 0.2


def test_spectral_normalization_around_a_layer_without_twin_is_refused_by_name():
    class Scale(L.Layer):
        def build(self, shape):
            self.kernel = self.add_weight(shape=(shape[-1], 2))

        def call(self, x):
            return x @ self.kernel

        def compute_output_shape(self, shape):
            return (*shape[:-1], 2)

    layer = L.SpectralNormalization(Scale(name="scale"))
    model = head_model(layer, [(3,)], F32)
    with pytest.raises(ValueError, match=f"{layer.name!r}.*wraps 'scale' \\(Scale\\)"):
        parity.twin(model)


# --- image layers ------------------------------------------------------------------------

IMAGE = (5, 4, 2)


def images(value_range, seed=3, n=3):
    lo, hi = value_range
    return np.random.default_rng(seed).uniform(lo, hi, (n, *IMAGE))


IMAGE_CASES = {
    "autocontrast": (lambda d: L.AutoContrast(dtype=d), (0, 255)),
    "autocontrast-0-1": (lambda d: L.AutoContrast(value_range=(0, 1), dtype=d), (0, 1)),
    "equalization": (lambda d: L.Equalization(dtype=d), (0, 255)),
    "equalization-bins": (lambda d: L.Equalization(value_range=(-1, 1), bins=16, dtype=d),
                          (-1, 1)),
    "maxnumboundingboxes": (lambda d: L.MaxNumBoundingBoxes(3, dtype=d), (0, 1)),
}


@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("name", IMAGE_CASES)
def test_image_layers(name, dtype):
    keras.utils.set_random_seed(0)
    make, value_range = IMAGE_CASES[name]
    layer = make(dtype)
    model = Around(layer, dtype)
    x = images(value_range).astype(dtype)
    model(x)
    agree_in_both_modes(model, [x], dtype)
    assert twin_of(model, mse(dtype), x).nodes[0].name == layer.name  # the layer is in it
    if name.startswith("equalization"):  # the training pass did change the images
        assert not np.allclose(layer(x, training=True).numpy(), x)


def test_equalization_channels_first_and_a_constant_channel():
    """A channel with one histogram bin passes through (and passes its gradient)."""
    keras.utils.set_random_seed(0)
    model = Around(L.Equalization(data_format="channels_first", dtype=F64), F64)
    x = images((0, 255)).reshape(3, 2, 4, 5)
    x[:, 1] = 7.0
    model(x)
    found = agree_in_both_modes(model, [x], F64)
    assert found[True]["input_grads"] <= TOL[F64]


def test_autocontrast_constant_channel_and_ties():
    """A constant channel returns the input (Keras's NaN check); its gradient is NaN in
    TensorFlow and in the twin alike. Ties at the min and max share their gradient."""
    keras.utils.set_random_seed(0)
    model = head_model(L.AutoContrast(dtype=F64), [IMAGE], F64)
    x = np.round(images((0, 255)) / 64) * 64  # few distinct values: many ties
    agree_in_both_modes(model, [x], F64)
    x[0, :, :, 1] = 3.0
    net = twin_of(model, mse(F64))
    y = targets_like(net, x, np.random.default_rng(0))
    np.testing.assert_allclose(net.predict(x), model(x).numpy(), rtol=1e-13)
    net.loss_and_gradient(x, y, training=False)
    with tf.GradientTape() as tape:
        t = tf.constant(x)
        tape.watch(t)
        loss = mse(F64)(y, model(t))
    keras_grad = tape.gradient(loss, t).numpy()
    np.testing.assert_array_equal(np.isnan(net.value_grads[net.inputs[0]]),
                                  np.isnan(keras_grad))
    assert np.isnan(keras_grad).any()


# --- encodings -----------------------------------------------------------------------------

def assert_encoding_agrees(model, x, dtype, training=False):
    """Output, loss and weight gradients as Keras's; the input's gradient zero (Keras's
    is None). (``parity.compare`` cannot judge a layer fed by integers only: Keras's tape
    does not record it, so its output gradient there reads None.)"""
    net = twin_of(model, mse(dtype))
    y = targets_like(net, x, np.random.default_rng(0))
    loss, grads = net.loss_and_gradient(x, y, training=training)
    with tf.GradientTape() as tape:
        t = tf.constant(x)
        tape.watch(t)
        output = model(t, training=training)
        keras_loss = mse(dtype)(y, output)
    *keras_grads, input_grad = tape.gradient(keras_loss, [*model.trainable_variables, t])
    assert input_grad is None
    assert not np.any(net.value_grads.get(net.inputs[0], 0))
    assert scaled(net.last_output, output.numpy()) <= TOL[dtype]
    assert scaled(loss, keras_loss.numpy()) <= TOL[dtype]
    for variable, g in zip(model.trainable_variables, keras_grads):
        assert scaled(grads[variable.path], g.numpy()) <= TOL[dtype], variable.path


BOUNDARIES = [-1.0, 0.1, 0.5, 2.0]


@pytest.mark.parametrize("mode", ["int", "one_hot", "multi_hot", "count"])
def test_discretization(mode):
    """"int" is followed by a CategoryEncoding (a Dense cannot read integers exactly)."""
    keras.utils.set_random_seed(0)

    def make(x):
        h = L.Discretization(BOUNDARIES, output_mode=mode, dtype=F32)(x)
        return L.CategoryEncoding(5, "count", dtype=F32)(h) if mode == "int" else h

    model = head_model(make, [(6,)], F32)
    x = normal((4, 6), F32)
    x[0, :4] = BOUNDARIES  # on a boundary: the bucket above it
    x[1, :2] = np.nextafter(np.float32(0.1), np.float32(0)), 0.1
    for training in (False, True):
        assert_encoding_agrees(model, x, F32, training)


def test_discretization_float64_compares_with_float32_boundaries():
    """TensorFlow's Bucketize holds the boundaries as float32: 0.1 in float64 is below
    float32(0.1), so it lands in the lower bucket, as in Keras."""
    keras.utils.set_random_seed(0)
    layer = L.Discretization([0.1, 0.5], dtype=F64)
    x = np.array([[0.1, 0.5, np.float32(0.1), 0.3]])
    twin = registry.builder_for(layer)(layer)
    np.testing.assert_array_equal(twin.forward(x), tf.raw_ops.Bucketize(
        input=tf.constant(x), boundaries=[0.1, 0.5]).numpy())
    np.testing.assert_array_equal(twin.forward(x), [[0, 2, 1, 1]])


def test_adapted_discretization():
    keras.utils.set_random_seed(0)
    layer = L.Discretization(num_bins=4, output_mode="one_hot", dtype=F32)
    layer.adapt(normal((50, 3), F32))
    model = head_model(layer, [(3,)], F32)
    assert_encoding_agrees(model, normal((5, 3), F32, seed=7), F32)


@pytest.mark.parametrize("mode, shape", [("one_hot", (1,)), ("one_hot", (3,)),
                                         ("multi_hot", (4,)), ("count", (4,)),
                                         ("one_hot", (2, 1))])
def test_category_encoding(mode, shape):
    keras.utils.set_random_seed(0)
    model = head_model(lambda x: L.CategoryEncoding(6, mode, dtype=F64)(x), [shape], F64,
                       input_dtypes=["int32"])
    x = np.random.default_rng(2).integers(0, 6, (4, *shape)).astype("int32")
    x.reshape(-1)[:2] = 5
    assert_encoding_agrees(model, x, F64)


def test_category_encoding_edge_indices_as_keras():
    """one_hot: an index >= num_tokens is a row of zeros; multi_hot drops it; a negative
    index makes Keras's bincount fail, and the twin too."""
    for mode in ("one_hot", "multi_hot", "count"):
        layer = L.CategoryEncoding(4, mode)
        twin = registry.builder_for(layer)(layer)
        x = np.array([[0, 1, 1, 5]])
        np.testing.assert_array_equal(twin.forward([x]), layer(x).numpy())
    with pytest.raises(ValueError, match="non-negative"):
        twin.forward([np.array([[0, -1]])])


def test_category_encoding_count_weights_is_refused():
    layer = L.CategoryEncoding(4, "count")
    twin = registry.builder_for(layer)(layer)
    with pytest.raises(ValueError, match="count_weights has no NumPy twin"):
        twin.forward([np.array([[0, 1]]), np.array([[0.5, 2.0]])])


@pytest.mark.parametrize("layer", [L.Discretization([0.0], output_mode="one_hot", sparse=True),
                                   L.CategoryEncoding(3, "multi_hot", sparse=True)],
                         ids=["discretization", "category_encoding"])
def test_sparse_outputs_are_refused_by_name(layer):
    with pytest.raises(ValueError, match=f"{layer.name!r}.*sparse=True.*no NumPy twin"):
        registry.builder_for(layer)(layer)


# --- Pipeline, refusals, saving ------------------------------------------------------------

def test_pipeline_is_traced_through():
    keras.utils.set_random_seed(0)
    pipeline = L.Pipeline([L.Dense(4, dtype=F64), L.Dropout(0.5), L.ReLU(dtype=F64)])
    model = head_model(pipeline, [(3,)], F64)
    assert_agree(model, normal((4, 3), F64), normal((4, 3), F64, seed=5), mse(F64),
                 TOL[F64], training=False)
    x = normal((4, 3), F64)
    report = parity.compare(model, x, normal((4, 3), F64), mse(F64), training=True,
                            sensitivity=False)
    assert report.ok, str(report)  # the dropout mask Keras drew, inside the pipeline


@pytest.mark.parametrize("make, shape", [
    (lambda: L.ContrastLimitedAdaptiveHistogramEqualization(dtype=F32), (8, 8, 3)),
    (lambda: L.MelSpectrogram(fft_length=16, sequence_stride=4, sequence_length=16,
                              num_mel_bins=8, dtype=F32), (64,)),
    (lambda: L.STFTSpectrogram(frame_length=16, frame_step=4, dtype=F32), (64, 1)),
], ids=["clahe", "mel", "stft"])
def test_layers_without_twin_are_refused_by_name(make, shape):
    layer = make()
    model = head_model(layer, [shape], F32)
    with pytest.raises(ValueError, match=f"Keras layer {layer.name!r} .*no NumPy twin"):
        parity.twin(model)


class Mixed(keras.Model):
    """Every twin of this file's layers in one model, for the saving test."""

    def __init__(self):
        super().__init__(dtype=F64)
        self.spectral = L.SpectralNormalization(L.Dense(4, dtype=F64), dtype=F64)
        self.dot = L.Dot(axes=1, normalize=True, dtype=F64)
        self.images = [L.AutoContrast(dtype=F64), L.Equalization(dtype=F64),
                       L.MaxNumBoundingBoxes(2, dtype=F64), L.Flatten(dtype=F64)]
        self.codes = [L.Dense(2, dtype=F64), L.Discretization([0.0, 100.0], dtype=F64),
                      L.CategoryEncoding(3, "count", dtype=F64)]
        self.concatenate = L.Concatenate(dtype=F64)
        self.head = L.Dense(2, dtype=F64)

    def call(self, inputs):
        a, b = inputs
        h = self.dot([self.spectral(a), a])
        for layer in self.images:
            b = layer(b)
        c = b
        for layer in self.codes:
            c = layer(c)
        return self.head(self.concatenate([h, b, c]))


def test_twins_survive_saving(tmp_path):
    keras.utils.set_random_seed(0)
    model = Mixed()
    x = [normal((3, 4), F64), np.random.default_rng(4).uniform(0, 255, (3, 4, 4, 2))]
    model(x)
    net = parity.twin(model, x=x)
    net.forward(x, training=True)  # moves the kernel and vector_u; both are saved
    serialization.save_npz(net, tmp_path / "misc.npz")
    loaded, _ = serialization.load_npz(tmp_path / "misc.npz")
    ours = {"SpectralNormalization", "Dot", "AutoContrast", "Equalization", "Discretization",
            "CategoryEncoding"}
    assert ours <= {type(node.layer).__name__ for node in loaded.nodes}
    for training in (False, True):
        np.testing.assert_array_equal(loaded.predict(x, training=training),
                                      net.predict(x, training=training))
