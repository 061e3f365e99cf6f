"""The keep masks Keras's dropout draws, so a twin in training mode drops the same units.

Every Keras dropout (``Dropout``, the spatial dropouts, ``keras.random.dropout``)
goes through the backend's ``random.dropout(inputs, rate, noise_shape, seed)``,
a stateless TF op keyed by a seed drawn from a ``SeedGenerator``. ``capturing``
wraps that function during an eager run: before each draw it copies the
generator's state, and after it runs the same function on ones with a generator
holding that copy, which draws the same numbers: the result is non-zero exactly
where Keras kept a unit (comparing the input with the output instead would be
ambiguous wherever the input is 0).
"""

import contextlib

import keras
from keras.src import backend
from keras.src.random import seed_generator
import numpy as np
import tensorflow as tf


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
    """Records the keep mask (a bool array of the input's shape) of every eager dropout
    draw inside the block; yields {``trace.Call``: [masks]}, keyed by the innermost layer
    call of ``calls`` (from ``trace.recording()``) in progress at the draw."""
    masks = {}
    original = backend.random.dropout

    def dropout(inputs, rate, noise_shape=None, seed=None):
        if not tf.executing_eagerly():
            return original(inputs, rate, noise_shape=noise_shape, seed=seed)
        replay = _replay(seed)
        outputs = original(inputs, rate, noise_shape=noise_shape, seed=seed)
        kept = original(tf.ones_like(inputs), rate, noise_shape=noise_shape, seed=replay)
        call = _innermost(calls)
        if call is not None:
            masks.setdefault(call, []).append(kept.numpy() != 0)
        return outputs

    backend.random.dropout = dropout
    try:
        yield masks
    finally:
        backend.random.dropout = original


@contextlib.contextmanager
def using(net, layer_nodes, leaves, masks):
    """Inside the block, each twin layer with a ``fixed_mask`` uses the mask Keras drew in
    the matching leaf call (``layer_nodes`` and ``leaves`` in the same order)."""
    nodes = {node.name: node for node in net.nodes}
    changed = []
    for (_, node_name), call in zip(layer_nodes, leaves):
        drawn = masks.get(call, [])
        if node_name is None:  # a layer the given twin has no node for
            continue
        layer = nodes[node_name].layer
        if len(drawn) == 1 and hasattr(layer, "fixed_mask"):
            changed.append((layer, layer.fixed_mask))
            layer.fixed_mask = np.asarray(drawn[0])
    try:
        yield
    finally:
        for layer, previous in changed:
            layer.fixed_mask = previous
