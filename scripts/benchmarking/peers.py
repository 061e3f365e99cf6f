"""Mymodel's training written idiomatically in JAX and in PyTorch: the peers measured
beside the project's variants.

Each runner has the variants' interface (`throughput`): `Runner(x, y, batch_size, seed)`
and `epoch(i)`, one epoch in the order numpy_ref's variant reads (`epoch_order(n, seed + i,
1)`: that variant calls `numpy_ref.training.fit(..., epochs=1, seed=seed + i)`), from the
same uint8 images, each batch scaled to float32 [0, 1]. Dense 784-32-64-128-256 ReLU -> 10,
Glorot-uniform kernels, zero biases; softmax cross-entropy on the logits; Adam with Keras's
defaults (lr 1e-3, betas 0.9 / 0.999, epsilon 1e-7). The loss and accuracy are summed on the
device every step and read once per epoch (`results`).

JAX reads its thread settings from `XLA_FLAGS` when it is imported (`xla_flags`); PyTorch
from `set_torch_threads`. Neither library is imported until a runner is built.
"""

import math
import time

import numpy as np

from numpy_ref import training
from numpy_ref.fast import flat
from numpy_ref.fast.optimizer import FlatUpdate
from numpy_ref.optim import optimizers

HIDDEN_UNITS = (32, 64, 128, 256)
NUM_CLASSES = 10
LEARNING_RATE, BETA_1, BETA_2, EPSILON = 1e-3, 0.9, 0.999, 1e-7  # keras.optimizers.Adam()
INSTALL_HINT = "not installed (pip install -e '.[peers]')"
MODULES = {"jax": ("jax", "optax"), "jax_scan": ("jax", "optax"), "torch": ("torch",),
           "torch_compile": ("torch",)}  # what each peer imports


def missing(peer):
    """None when `peer`'s libraries import, else `INSTALL_HINT`."""
    try:
        for module in MODULES[peer]:
            __import__(module)
    except ImportError:
        return INSTALL_HINT
    return None


def xla_flags(threads, existing=None):
    """`XLA_FLAGS` that keep XLA's CPU client on one thread (None for other counts, which
    XLA has no flag for), added to the `existing` value."""
    if threads != 1:
        return existing
    return " ".join(filter(None, [existing, "--xla_cpu_multi_thread_eigen=false",
                                  "intra_op_parallelism_threads=1"]))


def set_torch_threads(threads):
    """PyTorch's intra- and inter-op threads (once per process, before any work)."""
    if missing("torch") is None:
        import torch  # pylint: disable=import-outside-toplevel
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)


def _layer_sizes(x, hidden_units):
    return [math.prod(x.shape[1:]), *hidden_units, NUM_CLASSES]


class _Peer:
    """The epoch loop both peers share; subclasses define `_step(xb, yb)`, `_totals()`
    (loss sum, batches, hits, examples) and `predict(xb)` (class indices)."""

    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed

    def epoch(self, i):
        """Trains one epoch and returns its `results` (the epoch's one sync)."""
        order = training.epoch_order(len(self.x), self.seed + i, 1)
        self._reset()
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            self._step(self.x[idx], self.y[idx])  # uint8 (B, 28, 28), int (B,)
        return self.results()

    def results(self):
        """The last epoch's mean batch loss and accuracy (waits for the device)."""
        loss_sum, batches, hits, examples = (float(v) for v in self._totals())
        return {"train_loss": loss_sum / batches, "train_accuracy": hits / examples}

    def accuracy(self, x, y, batch_size=1000):
        hits = sum(int(np.sum(self.predict(x[s:s + batch_size]) == y[s:s + batch_size]))
                   for s in range(0, len(x), batch_size))
        return hits / len(x)


class _JaxPeer(_Peer):
    """A JAX peer: `jax.jit` of one whole step (value_and_grad of the softmax
    cross-entropy of `logits(params, images)`, `optax.adam`, apply_updates), the running
    totals kept on the device. A subclass sets `self.params` and calls `_compile`."""

    def _compile(self, logits):
        # pylint: disable=import-outside-toplevel
        import jax
        import jax.numpy as jnp
        import optax
        optimizer = optax.adam(LEARNING_RATE, b1=BETA_1, b2=BETA_2, eps=EPSILON)
        self.opt_state = optimizer.init(self.params)

        def loss_fn(params, images, labels):
            z = logits(params, images)
            return optax.softmax_cross_entropy_with_integer_labels(z, labels).mean(), z

        def step(params, opt_state, totals, images, labels):
            (loss, z), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, images, labels)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            hits = jnp.sum(jnp.argmax(z, axis=-1) == labels)
            totals = (totals[0] + loss, totals[1] + 1, totals[2] + hits,
                      totals[3] + labels.shape[0])
            return optax.apply_updates(params, updates), opt_state, totals

        self._step_fn = step  # unjitted: `JaxScanRunner` scans it
        self._jit_step = jax.jit(step, donate_argnums=(0, 1, 2))
        self._predict = jax.jit(lambda params, images: jnp.argmax(logits(params, images), -1))
        self._zeros = lambda: (jnp.float32(0), jnp.int32(0), jnp.int32(0), jnp.int32(0))
        self.totals = self._zeros()

    def _reset(self):
        self.totals = self._zeros()

    def _step(self, xb, yb):
        self.params, self.opt_state, self.totals = self._jit_step(
            self.params, self.opt_state, self.totals, xb, yb)

    def _totals(self):
        return self.totals

    def predict(self, xb):
        return np.asarray(self._predict(self.params, xb))


class JaxRunner(_JaxPeer):
    """`jax.jit` of one whole step: value_and_grad, `optax.adam`, apply_updates."""

    def __init__(self, x, y, batch_size, seed, hidden_units=HIDDEN_UNITS):
        # pylint: disable=import-outside-toplevel
        import jax
        import jax.numpy as jnp
        super().__init__(x, y.astype(np.int32), batch_size, seed)
        sizes = _layer_sizes(x, hidden_units)
        glorot = jax.nn.initializers.glorot_uniform()
        keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
        self.params = [(glorot(k, (a, b), jnp.float32), jnp.zeros(b, jnp.float32))
                       for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

        def logits(params, images):
            h = images.reshape(images.shape[0], -1).astype(jnp.float32) / 255  # (B, 784)
            for w, b in params[:-1]:
                h = jax.nn.relu(h @ w + b)
            w, b = params[-1]
            return h @ w + b  # (B, 10)

        self._compile(logits)


class JaxScanRunner(JaxRunner):
    """JAX at its best on this loop: the images and labels put on the device once, and one
    `jax.jit` call per block of `steps_per_execution` steps, a `jax.lax.scan` of the step
    over the block's index batches, each batch gathered on the device (what train.py's
    TensorFlow loop does with the same K: one call per K steps, batches gathered in the
    graph). An epoch is its full batches in blocks of K, the last block shorter, then the
    partial batch if any (three compiled shapes, all compiled in the warm-up epoch)."""

    def __init__(self, x, y, batch_size, seed, steps_per_execution=100,
                 hidden_units=HIDDEN_UNITS):
        # pylint: disable=import-outside-toplevel
        import jax
        super().__init__(x, y, batch_size, seed, hidden_units)
        self.steps_per_execution = steps_per_execution
        self.images, self.labels = jax.device_put(x), jax.device_put(self.y)
        step = self._step_fn

        def block(params, opt_state, totals, images, labels, indices):  # indices (S, B)
            def body(carry, batch):
                return step(*carry, images[batch], labels[batch]), None
            carry, _ = jax.lax.scan(body, (params, opt_state, totals), indices)
            return carry

        self._jit_block = jax.jit(block, donate_argnums=(0, 1, 2))

    def _run_block(self, indices):
        self.params, self.opt_state, self.totals = self._jit_block(
            self.params, self.opt_state, self.totals, self.images, self.labels, indices)

    def epoch(self, i):
        order = training.epoch_order(len(self.x), self.seed + i, 1).astype(np.int32)
        self._reset()
        full = len(order) // self.batch_size
        batches = order[:full * self.batch_size].reshape(full, self.batch_size)
        for start in range(0, full, self.steps_per_execution):
            self._run_block(batches[start:start + self.steps_per_execution])
        if len(order) > full * self.batch_size:
            self._run_block(order[full * self.batch_size:][None])
        return self.results()


class _TorchPeer(_Peer):
    """A PyTorch peer: eager steps of `F.cross_entropy` on `self._logits(xb)` (a subclass
    defines it and `self.model`) and `torch.optim.Adam`, the running totals as tensors."""

    def __init__(self, x, y, batch_size, seed):
        # pylint: disable=import-outside-toplevel
        import torch
        from torch import nn
        self.torch, self.loss_fn = torch, nn.functional.cross_entropy
        # The same arrays: torch.from_numpy shares their memory.
        super().__init__(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), batch_size,
                         seed)
        self.totals = None

    def _adam(self):
        self.optimizer = self.torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE,
                                               betas=(BETA_1, BETA_2), eps=EPSILON)
        self._optimizer_step = self.optimizer.step

    def _reset(self):
        self.totals = [self.torch.zeros(()), 0, self.torch.zeros((), dtype=self.torch.int64), 0]

    def _step(self, xb, yb):
        z = self._logits(xb)
        loss = self.loss_fn(z, yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._optimizer_step()
        self.totals[0] += loss.detach()
        self.totals[1] += 1
        self.totals[2] += (z.detach().argmax(dim=-1) == yb).sum()
        self.totals[3] += len(yb)

    def _totals(self):
        return self.totals

    def predict(self, xb):
        with self.torch.no_grad():
            return self._logits(self.torch.from_numpy(xb)).argmax(-1).numpy()


class TorchRunner(_TorchPeer):
    """Eager `nn.Sequential`, `F.cross_entropy`, `torch.optim.Adam`."""

    def __init__(self, x, y, batch_size, seed, hidden_units=HIDDEN_UNITS):
        from torch import nn  # pylint: disable=import-outside-toplevel
        super().__init__(x, y, batch_size, seed)
        sizes = _layer_sizes(x, hidden_units)
        layers = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.model = nn.Sequential(*layers[:-1])  # logits: the softmax is in the loss
        generator = self.torch.Generator().manual_seed(seed)
        for layer in self.model:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)
        self._adam()

    def _logits(self, xb):
        return self.model(xb.float().div_(255))  # (B, 10)


class TorchCompiledRunner(TorchRunner):
    """PyTorch at its best on the CPU: the same `nn.Sequential` and Adam, the model and the
    optimizer's step each through `torch.compile` (TorchInductor's generated C++ kernels;
    needs a C++ compiler). The batch's shape is marked static, so the epoch's last,
    partial batch compiles once more in the warm-up epoch."""

    def __init__(self, x, y, batch_size, seed, hidden_units=HIDDEN_UNITS):
        super().__init__(x, y, batch_size, seed, hidden_units)
        self.eager_model = self.model
        self.compiled_model = self.torch.compile(self.model, dynamic=False)
        self._optimizer_step = self.torch.compile(self.optimizer.step, dynamic=False)

    def _logits(self, xb):
        return self.compiled_model(xb.float().div_(255))  # (B, 10)


class NumpyByHandRunner(_Peer):
    """The same step written out by hand in NumPy, with numpy_ref's Adam on one flat buffer:
    what NumPy itself allows (the floor numpy_ref's general network is measured against).

    Written for this network only: Dense layers in a list, ReLU in place, the softmax
    cross-entropy from the logits' shifted values, the gradients into one buffer that
    numpy_ref's Adam updates in one pass per operation (`numpy_ref.fast.optimizer.FlatUpdate`).
    numpy_ref's own step does the same operations through its general graph.
    """

    def __init__(self, x, y, batch_size, seed, hidden_units=HIDDEN_UNITS):
        super().__init__(x, y.astype(np.intp), batch_size, seed)
        sizes = _layer_sizes(x, hidden_units)
        rng = np.random.default_rng(seed)
        weights = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6 / (a + b))  # Glorot uniform
            weights += [rng.uniform(-limit, limit, (a, b)).astype(np.float32),
                        np.zeros(b, np.float32)]
        _, params = flat.pack(weights)
        _, grads = flat.pack([np.zeros_like(w) for w in weights])
        names = [f"w{i}" for i in range(len(params))]
        self.params, self.grads = dict(zip(names, params)), dict(zip(names, grads))
        self.layers = list(zip(params[0::2], params[1::2], grads[0::2], grads[1::2]))
        self.optimizer = FlatUpdate(optimizers.Adam(LEARNING_RATE, beta_1=BETA_1,
                                                    beta_2=BETA_2, epsilon=EPSILON))
        self.totals = None

    def _reset(self):
        self.totals = [np.float32(0), 0, 0, 0]

    def _forward(self, xb):
        h = xb.reshape(len(xb), -1).astype(np.float32) / np.float32(255)
        values = [h]
        for i, (w, b, _, _) in enumerate(self.layers):
            h = h @ w
            h += b
            if i < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
            values.append(h)
        return values  # the input, each layer's output; the last are the logits

    def _step(self, xb, yb):
        values = self._forward(xb)
        z = values.pop()
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        total = e.sum(axis=1, keepdims=True)
        rows = np.arange(len(yb))
        loss = np.sum(np.log(total[:, 0]) - shifted[rows, yb]) / np.float32(len(yb))
        dz = e / total  # softmax; its gradient: (p - onehot) / n
        hits = np.count_nonzero(dz.argmax(axis=1) == yb)
        dz[rows, yb] -= 1
        dz *= np.float32(1) / np.float32(len(yb))
        for i in range(len(self.layers) - 1, -1, -1):
            w, _, dw, db = self.layers[i]
            np.matmul(values[i].T, dz, out=dw)
            np.sum(dz, axis=0, out=db)
            if i:
                dz = dz @ w.T
                dz *= values[i] > 0
        self.optimizer(self.params, self.grads)
        self.totals[0] += loss
        self.totals[1] += 1
        self.totals[2] += hits
        self.totals[3] += len(yb)

    def _totals(self):
        return self.totals

    def predict(self, xb):
        return self._forward(xb)[-1].argmax(axis=1)


RUNNERS = {"jax": JaxRunner, "jax_scan": JaxScanRunner, "torch": TorchRunner,
           "torch_compile": TorchCompiledRunner}
CHECKED = {**RUNNERS, "numpy_by_hand": NumpyByHandRunner}  # what check_accuracy trains


def check_accuracy(train, test, epochs=3, batch_size=32, seed=0):
    """Trains each installed peer (and the NumPy-by-hand floor) `epochs` epochs on `train`
    and measures its accuracy on `test` (both `(uint8 images, labels)`): that they learn
    what Mymodel learns.

    Returns:
        peer -> {"test_accuracy", "train_loss", "train_accuracy" (last epoch), "seconds"}
        or {"status": `INSTALL_HINT`}.
    """
    out = {}
    for peer, cls in CHECKED.items():
        if peer in MODULES and missing(peer):
            out[peer] = {"status": missing(peer)}
            continue
        start = time.perf_counter()
        runner = cls(*train, batch_size, seed)
        for i in range(epochs):
            logs = runner.epoch(i)
        out[peer] = {**logs, "test_accuracy": runner.accuracy(*test),
                     "seconds": time.perf_counter() - start}
    return out
