"""Training throughput of Mymodel, three ways, on the same uint8 images.

- `keras_fit`: `model.compile(Adam, SparseCategoricalCrossentropy, accuracy)` and
  `model.fit(make_dataset(...), epochs=1, verbose=0)`: Keras's own loop;
- `custom_loop`: `tfmodels.training.fit` (the `Trainer`'s steps) over the same `make_dataset`;
- `numpy_ref`: `numpy_ref.training.fit` of `tfmodels.parity.twin(Mymodel)` with the twin
  of Keras's Adam, float32, uint8 batches scaled as the NumPy backend does.

All three read the same uint8 arrays in memory, scale each batch to float32 [0, 1], track
the loss and accuracy, and run one epoch per timed call (the first epoch, with tracing
and compilation, is the untimed warm-up). Imports TensorFlow: runs in a worker process.
"""

import math

import numpy as np

from benchmarking import machine, stats

HIDDEN_UNITS = (32, 64, 128, 256)
NUM_CLASSES = 10


def training_macs_per_example(input_size, hidden_units=HIDDEN_UNITS, num_classes=NUM_CLASSES):
    """Multiply-adds of one training example: the forward products, the kernel gradients
    (as many again), and the input gradients of every Dense layer but the first (nothing
    needs dL/dx of the images). Element-wise work (bias, ReLU, softmax, Adam) is left out."""
    sizes = [input_size, *hidden_units, num_classes]
    layers = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * sum(layers) + sum(layers[1:])


class _KerasFit:
    def __init__(self, x, y, batch_size, seed):
        import keras  # pylint: disable=import-outside-toplevel
        from tfmodels import data, models  # pylint: disable=import-outside-toplevel
        self.x, self.y, self.batch_size, self.seed, self.data = x, y, batch_size, seed, data
        self.model = models.Mymodel()
        self.model.compile(optimizer=keras.optimizers.Adam(),
                           loss=keras.losses.SparseCategoricalCrossentropy(),
                           metrics=["sparse_categorical_accuracy"])

    def epoch(self, i):
        ds = self.data.make_dataset(self.x, self.y, self.batch_size, seed=self.seed + i)
        self.model.fit(ds, epochs=1, verbose=0, shuffle=False)  # ds is shuffled already


class CustomLoopRunner:
    """One epoch per call of `tfmodels.training.fit` (the `Trainer`'s steps, Keras's Adam)
    on `model`, over `make_dataset` of the uint8 images."""

    def __init__(self, model, x, y, batch_size, seed):
        import keras  # pylint: disable=import-outside-toplevel
        from tfmodels import data, training  # pylint: disable=import-outside-toplevel
        self.x, self.y, self.batch_size, self.seed, self.data = x, y, batch_size, seed, data
        self.trainer = training.Trainer(model, keras.optimizers.Adam())
        self.fit = training.fit

    def epoch(self, i):
        ds = self.data.make_dataset(self.x, self.y, self.batch_size, seed=self.seed + i)
        self.fit(self.trainer.model, ds, epochs=1, trainer=self.trainer)


class TwinRunner:
    """One epoch per call of `numpy_ref.training.fit` on the twin of `model` (its weights
    now) with the twin of Keras's Adam, uint8 batches scaled as the NumPy backend does."""

    def __init__(self, model, x, y, batch_size, seed):
        import keras  # pylint: disable=import-outside-toplevel
        from numpy_ref import training  # pylint: disable=import-outside-toplevel
        from tfmodels import data, parity  # pylint: disable=import-outside-toplevel
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.fit = training.fit
        self.scale = lambda images: data.scale_images(images, np.float32)
        self.net = parity.twin(model)
        self.optimizer = parity.twin_optimizer(keras.optimizers.Adam(),
                                               model.trainable_variables)

    def epoch(self, i):
        self.fit(self.net, self.optimizer, (self.x, self.y), epochs=1, batch_size=self.batch_size,
                 seed=self.seed + i, preprocess=self.scale)


class _CustomLoop(CustomLoopRunner):
    def __init__(self, x, y, batch_size, seed):
        from tfmodels import models  # pylint: disable=import-outside-toplevel
        super().__init__(models.Mymodel(), x, y, batch_size, seed)


class _NumpyRef(TwinRunner):
    """The twin of Mymodel and of Keras's Adam: what `--backend=numpy` trains."""

    def __init__(self, x, y, batch_size, seed):
        from tfmodels import models  # pylint: disable=import-outside-toplevel
        super().__init__(models.build_model("mymodel", HIDDEN_UNITS, num_classes=NUM_CLASSES,
                                            input_shape=x.shape[1:]), x, y, batch_size, seed)


VARIANTS = {"keras_fit": _KerasFit, "custom_loop": _CustomLoop, "numpy_ref": _NumpyRef}


def tf_gemm_gflops(n=2048, repeats=5):
    """The float32 rate of one large TensorFlow matrix product (oneDNN / Eigen)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    a = tf.random.uniform((n, n), dtype=tf.float32, seed=0)
    b = tf.random.uniform((n, n), dtype=tf.float32, seed=1)
    return machine.gemm_gflops(lambda: tf.linalg.matmul(a, b).numpy(), n, repeats)


def measure(x, y, batch_sizes, repeats, seed=0):
    """Examples/s of each variant at each batch size, interleaved, plus GEMM ceilings.

    Returns:
        {"examples": n, "examples_per_s": {variant: {str(batch): summary}},
         "ratios": {...}, "gflops": {...}, "gemm_gflops": {"numpy": ., "tensorflow": .},
         "macs_per_example": m}
    """
    import keras  # pylint: disable=import-outside-toplevel
    n = len(x)
    gemm = {"numpy": machine.numpy_gemm_gflops(), "tensorflow": tf_gemm_gflops()}
    ceiling = max(gemm.values())
    macs = training_macs_per_example(math.prod(x.shape[1:]))
    result = {"examples": n, "macs_per_example": macs, "gemm_gflops": gemm,
              "examples_per_s": {v: {} for v in VARIANTS}, "ratios": {}, "gflops": {}}
    for batch_size in batch_sizes:
        keras.utils.set_random_seed(seed)
        runners = {name: cls(x, y, batch_size, seed) for name, cls in VARIANTS.items()}
        seconds = stats.interleaved({name: r.epoch for name, r in runners.items()}, repeats)
        rates = {name: [n / s for s in seconds[name]] for name in runners}
        key = str(batch_size)
        for name in runners:
            summary = stats.summary(rates[name])
            result["examples_per_s"][name][key] = summary
            gflops = 2 * macs * summary["median"] / 1e9
            result["gflops"].setdefault(name, {})[key] = {
                "gflops": gflops, "fraction_of_ceiling": gflops / ceiling}
        result["ratios"][key] = {
            "custom_loop/keras_fit": stats.paired_ratio(rates["custom_loop"], rates["keras_fit"]),
            "numpy_ref/custom_loop": stats.paired_ratio(rates["numpy_ref"],
                                                        rates["custom_loop"])}
    return result
