"""The custom training loop of the Keras TF2 tutorial, as the project's study notes wrote it.

`Trainer` holds what the tutorial's loop holds: the model, its optimizer, the loss object,
the four metrics (`train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`) and two
steps in `tf.function`: `train_step` computes the loss under a `tf.GradientTape` and applies
the gradients; `test_step` evaluates. `fit` runs the project's one epoch loop
(`numpy_ref.training.run_epochs`) with the `Trainer` as its stepper and logs the tutorial's
line after each epoch. The metrics accumulate in the model's variable dtype: float64 for a
float64 model, float32 otherwise.

Each step function is traced once per `Trainer`: it is compiled with an input signature taken
from the first batch it sees, with the batch dimension left open (`None`), so a smaller final
batch or a new epoch reuses the same graph. `Trainer.tracing_counts()` reports the traces.

What the tutorial's loop does not have lives beside it:

- `tfmodels.distribute`: with a `tf.distribute.Strategy` each step runs the same per-batch
  body on every replica over batches of a distributed dataset (see `Trainer`); under the
  'mixed_float16' policy the optimizer is wrapped in a `LossScaleOptimizer`.
- Two speed options, both off by default so that the loop stays the tutorial's:
  `jit_compile` (`tfmodels.xla`: the step functions compiled by XLA; "auto" where that was
  measured faster) and `steps_per_execution=k` (`tfmodels.multistep`: `train_steps` runs up
  to k steps in one call of one compiled loop; the same batches and numbers as one
  `train_step` per batch).
"""

from absl import logging
import numpy as np
import tensorflow as tf

from numpy_ref.training import HISTORY_KEYS, epoch_summary, run_epochs
from tfmodels import distribute, multistep
from tfmodels.distribute import maybe_wrap_for_mixed_precision
from tfmodels.xla import resolve_jit_compile


def batch_signature(*tensors):
    """`tf.TensorSpec`s shaped like `tensors` but with an open batch dimension: `(None, ...)`."""
    return [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in tensors]


class Trainer:
    """Custom training loop state: a model, its optimizer, loss and metrics.

    Args:
        model: A Keras model mapping images `(N, ...)` to class probabilities `(N, C)`.
        optimizer: A Keras optimizer, e.g. `tf.keras.optimizers.Adam()`.
        loss_object: A Keras loss taking `(labels, predictions)`; defaults to
            `SparseCategoricalCrossentropy()`, i.e. integer labels and probabilities (not
            logits), computed in the dtype of the model's weights.
        strategy: Optional `tf.distribute.Strategy`. The model and the optimizer must have
            been created inside `strategy.scope()` (the metrics are created there here), and
            the steps take batches of `strategy.experimental_distribute_dataset(...)`. Each
            replica averages its per-example losses over the *global* batch, so the summed
            gradients and losses equal those of one device on the whole batch.

        jit_compile: True, False or "auto": compile the step functions with XLA (see
            `tfmodels.xla.resolve_jit_compile`; the resolved bool is `self.jit_compile`).
        steps_per_execution: Positive number of training steps `train_steps` runs per call
            (see `tfmodels.multistep`); 1 keeps one call per step.

    If the model's dtype policy computes in float16 ('mixed_float16'), `optimizer` is wrapped
    in a `LossScaleOptimizer` (see `tfmodels.distribute.maybe_wrap_for_mixed_precision`).
    """

    def __init__(self, model, optimizer, loss_object=None, strategy=None, jit_compile=False,
                 steps_per_execution=1):
        if (not isinstance(steps_per_execution, (int, np.integer))
                or isinstance(steps_per_execution, bool) or steps_per_execution < 1):
            raise ValueError("`steps_per_execution` must be a positive integer. "
                             f"Received: steps_per_execution={steps_per_execution!r}")
        self.model = model
        self.strategy = strategy
        self.jit_compile = resolve_jit_compile(jit_compile, model, strategy)
        if self.jit_compile and strategy is not None:
            raise ValueError("jit_compile=True does not go with a `strategy` (XLA cannot "
                             "reach a mirrored variable's copies on other devices): use "
                             "--jit_compile=off or auto with --distribution_strategy. "
                             f"Received: strategy={type(strategy).__name__}")
        self.steps_per_execution = int(steps_per_execution)
        if strategy is not None:
            distribute.check_created_in_scope(strategy, model, optimizer)
        if loss_object is None:
            # Keras losses compute in floatx() (float32) unless told otherwise, which would
            # round a float64 model's probabilities, loss and gradients to float32: follow the
            # model's weights instead (float32 for mixed precision, float64 for parity runs).
            loss_object = tf.keras.losses.SparseCategoricalCrossentropy(
                dtype=model.dtype_policy.variable_dtype)
        self.loss_object = loss_object
        self._per_example_loss = (distribute.per_example_loss(loss_object)
                                  if strategy is not None else None)
        with distribute.scope(strategy):
            self.optimizer = maybe_wrap_for_mixed_precision(optimizer, model.dtype_policy)
            # Under a strategy, metric variables are summed over replicas when read.
            dtype = model.dtype_policy.variable_dtype
            self.train_loss = tf.keras.metrics.Mean(name="train_loss", dtype=dtype)
            self.train_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(
                name="train_accuracy", dtype=dtype)
            self.test_loss = tf.keras.metrics.Mean(name="test_loss", dtype=dtype)
            self.test_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(
                name="test_accuracy", dtype=dtype)
        self._train_fn = None  # tf.functions, created at the first batch (see `_compile`)
        self._test_fn = None
        self._loop = multistep.MultiStepLoop(self.steps_per_execution, self._train_function,
                                             strategy, self.jit_compile)

    @property
    def metrics(self):
        return [self.train_loss, self.train_accuracy, self.test_loss, self.test_accuracy]

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def results(self):
        """The four metrics as Python floats, keyed by `HISTORY_KEYS`."""
        return {metric.name: float(metric.result()) for metric in self.metrics}

    # -- per-batch math: without a strategy, the whole step; with one, what each replica runs.

    def compute_loss(self, labels, predictions):
        """The scalar loss of one batch (or, under a strategy, this replica's share of it:
        see `tfmodels.distribute.replica_loss`)."""
        if self.strategy is None:
            return self.loss_object(labels, predictions)
        return distribute.replica_loss(self._per_example_loss(labels, predictions))

    def _update_loss_metric(self, metric, loss):
        """Adds the batch loss to a `Mean` once per step, with or without a strategy."""
        if self.strategy is None:
            metric.update_state(loss)
        else:
            distribute.add_batch_loss(metric, loss)

    def _regularization(self):
        """The penalties the model's layers add (``kernel_regularizer``...), as Keras's fit
        adds them to the loss; under a strategy each replica adds its share."""
        if not self.model.losses:
            return 0.0
        penalty = tf.add_n(self.model.losses)
        return penalty if self.strategy is None else tf.nn.scale_regularization_loss(penalty)

    def _train_step(self, images, labels):
        with tf.GradientTape() as tape:
            predictions = self.model(images, training=True)
            loss = self.compute_loss(labels, predictions) + self._regularization()
            # Multiplied by the loss scale under mixed precision (LossScaleOptimizer divides
            # the gradients by it again, and skips steps with non-finite ones); else `loss`.
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        if (self.strategy is not None
                and isinstance(self.optimizer, tf.keras.optimizers.LossScaleOptimizer)):
            gradients = distribute.non_finite_on_every_replica(gradients)
        self.optimizer.apply_gradients(zip(gradients, variables))  # all-reduced if distributed
        self._update_loss_metric(self.train_loss, loss)
        self.train_accuracy.update_state(labels, predictions)
        return loss

    def _test_step(self, images, labels):
        predictions = self.model(images, training=False)
        loss = self.compute_loss(labels, predictions)
        self._update_loss_metric(self.test_loss, loss)
        self.test_accuracy.update_state(labels, predictions)
        return loss

    # -- compiled entry points

    def train_step(self, images, labels):
        """One optimizer step on a batch; updates the train metrics and returns the loss.

        Under a strategy, `images` and `labels` are one element of a distributed dataset and
        the loss returned is the global batch's."""
        return self._train_function(images, labels)(*self._inputs(images, labels))

    def test_step(self, images, labels):
        """Evaluates a batch (no weight change); updates the test metrics and returns the loss.

        Under a strategy, as for `train_step`."""
        if self._test_fn is None:
            self._test_fn = self._compile(self._test_step, images, labels)
        return self._test_fn(*self._inputs(images, labels))

    def steps_iterator(self, batches):
        """An iterator over `batches` for `train_steps`, or None where `train_step` per batch
        is the way: `steps_per_execution` is 1, or `batches` is not `OrderedBatches` or a
        tf.data dataset (or, under a strategy, a distributed one) or an iterator over one."""
        return self._loop.iterator(batches)

    def train_steps(self, iterator, max_count=None):
        """Up to `min(steps_per_execution, max_count)` training steps on the batches of
        `iterator` (see `steps_iterator`), in one call; returns their losses as floats.

        Fewer at the end of the data, and none past the first non-finite loss: that step's
        update is done, as with `train_step`, and its loss is the last one returned.
        """
        return self._loop.run(iterator, max_count)

    def tracing_counts(self):
        """How many times each step function has been traced (0 before its first call);
        with `steps_per_execution > 1`, also the loop of `train_steps`."""
        functions = [("train_step", self._train_fn), ("test_step", self._test_fn)]
        counts = {name: fn.experimental_get_tracing_count() if fn is not None else 0
                  for name, fn in functions}
        if self.steps_per_execution > 1:
            counts["train_steps"] = self._loop.tracing_count()
        return counts

    def _train_function(self, images, labels):
        """The compiled `_train_step`, compiled for batches like `images, labels` if not yet."""
        if self._train_fn is None:
            self._train_fn = self._compile(self._train_step, images, labels)
        return self._train_fn

    def _inputs(self, images, labels):
        if self.strategy is not None:
            return images, labels  # distributed values, placed already
        return tf.convert_to_tensor(images), tf.convert_to_tensor(labels)

    def _compile(self, step, images, labels):
        """`step` as a `tf.function` traced once, run per replica under a strategy."""
        images, labels = self._inputs(images, labels)
        if self.strategy is None:
            self._build(images)
            return tf.function(step, input_signature=batch_signature(images, labels),
                               jit_compile=self.jit_compile)
        with self.strategy.scope():
            self._build(self.strategy.experimental_local_results(images)[0])
        return distribute.distributed_function(self.strategy, step, images, labels)

    def _build(self, images):
        # Create the model's and the optimizer's variables eagerly, so that the single trace
        # of each step function only reads and updates variables, never creates them.
        if not self.model.built:
            self.model(images[:1], training=False)
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)


def fit(model, train_ds, test_ds=None, epochs=1, optimizer=None, loss_object=None, callback=None,
        trainer=None, strategy=None):
    """Trains `model` for `epochs` epochs with the tutorial's loop and returns the history.

    Each epoch resets the metrics, runs `train_step` over `train_ds` and `test_step` over
    `test_ds` (both yielding `(images, labels)` batches), logs the tutorial's line
    (`numpy_ref.training.epoch_summary`) and calls `callback(epoch, logs)` (epoch counted
    from 1, logs the epoch's four metrics) if given.

    Args:
        model: The Keras model to train.
        train_ds, test_ds: Iterables of `(images, labels)` batches, e.g. `tf.data.Dataset`s;
            `test_ds` may be None (no test metrics).
        epochs: Positive number of passes over `train_ds`.
        optimizer: Defaults to `tf.keras.optimizers.Adam()`. Not allowed with `trainer`.
        loss_object: Defaults to `SparseCategoricalCrossentropy()`. Not allowed with `trainer`.
        callback: Optional `callback(epoch, logs)`.
        trainer: An existing `Trainer` for `model` (to keep its compiled steps and metrics).
        strategy: Optional `tf.distribute.Strategy` (see `Trainer`); `model` must have been
            created in its scope. The datasets are distributed here unless they already are.
            With several workers, shuffle with a fixed seed: each worker reads its own
            replicas' share of the same global batches.

    Returns:
        A dict mapping each of `HISTORY_KEYS` to a list of `epochs` Python floats
        (accuracies are fractions in [0, 1]).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    if trainer is None:
        if optimizer is None:
            with distribute.scope(strategy):
                optimizer = tf.keras.optimizers.Adam()
        trainer = Trainer(model, optimizer, loss_object, strategy=strategy)
    elif trainer.model is not model:
        raise ValueError("`trainer` was built for a different model than `model`.")
    elif optimizer is not None or loss_object is not None:
        raise ValueError("Pass `optimizer` and `loss_object` to the `Trainer`, not to `fit`, "
                         "when a `trainer` is given.")
    elif strategy is not None and strategy is not trainer.strategy:
        raise ValueError("Pass `strategy` to the `Trainer`, not to `fit`, when a `trainer` "
                         "is given.")
    strategy = trainer.strategy
    if strategy is not None:
        train_ds = distribute.distribute_dataset(strategy, train_ds)
        if test_ds is not None:
            test_ds = distribute.distribute_dataset(strategy, test_ds)

    def log_epoch(epoch, logs):
        logging.info("%s", epoch_summary(epoch, logs, test=test_ds is not None))
        if callback is not None:
            callback(epoch, dict(logs))

    return run_epochs(trainer, lambda epoch: train_ds,
                      None if test_ds is None else (lambda: test_ds), epochs, on_epoch=log_epoch)


# `distributed_batch_signature`, `maybe_wrap_for_mixed_precision` (`tfmodels.distribute`) and
# `JIT_COMPILE_CHOICES`, `resolve_jit_compile` (`tfmodels.xla`) stay importable from here.
__all__ = ["HISTORY_KEYS", "Trainer", "batch_signature", "fit"]
