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

HIDDEN_UNITS = (32, 64, 128, 256)
NUM_CLASSES = 10
LEARNING_RATE, BETA_1, BETA_2, EPSILON = 1e-3, 0.9, 0.999, 1e-7  # keras.optimizers.Adam()
INSTALL_HINT = "not installed (pip install -e '.[peers]')"
MODULES = {"jax": ("jax", "optax"), "torch": ("torch",)}  # what each peer imports


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


class JaxRunner(_Peer):
    """`jax.jit` of one whole step: value_and_grad, `optax.adam`, apply_updates."""

    def __init__(self, x, y, batch_size, seed, hidden_units=HIDDEN_UNITS):
        # pylint: disable=import-outside-toplevel
        import jax
        import jax.numpy as jnp
        import optax
        super().__init__(x, y.astype(np.int32), batch_size, seed)
        sizes = _layer_sizes(x, hidden_units)
        glorot = jax.nn.initializers.glorot_uniform()
        keys = jax.random.split(jax.random.key(seed), len(sizes) - 1)
        self.params = [(glorot(k, (a, b), jnp.float32), jnp.zeros(b, jnp.float32))
                       for k, a, b in zip(keys, sizes[:-1], sizes[1:])]
        optimizer = optax.adam(LEARNING_RATE, b1=BETA_1, b2=BETA_2, eps=EPSILON)
        self.opt_state = optimizer.init(self.params)

        def logits(params, images):
            h = images.reshape(images.shape[0], -1).astype(jnp.float32) / 255  # (B, 784)
            for w, b in params[:-1]:
                h = jax.nn.relu(h @ w + b)
            w, b = params[-1]
            return h @ w + b  # (B, 10)

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


class TorchRunner(_Peer):
    """Eager `nn.Sequential`, `F.cross_entropy`, `torch.optim.Adam`."""

    def __init__(self, x, y, batch_size, seed, hidden_units=HIDDEN_UNITS):
        # pylint: disable=import-outside-toplevel
        import torch
        from torch import nn
        self.torch, self.loss_fn = torch, nn.functional.cross_entropy
        # The same arrays: torch.from_numpy shares their memory.
        super().__init__(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), batch_size,
                         seed)
        sizes = _layer_sizes(x, hidden_units)
        layers = [nn.Flatten()]
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.model = nn.Sequential(*layers[:-1])  # logits: the softmax is in the loss
        generator = torch.Generator().manual_seed(seed)
        for layer in self.model:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE,
                                          betas=(BETA_1, BETA_2), eps=EPSILON)
        self.totals = None

    def _reset(self):
        self.totals = [self.torch.zeros(()), 0, self.torch.zeros((), dtype=self.torch.int64), 0]

    def _step(self, xb, yb):
        z = self.model(xb.float().div_(255))  # (B, 10)
        loss = self.loss_fn(z, yb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.totals[0] += loss.detach()
        self.totals[1] += 1
        self.totals[2] += (z.detach().argmax(dim=-1) == yb).sum()
        self.totals[3] += len(yb)

    def _totals(self):
        return self.totals

    def predict(self, xb):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(xb).float().div_(255)).argmax(-1).numpy()


RUNNERS = {"jax": JaxRunner, "torch": TorchRunner}


def check_accuracy(train, test, epochs=3, batch_size=32, seed=0):
    """Trains each installed peer `epochs` epochs on `train` and measures its accuracy
    on `test` (both `(uint8 images, labels)`): that the peers learn what Mymodel learns.

    Returns:
        peer -> {"test_accuracy", "train_loss", "train_accuracy" (last epoch), "seconds"}
        or {"status": `INSTALL_HINT`}.
    """
    out = {}
    for peer, cls in RUNNERS.items():
        if missing(peer):
            out[peer] = {"status": missing(peer)}
            continue
        start = time.perf_counter()
        runner = cls(*train, batch_size, seed)
        for i in range(epochs):
            logs = runner.epoch(i)
        out[peer] = {**logs, "test_accuracy": runner.accuracy(*test),
                     "seconds": time.perf_counter() - start}
    return out
