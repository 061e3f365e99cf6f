"""The recurrent twins (SimpleRNN, LSTM, GRU, RNN of cells, stacked cells, Bidirectional,
TimeDistributed) compute what Keras computes.

Two ways of holding them against Keras:
- ``direct``: the Keras layer called eagerly (initial states, a mask, several outputs)
  under a GradientTape with a random upstream gradient per output, against its twin's
  forward and backward; this covers what a model-level twin cannot yet receive.
- ``parity.compare`` on a small model (layer -> Flatten -> Dense), in inference and in
  training mode, where the twin uses the dropout masks Keras drew.

Tolerances, relative to max(1, largest |value|):
- float64: both sides do the same operations per step (matmuls of D or U terms, the
  gate activations, products and sums) and sum the weight gradients over T steps in
  the same order up to BLAS blocking; measured <= 2e-15. 1e-13 fails any wrong gate,
  index, mask rule or factor.
- float32: the same reorderings cost ~6e-8 each and pass through T steps of the
  recurrence; measured <= 5e-7. 1e-5.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import recurrent_differences as direct, report_differences, scaled
from numpy_ref.layers import recurrent, recurrent_cells
from numpy_ref.network import serialization
from tfmodels import parity
from tfmodels.parity import registry

L = keras.layers
REL = {"float64": 1e-13, "float32": 1e-5}
N, T, D = 3, 5, 4
MASK = np.array([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)  # masked first step too


def built(layer, dtype="float64", seed=0):
    """``layer`` built on (None, T, D) with weights drawn at scale 0.5 (biases too, so a
    wrong bias row shows)."""
    layer(keras.Input((T, D), dtype=dtype))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(size=w.shape) * 0.5)
    return layer


def states(*units, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(N, u)) for u in units]


def sequence(dtype="float64", seed=2):
    return np.random.default_rng(seed).normal(size=(N, T, D)).astype(dtype)


# --- SimpleRNN, LSTM, GRU, called directly ----------------------------------------------

LAYERS = {
    "simple_rnn": (lambda **k: L.SimpleRNN(6, **k), 1),
    "lstm": (lambda **k: L.LSTM(6, **k), 2),
    "gru": (lambda **k: L.GRU(6, **k), 1),
    "gru-reset-before": (lambda **k: L.GRU(6, reset_after=False, **k), 1),
}
OPTIONS = {
    "last": {},
    "sequences-backwards": dict(return_sequences=True, go_backwards=True),
    "state-unroll": dict(return_state=True, unroll=True),
    "all-zero-output": dict(return_sequences=True, return_state=True, go_backwards=True,
                            zero_output_for_mask=True, use_bias=False),
}


@pytest.mark.parametrize("options", sorted(OPTIONS))
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_recurrent_layer_with_initial_state_and_mask(kind, options):
    make, count = LAYERS[kind]
    layer = built(make(dtype="float64", **OPTIONS[options]))
    x = sequence()
    for xs, mask in (([x], None), ([x, *states(*[6] * count)], MASK)):
        worst, _ = direct(layer, xs, mask)
        assert worst <= REL["float64"], (xs.__len__(), mask is not None, worst)


def test_rnn_of_a_cell_and_stacked_cells():
    cell = L.RNN(L.SimpleRNNCell(5, activation="relu", dtype="float64"),
                 return_sequences=True, dtype="float64")
    assert direct(built(cell), [sequence()], MASK)[0] <= REL["float64"]
    stack = built(L.RNN(L.StackedRNNCells([
        L.LSTMCell(5, dtype="float64"), L.GRUCell(3, reset_after=False, dtype="float64"),
        L.SimpleRNNCell(2, dtype="float64")], dtype="float64"),
        return_sequences=True, return_state=True, dtype="float64"))
    worst, twin = direct(stack, [sequence(), *states(5, 5, 3, 2)], MASK,
                         nest=lambda s: [s[:2], s[2], s[3]])
    assert worst <= REL["float64"]
    assert "stacked_rnn_cells/lstm_cell/kernel" in twin.params


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul", None])
def test_bidirectional(merge_mode):
    sequences = built(L.Bidirectional(L.LSTM(3, return_sequences=True, dtype="float64"),
                                      merge_mode=merge_mode, dtype="float64"))
    assert direct(sequences, [sequence()], MASK)[0] <= REL["float64"]
    with_state = built(L.Bidirectional(L.GRU(3, return_state=True, dtype="float64"),
                                       merge_mode=merge_mode, dtype="float64"))
    assert direct(with_state, [sequence(), *states(3, 3)], MASK)[0] <= REL["float64"]


def test_bidirectional_with_its_own_backward_layer():
    layer = built(L.Bidirectional(
        L.LSTM(3, return_sequences=True, dtype="float64"),
        backward_layer=L.SimpleRNN(3, go_backwards=True, return_sequences=True,
                                   dtype="float64"), dtype="float64"))
    assert direct(layer, [sequence()], MASK)[0] <= REL["float64"]


def test_compute_mask_follows_keras():
    x = keras.Input((T, D))
    for layer, expect in ((L.LSTM(2, return_sequences=True), "mask"), (L.LSTM(2), None)):
        layer(x)
        twin = registry.builder_for(layer)(layer)
        assert (twin.compute_mask([sequence()], MASK) is MASK) == (expect == "mask")
    layer = L.GRU(2, return_sequences=True, return_state=True)
    layer(x)
    out = registry.builder_for(layer)(layer).compute_mask([sequence()], MASK)
    assert out[0] is MASK and out[1:] == [None]
    keras_masks = layer.compute_mask(tf.constant(sequence()), tf.constant(MASK))
    assert np.array_equal(keras_masks[0], MASK) and keras_masks[1] is None


# --- in a model, through parity.compare, dropout included --------------------------------

def model_around(layer, dtype):
    inputs = keras.Input((T, D), dtype=dtype)
    h = layer(inputs)
    if len(h.shape) > 2:
        h = L.Flatten(dtype=dtype)(h)
    return keras.Model(inputs, L.Dense(3, activation="softmax", dtype=dtype)(h))


def assert_agrees(model, x, y, dtype, training=False):
    report = parity.compare(model, x, y, training=training)
    assert report.ok, str(report)
    assert max(map(compare_scaled, report_differences(report))) <= REL[dtype], str(report)


def compare_scaled(difference):
    """A ``compare`` difference / max(1, largest |value|), as ``scaled`` (a bias gradient
    of 1e-7 off by 1e-12 is float32 rounding, not a relative 1e-5 error)."""
    largest = difference.abs / difference.rel if difference.rel else 0.0
    return difference.abs / max(1.0, largest)


MODELS = {
    "lstm-dropout": lambda d: L.LSTM(6, dropout=0.3, recurrent_dropout=0.2,
                                     return_sequences=True, dtype=d),
    "lstm-input-dropout": lambda d: L.LSTM(6, dropout=0.4, dtype=d),
    "gru-reset-before-dropout": lambda d: L.GRU(6, dropout=0.3, recurrent_dropout=0.4,
                                                reset_after=False, dtype=d),
    "gru-recurrent-dropout": lambda d: L.GRU(6, recurrent_dropout=0.4, dtype=d),
    "simple-rnn-dropout": lambda d: L.SimpleRNN(6, dropout=0.3, recurrent_dropout=0.4,
                                                dtype=d),
    "bidirectional-dropout": lambda d: L.Bidirectional(
        L.LSTM(3, dropout=0.5, recurrent_dropout=0.5, return_sequences=True, dtype=d),
        dtype=d),
    "stacked-dropout": lambda d: L.RNN(L.StackedRNNCells(
        [L.LSTMCell(4, dropout=0.3, recurrent_dropout=0.3, dtype=d),
         L.GRUCell(3, dropout=0.2, dtype=d)], dtype=d), return_sequences=True, dtype=d),
    "time-distributed-dropout": lambda d: L.TimeDistributed(L.Dropout(0.5, dtype=d), dtype=d),
}


@pytest.mark.parametrize("name", ["lstm-dropout", "time-distributed-dropout"])
def test_training_mode_uses_the_masks_keras_drew(name):
    dtype = "float64"
    keras.utils.set_random_seed(3)
    model = model_around(MODELS[name](dtype), dtype)
    x, y = sequence(dtype), np.array([0, 2, 1])
    inference = model(x, training=False).numpy()
    keras.utils.set_random_seed(4)
    assert not np.allclose(model(x, training=True).numpy(), inference), "dropout dropped"
    assert_agrees(model, x, y, dtype, training=True)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_in_both_modes_and_dtypes(name, training, dtype):
    keras.utils.set_random_seed(3)
    model = model_around(MODELS[name](dtype), dtype)
    assert_agrees(model, sequence(dtype), np.array([0, 2, 1]), dtype, training)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "elu", "softsign", "hard_sigmoid",
                                        "linear", "gelu", "swish"])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_activations(kind, activation):
    make, _ = LAYERS[kind]
    extra = {} if kind == "simple_rnn" else {"recurrent_activation": activation}
    layer = built(make(dtype="float64", activation=activation, return_sequences=True, **extra))
    assert direct(layer, [sequence()], MASK)[0] <= REL["float64"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_float32_directly(kind):
    make, count = LAYERS[kind]
    layer = built(make(dtype="float32", return_sequences=True, return_state=True),
                  dtype="float32")
    xs = [sequence("float32"), *[s.astype("float32") for s in states(*[6] * count)]]
    assert direct(layer, xs, MASK)[0] <= REL["float32"]


# --- saving, refusals --------------------------------------------------------------------

def test_a_saved_twin_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T, D), dtype="float64")
    h = L.Bidirectional(L.LSTM(3, return_sequences=True, dtype="float64"),
                        dtype="float64")(inputs)
    h = L.TimeDistributed(L.Dense(2, dtype="float64"), dtype="float64")(h)
    h = L.GRU(3, reset_after=False, dtype="float64")(h)
    model = keras.Model(inputs, L.Dense(3, activation="softmax", dtype="float64")(h))
    net = parity.twin(model)
    serialization.save_npz(net, tmp_path / "rnn.npz")
    loaded, _ = serialization.load_npz(tmp_path / "rnn.npz")
    x = sequence()
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    np.testing.assert_allclose(net.predict(x), model(x).numpy(), rtol=1e-13, atol=1e-14)


def test_numpy_rnn_draws_its_own_masks_in_training():
    rng = np.random.default_rng(0)
    cell = recurrent_cells.LSTMCell(rng.normal(size=(D, 8)), rng.normal(size=(2, 8)),
                                    np.zeros(8), dropout=0.5)
    layer = recurrent.RNN(cell, seed=1)
    x = sequence()
    assert not np.allclose(layer.forward([x], training=True), layer.forward([x]))
    layer.fixed_masks = [np.ones((N, D), bool)]  # keep everything: scaled by 1 / (1 - 0.5)
    np.testing.assert_allclose(layer.forward([x], training=True), layer.forward([2 * x]))


@pytest.mark.parametrize("make, words", [
    (lambda: L.LSTM(2, stateful=True), "stateful=True"),
    (lambda: L.Bidirectional(L.GRU(2, stateful=True)), "stateful=True"),
    (lambda: L.SimpleRNN(2, dropout=1.0), "dropout=1.0"),
    (lambda: L.RNN(L.StackedRNNCells([L.LSTMCell(2, dtype="float64")])), "compute dtypes"),
    (lambda: L.RNN(MinimalCell(2)), "MinimalCell"),
    (lambda: L.TimeDistributed(Untwinned()), "Untwinned"),
    # Keras's unrolled loop zeroes masked outputs in forward order while listing them
    # reversed: the twin would compute its loop's numbers (0.81 off), so it refuses.
    (lambda: L.LSTM(2, unroll=True, go_backwards=True, zero_output_for_mask=True,
                    return_sequences=True), "unroll=True"),
    (lambda: L.Bidirectional(L.GRU(2, unroll=True, return_sequences=True)), "unroll=True"),
], ids=["stateful", "bidirectional-stateful", "simple-rnn-dropout-1", "mixed-dtypes",
        "custom-cell", "time-distributed-untwinned", "unrolled-reversed-masked",
        "bidirectional-unrolled"])
def test_refusals_name_the_layer_and_option(make, words):
    layer = make()
    layer(keras.Input((T, D), batch_size=N))
    with pytest.raises(ValueError, match=words) as error:
        registry.builder_for(layer)(layer)
    assert repr(layer.name) in str(error.value)


class MinimalCell(L.Layer):
    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units))

    def call(self, inputs, states):
        out = inputs @ self.kernel + states[0]
        return out, [out]


class Untwinned(L.Layer):
    def call(self, inputs):
        return inputs * 2

    def compute_output_shape(self, input_shape):
        return input_shape


# --- whole models with Keras masks and several outputs -------------------------------------

TOKENS = np.array([[3, 1, 4, 1, 5, 0, 0], [2, 6, 0, 0, 0, 0, 0], [8, 7, 6, 5, 4, 3, 2]],
                  "int32")  # padded with 0 at the end, three lengths


def text_classifier(recurrent_layer, pool=False):
    """Embedding(mask_zero=True) -> the recurrent layer (-> masked average) -> Dense."""
    tokens = keras.Input((TOKENS.shape[1],), dtype="int32")
    h = L.Embedding(9, 4, mask_zero=True, dtype="float64")(tokens)
    h = recurrent_layer(h)
    if pool:
        h = L.GlobalAveragePooling1D(dtype="float64")(h)
    return keras.Model(tokens, L.Dense(3, dtype="float64", name="head")(h))


MASKED = {
    "lstm": (lambda: L.LSTM(5, dtype="float64"), False),
    "gru-sequences": (lambda: L.GRU(5, return_sequences=True, dtype="float64"), True),
    "bidirectional-lstm": (lambda: L.Bidirectional(L.LSTM(3, dtype="float64"),
                                                   dtype="float64"), False),
    "simple-rnn-backwards": (lambda: L.SimpleRNN(4, go_backwards=True, dtype="float64"),
                             False),
}


@pytest.mark.parametrize("name", sorted(MASKED))
def test_padded_batches_through_keras_masks(name):
    """The padding steps are skipped as Keras skips them (Embedding's mask into the RNN,
    the RNN's into the average): outputs and every gradient agree, in both modes."""
    make, pool = MASKED[name]
    keras.utils.set_random_seed(0)
    model = text_classifier(make(), pool)
    net = parity.twin(model)
    assert any(node.masks for node in net.nodes)  # followed, not dropped
    for training in (False, True):
        assert_agrees(model, TOKENS, np.array([0, 2, 1]), "float64", training)


def test_returned_states_feed_later_layers():
    """return_state: the LSTM's three outputs are three values of the twin; the states
    go on to a Concatenate, and their gradients come back to the one LSTM."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((T, D), dtype="float64")
    output, h, c = L.LSTM(4, return_state=True, dtype="float64")(inputs)
    joined = L.Concatenate(dtype="float64")([output, h, c])
    model = keras.Model(inputs, L.Dense(3, dtype="float64", name="head")(joined))
    x = np.random.default_rng(0).normal(size=(3, T, D))
    assert_agrees(model, x, np.array([0, 2, 1]), "float64")
