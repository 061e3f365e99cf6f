"""Mini-batch training for any ``numpy_ref`` network and optimizer.

``fit`` runs epochs of seeded, shuffled mini-batches, evaluates on the test
set after each epoch, and returns a history shaped like ``tfmodels.training``'s:
``{"train_loss": [...], "train_accuracy": [...], "test_loss": [...],
"test_accuracy": [...]}``, one entry per epoch. Training loss and accuracy are
running means over the epoch's batches, as Keras metrics report them.
"""

import math

import numpy as np


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``epoch`` and ``step`` say where."""

    def __init__(self, loss, epoch, step):
        super().__init__(f"non-finite training loss {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


def train_step(network, optimizer, x, t):
    """Forward, backward and one optimizer update; returns the batch loss."""
    loss, grads = network.loss_and_gradient(x, t)
    optimizer.update(network.params, grads)
    return loss


def _labels(t):
    t = np.asarray(t)
    return t.argmax(axis=1) if t.ndim == 2 else t


def evaluate(network, x, t, batch_size=1000, preprocess=None):
    """(mean loss, accuracy) over the whole set, in batches of ``batch_size``."""
    total_loss, hits = 0.0, 0
    for start in range(0, len(x), batch_size):
        xb, tb = x[start:start + batch_size], t[start:start + batch_size]
        if preprocess is not None:
            xb = preprocess(xb)
        total_loss += float(network.loss(xb, tb)) * len(xb)
        hits += int(np.sum(network.last_output.argmax(axis=1) == _labels(tb)))
    return total_loss / len(x), hits / len(x)


def epoch_order(n, seed, epoch):
    """The shuffled sample order of one epoch: a function of (seed, epoch) only,
    so a run resumed at any epoch sees the same batches as an uninterrupted one."""
    rng = np.random.default_rng(None if seed is None else [seed, epoch])
    return rng.permutation(n)


def fit(network, optimizer, train_data, test_data=None, epochs=10, batch_size=100,
        seed=None, max_steps=None, preprocess=None, callback=None, step_callback=None,
        initial_epoch=0):
    """Trains ``network`` in place and returns the per-epoch history.

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
    history = {"train_loss": [], "train_accuracy": [], "test_loss": [], "test_accuracy": []}
    steps = 0
    for epoch in range(initial_epoch + 1, epochs + 1):
        order = epoch_order(len(x_train), seed, epoch)
        loss_sum, hits, seen = 0.0, 0, 0
        for step, start in enumerate(range(0, len(order), batch_size), start=1):
            idx = order[start:start + batch_size]
            xb, tb = x_train[idx], t_train[idx]
            if preprocess is not None:
                xb = preprocess(xb)
            loss = float(train_step(network, optimizer, xb, tb))
            if not math.isfinite(loss):
                raise NonFiniteLossError(loss, epoch, step)
            loss_sum += loss * len(idx)
            hits += int(np.sum(network.last_output.argmax(axis=1) == _labels(tb)))
            seen += len(idx)
            steps += 1
            if step_callback is not None:
                step_callback(epoch, step, loss)
            if max_steps is not None and steps >= max_steps:
                break
        logs = {"train_loss": loss_sum / seen, "train_accuracy": hits / seen}
        if test_data is not None:
            logs["test_loss"], logs["test_accuracy"] = evaluate(
                network, *test_data, preprocess=preprocess)
        for key, value in logs.items():
            history[key].append(value)
        if callback is not None:
            callback(epoch, logs)
        if max_steps is not None and steps >= max_steps:
            break
    return history
