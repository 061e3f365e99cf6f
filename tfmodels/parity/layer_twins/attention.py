"""The twins of Keras's embedding, masking, EinsumDense and attention layers:
``{keras class: builder}``.

The attention layers (and ``ReversibleEmbedding``) compute differently with the
arguments of their call (``use_causal_mask``, ``return_attention_scores``, which of
``key`` and ``attention_mask`` were given, ``reverse``), which the layer object does
not hold: their builders take the traced call too, ``builder(layer, call)``
(``trace.Call``; its ``arguments`` are the call's arguments by name), and refuse by
name when they are not given it.
"""

import keras

from numpy_ref.layers import attention, einsum, embedding, multi_head_attention
from tfmodels.parity import registry
from tfmodels.parity.layer_twins import core as core_twins

def _plain(layer, name=None):
    """Refuses what none of these twins computes: quantized weights, LoRA, and a mixed
    dtype policy (their softmax and sums would run in another dtype than the weights)."""
    if getattr(layer, "quantization_mode", None) is not None:
        raise registry.no_option(name or layer, "quantization_mode", layer.quantization_mode,
                                 "None")
    core_twins.lora(layer)
    if layer.compute_dtype != layer.variable_dtype:
        raise registry.no_option(name or layer, "dtype", layer.dtype_policy.name,
                                 "a policy whose compute and variable dtypes are equal")
    return layer


def _call_arguments(layer, call, names):
    """{name: the call's argument} for the call-time options of ``names`` (their
    defaults where not given); a refusal when the builder was not given the call."""
    if call is None:
        raise registry.unsupported_error(
            layer, "computes with arguments of its call (" + ", ".join(names) + "), which "
                   "reach a twin builder only with the traced call: build it as "
                   "builder(layer, call)")
    found = {}
    for name, default in names.items():
        value = call.arguments.get(name, default)
        if value is None:
            value = default
        if not isinstance(value, bool) and default in (False, True):
            raise registry.no_option(layer, name, value, "a Python bool")
        found[name] = value
    return found


def _given(call, name):
    return call.arguments.get(name) is not None


def _einsum_dense(layer):
    _plain(layer)
    bias = registry.weights(layer.bias) if layer.bias is not None else None
    return einsum.EinsumDense(layer.equation, registry.weights(layer._kernel), bias,
                              registry.twin_activation(layer.activation, layer))


def _embedding(layer):
    _plain(layer)
    return embedding.Embedding(registry.weights(layer._embeddings), layer.mask_zero,
                               layer.compute_dtype)


@registry.with_call
def _reversible_embedding(layer, call=None):
    _plain(layer)
    reverse = _call_arguments(layer, call, {"reverse": False})["reverse"]
    if layer.reverse_dtype is not None:
        raise registry.no_option(layer, "reverse_dtype", layer.reverse_dtype, "None")
    untied = None if layer.tie_weights else registry.weights(layer.reverse_embeddings)
    return embedding.ReversibleEmbedding(registry.weights(layer._embeddings), untied, reverse,
                                         layer.mask_zero, layer.logit_soft_cap,
                                         layer.compute_dtype)


def _masking(layer):
    return embedding.Masking(layer.mask_value)


def _weights_by_path(layer):
    prefix = f"{layer.path}/"
    return {v.path[len(prefix):]: registry.weights(v) for v in layer.weights}


def _attention_common(layer, call):
    _plain(layer)
    if getattr(layer, "_flash_attention", False):
        raise registry.no_option(layer, "flash_attention", True, "False")
    for sub in ("_query_dense", "_key_dense", "_value_dense", "_output_dense", "_gate_dense"):
        if hasattr(layer, sub):
            _plain(getattr(layer, sub), layer)
    return _call_arguments(layer, call, {"use_causal_mask": False,
                                         "return_attention_scores": False})


@registry.with_call
def _multi_head_attention(layer, call=None):
    options = _attention_common(layer, call)
    return multi_head_attention.MultiHeadAttention(
        layer.num_heads, layer.key_dim, layer.value_dim, layer._attention_axes,
        layer.dropout, layer.seed, has_key=_given(call, "key"),
        has_attention_mask=_given(call, "attention_mask"),
        sliding_window=layer._sliding_window, **options, **_weights_by_path(layer))


@registry.with_call
def _grouped_query_attention(layer, call=None):
    options = _attention_common(layer, call)
    if _given(call, "attention_mask") and call.arguments["attention_mask"].dtype != "bool":
        # Keras casts it to bool on one path and compares it with 0.5 on another
        raise registry.no_option(layer, "attention_mask of dtype",
                                 call.arguments["attention_mask"].dtype.name, "bool")
    return multi_head_attention.MultiHeadAttention(
        layer.num_query_heads, layer.head_dim, layer.head_dim, None, layer.dropout,
        layer.seed, has_key=_given(call, "key"),
        has_attention_mask=_given(call, "attention_mask"), sliding_window=layer.sliding_window,
        num_key_value_heads=layer.num_key_value_heads, **options, **_weights_by_path(layer))


def _seed(layer):
    generator = getattr(layer, "seed_generator", None)
    if layer.seed is None and generator is not None:
        return int(generator.state.numpy()[0])
    return layer.seed


def _dot_attention(twin_class):
    """The builder of ``Attention`` (its optional concat-score weight too) or
    ``AdditiveAttention``: the scale, dropout, seed and the call's options."""
    @registry.with_call
    def build(layer, call=None):
        _plain(layer)
        options = _call_arguments(layer, call, {"use_causal_mask": False,
                                                "return_attention_scores": False})
        scale = registry.weights(layer.scale) if layer.scale is not None else None
        weight = getattr(layer, "concat_score_weight", None)
        extra = (() if twin_class is attention.AdditiveAttention else
                 (None if weight is None else registry.weights(weight),))
        return twin_class(scale, *extra, layer.dropout, _seed(layer), **options)
    return build


BUILDERS = {
    keras.layers.EinsumDense: _einsum_dense,
    keras.layers.Embedding: _embedding,
    keras.layers.ReversibleEmbedding: _reversible_embedding,
    keras.layers.Masking: _masking,
    keras.layers.MultiHeadAttention: _multi_head_attention,
    keras.layers.GroupQueryAttention: _grouped_query_attention,
    keras.layers.Attention: _dot_attention(attention.Attention),
    keras.layers.AdditiveAttention: _dot_attention(attention.AdditiveAttention),
}
