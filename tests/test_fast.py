"""numpy_ref.fast.TrainStep against the plain training.train_step: the same numbers, bit for bit.

Each case trains two copies of one network with two copies of one optimizer for a few
steps on the same batches, one through ``training.train_step`` (the learner's code:
per-weight updates, no buffers) and one through ``fast.TrainStep`` (packed weights,
gradient buffers, kernels, one flat update per dtype), and asserts that the losses,
the weights, the non-trainable state and the optimizer state agree exactly.
"""

import numpy as np
import pytest

from numpy_ref import fast, training
from numpy_ref import layers as L
from numpy_ref import losses
from numpy_ref.fast import flat
from numpy_ref.layers import activations as A
from numpy_ref.layers import conv, core, dropout, normalization, pooling
from numpy_ref.losses import regularizers as R
from numpy_ref.network import Network, Node
from numpy_ref.network import networks as N
from numpy_ref.optim import optimizers as O

STEPS = 4


def _array(rng, shape, dtype):
    return (rng.standard_normal(shape) * 0.3).astype(dtype)


def _dense_relu_stack(dtype):
    """Dense layers with ReLU inside them, raw scores into a cross-entropy on probabilities."""
    rng = np.random.default_rng(0)
    nodes = [Node("flatten", core.Flatten(), ["input"])]
    previous, sizes = "flatten", [12, 16, 10, 4]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        activation = "relu" if i < len(sizes) - 2 else "softmax"
        nodes.append(Node(f"dense_{i}", core.Dense(_array(rng, (a, b), dtype),
                                                   _array(rng, (b,), dtype), activation),
                          [previous]))
        previous = f"dense_{i}"
    return Network(nodes, loss_layer=losses.SparseCategoricalCrossentropy()), (3, 4), 4


def _classifier(dtype):
    """What a Keras classifier's twin is: Dense logits, a Softmax output, the loss on the
    logits (the softmax is shared with the loss)."""
    rng = np.random.default_rng(1)
    nodes = [Node("hidden", core.Dense(_array(rng, (6, 8), dtype), _array(rng, (8,), dtype),
                                       "relu"), ["input"]),
             Node("logits", core.Dense(_array(rng, (8, 5), dtype), _array(rng, (5,), dtype)),
                  ["hidden"]),
             Node("probs", A.Softmax(), ["logits"])]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    return Network(nodes, outputs=["probs"], loss_layer=loss, loss_input="logits"), (6,), 5


def _conv_net(dtype):
    rng = np.random.default_rng(2)
    nodes = [Node("conv", conv.Conv2D(_array(rng, (3, 3, 2, 4), dtype), _array(rng, (4,), dtype),
                                      padding="same"), ["input"]),
             Node("relu", A.get("relu"), ["conv"]),
             Node("pool", pooling.MaxPooling2D(), ["relu"]),
             Node("flatten", core.Flatten(), ["pool"]),
             Node("logits", core.Dense(_array(rng, (36, 3), dtype), _array(rng, (3,), dtype)),
                  ["flatten"])]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    return Network(nodes, loss_layer=loss), (6, 6, 2), 3


def _normalized_net(dtype):
    """Batch norm (moving statistics in ``state``), seeded dropout, a weight penalty."""
    rng = np.random.default_rng(3)
    nodes = [Node("d1", core.Dense(_array(rng, (5, 8), dtype), _array(rng, (8,), dtype), "tanh"),
                  ["input"]),
             Node("bn", normalization.KerasBatchNormalization(
                 np.zeros(8, dtype), np.ones(8, dtype), np.ones(8, dtype), np.zeros(8, dtype)),
                  ["d1"]),
             Node("drop", dropout.KerasDropout(0.3, seed=5), ["bn"]),
             Node("d2", core.Dense(_array(rng, (8, 3), dtype), _array(rng, (3,), dtype), "relu"),
                  ["drop"])]
    penalties = [R.WeightPenalty("d1/kernel", R.L2(0.01))]
    return Network(nodes, loss_layer=losses.MeanSquaredError(), penalties=penalties), (5,), None


def _shared_weights(dtype):
    """One kernel and bias applied twice, and a second kernel applied twice without a bias
    (each application a layer of its own holding the same arrays): the gradient of a shared
    name is the sum of its parts."""
    rng = np.random.default_rng(4)
    kernel, bias = _array(rng, (6, 6), dtype), _array(rng, (6,), dtype)
    names = {"kernel": "shared/kernel", "bias": "shared/bias"}
    twice = _array(rng, (6, 6), dtype)
    nodes = [Node("a", core.Dense(kernel, bias, "relu"), ["input"], param_names=names),
             Node("b", core.Dense(kernel, bias, "relu"), ["a"], param_names=names),
             Node("c", core.Dense(twice, None, "tanh"), ["b"],
                  param_names={"kernel": "twice/kernel"}),
             Node("d", core.Dense(twice, None, "tanh"), ["c"],
                  param_names={"kernel": "twice/kernel"}),
             Node("out", core.Dense(_array(rng, (6, 3), dtype), None), ["d"])]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    return Network(nodes, loss_layer=loss), (6,), 3


def _book_net(dtype):
    return N.MultiLayerNet(10, [8, 6], 3, seed=5, dtype=dtype), (10,), 3


NETWORKS = {"dense-relu": _dense_relu_stack, "classifier": _classifier, "conv": _conv_net,
            "batchnorm-dropout": _normalized_net, "shared": _shared_weights,
            "multi-layer-net": _book_net}
OPTIMIZERS = {
    "sgd": lambda: O.SGD(0.1),
    "momentum-clipnorm": lambda: O.Momentum(0.05, clipnorm=0.5),
    "nesterov-decay": lambda: O.Nesterov(0.05, weight_decay=0.01),
    "adagrad-clipvalue": lambda: O.AdaGrad(0.1, clipvalue=0.1),
    "rmsprop-centered": lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
    "adam": lambda: O.Adam(0.01),
    "adam-amsgrad-global-clipnorm": lambda: O.Adam(0.01, amsgrad=True, global_clipnorm=1.0),
    "adamw-excluded": lambda: O.AdamW(0.01, exclude_from_weight_decay=["b1", "d2/bias"]),
    "adamax": lambda: O.Adamax(0.01),
    "nadam": lambda: O.Nadam(0.01),
    "lion-decay": lambda: O.Lion(0.001, weight_decay=0.1),
    "adadelta": lambda: O.Adadelta(1.0),
}


def _batches(shape, classes, dtype):
    rng = np.random.default_rng(7)
    for _ in range(STEPS):
        x = rng.standard_normal((5, *shape)).astype(dtype)
        t = (rng.integers(0, classes, 5) if classes
             else rng.standard_normal((5, 3)).astype(dtype))
        yield x, t


def _assert_same_arrays(mine, theirs):
    assert mine.keys() == theirs.keys()
    for name in theirs:
        np.testing.assert_array_equal(mine[name], theirs[name], err_msg=name)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS), ids=list(OPTIMIZERS))
@pytest.mark.parametrize("network", list(NETWORKS), ids=list(NETWORKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fast_steps_equal_plain_steps_bit_for_bit(network, optimizer, dtype):
    (plain_net, shape, classes), (fast_net, _, _) = (NETWORKS[network](dtype) for _ in "ab")
    plain_opt, fast_opt = OPTIMIZERS[optimizer](), OPTIMIZERS[optimizer]()
    step = fast.TrainStep(fast_net, fast_opt)
    plain_losses, fast_losses = [], []
    for x, t in _batches(shape, classes, dtype):
        plain_losses.append(training.train_step(plain_net, plain_opt, x, t))
        fast_losses.append(step(x, t))
        np.testing.assert_array_equal(step.last_output, plain_net.last_output)
    np.testing.assert_array_equal(np.array(fast_losses), np.array(plain_losses))
    assert np.asarray(fast_losses[-1]).dtype == np.asarray(plain_losses[-1]).dtype
    _assert_same_arrays(dict(fast_net.params.items()), dict(plain_net.params.items()))
    _assert_same_arrays(dict(fast_net.state.items()), dict(plain_net.state.items()))
    _assert_same_arrays(fast_opt.get_state(), plain_opt.get_state())


def test_the_fast_step_trains_packed_weights_and_repacks_a_replaced_array():
    net, shape, classes = _classifier(np.float32)
    twin, _, _ = _classifier(np.float32)
    step, plain_opt = fast.TrainStep(net, O.Adam(0.01)), O.Adam(0.01)
    batches = list(_batches(shape, classes, np.float32))
    for x, t in batches[:2]:
        step(x, t)
        training.train_step(twin, plain_opt, x, t)
    assert flat.span(net.params.values()) is not None  # one buffer, the layers' views
    layer = net.nodes[0].layer
    layer.params["kernel"] = layer.params["kernel"].copy()  # a layer given another array
    twin.params["hidden/kernel"][0, 0] = net.params["hidden/kernel"][0, 0] = 0.5
    for x, t in batches[2:]:
        assert step(x, t) == training.train_step(twin, plain_opt, x, t)
    assert layer.params["kernel"] is net.params["hidden/kernel"]
    assert flat.span(net.params.values()) is not None  # packed again
    _assert_same_arrays(dict(net.params.items()), dict(twin.params.items()))


def test_a_restored_optimizer_state_is_what_the_next_fast_step_uses():
    (net, shape, classes), (twin, _, _) = _classifier(np.float64), _classifier(np.float64)
    opt, plain_opt = O.RMSprop(0.01, momentum=0.5), O.RMSprop(0.01, momentum=0.5)
    step = fast.TrainStep(net, opt)
    batches = list(_batches(shape, classes, np.float64))
    step(*batches[0])
    saved = opt.get_state()
    for x, t in batches[1:3]:
        step(x, t)
    opt.set_state(saved)  # back to the state after the first step
    training.train_step(twin, plain_opt, *batches[0])
    for name, value in dict(twin.params.items()).items():  # the weights of step 3, both
        twin.params[name] = net.params[name]
    for x, t in batches[3:]:
        assert step(x, t) == training.train_step(twin, plain_opt, x, t)
    _assert_same_arrays(opt.get_state(), plain_opt.get_state())


def test_the_stepper_trains_a_network_through_the_fast_step():
    (net, shape, classes), (twin, _, _) = _book_net(np.float32), _book_net(np.float32)
    stepper, plain_opt = training.Stepper(net, O.Adam(0.01)), O.Adam(0.01)
    assert isinstance(stepper.fast_step, fast.TrainStep)
    for x, t in _batches(shape, classes, np.float32):
        assert stepper.train_step(x, t) == training.train_step(twin, plain_opt, x, t)
    _assert_same_arrays(dict(net.params.items()), dict(twin.params.items()))


def test_a_replaced_loss_layer_is_what_the_next_fast_step_uses():
    (net, shape, classes), (twin, _, _) = _book_net(np.float64), _book_net(np.float64)
    step, plain_opt = fast.TrainStep(net, O.SGD(0.1)), O.SGD(0.1)
    batches = list(_batches(shape, classes, np.float64))
    assert step(*batches[0]) == training.train_step(twin, plain_opt, *batches[0])
    net.last_layer, twin.last_layer = L.SoftmaxWithLoss("keras"), L.SoftmaxWithLoss("keras")
    for x, t in batches[1:]:
        assert step(x, t) == training.train_step(twin, plain_opt, x, t)
    _assert_same_arrays(dict(net.params.items()), dict(twin.params.items()))
