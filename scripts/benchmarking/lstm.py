"""Training throughput of the LSTM classifier (`--model=lstm`): numpy_ref against the Keras
custom loop, with the JAX and PyTorch peers when installed.

The model is `tfmodels.models.build_model("lstm", input_shape=(28, 28))`, as
`scripts/train.py --model=lstm` builds it for MNIST: each image read as 28 steps of 28
pixels by LSTM(128) (tanh, sigmoid gates), then Dense(10) softmax on the last output,
float32, Adam, batch 128. The variants, all from the same initial weights and the same
uint8 images (scaled to float32 [0, 1] per batch):

- `custom_loop`: `tfmodels.training.fit` over `make_dataset`, one call per step;
- `custom_loop_train_py`: the custom loop as train.py's TensorFlow backend runs it:
  `OrderedBatches`, `steps_per_execution` steps per call, `jit_compile` as
  `--jit_compile=auto` decides (off: an LSTM is not a Dense stack);
- `numpy_ref`: `numpy_ref.training.fit` of `tfmodels.parity.twin(model)` with the twin of
  Keras's Adam: what `--backend=numpy` trains;
- `jax`, `torch`: the same network written idiomatically in JAX (`lax.scan` over the rows
  in one `jax.jit` step, `optax.adam`) and PyTorch (`nn.LSTM` + `nn.Linear`, eager,
  `torch.optim.Adam`), with Keras's initialisers and Adam defaults, reading numpy_ref's
  batches; "not installed" when their libraries are not.

One timed call is one epoch, the variants interleaved (`stats.interleaved`); the first is
an untimed warm-up. A variant that fails is reported as such and the others run on.
Imports TensorFlow: runs in a worker process.
"""

import cProfile
import functools
import pathlib
import pstats
import time

import numpy as np

from benchmarking import peers, stats, throughput

MODEL = "lstm"
INPUT_SHAPE = (28, 28)  # MNIST rows: 28 steps of 28 pixels
BATCH_SIZE = 128
UNITS = 128  # build_model("lstm")'s default hidden_units
CUSTOM_LOOPS = ("custom_loop", "custom_loop_train_py")
PEERS = ("jax", "torch")
LABELS = {"custom_loop": "custom loop (one call per step, `make_dataset`)",
          "custom_loop_train_py": "custom loop as train.py runs it",
          "numpy_ref": "numpy_ref", "jax": "JAX (peer)", "torch": "PyTorch (peer)"}


def keras_model(seed):
    """`--model=lstm` for MNIST, with the initial weights `seed` gives (the same each call)."""
    import keras  # pylint: disable=import-outside-toplevel
    from tfmodels import models  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(seed)
    return models.build_model(MODEL, input_shape=INPUT_SHAPE)


def _custom_loop(x, y, batch_size, seed):
    return throughput.CustomLoopRunner(keras_model(seed), x, y, batch_size, seed)


def train_py_jit_compile(model, batch_size):
    """What `--jit_compile=auto` (train.py's default) gives this model at this batch."""
    from tfmodels import xla  # pylint: disable=import-outside-toplevel
    return xla.resolve_jit_compile("auto", model, batch_size=batch_size)


def _custom_loop_train_py(x, y, batch_size, seed, steps_per_execution):
    model = keras_model(seed)
    return throughput.CustomLoopRunner(model, x, y, batch_size, seed, ordered=True,
                                       jit_compile=train_py_jit_compile(model, batch_size),
                                       steps_per_execution=steps_per_execution)


def _numpy_ref(x, y, batch_size, seed):
    return throughput.TwinRunner(keras_model(seed), x, y, batch_size, seed)


def _glorot_limit(fan_in, fan_out):
    return np.sqrt(6 / (fan_in + fan_out))


class JaxLstmRunner(peers._JaxPeer):  # pylint: disable=protected-access
    """`jax.jit` of one whole step: the LSTM as a `lax.scan` over the rows (the input
    products of all steps first, as one matmul), Dense logits, softmax cross-entropy,
    `optax.adam`."""

    def __init__(self, x, y, batch_size, seed, units=UNITS):
        # pylint: disable=import-outside-toplevel
        import jax
        import jax.numpy as jnp
        super().__init__(x, y.astype(np.int32), batch_size, seed)
        features = x.shape[2]
        keys = jax.random.split(jax.random.key(seed), 3)
        glorot, orthogonal = jax.nn.initializers.glorot_uniform(), jax.nn.initializers.orthogonal()
        bias = jnp.zeros(4 * units, jnp.float32).at[units:2 * units].set(1.0)  # forget gate 1
        self.params = {"kernel": glorot(keys[0], (features, 4 * units), jnp.float32),
                       "recurrent_kernel": orthogonal(keys[1], (units, 4 * units), jnp.float32),
                       "bias": bias,
                       "dense_kernel": glorot(keys[2], (units, peers.NUM_CLASSES), jnp.float32),
                       "dense_bias": jnp.zeros(peers.NUM_CLASSES, jnp.float32)}

        def logits(params, images):
            seq = images.astype(jnp.float32) / 255  # (B, T, D)
            xz = jnp.swapaxes(seq @ params["kernel"] + params["bias"], 0, 1)  # (T, B, 4U)
            zeros = jnp.zeros((images.shape[0], units), jnp.float32)

            def step(carry, xz_t):
                h, c = carry
                i, f, g, o = jnp.split(xz_t + h @ params["recurrent_kernel"], 4, axis=-1)
                c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                h = jax.nn.sigmoid(o) * jnp.tanh(c)
                return (h, c), None

            (h, _), _ = jax.lax.scan(step, (zeros, zeros), xz)
            return h @ params["dense_kernel"] + params["dense_bias"]  # (B, 10)

        self._compile(logits)


class TorchLstmRunner(peers._TorchPeer):  # pylint: disable=protected-access
    """Eager `nn.LSTM(batch_first=True)` and `nn.Linear` on its last output,
    `F.cross_entropy`, `torch.optim.Adam`; Keras's initialisers (Glorot-uniform input
    weights, orthogonal recurrent ones, forget-gate bias 1, the second bias zero)."""

    def __init__(self, x, y, batch_size, seed, units=UNITS):
        from torch import nn  # pylint: disable=import-outside-toplevel
        super().__init__(x, y, batch_size, seed)
        torch = self.torch
        generator = torch.Generator().manual_seed(seed)
        self.lstm = nn.LSTM(x.shape[2], units, batch_first=True)
        self.dense = nn.Linear(units, peers.NUM_CLASSES)
        with torch.no_grad():  # torch's gate order is Keras's: i, f, g (cell), o
            nn.init.xavier_uniform_(self.lstm.weight_ih_l0, generator=generator)
            nn.init.orthogonal_(self.lstm.weight_hh_l0, generator=generator)
            self.lstm.bias_ih_l0.zero_()
            self.lstm.bias_ih_l0[units:2 * units] = 1.0
            self.lstm.bias_hh_l0.zero_()
            nn.init.xavier_uniform_(self.dense.weight, generator=generator)
            self.dense.bias.zero_()
        self.model = nn.ModuleList([self.lstm, self.dense])
        self._adam()

    def _logits(self, xb):
        _, (h, _) = self.lstm(xb.float().div_(255))  # h (1, B, U): the last step's output
        return self.dense(h[-1])  # (B, 10)


PEER_RUNNERS = {"jax": JaxLstmRunner, "torch": TorchLstmRunner}


# (file, function) -> the share of a step `numpy_ref_profile` reports with its callees
PHASES = {("recurrent.py", "forward"): "LSTM forward (28 steps)",
          ("recurrent.py", "backward"): "LSTM backward (BPTT)",
          ("recurrent_cells.py", "fresh"): "new activation layers per step (`fresh`)",
          ("recurrent_cells.py", "gate_matmul"): "gate products, forward",
          ("recurrent_cells.py", "gate_matmul_backward"): "gate products, backward",
          ("functions.py", "sigmoid"): "sigmoid forward"}


def numpy_ref_profile(x, y, batch_size=BATCH_SIZE, seed=0, epochs=1, top=8):
    """Where a numpy_ref training step goes: cProfile of `epochs` epochs of the twin's
    training (after a warm-up epoch), the `top` functions by own time.

    Returns:
        {"steps": training steps profiled, "ms_per_step": wall time per step under the
         profiler, "phases": {PHASES label: share of the profiled time, callees
         included}, "functions": [{"function": "file.py:name", "calls_per_step",
         "ms_per_step" (own time), "share" (of the profiled time)}]}
    """
    runner = _numpy_ref(x, y, batch_size, seed)
    runner.epoch(0)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    for i in range(epochs):
        runner.epoch(1 + i)
    profile.disable()
    seconds = time.perf_counter() - start
    steps = epochs * -(-len(x) // batch_size)
    table = pstats.Stats(profile).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, _)
    total = sum(entry[2] for entry in table.values())
    rows = sorted(table.items(), key=lambda item: -item[1][2])[:top]
    phases = {}  # cumulative time of the pieces named in PHASES
    for (file, _, name), entry in table.items():
        phase = PHASES.get((pathlib.Path(file).name, name))
        if phase:
            phases[phase] = phases.get(phase, 0.0) + entry[3] / total
    phases = {label: phases[label] for label in PHASES.values() if label in phases}
    return {"steps": steps, "ms_per_step": 1e3 * seconds / steps, "phases": phases,
            "functions": [{"function": f"{pathlib.Path(file).name}:{name}",
                           "calls_per_step": entry[1] / steps,
                           "ms_per_step": 1e3 * entry[2] / steps,
                           "share": entry[2] / total}
                          for (file, _, name), entry in rows]}


def measure(x, y, repeats, seed=0, steps_per_execution=100, batch_size=BATCH_SIZE):
    """Examples/s of every variant at `batch_size`, interleaved, and numpy_ref's profile.

    Args:
        x: uint8 images (N, 28, 28); y: labels (N,).

    Returns:
        {"examples", "batch_size", "repeats", "steps_per_execution", "jit_compile" (the
         train.py loop's), "variants": {name: {"label", "peer", "status"}}, "examples_per_s":
         {name: summary}, "rates": {name: per-repeat ex/s}, "best_custom_loop": name,
         "ratios": {"numpy_ref/custom", "numpy_ref/jax", "numpy_ref/torch",
         "custom/jax"...: `stats.paired_ratio`}, "peer_results": {peer: last epoch's
         train loss and accuracy}, "profile": `numpy_ref_profile`}
    """
    x = x.reshape(len(x), *INPUT_SHAPE)
    makers = {"custom_loop": _custom_loop,
              "custom_loop_train_py": functools.partial(
                  _custom_loop_train_py, steps_per_execution=steps_per_execution),
              "numpy_ref": _numpy_ref, **PEER_RUNNERS}
    status = {name: (peers.missing(name) if name in PEERS else None) or throughput.OK
              for name in makers}
    built = {}

    def keep(name, make):  # the runner object, for the peers' results afterwards
        def build(*args):
            built[name] = make(*args)
            return built[name]
        return build

    epochs = throughput._runners(  # pylint: disable=protected-access
        {name: keep(name, make) for name, make in makers.items()}, x, y, batch_size, seed, status)
    seconds = stats.interleaved(epochs, repeats)
    rates = {name: [len(x) / s for s in seconds[name]] for name in epochs
             if status[name] == throughput.OK}
    customs = [name for name in CUSTOM_LOOPS if name in rates]
    best = max(customs, key=lambda name: np.median(rates[name])) if customs else None
    named = {**rates, **({"custom": rates[best]} if best else {})}
    pairs = (("numpy_ref/custom", "numpy_ref", "custom"), ("numpy_ref/jax", "numpy_ref", "jax"),
             ("numpy_ref/torch", "numpy_ref", "torch"), ("custom/jax", "custom", "jax"),
             ("custom/torch", "custom", "torch"))
    return {"examples": len(x), "batch_size": batch_size, "repeats": repeats,
            "steps_per_execution": steps_per_execution,
            "jit_compile": train_py_jit_compile(keras_model(seed), batch_size),
            "variants": {name: {"label": LABELS[name], "peer": name in PEERS,
                                "status": status[name]} for name in makers},
            "examples_per_s": {name: stats.summary(r) for name, r in rates.items()},
            "rates": rates, "best_custom_loop": best,
            "ratios": {key: stats.paired_ratio(named[a], named[b]) for key, a, b in pairs
                       if a in named and b in named},
            "peer_results": {name: built[name].results() for name in PEERS
                             if status[name] == throughput.OK},
            "profile": (numpy_ref_profile(x, y, batch_size, seed)
                        if status["numpy_ref"] == throughput.OK else None)}
