"""The random numbers Keras's dropout and noise layers draw, so a twin in training mode
draws the same.

``capturing`` wraps three backend functions during an eager run and records each draw
under the innermost layer call in progress, as a ``Draw(kind, value)``:

- "keep_mask": ``backend.random.dropout(inputs, rate, noise_shape, seed)``, which
  every Keras dropout goes through (``Dropout``, the spatial dropouts,
  ``keras.random.dropout``): a stateless TF op keyed by a seed drawn from a
  ``SeedGenerator``. Before the draw the generator's state is copied; after it, the
  same function runs on ones with a generator holding that copy, which draws the
  same numbers: the result is non-zero exactly where Keras kept a unit (comparing
  the input with the output instead would be ambiguous wherever the input is 0).
  The value is that boolean keep mask, of the input's shape.
- "normal" and "uniform": ``backend.random.normal`` and ``backend.random.uniform``
  (``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout``): the value is the
  array the call returned, the very numbers the layer computed with.

``using`` hands each twin layer the draw of its Keras call: a layer with
``fixed_mask`` (``KerasDropout``) takes the one keep mask, a layer with
``fixed_noise`` takes the one draw of its ``noise_kind``, and a composite layer with
``fixed_masks`` (``MultiHeadAttention``, whose inner ``Dropout`` draws) takes the list
of keep masks drawn inside its call, in the order they were drawn.
"""

import contextlib
import dataclasses

import keras
from keras.src import backend
from keras.src.random import seed_generator
import numpy as np
import tensorflow as tf

from numpy_ref.layers import core


@dataclasses.dataclass
class Draw:
    """One draw of a layer call: its kind ("keep_mask", "normal", "uniform") and value."""

    kind: str
    value: np.ndarray


def _replay(seed):
    """A seed that makes ``dropout`` draw what the coming call with ``seed`` draws."""
    if isinstance(seed, int):
        return seed
    generator = seed if seed is not None else seed_generator.global_seed_generator()
    copy = keras.random.SeedGenerator(0)
    copy.state.assign(generator.state.numpy())
    return copy


def _innermost(calls):
    """The innermost layer call in progress (``trace.Call``s without outputs yet)."""
    return next((call for call in reversed(calls) if call.outputs is None), None)


@contextlib.contextmanager
def capturing(calls):
    """Records every eager dropout, normal and uniform draw inside the block; yields
    {``trace.Call``: [``Draw``s, in order]}, keyed by the innermost layer call of
    ``calls`` (from ``trace.recording()``) in progress at the draw."""
    draws = {}
    originals = {name: getattr(backend.random, name) for name in ("dropout", "normal", "uniform")}

    def record(kind, value):
        call = _innermost(calls)
        if call is not None:
            draws.setdefault(call, []).append(Draw(kind, value))

    def dropout(inputs, rate, noise_shape=None, seed=None):
        original = originals["dropout"]
        if not tf.executing_eagerly():
            return original(inputs, rate, noise_shape=noise_shape, seed=seed)
        replay = _replay(seed)
        outputs = original(inputs, rate, noise_shape=noise_shape, seed=seed)
        kept = original(tf.ones_like(inputs), rate, noise_shape=noise_shape, seed=replay)
        record("keep_mask", kept.numpy() != 0)
        return outputs

    def drawing(kind):
        def draw(*args, **kwargs):
            value = originals[kind](*args, **kwargs)
            if tf.executing_eagerly():
                record(kind, value.numpy())
            return value
        return draw

    replacements = {"dropout": dropout, "normal": drawing("normal"),
                    "uniform": drawing("uniform")}
    for name, function in replacements.items():
        setattr(backend.random, name, function)
    try:
        yield draws
    finally:
        for name, function in originals.items():
            setattr(backend.random, name, function)


def _only(drawn, kind):
    """The value of the one draw of ``kind``, or None where there is none or several."""
    values = [draw.value for draw in drawn if draw.kind == kind]
    return values[0] if len(values) == 1 else None


def _within(call):
    """The call and every call made inside it, in the order they were made."""
    yield call
    for child in call.children:
        yield from _within(child)


@contextlib.contextmanager
def using(net, layer_nodes, leaves, masks):
    """Inside the block, each twin layer with a ``fixed_mask`` (``fixed_noise``) uses the
    keep mask (the draw of its ``noise_kind``) Keras drew in the matching leaf call
    (``layer_nodes`` and ``leaves`` in the same order; ``masks`` from ``capturing``)."""
    nodes = {node.name: node for node in net.nodes}
    changed = []
    for (_, node_name), call in zip(layer_nodes, leaves):
        drawn = masks.get(call, [])
        if node_name is None:  # a layer the given twin has no node for
            continue
        node = nodes[node_name]
        if isinstance(node.layer, core.TakeOutput):  # one output of a multi-output layer
            node = nodes[node.inputs[0]]
        layer = node.layer
        for attribute, kind in (("fixed_mask", "keep_mask"),
                                ("fixed_noise", getattr(layer, "noise_kind", None))):
            value = _only(drawn, kind)
            if value is not None and hasattr(layer, attribute):
                changed.append((layer, attribute, getattr(layer, attribute)))
                setattr(layer, attribute, np.asarray(value))
        if hasattr(layer, "fixed_masks"):  # a composite twin: every keep mask drawn inside
            changed.append((layer, "fixed_masks", layer.fixed_masks))
            layer.fixed_masks = [np.asarray(draw.value) for inner in _within(call)
                                 for draw in masks.get(inner, []) if draw.kind == "keep_mask"]
    try:
        yield
    finally:
        for layer, attribute, previous in reversed(changed):
            setattr(layer, attribute, previous)
