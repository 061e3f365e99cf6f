"""numpy_ref.fast's convolution kernels against the plain layers: the same bits, zeros' signs too.

Each case trains two copies of a convolutional network for a few steps on the same
batches, one through ``training.train_step`` (the plain layers) and one through
``fast.TrainStep`` (``ConvKernel``; a ReLU handed to the max pooling after it,
``MaxPoolKernel``), and compares losses, weights and optimizer slots byte for byte.
Inputs and weights are multiples of 1/4 with blank regions, so windows hold ties (the
gradient goes to the first maximum) and exact zeros, maxima <= 0 included.
"""

import numpy as np
import pytest

from numpy_ref import fast, losses, training
from numpy_ref.fast import conv as fast_conv
from numpy_ref.fast import graph
from numpy_ref.layers import conv, core, pooling
from numpy_ref.network import Network, Node
from numpy_ref.optim import optimizers as O

STEPS = 4


def _loss():
    return losses.SparseCategoricalCrossentropy(from_logits=True)


def _quarters(rng, shape, dtype, scale=1.0):
    """Multiples of scale / 4 in [-scale, scale]: sums of few of them are exact (ties)."""
    return (rng.integers(-4, 5, shape) * (scale / 4)).astype(dtype)


def _conv(rng, size, c_in, c_out, dtype, activation="relu", bias=True):
    kernel = _quarters(rng, (size, size, c_in, c_out), dtype, 0.5)
    return conv.Conv2D(kernel, np.zeros(c_out, dtype) if bias else None,
                       activation=activation)


def _head(rng, previous, units, dtype):
    return [Node("flatten", core.Flatten(), [previous]),
            Node("hidden", core.Dense(_quarters(rng, (units, 6), dtype, 0.25),
                                      np.zeros(6, dtype), "relu"), ["flatten"]),
            Node("logits", core.Dense(_quarters(rng, (6, 3), dtype, 0.5), np.zeros(3, dtype)),
                 ["hidden"])]


def _simple(dtype):
    """SimpleConvNet's layout: Conv2D(relu) -> MaxPooling2D -> Flatten -> Dense -> Dense."""
    rng = np.random.default_rng(0)
    nodes = [Node("conv", _conv(rng, 3, 2, 4, dtype), ["input"]),
             Node("pool", pooling.MaxPooling2D(2), ["conv"]),
             *_head(rng, "pool", 3 * 3 * 4, dtype)]
    return Network(nodes, loss_layer=_loss()), (8, 8, 2)


def _deep(dtype):
    """DeepConvNet's layout: padded convolutions, every second one pooled."""
    rng = np.random.default_rng(1)
    nodes = [Node("pad1", conv.ZeroPadding2D(1), ["input"]),
             Node("conv1", _conv(rng, 3, 2, 3, dtype), ["pad1"]),
             Node("pad2", conv.ZeroPadding2D(1), ["conv1"]),
             Node("conv2", _conv(rng, 3, 3, 4, dtype), ["pad2"]),
             Node("pool", pooling.MaxPooling2D(2), ["conv2"]),
             *_head(rng, "pool", 4 * 4 * 4, dtype)]
    return Network(nodes, loss_layer=_loss()), (8, 8, 2)


def _odd(dtype):
    """A 7x7 convolution output: 2x2 windows do not tile it (the plain ReLU and pooling),
    and a convolution without activation or bias before it."""
    rng = np.random.default_rng(2)
    nodes = [Node("conv0", _conv(rng, 2, 2, 2, dtype, activation="linear", bias=False),
                  ["input"]),
             Node("conv", _conv(rng, 2, 2, 3, dtype), ["conv0"]),
             Node("pool", pooling.MaxPooling2D(2), ["conv"]),
             *_head(rng, "pool", 3 * 3 * 3, dtype)]
    return Network(nodes, loss_layer=_loss()), (9, 9, 2)


NETWORKS = {"simple": _simple, "deep": _deep, "odd": _odd}
OPTIMIZERS = {"sgd": lambda: O.SGD(0.1), "adam": lambda: O.Adam(0.01)}


def _batches(shape, dtype):
    rng = np.random.default_rng(7)
    for _ in range(STEPS):
        x = rng.integers(0, 3, (5, *shape)).astype(dtype) / 2
        x[:, : shape[0] // 2] = 0  # blank rows: windows of equal values
        x[0] = 0  # a blank image
        yield x, rng.integers(0, 3, 5)


def _assert_same_bits(mine, theirs):
    assert mine.keys() == theirs.keys()
    for name in theirs:
        a, b = np.asarray(mine[name]), np.asarray(theirs[name])
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name  # -0.0 and 0.0 differ here


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fast_conv_steps_equal_plain_steps_bit_for_bit(network, optimizer, dtype):
    (plain_net, shape), (fast_net, _) = NETWORKS[network](dtype), NETWORKS[network](dtype)
    plain_opt, fast_opt = OPTIMIZERS[optimizer](), OPTIMIZERS[optimizer]()
    step = fast.TrainStep(fast_net, fast_opt)
    plain_losses, fast_losses, outputs = [], [], []
    for x, t in _batches(shape, dtype):
        plain_losses.append(training.train_step(plain_net, plain_opt, x, t))
        fast_losses.append(step(x, t))
        outputs.append((step.last_output.copy(), plain_net.last_output.copy()))
    assert np.array(fast_losses).tobytes() == np.array(plain_losses).tobytes()
    for mine, theirs in outputs:
        assert mine.tobytes() == theirs.tobytes()
    _assert_same_bits(dict(fast_net.params.items()), dict(plain_net.params.items()))
    _assert_same_bits(fast_opt.get_state(), plain_opt.get_state())


def test_the_pool_gradient_goes_to_the_first_maximum_through_the_relu():
    """One window by hand: ties, a maximum <= 0, a NaN; dz against the plain layers'."""
    z = np.array([[1.0, 1.0], [0.5, 1.0],   # tie of three positives: the first gets it
                  [-1.0, -1.0], [-2.0, -1.0],  # maximum below zero: all get 0 * dout
                  [0.0, -0.0], [0.0, 0.0],     # zeros
                  [np.nan, 3.0], [1.0, 2.0]], np.float32).reshape(4, 2, 2).transpose(1, 2, 0)
    z = np.ascontiguousarray(z)[None]  # (1, 2, 2, 4): four channels, one window each
    dout = np.array([2.0, -3.0, -1.5, 4.0], np.float32).reshape(1, 1, 1, 4)
    relu, pool = conv.L.Relu(), pooling.MaxPooling2D(2)
    plain_y = pool.forward(relu.forward(z))
    plain_dz = relu.backward(pool.backward(dout))
    kernel = fast_conv.MaxPoolKernel(pooling.MaxPooling2D(2))
    y = kernel.forward(z.copy())
    dz = kernel.backward(dout)
    assert y.tobytes() == plain_y.tobytes()
    assert dz.tobytes() == plain_dz.tobytes()
    np.testing.assert_array_equal(dz[0, :, :, 0], [[2, 0], [0, 0]])
    assert np.signbit(dz[0, :, :, 1]).all()  # -3 * 0 everywhere


def test_the_fast_graph_hands_a_convolutions_relu_to_the_pooling_that_alone_reads_it():
    net, _ = _deep(np.float32)
    assert graph.fused_convolutions(net) == {"conv2"}
    fast_net = graph.fast_network(net, graph.gradient_buffers(net.params))
    kinds = {node.name: type(node.layer) for node in fast_net.nodes}
    assert kinds["conv1"] is kinds["conv2"] is fast_conv.ConvKernel
    assert kinds["pool"] is fast_conv.MaxPoolKernel
    conv1, conv2 = (fast_net.nodes[i].layer for i in (1, 3))
    assert conv1.relu and not conv1.fused and conv2.fused and not conv2.relu


def test_a_convolution_read_by_another_node_too_keeps_its_relu():
    rng = np.random.default_rng(3)
    nodes = [Node("conv", _conv(rng, 3, 2, 4, np.float32), ["input"]),
             Node("pool", pooling.MaxPooling2D(2), ["conv"]),
             Node("flat_conv", core.Flatten(), ["conv"])]
    net = Network(nodes, outputs=["pool", "flat_conv"],
                  loss_layer=losses.MeanSquaredError(), loss_input="pool")
    assert graph.fused_convolutions(net) == set()
