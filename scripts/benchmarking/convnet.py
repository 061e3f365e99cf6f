"""Training throughput of the book's convnets: numpy_ref against the Keras custom loop.

SimpleConvNet, the network of the book's ch07 in Keras: Conv2D(30, 5x5, ReLU) ->
MaxPooling2D(2x2, stride 2) -> Flatten -> Dense(100, ReLU) -> Dense(10, softmax), on
(N, 28, 28, 1) images, float32, Adam, batch 100. DeepConvNet, the book's ch08 network
(`tfmodels.models.deep_convnet`: six 3x3 convolutions of 16-64 filters, three max-pools,
Dense(50), two dropouts), the same way on the first `DEEP_EXAMPLES` images (a step costs
some 40 times SimpleConvNet's). Both variants start from the same weights:

- `custom_loop`: `tfmodels.training.fit` (the `Trainer`'s compiled steps) over `make_dataset`;
- `numpy_ref`: `numpy_ref.training.fit` of `tfmodels.parity.twin(model)` with
  `tfmodels.parity.twin_optimizer(Adam)`, uint8 batches scaled as the NumPy backend does.

One timed call is one epoch over the same uint8 images; the first is an untimed warm-up.
Imports TensorFlow: runs in a worker process.
"""

import time

import numpy as np

from benchmarking import machine, stats, throughput

BATCH_SIZE = 100
INPUT_SHAPE = (28, 28, 1)
DEEP_EXAMPLES = 1_000


def simple_conv_net():
    """The book's SimpleConvNet (ch07) as a Keras model, channels_last."""
    import keras  # pylint: disable=import-outside-toplevel
    layers = keras.layers
    return keras.Sequential([
        keras.Input(INPUT_SHAPE),
        layers.Conv2D(30, 5, activation="relu"),
        layers.MaxPooling2D(2, 2),
        layers.Flatten(),
        layers.Dense(100, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ], name="simple_conv_net")


def deep_conv_net():
    """The book's DeepConvNet (ch08) as a Keras model, channels_last."""
    from tfmodels.models import convnets  # pylint: disable=import-outside-toplevel
    return convnets.deep_convnet(INPUT_SHAPE)


def layer_milliseconds(net, x, y, repeats=20):
    """Median ms of each twin layer's forward and backward on one batch (a profile of the
    numpy_ref step; a layer whose input needs no gradient computes its weight gradients
    only, as in training)."""
    net.loss_and_gradient(x, y)
    rows = []
    for node in net.nodes:
        layer, value = node.layer, net.values[node.inputs[0]]
        dout = net.value_grads.get(node.name)
        weights_only = not any(name in net.value_grads for name in node.inputs)
        backward = (getattr(layer, "backward_weights", layer.backward) if weights_only
                    else layer.backward)
        times = {"forward": [], "backward": []}
        for _ in range(repeats):
            start = time.perf_counter()
            layer.forward(value, training=True)
            times["forward"].append(time.perf_counter() - start)
            if dout is not None:
                start = time.perf_counter()
                backward(dout)
                times["backward"].append(time.perf_counter() - start)
        rows.append({"layer": node.name, "class": type(layer).__name__,
                     **{k: 1e3 * stats.summary(v)["median"] if v else 0.0
                        for k, v in times.items()}})
    step = []
    for _ in range(repeats):
        start = time.perf_counter()
        net.loss_and_gradient(x, y)
        step.append(time.perf_counter() - start)
    return {"layers": rows, "step_ms": 1e3 * stats.summary(step)["median"]}


def _measure_model(make_model, x, y, repeats, seed, profile_repeats):
    """{"examples", "batch_size", "examples_per_s", "ratio", "profile", "fast_profile"} of
    one model."""
    import keras  # pylint: disable=import-outside-toplevel
    from tfmodels import parity  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(seed)
    model = make_model()
    runners = {"custom_loop": throughput.CustomLoopRunner(model, x, y, BATCH_SIZE, seed),
               # twinned before any training: both start from the same weights
               "numpy_ref": throughput.TwinRunner(model, x, y, BATCH_SIZE, seed)}
    seconds = stats.interleaved({name: r.epoch for name, r in runners.items()}, repeats)
    rates = {name: [len(x) / s for s in seconds[name]] for name in runners}
    batch, labels = x[:BATCH_SIZE].astype(np.float32) / np.float32(255), y[:BATCH_SIZE]
    return {"examples": len(x), "batch_size": BATCH_SIZE,
            "examples_per_s": {name: stats.summary(r) for name, r in rates.items()},
            "ratio": stats.paired_ratio(rates["numpy_ref"], rates["custom_loop"]),
            # the plain twin's layers, and the fast graph training runs (numpy_ref.fast)
            "profile": layer_milliseconds(parity.twin(model), batch, labels, profile_repeats),
            "fast_profile": layer_milliseconds(_fast_graph(runners["numpy_ref"].net), batch,
                                               labels, profile_repeats)}


def _fast_graph(net):
    """The graph `numpy_ref.fast.TrainStep` trains `net` through (its kernels)."""
    from numpy_ref.fast import graph  # pylint: disable=import-outside-toplevel
    graph.pack_weights(net.params)
    return graph.fast_network(net, graph.gradient_buffers(net.params))


def measure(x, y, repeats, seed=0, deep_examples=DEEP_EXAMPLES):
    """Examples/s of both variants, interleaved, from the same initial weights, for
    SimpleConvNet on all of `x` and DeepConvNet on its first `deep_examples` images.

    Args:
        x: uint8 images (N, 28, 28) or (N, 28, 28, 1); y: labels (N,).

    Returns:
        SimpleConvNet's {"examples": n, "batch_size": 100, "examples_per_s": {variant:
        summary}, "ratio": numpy_ref / custom_loop (`stats.paired_ratio`), "profile":
        `layer_milliseconds` of the twin, "fast_profile": the same of the fast graph
        `numpy_ref.fast.TrainStep` trains it through}, with "blas" (NumPy's BLAS) and
        "deep_convnet": the same keys for DeepConvNet.
    """
    x = x.reshape(len(x), *INPUT_SHAPE)
    result = _measure_model(simple_conv_net, x, y, repeats, seed, profile_repeats=20)
    deep = min(len(x), deep_examples)
    result["deep_convnet"] = _measure_model(deep_conv_net, x[:deep], y[:deep], repeats, seed,
                                            profile_repeats=3)
    result["blas"] = machine.blas_info()
    return result
