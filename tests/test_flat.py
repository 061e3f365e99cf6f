"""numpy_ref.fast's buffers and kernels: each gives the plain path's numbers bit for bit.

One buffer for all weights (the flat optimizer step equals the per-weight one), the
gradients written into buffers, ReLU in place, the softmax shared with the loss.
"""

import numpy as np
import pytest

from numpy_ref.layers import activations as A
from numpy_ref.fast import flat
from numpy_ref.fast import kernels as K
from numpy_ref.fast.graph import fast_network, gradient_buffers, pack_weights
from numpy_ref.fast.optimizer import FlatUpdate, is_elementwise
from numpy_ref.optim import optimizers
from numpy_ref.layers.core import Dense
from numpy_ref.losses import SparseCategoricalCrossentropy
from numpy_ref.network import Network, Node

SHAPES = [(7, 5), (5,), (5, 3), (3,), (4,)]


def _weights(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {f"w{i}": rng.standard_normal(s).astype(dtype) for i, s in enumerate(SHAPES)}


def _grads(dtype, step):
    rng = np.random.default_rng(100 + step)
    return {f"w{i}": (rng.standard_normal(s) * 10.0 ** rng.integers(-6, 1)).astype(dtype)
            for i, s in enumerate(SHAPES)}


def test_pack_and_span_find_the_buffer_again():
    arrays = [np.arange(6.0).reshape(2, 3), np.ones(4), np.zeros((1, 2))]
    buffer, views = flat.pack(arrays)
    assert buffer.shape == (12,)
    for a, v in zip(arrays, views):
        np.testing.assert_array_equal(a, v)
        assert np.shares_memory(v, buffer)
    found = flat.span(views)
    assert found is not None and np.shares_memory(found, buffer) and found.size == 12
    found[:] = 7
    assert all((v == 7).all() for v in views)
    assert flat.span(views[1:]).size == 6  # a tail of the buffer is a span too


@pytest.mark.parametrize("arrays", [
    lambda views: [views[1], views[0]],                     # out of order
    lambda views: [views[0], views[2]],                     # a gap
    lambda views: [views[0], np.ones(4)],                   # another buffer
    lambda views: [views[0].T, views[1]],                   # not C-contiguous
    lambda views: [views[0], views[1].astype(np.float32)],  # another dtype
], ids=["order", "gap", "other-buffer", "transposed", "dtype"])
def test_span_is_none_unless_the_arrays_tile_one_buffer(arrays):
    _, views = flat.pack([np.zeros((2, 3)), np.zeros(4), np.zeros(2)])
    assert flat.span(arrays(views)) is None


OPTIMIZERS = [
    lambda: optimizers.SGD(0.1),
    lambda: optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    lambda: optimizers.AdaGrad(),
    lambda: optimizers.RMSprop(momentum=0.5, centered=True),
    lambda: optimizers.Adam(amsgrad=True),
    lambda: optimizers.Adam(weight_decay=0.01, exclude_from_weight_decay=["w1"]),
    lambda: optimizers.AdamW(global_clipnorm=1.0),
    lambda: optimizers.Adamax(clipnorm=0.5),
    lambda: optimizers.Nadam(clipvalue=0.01),
    lambda: optimizers.Lion(),
    lambda: optimizers.Adadelta(learning_rate=1.0),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("packed", [False, True], ids=["separate", "packed"])
def test_flat_step_equals_the_per_weight_step_bit_for_bit(make, dtype, packed):
    # Element-wise formulas do not see where an element is stored: exact equality.
    ref_opt = make()
    flat_opt = FlatUpdate(make())
    assert is_elementwise(ref_opt)
    mine, theirs = _weights(dtype), _weights(dtype)
    if packed:
        _, views = flat.pack(list(mine.values()))
        mine = dict(zip(mine, views))
    for step in range(6):
        grads = _grads(dtype, step)
        if packed and step % 2:  # gradients that tile one buffer are read in place
            _, views = flat.pack(list(grads.values()))
            grads = dict(zip(grads, views))
        flat_opt(mine, grads)
        ref_opt.update(theirs, {k: g.copy() for k, g in grads.items()})
    for name in theirs:
        np.testing.assert_array_equal(mine[name], theirs[name])
    mine_state, their_state = flat_opt.optimizer.get_state(), ref_opt.get_state()
    assert mine_state.keys() == their_state.keys()
    for key in mine_state:
        np.testing.assert_array_equal(mine_state[key], their_state[key])


def _step_both(pairs, grads):
    """One update of (flat update, its weights) and (per-weight update, its weights);
    asserts the weights stay equal."""
    for update, weights in pairs:
        update(weights, dict(grads))
    (_, mine), (_, theirs) = pairs
    for name in theirs:
        np.testing.assert_array_equal(mine[name], theirs[name])


def test_slots_are_views_and_a_restored_or_replaced_slot_is_used():
    opt, ref = optimizers.Adam(), optimizers.Adam()
    pairs = ((FlatUpdate(opt), _weights(np.float32)), (ref.update, _weights(np.float32)))
    for step in range(2):
        _step_both(pairs, _grads(np.float32, step))
    saved = opt.get_state()
    momentum = list(opt.state["momentum"].values())
    assert flat.span(momentum) is not None  # views of one buffer
    for o in (opt, ref):
        o.state["momentum"]["w0"][...] = 0  # slots are views of the flat buffers: in place
        o.state["velocity"]["w2"] = np.full(SHAPES[2], 0.5, np.float32)  # a new array: used
    _step_both(pairs, _grads(np.float32, 2))
    for o in (opt, ref):
        o.set_state(saved)  # back to step 2's state: the plan is rebuilt from it
    _step_both(pairs, _grads(np.float32, 3))


def test_a_weight_without_gradient_changes_the_plan_not_the_numbers():
    pairs = ((FlatUpdate(optimizers.RMSprop()), _weights(np.float64)),
             (optimizers.RMSprop().update, _weights(np.float64)))
    for step in range(4):
        grads = _grads(np.float64, step)
        if step == 2:
            grads["w3"] = None
        _step_both(pairs, grads)


def test_a_non_elementwise_subclass_steps_weight_by_weight():
    class NormSGD(optimizers.SGD):
        """Scales each weight's gradient by its own norm: not element-wise."""

        def update_step(self, param, grad, slots, lr, k):
            param -= lr * grad / np.linalg.norm(grad)

    assert not is_elementwise(NormSGD(1.0))
    for update in (NormSGD(1.0).update, FlatUpdate(NormSGD(1.0))):
        weights = {"a": np.ones(3), "b": np.ones(2)}
        update(weights, {"a": np.array([3.0, 0, 4]), "b": np.array([0.0, 2])})
        np.testing.assert_allclose(weights["a"], [0.4, 1, 0.2])
        np.testing.assert_allclose(weights["b"], [1, 0])


def _network(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    nodes = [Node("d0", Dense(rng.standard_normal((6, 8)).astype(dtype),
                              rng.standard_normal(8).astype(dtype), "relu"), ["input"]),
             Node("d1", Dense(rng.standard_normal((8, 4)).astype(dtype),
                              rng.standard_normal(4).astype(dtype)), ["d0"])]
    return Network(nodes, loss_layer=SparseCategoricalCrossentropy(from_logits=True))


def test_pack_weights_keeps_values_and_makes_one_buffer():
    net = _network()
    before = {k: v.copy() for k, v in net.params.items()}
    pack_weights(net.params)
    assert flat.span(list(net.params.values())) is not None
    for name, value in before.items():
        np.testing.assert_array_equal(net.params[name], value)
    assert net.nodes[0].layer.params["kernel"] is net.params["d0/kernel"]
    packed = net.params["d0/kernel"]
    pack_weights(net.params)  # already one buffer: left as it is
    assert net.params["d0/kernel"] is packed


def test_reused_gradient_buffers_hold_the_same_gradients_and_are_overwritten():
    net, x = _network(), np.random.default_rng(1).standard_normal((5, 6))
    pack_weights(net.params)
    t = np.array([0, 1, 2, 3, 0])
    fresh = net.gradient(x, t)
    buffers = gradient_buffers(net.params)
    fast = fast_network(net, buffers)
    _, reused = fast.loss_and_gradient(x, t)
    assert flat.span(list(reused.values())) is not None
    assert all(reused[k] is buffers[k] for k in buffers)  # the Dense kernels wrote into them
    for name in fresh:
        np.testing.assert_array_equal(reused[name], fresh[name])
    kept = {k: v.copy() for k, v in reused.items()}
    _, again = fast.loss_and_gradient(x[:3], t[:3])
    assert all(again[k] is reused[k] for k in reused)  # the same buffers, new contents
    assert any(not np.array_equal(again[k], kept[k]) for k in kept)
    plain = net.gradient(x, t)  # the network itself: fresh arrays, the buffers untouched
    assert all(plain[k] is not again[k] for k in plain)
    for name in fresh:
        np.testing.assert_array_equal(plain[name], fresh[name])


# -- the other shortcuts of the training step: each gives the general path's numbers exactly


def _classifier(dtype, loss_dtype=None, softmax_axis=-1, seed=0):
    """Dense -> Softmax output, loss on the logits (what a Keras classifier's twin is)."""
    rng = np.random.default_rng(seed)
    nodes = [Node("hidden", Dense(rng.standard_normal((6, 8)).astype(dtype),
                                  rng.standard_normal(8).astype(dtype), "relu"), ["input"]),
             Node("logits", Dense(rng.standard_normal((8, 5)).astype(dtype),
                                  rng.standard_normal(5).astype(dtype)), ["hidden"]),
             Node("probs", A.Softmax(axis=softmax_axis), ["logits"])]
    loss = SparseCategoricalCrossentropy(from_logits=True, dtype=loss_dtype)
    return Network(nodes, outputs=["probs"], loss_layer=loss, loss_input="logits")


def _fast(net):
    return fast_network(net, gradient_buffers(net.params))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_loss_reuses_the_output_softmax_bit_for_bit(dtype):
    net = _classifier(dtype)
    fast = _fast(net)
    assert isinstance(fast.nodes[2].layer, K.SoftmaxKernel)
    assert isinstance(fast.last_layer, K.SoftmaxCrossentropy)
    rng = np.random.default_rng(3)
    x, t = (rng.standard_normal((9, 6)) * 4).astype(dtype), rng.integers(0, 5, 9)
    loss, grads = fast.loss_and_gradient(x, t)
    assert fast.last_layer.fused
    logits = fast.values["logits"]
    general = SparseCategoricalCrossentropy(from_logits=True)  # the loss on its own
    assert general.forward(logits, t) == loss and np.asarray(loss).dtype == dtype
    np.testing.assert_array_equal(fast.value_grads["logits"], general.backward(1))
    np.testing.assert_array_equal(fast.last_output, net.predict(x))
    for labels in (t.reshape(-1, 1), t.astype(dtype)):  # shapes/dtypes it leaves to forward
        assert fast.loss(x, labels) == loss and not fast.last_layer.fused
        np.testing.assert_array_equal(fast.backward(1)["logits/kernel"], grads["logits/kernel"])


@pytest.mark.parametrize("make", [lambda: _classifier(np.float32, loss_dtype="float64"),
                                  lambda: _classifier(np.float64, softmax_axis=0)],
                         ids=["loss-dtype", "softmax-axis"])
def test_no_reuse_where_the_numbers_would_differ(make):
    net = make()
    fast = _fast(net)
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((4, 6)), rng.integers(0, 5, 4)
    loss = fast.loss(x.astype(net.dtype), t)
    general = SparseCategoricalCrossentropy(from_logits=True, dtype=net.last_layer.dtype)
    assert loss == general.forward(fast.values["logits"], t)
    assert np.asarray(loss).dtype == np.asarray(general.forward(fast.values["logits"], t)).dtype
    assert not getattr(fast.last_layer, "fused", False)  # the general path ran


def test_relu_in_place_inside_dense_keeps_the_input_and_the_gradient():
    rng = np.random.default_rng(0)
    layer = Dense(rng.standard_normal((4, 3)), rng.standard_normal(3), "relu")
    kernel = K.DenseKernel(layer, {})
    assert kernel.relu
    x = rng.standard_normal((6, 4))
    x_before = x.copy()
    y = kernel.forward(x)
    np.testing.assert_array_equal(x, x_before)  # the input is never written
    np.testing.assert_array_equal(y, layer.forward(x))
    dout = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(kernel.backward(dout), layer.backward(dout))
    relu = A.ReLU(max_value=6.0)  # options: the out-of-place path
    assert not K.is_plain_relu(relu) and K.is_plain_relu(A.ReLU())


def test_backward_follows_input_grad_when_it_is_switched():
    net = _classifier(np.float64)
    x, t = np.random.default_rng(1).standard_normal((3, 6)), np.array([0, 1, 2])
    net.gradient(x, t)
    assert "input" not in net.value_grads
    net.input_grad = True
    net.gradient(x, t)
    np.testing.assert_array_equal(
        net.value_grads["input"],
        net.nodes[0].layer.backward(net.value_grads["hidden"]))
