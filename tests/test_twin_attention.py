"""Embeddings, masking, EinsumDense and attention, twinned: against Keras.

Most cases call one Keras layer eagerly under a GradientTape with the loss
sum(output * r) for fixed random r (every output, when it returns the attention
scores too), and the twin's forward and backward with dout = r: outputs, input
gradients and weight gradients must agree. The attention twins' builders take the
traced call (its ``use_causal_mask``, ``return_attention_scores``, which optional
inputs were given); here the call is given as a namespace holding those arguments.

Whole models go through ``parity.compare`` (dropout in training, Keras masks from
``Embedding(mask_zero=True)`` into attention and pooling); a builder that takes two
arguments gets the ``trace.Call`` too (``registry.takes_call``).

Tolerances, scaled as keras_twins.scaled (by max(1, max|keras|)):
- float64, 1e-12: the same operations up to summation order (einsum contractions,
  softmax sums) and the order in which the 1/sqrt(key_dim) scale is applied (Keras's
  fast path scales the scores, its general path and the twin the query); measured
  <= 4e-15.
- float32, 1e-5: the same at float32's eps 1.2e-7 times the short sums here;
  measured <= 3e-6 (a weight gradient summed over every query/key pair).
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import report_differences
from numpy_ref.layers import embedding as np_embedding
from numpy_ref.network import serialization
from tfmodels import parity
from tfmodels.parity import registry, twins

L = keras.layers
TOL = {"float64": 1e-12, "float32": 1e-5}
NAMES = {L.MultiHeadAttention: ("query", "value", "key"),
         L.GroupQueryAttention: ("query", "value", "key")}


def scaled(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b),
                                                                             initial=0.0))))


def agree(layer, inputs, call_kwargs=None, mask=None, no_grad=(), training=False):
    """The largest scaled difference between ``layer`` and its twin (built with the call's
    arguments) on ``inputs``; ``mask``: Keras's ``mask=`` argument (a list for Attention),
    given to the twin alike; ``no_grad``: positions of integer inputs."""
    call_kwargs = dict(call_kwargs or {})
    tensors = [tf.constant(a) for a in inputs]
    list_input = isinstance(layer, L.Attention)
    extra = {} if mask is None else {"mask": [None if m is None else tf.constant(m)
                                              for m in mask]}
    with tf.GradientTape() as tape:
        for i, t in enumerate(tensors):
            if i not in no_grad:
                tape.watch(t)
        out = layer(tensors if list_input else tensors[0], *([] if list_input else tensors[1:]),
                    training=training, **call_kwargs, **extra)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        rng = np.random.default_rng(1)
        rs = [rng.normal(size=o.shape).astype(o.dtype.name) for o in outs]
        loss = sum(tf.reduce_sum(o * r) for o, r in zip(outs, rs))
    watched = [t for i, t in enumerate(tensors) if i not in no_grad]
    grads = tape.gradient(loss, watched + layer.trainable_weights)
    arguments = dict(call_kwargs, **dict(zip(NAMES.get(type(layer), ()), tensors)))
    builder = registry.builder_for(layer)
    try:
        twin = builder(layer, types.SimpleNamespace(arguments=arguments))
    except TypeError:
        twin = builder(layer)
    given = list(inputs)
    if "attention_mask" in call_kwargs:
        given.append(np.asarray(call_kwargs["attention_mask"]))
    masks = {} if mask is None else {"mask": mask}
    y = twin.forward(given if getattr(twin, "multi_input", False) else given[0],
                     training=training, **masks)
    dx = twin.backward(tuple(rs) if len(rs) > 1 else rs[0])
    dx = dx if isinstance(dx, list) else [dx]
    found = [scaled(a, o.numpy()) for a, o in zip(y if isinstance(y, tuple) else [y], outs)]
    found += [scaled(a, g.numpy()) for a, g in zip(
        [d for i, d in enumerate(dx) if i not in no_grad], grads[:len(watched)])]
    prefix = f"{layer.path}/"
    for variable, grad in zip(layer.trainable_weights, grads[len(watched):]):
        key = variable.path[len(prefix):]
        key = key if key in twin.grads else variable.name
        expected = np.zeros(variable.shape) if grad is None else tf.convert_to_tensor(grad)
        found.append(scaled(twin.grads[key], np.asarray(expected)))  # None: not reached
    return max(found)


# --- EinsumDense, Embedding, Masking -------------------------------------------------------

EINSUM = [("ab,bc->ac", 4, "c", (3, 5)), ("abc,cde->abde", (None, 2, 3), "d", (2, 3, 5)),
          ("...b,bc->...c", 4, "c", (2, 3, 5)), ("abc...,cd->abd...", (3, 4, None), "b",
                                                 (2, 3, 5, 6)),
          ("abc,cd->ad", (4,), None, (2, 3, 5))]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_einsum_dense(dtype):
    rng = np.random.default_rng(0)
    for equation, output_shape, bias_axes, shape in EINSUM:
        keras.utils.set_random_seed(0)
        layer = L.EinsumDense(equation, output_shape, bias_axes=bias_axes, activation="tanh",
                              dtype=dtype)
        x = rng.normal(size=shape).astype(dtype)
        assert agree(layer, [x]) <= TOL[dtype], equation


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_embedding_scatter_adds_and_masking_zeroes(dtype):
    keras.utils.set_random_seed(0)
    ids = np.array([[1, 2, 0, 2], [6, -1, 3, 3]])  # repeats, padding, a negative id
    layer = L.Embedding(7, 3, mask_zero=True, dtype=dtype)
    assert agree(layer, [ids], no_grad=(0,)) == 0.0
    twin = registry.builder_for(layer)(layer)
    np.testing.assert_array_equal(twin.compute_mask(ids), layer.compute_mask(ids).numpy())
    floats = ids.astype(dtype) + 0.7  # Keras truncates float ids toward zero
    assert agree(layer, [floats], no_grad=(0,)) == 0.0

    x = np.random.default_rng(0).normal(size=(2, 4, 3)).astype(dtype)
    # Keras compares with float32's 0.1 (cast to x's dtype): a float64 0.1 is not masked
    x[0, 1], x[1, 3] = np.float32(0.1), 0.1
    masking = L.Masking(0.1, dtype=dtype)
    assert agree(masking, [x]) == 0.0
    expected = masking.compute_mask(x).numpy()
    assert not expected[0, 1] and expected[1, 3] == (dtype == "float64")
    np.testing.assert_array_equal(registry.builder_for(masking)(masking).compute_mask(x),
                                  expected)


@pytest.mark.parametrize("options, reverse", [({}, False), ({}, True),
                                               ({"tie_weights": False,
                                                 "logit_soft_cap": 2.0}, True)])
def test_reversible_embedding(options, reverse):
    keras.utils.set_random_seed(0)
    layer = L.ReversibleEmbedding(7, 3, dtype="float64", **options)
    layer.build()
    if reverse:
        x = np.random.default_rng(0).normal(size=(2, 4, 3))
        assert agree(layer, [x], {"reverse": True}) <= TOL["float64"]
    else:
        assert agree(layer, [np.array([[1, 2, 0], [6, 5, 3]])], no_grad=(0,)) == 0.0


# --- attention, one layer against Keras ---------------------------------------------------

def attention_inputs(dtype, rng):
    return (rng.normal(size=(2, 4, 5)).astype(dtype), rng.normal(size=(2, 3, 6)).astype(dtype),
            rng.normal(size=(2, 3, 7)).astype(dtype))


MHA_CASES = [  # (layer options, call arguments, with key)
    ({}, {}, False),
    ({"value_dim": 2, "output_shape": (2, 3)}, {"use_causal_mask": True}, True),
    ({"use_gate": True, "use_bias": False}, {"return_attention_scores": True}, False),
    ({"sliding_window": 2}, {"use_causal_mask": True, "return_attention_scores": True}, True),
    ({"dropout": 0.3}, {}, True),  # inference: the general path (dropout > 0), no drops
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_multi_head_attention(dtype):
    rng = np.random.default_rng(0)
    q, v, k = attention_inputs(dtype, rng)
    for options, arguments, with_key in MHA_CASES:
        keras.utils.set_random_seed(0)
        layer = L.MultiHeadAttention(2, 3, dtype=dtype, **options)
        found = agree(layer, [q, v, k] if with_key else [q, v], arguments)
        assert found <= TOL[dtype], (options, arguments)


@pytest.mark.parametrize("scores", [False, True], ids=["fast-path", "general-path"])
def test_a_query_step_that_sees_nothing_as_keras(scores):
    """The fast path (ops.dot_product_attention) gives a fully masked row the mean of the
    values; the general path (Softmax with a mask) gives it zeros: the twin follows each."""
    rng = np.random.default_rng(0)
    q, v, _ = attention_inputs("float64", rng)
    mask = rng.random((2, 4, 3)) > 0.3
    mask[0, 1] = False
    keras.utils.set_random_seed(0)
    layer = L.MultiHeadAttention(2, 3, dtype="float64")
    assert agree(layer, [q, v], {"attention_mask": tf.constant(mask),
                                 "return_attention_scores": scores}) <= TOL["float64"]


def test_attention_axes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2, 4))
    for axes in [(1, 2), (2,)]:
        keras.utils.set_random_seed(0)
        layer = L.MultiHeadAttention(2, 3, attention_axes=axes, dtype="float64")
        for arguments in ({}, {"return_attention_scores": True}):
            assert agree(layer, [x, x], arguments) <= TOL["float64"], axes


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_grouped_query_attention(dtype):
    rng = np.random.default_rng(0)
    q, v = rng.normal(size=(2, 4, 6)).astype(dtype), rng.normal(size=(2, 3, 6)).astype(dtype)
    for options, arguments in [({}, {"use_causal_mask": True}),
                               ({"use_gate": True, "dropout": 0.2},
                                {"return_attention_scores": True}),
                               ({"sliding_window": 2, "use_bias": False}, {})]:
        keras.utils.set_random_seed(0)
        layer = L.GroupQueryAttention(head_dim=3, num_query_heads=4, num_key_value_heads=2,
                                      dtype=dtype, **options)
        assert agree(layer, [q, v, 0.5 * v], arguments) <= TOL[dtype], (options, arguments)


LUONG = [lambda d: L.Attention(dtype=d), lambda d: L.Attention(use_scale=True, dtype=d),
         lambda d: L.Attention(use_scale=True, score_mode="concat", dtype=d),
         lambda d: L.AdditiveAttention(dtype=d), lambda d: L.AdditiveAttention(use_scale=False,
                                                                              dtype=d)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_attention_and_additive_attention(dtype):
    rng = np.random.default_rng(0)
    q, v, k = (rng.normal(size=s).astype(dtype) for s in ((2, 4, 5), (2, 3, 5), (2, 3, 5)))
    query_mask, value_mask = rng.random((2, 4)) > 0.3, rng.random((2, 3)) > 0.4
    value_mask[1] = False  # Keras subtracts 1e9: that row still gets a softmax
    for i, make in enumerate(LUONG):
        layer = make(dtype)
        layer.build([q.shape, v.shape])
        for w in layer.weights:  # away from the initial ones
            w.assign(rng.normal(size=w.shape) + 1)
        for inputs, arguments, mask in [([q, v], {}, None),
                                        ([q, v, k], {"use_causal_mask": True},
                                         [query_mask, value_mask]),
                                        ([q, v], {"return_attention_scores": True},
                                         [None, value_mask])]:
            assert agree(layer, inputs, arguments, mask) <= TOL[dtype], (i, arguments)


def test_without_the_call_the_attention_builders_refuse_by_name():
    for layer in (L.MultiHeadAttention(2, 3), L.Attention(), L.ReversibleEmbedding(5, 2)):
        with pytest.raises(ValueError, match=type(layer).__name__ + r".*use_causal_mask|"
                                                                    r"ReversibleEmbedding.*reverse"):
            registry.builder_for(layer)(layer)


@pytest.mark.parametrize("layer, option", [
    (lambda: L.EinsumDense("ab,bc->ac", 3, lora_rank=2), "lora_rank=2"),
    (lambda: L.Embedding(5, 2, dtype="mixed_float16"), "dtype='mixed_float16'"),
], ids=["einsum-lora", "embedding-mixed"])
def test_options_without_a_twin_are_refused_by_name(layer, option):
    keras_layer = layer()
    keras_layer.build((None, 4))
    with pytest.raises(ValueError, match=rf"\.{type(keras_layer).__name__}\) has {option}"):
        registry.builder_for(keras_layer)(keras_layer)


# --- whole models through parity.compare ----------------------------------------------------

def assert_report_agrees(model, x, y, training):
    report = parity.compare(model, x, y, training=training)
    assert report.ok, str(report)
    found = [d.abs / max(1.0, d.abs / d.rel if d.rel else 0.0)
             for d in report_differences(report)]
    assert max(found) <= TOL["float64"], str(report)


def text_model(attention_layer, call):
    """(6, 4) vectors -> attention -> EinsumDense pooling the steps -> Dense."""
    x = keras.Input((6, 4), dtype="float64")
    h = call(attention_layer, x)
    h = L.EinsumDense("abc,cd->ad", 3, bias_axes="d", dtype="float64")(h)
    return keras.Model(x, L.Dense(3, dtype="float64", name="head")(h))


MODELS = {
    "mha-causal-dropout": (lambda: L.MultiHeadAttention(2, 3, dropout=0.4, dtype="float64"),
                           lambda layer, h: layer(h, h, use_causal_mask=True)),
    "mha-scores": (lambda: L.MultiHeadAttention(2, 3, dtype="float64"),
                   lambda layer, h: L.Add(dtype="float64")(
                       [layer(h, h, return_attention_scores=True)[0], h])),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_whole_models_with_dropout_and_scores(name):
    make, call = MODELS[name]
    keras.utils.set_random_seed(0)
    model = text_model(make(), call)
    x = np.random.default_rng(0).normal(size=(2, 6, 4))
    for training in (False, True):
        assert_report_agrees(model, x, np.array([0, 2]), training)


def test_a_saved_twin_predicts_alike(tmp_path):
    keras.utils.set_random_seed(0)
    model = text_model(L.MultiHeadAttention(2, 3, use_gate=True, dtype="float64"),
                       lambda layer, h: layer(h, h))
    net = parity.twin(model)
    x = np.random.default_rng(0).normal(size=(2, 6, 4))
    serialization.save_npz(net, tmp_path / "text.npz")
    loaded, _ = serialization.load_npz(tmp_path / "text.npz")
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    layer = np_embedding.Masking(0.5)
    assert type(layer).from_config(layer.get_config()).mask_value == 0.5


MASKED = {
    "mha": lambda h: L.MultiHeadAttention(2, 3, dtype="float64")(h, h),
    "mha-causal": lambda h: L.MultiHeadAttention(2, 3, dtype="float64")(
        h, h, use_causal_mask=True),
    "attention": lambda h: L.Attention(dtype="float64")([h, h]),
    "additive": lambda h: L.AdditiveAttention(dtype="float64")([h, h]),
}


@pytest.mark.parametrize("name", sorted(MASKED))
def test_keras_masks_from_an_embedding_reach_attention_and_pooling(name):
    """Token 0 is padding: Embedding(mask_zero=True) masks it, attention ignores those keys
    (and queries), GlobalAveragePooling1D averages the unmasked steps only; the twin
    follows the same masks (padded batches of different lengths)."""
    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32")
    h = L.Embedding(9, 4, mask_zero=True, dtype="float64")(tokens)
    h = MASKED[name](h)
    h = L.GlobalAveragePooling1D(dtype="float64")(h)
    model = keras.Model(tokens, L.Dense(3, dtype="float64", name="head")(h))
    x = np.array([[3, 1, 4, 1, 5, 0], [2, 6, 0, 0, 0, 0], [8, 7, 6, 5, 4, 3]], "int32")
    net = parity.twin(model)
    assert any(node.masks for node in net.nodes)  # the masks were followed, not dropped
    for training in (False, True):
        assert_report_agrees(model, x, np.array([0, 2, 1]), training)
