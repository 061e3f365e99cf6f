"""Training throughput of Mymodel: the project's variants and two peers, on the same uint8 images.

- `keras_fit`: `model.compile(Adam, SparseCategoricalCrossentropy, accuracy)` and
  `model.fit(make_dataset(...), epochs=1, verbose=0)`: Keras's own loop;
- `custom_loop`: `tfmodels.training.fit` (the `Trainer`'s steps) over the same `make_dataset`;
- `custom_loop_xla`: the same with `Trainer(..., jit_compile=True, steps_per_execution=K)`;
- `numpy_ref`: `numpy_ref.training.fit` of `tfmodels.parity.twin(Mymodel)` with the twin
  of Keras's Adam, float32, uint8 batches scaled as the NumPy backend does;
- `jax`, `torch`: the peers (`peers`), the same network and Adam written idiomatically in
  JAX and PyTorch, reading the batches numpy_ref reads, one call per step;
- `jax_scan`, `torch_compile`: the peers at their best: JAX with one `jax.jit` call per
  `steps_per_execution` steps (`lax.scan`, batches gathered on the device: the trick
  train.py's loop plays), PyTorch with `torch.compile` of the model and of Adam's step.

The ratios judge against the fastest custom loop (`custom`) and the fastest peer (`peer`)
at each batch size, by median rate.

All read the same uint8 arrays in memory, scale each batch to float32 [0, 1], track the
loss and accuracy, and run one epoch per timed call (the first epoch, with tracing and
compilation, is the untimed warm-up). A variant that fails, or a peer that is not
installed, is reported as such and the others run on. Imports TensorFlow: runs in a
worker process.
"""

import dataclasses
import functools
import math

import numpy as np
from absl import logging

from benchmarking import machine, peers, stats
from numpy_ref import training as np_training

HIDDEN_UNITS = peers.HIDDEN_UNITS
NUM_CLASSES = peers.NUM_CLASSES
OK = "ok"
CUSTOM = "custom"  # in ratios: the faster custom loop at that batch size
CUSTOM_LOOPS = ("custom_loop", "custom_loop_xla")
PEER = "peer"  # in ratios: the fastest peer at that batch size


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
    on `model`, over `make_dataset` of the uint8 images; `trainer_options` go to `Trainer`.

    `ordered=True` reads the batches as train.py's TensorFlow backend does instead: the
    images held once by TensorFlow (`ImageBatches`), in numpy_ref's order for the epoch,
    as `OrderedBatches` (which a multi-step Trainer gathers inside its compiled loop)."""

    def __init__(self, model, x, y, batch_size, seed, ordered=False, **trainer_options):
        import keras  # pylint: disable=import-outside-toplevel
        from tfmodels import data, training  # pylint: disable=import-outside-toplevel
        self.x, self.y, self.batch_size, self.seed, self.data = x, y, batch_size, seed, data
        self.images = data.ImageBatches(x, y) if ordered else None
        self.trainer = training.Trainer(model, keras.optimizers.Adam(), **trainer_options)
        self.fit = training.fit

    def epoch(self, i):
        if self.images is None:
            ds = self.data.make_dataset(self.x, self.y, self.batch_size, seed=self.seed + i)
        else:
            ds = self.images.ordered(self.batch_size,
                                     np_training.epoch_order(len(self.x), self.seed + i, 1))
        self.fit(self.trainer.model, ds, epochs=1, trainer=self.trainer)


class TwinRunner:
    """One epoch per call of `numpy_ref.training.fit` on the twin of `model` (its weights
    now) with the twin of Keras's Adam, uint8 batches scaled as the NumPy backend does."""

    def __init__(self, model, x, y, batch_size, seed, blas_threads="auto"):
        import keras  # pylint: disable=import-outside-toplevel
        from tfmodels import data, parity  # pylint: disable=import-outside-toplevel
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.blas_threads = blas_threads
        self.fit = np_training.fit
        self.scale = lambda images: data.scale_images(images, np.float32)
        self.net = parity.twin(model)
        self.optimizer = parity.twin_optimizer(keras.optimizers.Adam(),
                                               model.trainable_variables)

    def epoch(self, i):
        self.fit(self.net, self.optimizer, (self.x, self.y), epochs=1, batch_size=self.batch_size,
                 seed=self.seed + i, preprocess=self.scale, blas_threads=self.blas_threads)


class _CustomLoop(CustomLoopRunner):
    def __init__(self, x, y, batch_size, seed):
        from tfmodels import models  # pylint: disable=import-outside-toplevel
        super().__init__(models.Mymodel(), x, y, batch_size, seed)


class _CustomLoopXla(CustomLoopRunner):
    """The custom loop as train.py's TensorFlow backend runs it: `OrderedBatches`,
    `steps_per_execution`, and XLA as `--jit_compile=auto` decides for this batch size."""

    def __init__(self, x, y, batch_size, seed, steps_per_execution):
        from tfmodels import models, xla  # pylint: disable=import-outside-toplevel
        model = models.Mymodel()
        super().__init__(model, x, y, batch_size, seed, ordered=True,
                         jit_compile=xla.resolve_jit_compile("auto", model,
                                                             batch_size=batch_size),
                         steps_per_execution=steps_per_execution)


class _NumpyRef(TwinRunner):
    """The twin of Mymodel and of Keras's Adam: what `--backend=numpy` trains; BLAS threads
    as `numpy_ref.training.fit` picks them unless `blas_threads` says otherwise."""

    def __init__(self, x, y, batch_size, seed, blas_threads="auto"):
        from tfmodels import models  # pylint: disable=import-outside-toplevel
        super().__init__(models.build_model("mymodel", HIDDEN_UNITS, num_classes=NUM_CLASSES,
                                            input_shape=x.shape[1:]), x, y, batch_size, seed,
                         blas_threads)


class _NumpyRefOneThread(_NumpyRef):
    def __init__(self, x, y, batch_size, seed):
        super().__init__(x, y, batch_size, seed, blas_threads=1)


class _NumpyRefLibraryThreads(_NumpyRef):
    def __init__(self, x, y, batch_size, seed):
        super().__init__(x, y, batch_size, seed, blas_threads=None)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of the throughput tables: `runner(x, y, batch_size, seed, **options)`
    has `epoch(i)`, with the `options` of `measure` it names; a peer's libraries are
    optional (`peers.missing`)."""
    label: str
    runner: object
    peer: bool = False
    options: tuple = ()


VARIANTS = {
    "keras_fit": Variant("Keras `fit`", _KerasFit),
    "custom_loop": Variant("custom loop", _CustomLoop),
    "custom_loop_xla": Variant("custom loop as train.py runs it (steps in the graph, XLA "
                               "below batch 512)", _CustomLoopXla,
                               options=("steps_per_execution",)),
    "numpy_ref": Variant("numpy_ref", _NumpyRef),
    "numpy_by_hand": Variant("NumPy by hand (floor)", peers.NumpyByHandRunner),
    "numpy_ref_1_blas_thread": Variant("numpy_ref, told 1 BLAS thread", _NumpyRefOneThread),
    "numpy_ref_library_threads": Variant("numpy_ref, OpenBLAS's own thread count",
                                         _NumpyRefLibraryThreads),
    "jax": Variant("JAX (peer), one jit call per step", peers.JaxRunner, peer=True),
    "jax_scan": Variant("JAX (peer), lax.scan of K steps per jit call", peers.JaxScanRunner,
                        peer=True, options=("steps_per_execution",)),
    "torch": Variant("PyTorch (peer), eager", peers.TorchRunner, peer=True),
    "torch_compile": Variant("PyTorch (peer), torch.compile", peers.TorchCompiledRunner,
                             peer=True),
}
PEERS = tuple(name for name, v in VARIANTS.items() if v.peer)
# (key, numerator, denominator) of each run's ratios; CUSTOM is the faster custom loop,
# PEER the fastest peer.
RATIOS = (("custom/keras_fit", CUSTOM, "keras_fit"), ("custom/peer", CUSTOM, PEER),
          ("custom/jax", CUSTOM, "jax"), ("custom/jax_scan", CUSTOM, "jax_scan"),
          ("numpy_ref/peer", "numpy_ref", PEER), ("numpy_ref/jax_scan", "numpy_ref", "jax_scan"),
          ("numpy_ref/jax", "numpy_ref", "jax"), ("numpy_ref/custom", "numpy_ref", CUSTOM),
          ("numpy_ref/torch", "numpy_ref", "torch"), ("jax/torch", "jax", "torch"),
          ("numpy_ref/numpy_by_hand", "numpy_ref", "numpy_by_hand"),
          ("numpy_by_hand/jax", "numpy_by_hand", "jax"))


def tf_gemm_gflops(n=2048, repeats=5):
    """The float32 rate of one large TensorFlow matrix product (oneDNN / Eigen)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    a = tf.random.uniform((n, n), dtype=tf.float32, seed=0)
    b = tf.random.uniform((n, n), dtype=tf.float32, seed=1)
    return machine.gemm_gflops(lambda: tf.linalg.matmul(a, b).numpy(), n, repeats)


def _failure(error, batch_size):
    """'failed: <type>: <first line>', as the results report a variant that raised."""
    logging.exception("Variant failed at batch %d", batch_size)
    lines = str(error).strip().splitlines()
    return (f"failed at batch {batch_size}: {type(error).__name__}"
            + (f": {lines[0][:200]}" if lines else ""))


def _runners(variants, x, y, batch_size, seed, status):
    """name -> a guarded `epoch` of each variant still OK: a variant that raises is
    marked in `status` and does nothing from then on."""
    def guarded(name, epoch):
        def call(i):
            if status[name] == OK:
                try:
                    epoch(i)
                except Exception as error:  # pylint: disable=broad-except
                    status[name] = _failure(error, batch_size)
        return call

    epochs = {}
    for name, make in variants.items():
        if status[name] != OK:
            continue
        try:
            epochs[name] = guarded(name, make(x, y, batch_size, seed).epoch)
        except Exception as error:  # pylint: disable=broad-except
            status[name] = _failure(error, batch_size)
    return epochs


def _fastest(rates, among):
    """The one of `among` with the highest median rate, or None when none ran."""
    ran = [v for v in among if v in rates]
    return max(ran, key=lambda v: np.median(rates[v])) if ran else None


def _best_custom_loop(rates):
    """The custom loop with the higher median rate, or None when neither ran."""
    return _fastest(rates, CUSTOM_LOOPS)


def _ratios(rates, best_custom_loop, fastest_peer=None):
    """RATIOS of one batch size's per-repeat rates (those whose variants both ran)."""
    if best_custom_loop is not None:
        rates = {**rates, CUSTOM: rates[best_custom_loop]}
    if fastest_peer is not None:
        rates = {**rates, PEER: rates[fastest_peer]}
    return {key: stats.paired_ratio(rates[a], rates[b]) for key, a, b in RATIOS
            if a in rates and b in rates}


def measure(x, y, batch_sizes, repeats, seed=0, steps_per_execution=50):
    """Examples/s and cores used of each variant at each batch size, interleaved, plus
    the GEMM ceilings.

    Returns:
        {"examples": n, "variants": {name: {"label", "peer", "status"}},
         "examples_per_s" and "cores_used": {name: {str(batch): summary}} (of those
         measured), "rates": {name: {str(batch): per-repeat ex/s}}, "ratios":
         {str(batch): {key: paired ratio}}, "best_custom_loop" and "fastest_peer":
         {str(batch): name},
         "gflops": {...}, "gemm_gflops": {"numpy": ., "tensorflow": .},
         "macs_per_example", "flops_per_example", "ceiling_examples_per_s"}
    """
    import keras  # pylint: disable=import-outside-toplevel
    n = len(x)
    gemm = {"numpy": machine.numpy_gemm_gflops(), "tensorflow": tf_gemm_gflops()}
    ceiling = max(gemm.values())
    macs = training_macs_per_example(math.prod(x.shape[1:]))
    status = {name: (peers.missing(name) if v.peer else None) or OK
              for name, v in VARIANTS.items()}
    options = {"steps_per_execution": steps_per_execution}
    makers = {name: functools.partial(v.runner, **{k: options[k] for k in v.options})
              for name, v in VARIANTS.items()}
    result = {"examples": n, "macs_per_example": macs, "flops_per_example": 2 * macs,
              "gemm_gflops": gemm, "ceiling_examples_per_s": ceiling * 1e9 / (2 * macs),
              "steps_per_execution": steps_per_execution,
              "examples_per_s": {}, "cores_used": {}, "rates": {}, "gflops": {},
              "ratios": {}, "best_custom_loop": {}, "fastest_peer": {}}
    for batch_size in batch_sizes:
        keras.utils.set_random_seed(seed)
        epochs = _runners(makers, x, y, batch_size, seed, status)
        cpu = {}
        seconds = stats.interleaved(epochs, repeats, cpu_seconds=cpu)
        key = str(batch_size)
        rates = {name: [n / s for s in seconds[name]] for name in epochs if status[name] == OK}
        for name, r in rates.items():
            summary = stats.summary(r)
            result["examples_per_s"].setdefault(name, {})[key] = summary
            result["rates"].setdefault(name, {})[key] = r
            result["cores_used"].setdefault(name, {})[key] = stats.summary(
                [c / s for c, s in zip(cpu[name], seconds[name])])
            gflops = 2 * macs * summary["median"] / 1e9
            result["gflops"].setdefault(name, {})[key] = {
                "gflops": gflops, "fraction_of_ceiling": gflops / ceiling}
        result["best_custom_loop"][key] = _best_custom_loop(rates)
        result["fastest_peer"][key] = _fastest(rates, PEERS)
        result["ratios"][key] = _ratios(rates, result["best_custom_loop"][key],
                                        result["fastest_peer"][key])
    result["variants"] = {name: {"label": v.label, "peer": v.peer, "status": status[name]}
                          for name, v in VARIANTS.items()}
    return result
