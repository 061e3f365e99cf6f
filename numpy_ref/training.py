"""The one epoch loop, and mini-batch training of any ``numpy_ref`` network with it.

``run_epochs`` is the loop every trainer in the project uses (the NumPy fit
below, the Keras custom loop's ``fit``, the training scripts): per epoch it
resets the metrics, runs ``train_step`` over the epoch's batches, then
``test_step`` over the test batches, and reports the four metrics. What
differs between backends is the stepper: an object with

    reset_metrics()          train_step(x, y) -> loss      test_step(x, y)
    results() -> {"train_loss", "train_accuracy", "test_loss", "test_accuracy"}

and, optionally, several steps per call (the Keras loop's ``steps_per_execution``):

    steps_iterator(batches) -> iterator, or None to take the batches one by one
    train_steps(iterator, max_count) -> losses of up to max_count steps, in order:
        fewer at the end of the data, none past the first non-finite loss

The metrics follow the Keras TF2 tutorial's loop the project starts from (the
subclassed ``Mymodel`` trained with ``GradientTape``): the epoch loss is the
mean of the batch losses (``keras.metrics.Mean``), the accuracy the fraction
of arg-max hits (``SparseCategoricalAccuracy``), both accumulated in the
network's dtype, as Keras accumulates them in the metric's.
"""

import math

import numpy as np

from numpy_ref import fast
from numpy_ref.fast import threads
from numpy_ref.network import Network

HISTORY_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``epoch`` and ``step`` say where."""

    def __init__(self, loss, epoch, step):
        super().__init__(f"non-finite training loss {loss} at epoch {epoch}, step {step}")
        self.loss, self.epoch, self.step = loss, epoch, step


def _epoch_losses(stepper, batches, budget):
    """The losses of one epoch's training steps, in order, each yielded once its step is
    done: ``train_step`` per batch, or chunks of ``train_steps`` if the stepper takes these
    batches that way; a chunk never runs past ``budget`` steps (None: no limit)."""
    steps_iterator = getattr(stepper, "steps_iterator", None)
    iterator = steps_iterator(batches) if steps_iterator is not None else None
    if iterator is None:
        for x, y in batches:
            yield stepper.train_step(x, y)
        return
    done = 0
    while budget is None or done < budget:
        losses = stepper.train_steps(iterator, None if budget is None else budget - done)
        if not len(losses):  # the end of the data
            return
        yield from losses
        done += len(losses)


def run_epochs(stepper, train_batches, test_batches=None, epochs=1, initial_epoch=0,
               on_step=None, on_epoch=None, max_steps=None):
    """Trains epochs ``initial_epoch + 1 .. epochs``; returns the history of those epochs.

    Args:
        stepper: see the module docstring.
        train_batches: ``train_batches(epoch)`` -> iterable of ``(x, y)`` batches.
        test_batches: ``test_batches()`` -> iterable of ``(x, y)``, or None.
        on_step: ``on_step(epoch, step, loss)`` after every batch (step from 1); with
            ``train_steps``, after its chunk ran, for each step of it in order.
        on_epoch: ``on_epoch(epoch, logs)`` after every epoch (logs: the metrics).
        max_steps: stop after this many steps in all (the last epoch is then short).

    Raises:
        NonFiniteLossError: a batch loss is NaN or infinite (the step's update is done,
            and no later step's).
    """
    history = {key: [] for key in HISTORY_KEYS}
    steps = 0
    for epoch in range(initial_epoch + 1, epochs + 1):
        stepper.reset_metrics()
        budget = None if max_steps is None else max_steps - steps
        for step, loss in enumerate(_epoch_losses(stepper, train_batches(epoch), budget),
                                    start=1):
            loss = float(loss)
            if not math.isfinite(loss):
                raise NonFiniteLossError(loss, epoch, step)
            steps += 1
            if on_step is not None:
                on_step(epoch, step, loss)
            if max_steps is not None and steps >= max_steps:
                break
        for x, y in test_batches() if test_batches is not None else ():
            stepper.test_step(x, y)
        logs = {key: float(value) for key, value in stepper.results().items()}
        for key in HISTORY_KEYS:
            history[key].append(logs.get(key))
        if on_epoch is not None:
            on_epoch(epoch, logs)
        if max_steps is not None and steps >= max_steps:
            break
    if test_batches is None:
        history["test_loss"], history["test_accuracy"] = [], []
    return history


def epoch_summary(epoch, logs, test=True):
    """The line each trainer prints after an epoch, as the Keras TF2 tutorial's loop prints it:
    ``Epoch 3, Loss: 0.1234, Accuracy: 96.50, Test Loss: ..., Test Accuracy: ...`` (accuracies
    in percent; ``test=False``: the train part only)."""
    line = (f"Epoch {epoch}, Loss: {logs['train_loss']:.4f}, "
            f"Accuracy: {100 * logs['train_accuracy']:.2f}")
    if test:
        line += (f", Test Loss: {logs['test_loss']:.4f}, "
                 f"Test Accuracy: {100 * logs['test_accuracy']:.2f}")
    return line


class Mean:
    """A running mean in a fixed dtype: ``total += value; count += 1`` (``keras.metrics.Mean``)."""

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype).type
        self.reset()

    def reset(self):
        self.total, self.count = self.dtype(0), self.dtype(0)

    def update(self, value, count=1):
        self.total += self.dtype(value)
        self.count += self.dtype(count)

    def result(self):
        return self.total / self.count if self.count else self.dtype(0)


def labels_of(t):
    """Integer labels from integer or one-hot targets."""
    t = np.asarray(t)
    return t.argmax(axis=-1) if t.ndim == 2 else t


class Stepper:
    """Training and evaluation steps of a ``numpy_ref`` network with an optimizer.

    A ``Network`` trains through ``numpy_ref.fast.TrainStep`` (``train_step``'s numbers,
    bit for bit, faster), which packs the network's weights into one buffer per dtype
    at its first step.
    """

    def __init__(self, network, optimizer, dtype=None):
        self.network, self.optimizer = network, optimizer
        self.fast_step = (fast.TrainStep(network, optimizer) if isinstance(network, Network)
                          else None)
        dtype = dtype or network.dtype
        self.metrics = {key: Mean(dtype) for key in HISTORY_KEYS}
        self._split_metrics = {split: (self.metrics[f"{split}_loss"],
                                       self.metrics[f"{split}_accuracy"])
                               for split in ("train", "test")}

    def reset_metrics(self):
        for metric in self.metrics.values():
            metric.reset()

    def _record(self, split, loss, t, output):
        hits = output.argmax(axis=-1) == labels_of(t)  # (N,)
        metrics = self._split_metrics[split]
        metrics[0].update(loss)
        metrics[1].update(np.count_nonzero(hits), hits.size)

    def train_step(self, x, t):
        """Forward, backward and one optimizer update; returns the batch loss."""
        if self.fast_step is None:
            loss = train_step(self.network, self.optimizer, x, t)
            self._record("train", loss, t, self.network.last_output)
        else:
            loss = self.fast_step(x, t)
            self._record("train", loss, t, self.fast_step.last_output)
        return loss

    def test_step(self, x, t):
        loss = self.network.loss(x, t)
        self._record("test", loss, t, self.network.last_output)
        return loss

    def results(self):
        return {key: metric.result() for key, metric in self.metrics.items()}


def train_step(network, optimizer, x, t):
    """Forward, backward and one optimizer update; returns the batch loss."""
    loss, grads = network.loss_and_gradient(x, t)
    optimizer.update(network.params, grads)
    return loss


def evaluate(network, x, t, batch_size=1000, preprocess=None, blas_threads="auto"):
    """(mean loss, accuracy) over the whole set, in batches of ``batch_size``
    (``blas_threads``: as for ``fit``)."""
    total_loss, hits = 0.0, 0
    with threads.blas_threads(blas_threads):
        for start in range(0, len(x), batch_size):
            xb, tb = x[start:start + batch_size], t[start:start + batch_size]
            if preprocess is not None:
                xb = preprocess(xb)
            total_loss += float(network.loss(xb, tb)) * len(xb)
            hits += int(np.sum(network.last_output.argmax(axis=-1) == labels_of(tb)))
    return total_loss / len(x), hits / len(x)


def epoch_order(n, seed, epoch):
    """The shuffled sample order of one epoch: a function of (seed, epoch) only,
    so a run resumed at any epoch sees the same batches as an uninterrupted one."""
    rng = np.random.default_rng(None if seed is None else [seed, epoch])
    return rng.permutation(n)


def array_batches(x, t, batch_size, order=None, preprocess=None):
    """``(x[idx], t[idx])`` for consecutive ``batch_size`` slices of ``order`` (default
    0..n-1), the inputs passed through ``preprocess``."""
    order = np.arange(len(x)) if order is None else order
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        xb = x[idx]
        yield (preprocess(xb) if preprocess is not None else xb), t[idx]


def fit(network, optimizer, train_data, test_data=None, epochs=10, batch_size=100,
        seed=None, max_steps=None, preprocess=None, callback=None, step_callback=None,
        initial_epoch=0, blas_threads="auto"):
    """Trains ``network`` in place with ``run_epochs`` and returns the per-epoch history.

    Args:
        train_data, test_data: ``(x, t)`` arrays; t integer labels or one-hot
            (or regression targets for the DNN). ``test_data`` may be None.
        epochs: the epoch to train up to (the last one stops early when
            ``max_steps`` is reached, e.g. the book's 10,000 iterations).
        seed: seeds the shuffling; the same seed gives the same batches.
        initial_epoch: epochs already done (as in Keras's ``fit``): training
            runs epochs initial_epoch + 1 .. epochs, with those epochs' orders.
        preprocess: optional function applied to each input batch, e.g.
            ``lambda b: b.astype(np.float32) / 255`` for uint8 images kept
            in memory as uint8.
        callback: ``callback(epoch, logs)`` after each epoch (1-based).
        step_callback: ``step_callback(epoch, step, loss)`` after each batch.
        blas_threads: BLAS threads while training (``numpy_ref.fast.threads``): "auto" is
            one thread unless OPENBLAS_NUM_THREADS (or OMP_/MKL_) is set, an int that
            many, None the library's own default.

    Raises:
        NonFiniteLossError: (a FloatingPointError) the loss became NaN or
            infinite; names the epoch and step. The weights then hold that
            step's update.
    """
    x_train, t_train = train_data
    if len(x_train) != len(t_train):
        raise ValueError(f"train inputs and labels differ in length: "
                         f"{len(x_train)} != {len(t_train)}")
    if batch_size < 1 or epochs < 1:
        raise ValueError(f"batch_size and epochs must be >= 1. "
                         f"Received: batch_size={batch_size}, epochs={epochs}")

    def train_batches(epoch):
        return array_batches(x_train, t_train, batch_size, epoch_order(len(x_train), seed, epoch),
                             preprocess)

    test_batches = None
    if test_data is not None:
        def test_batches():
            return array_batches(*test_data, 1000, preprocess=preprocess)

    with threads.blas_threads(blas_threads):
        return run_epochs(Stepper(network, optimizer), train_batches, test_batches, epochs,
                          initial_epoch, on_step=step_callback, on_epoch=callback,
                          max_steps=max_steps)
