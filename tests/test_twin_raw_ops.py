"""Custom layers that compute between their sublayers with plain tensor code, twinned.

A subclassed layer's ``call`` writes ``self.norm(x + self.attention(x))`` or
``self.position(ops.arange(0, T))``: TensorFlow operations, not Keras layers. The trace
records them (``trace.TFOperation``), folds values fixed when the model is traced into
constants of the twin (``numpy_ref.layers.tensor_ops.Constant``), and twins the
operations ``tfmodels.parity.tf_ops`` follows; the rest are refused by name.

Models here are the keras.io "Text classification with Transformer" classifier (its
TokenAndPositionEmbedding and TransformerBlock, in our own words), a custom layer that
applies every followed operation once, and small layers for the refusals.

Tolerances, scaled as keras_twins.scaled (by max(1, max|keras|)):
- float64, 1e-12: the same IEEE operations up to summation order (reductions, matrix
  products, the gradient of a broadcast operand); measured <= 2e-15.
- float32, 1e-5: the same at float32's eps 1.2e-7, and exp, log, tanh, sigmoid and
  rsqrt, which Eigen and NumPy each compute to within an ulp or two, feeding a Dense
  head; measured <= 6e-7.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops
from keras.src import backend

from keras_twins import assert_agree, mse, report_differences
from numpy_ref.layers import elementwise, tensor_ops
from numpy_ref.network import serialization
from tfmodels import parity
from tfmodels.parity import tf_ops, twins

L = keras.layers
F64, F32 = "float64", "float32"
TOL = {F64: 1e-12, F32: 1e-5}


# --- the keras.io Transformer text classifier -------------------------------------------


class TokenAndPosition(L.Layer):
    """Token embedding plus a learnt embedding of each position 0..T-1."""

    def __init__(self, length, vocabulary, width, dtype=F64, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.tokens = L.Embedding(vocabulary, width, dtype=dtype)
        self.positions = L.Embedding(length, width, dtype=dtype)

    def call(self, x):
        steps = ops.shape(x)[-1]  # a Python int: the length is static
        return self.tokens(x) + self.positions(ops.arange(0, steps, 1))


class TokenAndPositionTF(TokenAndPosition):
    """The same written with TensorFlow's own functions: ``tf.shape`` and ``tf.range``."""

    def call(self, x):
        return self.tokens(x) + self.positions(tf.range(tf.shape(x)[-1]))


class TransformerBlock(L.Layer):
    """Self-attention and a feed-forward net, each added to its input and normalised."""

    def __init__(self, width, heads, hidden, rate=0.1, dtype=F64, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.attention = L.MultiHeadAttention(heads, key_dim=width, dtype=dtype)
        self.feed_forward = keras.Sequential([L.Dense(hidden, activation="relu", dtype=dtype),
                                              L.Dense(width, dtype=dtype)])
        self.norm_1 = L.LayerNormalization(epsilon=1e-6, dtype=dtype)
        self.norm_2 = L.LayerNormalization(epsilon=1e-6, dtype=dtype)
        self.drop_1 = L.Dropout(rate, dtype=dtype)
        self.drop_2 = L.Dropout(rate, dtype=dtype)

    def call(self, x, training=None):
        attended = self.drop_1(self.attention(x, x), training=training)
        h = self.norm_1(x + attended)
        return self.norm_2(h + self.drop_2(self.feed_forward(h), training=training))


def text_classifier(embedding=TokenAndPosition, dtype=F64, length=10, vocabulary=40):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((length,), dtype="int32")
    h = embedding(length, vocabulary, 8, dtype=dtype, name="embed")(tokens)
    h = TransformerBlock(8, 2, 16, rate=0.3, dtype=dtype, name="block")(h)
    h = L.GlobalAveragePooling1D(dtype=dtype)(h)
    h = L.Dropout(0.3, dtype=dtype)(h)
    h = L.Dense(12, activation="relu", dtype=dtype)(h)
    out = L.Dense(2, activation="softmax", dtype=dtype)(h)
    model = keras.Model(tokens, out)
    x = np.random.default_rng(1).integers(0, vocabulary, (5, length)).astype("int32")
    return model, x, np.array([0, 1, 1, 0, 1])


def assert_report_agrees(report, tol):
    assert report.ok, str(report)
    scale = [max(1.0, abs(report.loss["keras"]))]
    worst = max(d.abs for d in report_differences(report))
    assert worst <= tol * max(scale), str(report)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
def test_the_transformer_text_classifier_agrees(training):
    """The residual adds and the positions ``arange(T)`` of the keras.io classifier; in
    training mode every dropout (the block's and the attention-free head's) replays
    Keras's draws."""
    model, x, y = text_classifier()
    report = parity.compare(model, x, y, training=training)
    assert_report_agrees(report, TOL[F64])
    rows = {row.name: row for row in report.rows}
    operations = [name for name, row in rows.items() if row.class_name == "TFOperation"]
    assert operations == ["embed/AddV2", "block/AddV2", "block/AddV2#2"]
    assert rows["block/AddV2"].backward is not None


def test_positions_written_with_tf_shape_and_tf_range_are_a_constant():
    """``tf.range(tf.shape(x)[-1])`` depends on the static length only: the twin holds it
    as a constant node, which passes no gradient back."""
    model, x, y = text_classifier(TokenAndPositionTF)
    built = twins.build(model, None, x, input_grad=True)
    (constant,) = [n for n in built.net.nodes if isinstance(n.layer, tensor_ops.Constant)]
    assert constant.name == "embed/constant_Range"
    np.testing.assert_array_equal(constant.layer.value, np.arange(10))
    assert constant.layer.value.dtype == np.int32
    assert_report_agrees(parity.compare(model, x, y, sensitivity=False), TOL[F64])


def test_a_saved_twin_with_operations_and_constants_round_trips(tmp_path):
    model, x, y = text_classifier()
    net = parity.twin(model)
    serialization.save_npz(net, tmp_path / "twin.npz")
    loaded, _ = serialization.load_npz(tmp_path / "twin.npz")
    kinds = {type(node.layer).__name__ for node in loaded.nodes}
    assert {"Constant", "OpAdd"} <= kinds
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    loss, grads = net.loss_and_gradient(x, y, training=False)
    loaded_loss, loaded_grads = loaded.loss_and_gradient(x, y, training=False)
    assert loaded_loss == loss
    for name, grad in grads.items():
        np.testing.assert_array_equal(loaded_grads[name], grad)


# --- every operation followed, through one custom layer ----------------------------------


def every_operation(a, b):
    """Each operation ``tf_ops`` follows, once, on two (N, 3, 4) values; several broadcast
    (a (4,) constant, a (N, 1, 4) sum) so their gradients are summed back."""
    dtype = a.dtype.name
    c = np.linspace(-1.0, 1.0, 4).astype(dtype)
    w = np.random.default_rng(7).normal(size=(5, 4)).astype(dtype)
    h = tf.math.add(a, b) - b * 0.5  # AddV2, Sub, Mul
    h = -(h / (ops.square(b) + 1.0))  # Neg, RealDiv, Square
    h = tf.maximum(h, tf.reduce_sum(b, axis=1, keepdims=True))  # Maximum, Sum
    h = ops.minimum(h, c)  # Minimum
    s = ops.sqrt(ops.square(a) + 1.0) * ops.rsqrt(ops.square(b) + 1.0)  # Sqrt, Rsqrt
    e = ops.exp(ops.tanh(a)) + ops.log(ops.sigmoid(b))  # Exp, Tanh, Log, Sigmoid
    r = ops.relu(h) + ops.softmax(s) + e * ops.mean(a, axis=-1, keepdims=True)  # Relu...
    r = tf.nn.bias_add(r, c)  # BiasAdd
    t = tf.nn.bias_add(ops.transpose(r, (0, 2, 1)), c, data_format="NCHW")  # Transpose
    products = tf.matmul(r, t)  # BatchMatMulV2: (N, 3, 3)
    flat = tf.matmul(ops.reshape(r, (-1, 4)), w, transpose_b=True)  # Reshape, MatMul
    kept = ops.squeeze(ops.expand_dims(r, 1), 1)  # ExpandDims, Squeeze
    sliced = r[:, ::-1][..., None][:, -3:, 1:3, 0] + r[:, 0, None, :2]  # StridedSlice
    return ops.concatenate([products, ops.reshape(flat, (-1, 3, 5)), kept, sliced], axis=-1)


FOLLOWED = sorted({*tf_ops.TWINS} - {"Add", "BatchMatMulV3"})  # tf's legacy forms


class Block(L.Layer):
    """Two Dense projections of the input, combined by ``function`` in plain code."""

    def __init__(self, function, dtype=F64, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.function = function
        self.project_a = L.Dense(4, dtype=dtype)
        self.project_b = L.Dense(4, dtype=dtype)

    def call(self, x):
        return self.function(self.project_a(x), self.project_b(x))


def block_model(function, dtype, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3, 5), dtype=dtype)
    h = L.Flatten(dtype=dtype)(Block(function, dtype=dtype)(inputs))
    return keras.Model(inputs, L.Dense(2, dtype=dtype)(h))


def batch(dtype, n=6):
    rng = np.random.default_rng(3)
    return rng.normal(size=(n, 3, 5)).astype(dtype), rng.normal(size=(n, 2)).astype(dtype)


@pytest.mark.parametrize("dtype", [F64, F32])
def test_every_followed_operation_agrees_in_one_custom_layer(dtype):
    model = block_model(every_operation, dtype)
    x, y = batch(dtype)
    assert_agree(model, x, y, mse(dtype), TOL[dtype], training=False)
    built = twins.build(model, mse(dtype), x)
    followed = {layer.type for layer, _ in built.layer_nodes
                if type(layer).__name__ == "TFOperation"}
    assert sorted(followed) == FOLLOWED


SINGLE = {
    "AddV2": lambda a, b: a + b, "Sub": lambda a, b: a - b, "Mul": lambda a, b: a * b,
    "RealDiv": lambda a, b: a / (b * b + 1.0), "Neg": lambda a, b: -a + b,
    "Maximum": lambda a, b: tf.maximum(a, b), "Minimum": lambda a, b: ops.minimum(a, b),
    "Square": lambda a, b: ops.square(a) + b, "Sqrt": lambda a, b: ops.sqrt(a * a + 1.0) + b,
    "Rsqrt": lambda a, b: ops.rsqrt(a * a + 1.0) + b, "Exp": lambda a, b: ops.exp(a) + b,
    "Log": lambda a, b: ops.log(a * a + 0.5) + b, "Tanh": lambda a, b: ops.tanh(a) + b,
    "Sigmoid": lambda a, b: ops.sigmoid(a) + b, "Relu": lambda a, b: ops.relu(a) + b,
    "Softmax": lambda a, b: ops.softmax(a) + b,
    "ConcatV2": lambda a, b: ops.concatenate([a, b], axis=1),
    "Reshape": lambda a, b: ops.reshape(a + b, (-1, 12)),
    "Transpose": lambda a, b: ops.transpose(a, (0, 2, 1)) + ops.transpose(b, (0, 2, 1)),
    "ExpandDims": lambda a, b: ops.expand_dims(a, 1) + ops.expand_dims(b, 1),
    "Squeeze": lambda a, b: ops.squeeze(ops.expand_dims(a, 2), 2) + b,
    "Mean": lambda a, b: ops.mean(a, axis=-1, keepdims=True) * b,
    "Sum": lambda a, b: ops.sum(a, axis=1) + ops.sum(b, axis=1),
    "BatchMatMulV2": lambda a, b: tf.matmul(a, b, transpose_a=True),
    "MatMul": lambda a, b: tf.matmul(ops.reshape(a + b, (-1, 12)), np.linspace(
        -1.0, 1.0, 36).reshape(12, 3).astype(a.dtype.name), transpose_b=False),
    "BiasAdd": lambda a, b: tf.nn.bias_add(a, np.arange(4.0).astype(a.dtype.name)) + b,
    "StridedSlice": lambda a, b: a[:, 1:, ::-2] * b[..., -1, None, :2],
}


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [F64, F32])
@pytest.mark.parametrize("op_type", sorted(SINGLE))
def test_each_followed_operation_alone(op_type, dtype):
    model = block_model(SINGLE[op_type], dtype)
    x, y = batch(dtype)
    assert_agree(model, x, y, mse(dtype), TOL[dtype], training=False)
    built = twins.build(model, mse(dtype), x)
    assert op_type in {layer.type for layer, _ in built.layer_nodes
                       if type(layer).__name__ == "TFOperation"}


class Residual(keras.Model):
    """A subclassed model computing between its layers: the root call's own operations."""

    def __init__(self, **kwargs):
        super().__init__(dtype=F64, **kwargs)
        self.hidden = L.Dense(6, activation="tanh", dtype=F64)
        self.out = L.Dense(3, activation="softmax", dtype=F64)

    def call(self, x):
        h = self.hidden(x)
        return self.out(tf.concat([h + 1.0, h * h], axis=-1) - ops.mean(x, axis=-1,
                                                                        keepdims=True))


def test_a_subclassed_models_own_operations_agree():
    keras.utils.set_random_seed(0)
    model = Residual()
    x = np.random.default_rng(2).normal(size=(4, 5))
    model(x)
    report = parity.compare(model, x, np.array([0, 2, 1, 0]), sensitivity=False)
    assert_report_agrees(report, TOL[F64])
    assert [row.name for row in report.rows if row.class_name == "TFOperation"] == [
        "residual/AddV2", "residual/Mul", "residual/ConcatV2", "residual/Mean", "residual/Sub"]


# --- the NumPy layers against TensorFlow's own gradients, broadcasting -------------------

BINARY = {elementwise.OpAdd: tf.add, elementwise.OpSubtract: tf.subtract,
          elementwise.OpMultiply: tf.multiply, elementwise.OpDivide: tf.divide,
          elementwise.OpMaximum: tf.maximum, elementwise.OpMinimum: tf.minimum}


def tf_side(function, inputs, dout):
    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        y = function(*tensors)
    return y.numpy(), [g.numpy() for g in tape.gradient(y, tensors, output_gradients=dout)]


@pytest.mark.parametrize("twin_class", list(BINARY), ids=lambda c: c.__name__)
def test_binary_operations_sum_a_broadcast_operands_gradient_back(twin_class):
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(2, 1, 4)), rng.normal(size=(3, 1))
    b[0, 0] = a[0, 0, 0]  # a tie: maximum's and minimum's gradient goes to a
    dout = rng.normal(size=(2, 3, 4))
    y, grads = tf_side(BINARY[twin_class], [a, b], dout)
    twin = twin_class(F64)
    np.testing.assert_allclose(twin.forward([a, b]), y, rtol=0, atol=1e-15)
    for got, want in zip(twin.backward(dout), grads):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("transpose_a, transpose_b", [(False, False), (False, True),
                                                      (True, False), (True, True)])
def test_a_batched_matmul_broadcasts_its_batch_axes_as_tensorflow(transpose_a, transpose_b):
    rng = np.random.default_rng(5)
    a = rng.normal(size=(2, 1, 4, 3) if transpose_a else (2, 1, 3, 4))
    b = rng.normal(size=(5, 2, 4) if transpose_b else (5, 4, 2))
    dout = rng.normal(size=(2, 5, 3, 2))
    y, grads = tf_side(lambda p, q: tf.matmul(p, q, transpose_a=transpose_a,
                                              transpose_b=transpose_b), [a, b], dout)
    twin = tensor_ops.OpMatMul(transpose_a, transpose_b)
    np.testing.assert_allclose(twin.forward([a, b]), y, rtol=1e-14, atol=1e-14)
    for got, want in zip(twin.backward(dout), grads):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


# --- Keras masks ------------------------------------------------------------------------


class Rescaled(L.Layer):
    """x * 2 + dense(x): a layer that passes its input's Keras mask on."""

    def __init__(self, dtype=F64, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.dense = L.Dense(4, dtype=dtype)
        self.supports_masking = True

    def call(self, x):
        return x * 2.0 + self.dense(x)


def test_an_operations_result_carries_no_keras_mask_and_a_layer_passes_its_own_on():
    t = tf.constant(np.ones((2, 3)))
    backend.set_keras_mask(t, tf.constant([[True, True, False]] * 2))
    assert backend.get_keras_mask(t) is not None and backend.get_keras_mask(t * 2.0) is None
    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32")
    h = L.Embedding(20, 4, mask_zero=True, dtype=F64)(tokens)
    h = L.LSTM(3, dtype=F64)(Rescaled()(h))  # the LSTM skips the padded steps
    model = keras.Model(tokens, L.Dense(2, dtype=F64)(h))
    x = np.random.default_rng(0).integers(1, 20, (3, 6)).astype("int32")
    x[0, 3:], x[1, 5:] = 0, 0
    assert_report_agrees(parity.compare(model, x, np.array([0, 1, 1]), sensitivity=False),
                         TOL[F64])


# --- refusals ---------------------------------------------------------------------------


class Calls(L.Layer):
    """dense(x) passed through ``function`` (given the layer too)."""

    def __init__(self, function, dtype=F64, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.function = function
        self.dense = L.Dense(4, dtype=dtype)

    def call(self, x):
        return self.function(self, self.dense(x))


def refused(function):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3, 5), dtype=F64)
    layer = Calls(function, name="custom")
    model = keras.Model(inputs, L.Dense(2, dtype=F64, name="head")(
        L.Flatten(dtype=F64, name="flat")(layer(inputs))))
    with pytest.raises(ValueError) as error:
        parity.twin(model)
    return str(error.value)


def test_an_operation_without_a_twin_is_refused_naming_it_its_reader_and_the_layer():
    message = refused(lambda layer, h: tf.math.cumsum(h, axis=1))
    assert message.startswith(f"Keras layer 'custom' ({__name__}.Calls) applies the "
                              "TensorFlow operation 'Cumsum' in its call (its result feeds "
                              "layer 'flat'), which has no NumPy twin")
    assert "register a twin of Calls with tfmodels.parity.register_twin" in message
    assert "'Cumsum'" in refused(lambda layer, h: 2.0 * tf.math.cumsum(h, axis=1))


def test_reading_a_sublayers_weight_in_call_is_refused():
    message = refused(lambda layer, h: h * layer.dense.bias)
    assert "'ReadVariableOp'" in message and "reads a weight directly" in message


def test_a_shape_known_only_when_the_model_runs_is_refused():
    message = refused(lambda layer, h: tf.reshape(h, (tf.shape(h)[0], 12)))
    assert "'Reshape'" in message and "computed when the model runs" in message


def test_a_custom_layer_applying_no_layers_still_needs_a_registered_twin():
    """The twin looks into layers made of layers; a layer of plain code alone is the
    user's to twin (``register_twin``), as before."""

    class Cubed(L.Layer):
        def call(self, x):
            return x * x * x

    inputs = keras.Input((4,), dtype=F64)
    model = keras.Model(inputs, L.Dense(2, dtype=F64)(Cubed(dtype=F64)(inputs)))
    with pytest.raises(ValueError, match=r"\(.*Cubed\) has no NumPy twin"):
        parity.twin(model)
