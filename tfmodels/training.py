"""The material's TF2 custom training loop: `train_step` / `test_step` in `tf.function`, and `fit`.

`Trainer` owns the four metrics of the material (`train_loss`, `train_accuracy`, `test_loss`,
`test_accuracy`) and the two compiled step functions; `fit` runs the project's one epoch loop
(`numpy_ref.training.run_epochs`) with it as the stepper. The metrics accumulate in the
model's variable dtype: float64 for a float64 model, float32 otherwise.

Each step function is traced once per `Trainer`: it is compiled with an input signature taken
from the first batch it sees, with the batch dimension left open (`None`), so a smaller final
batch or a new epoch reuses the same graph. `Trainer.tracing_counts()` reports the traces.

With a `tf.distribute.Strategy`, each step runs the same per-batch body on every replica
(`strategy.run`) over batches of a distributed dataset; see `Trainer` for what changes.
Under the 'mixed_float16' policy the optimizer is wrapped in a `LossScaleOptimizer`.

Two speed options, both off by default so that the loop stays the material's:

- `jit_compile`: the step functions compiled by XLA (`tf.function(jit_compile=True)`), which
  fuses the small ops of a step into few kernels. "auto" turns it on only for a float32 stack
  of Dense layers without a strategy, and below batch 512 when told the batch size (see
  `resolve_jit_compile` for the measurements).
- `steps_per_execution=k` (as in Keras): `train_steps` runs up to k steps in one call of an
  outer `tf.function` that reads the batches from a tf.data iterator in the graph and calls the
  one-step function per batch, so Python dispatches once per k steps instead of once per
  step. It stops after the first non-finite loss and returns every step's loss, so
  `run_epochs` still sees, checks and reports each step. Given `tfmodels.data.OrderedBatches`
  (images TensorFlow holds, an order, a batch size: what train.py's TensorFlow backend
  trains on), the loop takes a block of sample indices instead and gathers each batch
  itself, so a chunk is one graph (with `jit_compile`, one XLA computation) with no tf.data
  element per step: the lever that matters at small batches (measured in BENCHMARKS.md).
  The batches and the numbers are the same as one `train_step` per batch.
"""

import contextlib

from absl import logging
import numpy as np
import tensorflow as tf

from numpy_ref.training import HISTORY_KEYS, epoch_summary, run_epochs
from tfmodels import data
_SUM = tf.distribute.ReduceOp.SUM


def _open_batch(spec):
    return tf.TensorSpec((None, *spec.shape[1:]), spec.dtype)


def batch_signature(*tensors):
    """`tf.TensorSpec`s shaped like `tensors` but with an open batch dimension: `(None, ...)`."""
    return [_open_batch(t) for t in tensors]


def distributed_batch_signature(*values):
    """Like `batch_signature`, for elements of a distributed dataset: a plain tensor with one
    local replica, else a `PerReplica` value whose spec is rebuilt with every replica's
    batch dimension open."""
    signature = []
    for value in values:
        spec = tf.type_spec_from_value(value)
        components = [_open_batch(s) for s in tf.nest.flatten(spec, expand_composites=True)]
        signature.append(components[0] if isinstance(spec, tf.TensorSpec)
                         else type(spec)(*components))  # PerReplicaSpec(*per_replica_specs)
    return signature


def maybe_wrap_for_mixed_precision(optimizer, policy=None):
    """`optimizer` wrapped in a `LossScaleOptimizer` if `policy` (default: the global dtype
    policy) computes in float16, so that small float16 gradients do not underflow; else
    `optimizer` itself. Under a strategy, call it inside `strategy.scope()`."""
    policy = tf.keras.dtype_policies.get(policy)
    if (policy.compute_dtype == "float16"
            and not isinstance(optimizer, tf.keras.optimizers.LossScaleOptimizer)):
        return tf.keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _unreduced(loss_object):
    """The same Keras loss with `reduction="none"`: per-example losses `(N,)`."""
    # `get_config` leaves out the dtype: without it a float64 loss would compute in float32.
    config = {**loss_object.get_config(), "reduction": "none", "dtype": loss_object.dtype}
    return type(loss_object).from_config(config)


def _non_finite_on_every_replica(gradients):
    """This replica's gradients, or NaNs if any replica's gradients are not finite.

    `LossScaleOptimizer` decides whether to skip a step (and halve the loss scale) from the
    first replica's local gradients only; without this, a non-finite gradient on another
    replica would pass into the all-reduced update and the weights.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                            for g in gradients if g is not None])
    replicas_not_finite = tf.distribute.get_replica_context().all_reduce(
        _SUM, 1.0 - tf.cast(finite, tf.float32))
    return [g if g is None else tf.where(replicas_not_finite > 0, tf.constant(np.nan, g.dtype), g)
            for g in gradients]


JIT_COMPILE_CHOICES = (True, False, "auto")


# The layers "auto" compiles with XLA: a model made of these only (a Dense stack) was
# measured faster with XLA; any other layer turns "auto" off (see resolve_jit_compile).
XLA_GAINS = ("Dense", "Flatten", "Reshape", "InputLayer", "Activation", "ReLU", "Softmax",
             "Identity")
XLA_MAX_BATCH = 512  # "auto" leaves XLA off from this batch size on (see resolve_jit_compile)


def resolve_jit_compile(jit_compile, model, strategy=None, batch_size=None):
    """`jit_compile` as a bool; "auto" is True for a float32 Dense stack without a strategy,
    at batches below `XLA_MAX_BATCH` when the batch size is given.

    Measured with `scripts/train.py --epochs=2` on the full MNIST set (2 shared cores, the
    in-graph loop of `steps_per_execution=100`, wall time of the session): Mymodel 5 s with
    XLA against 6 s without, and pinned to one core, per epoch, 1.4x at batch 32 (XLA fuses
    the element-wise work of the Dense layers and of Adam); but `--dropout=0.2 --batchnorm`
    25 s against 7 s, and SimpleConvNet 70 s against 11 s (XLA's CPU convolutions, and its
    compile time). So "auto" is on only when every layer is one of `XLA_GAINS`. With the
    loop in the graph, pinned to one core (20,000 images, examples/s): XLA 1.17x at batch
    128 (153,774 against 130,998) but 0.95x at 1024 (164,205 against 173,024), where the
    products dominate: hence `XLA_MAX_BATCH` (train.py passes its batch size). It stays off
    for float64 (parity runs: the graph the NumPy twin was matched against, op for op) and
    mixed precision (float16 compute: not measured). With a strategy `Trainer` refuses True:
    XLA cannot reach a mirrored variable's copies on other devices.
    """
    if jit_compile not in JIT_COMPILE_CHOICES or not isinstance(jit_compile, (bool, str)):
        raise ValueError(f"`jit_compile` must be True, False or 'auto'. "
                         f"Received: jit_compile={jit_compile!r}")
    if jit_compile != "auto":
        return jit_compile
    policy = model.dtype_policy
    # pylint: disable-next=protected-access
    layers = {type(layer).__name__ for layer in model._flatten_layers(include_self=False)}
    return (strategy is None and policy.variable_dtype == "float32"
            and policy.compute_dtype == "float32" and layers <= set(XLA_GAINS)
            and (batch_size is None or batch_size < XLA_MAX_BATCH))


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _check_created_in_scope(strategy, model, optimizer):
    """Variables made outside `strategy.scope()` would live on one device, unsynchronised."""
    created_in_scope = strategy.extended.variable_created_in_scope
    if not created_in_scope(optimizer.iterations.value):
        raise ValueError("With a `strategy`, create the optimizer inside `strategy.scope()`. "
                         f"Received: optimizer={optimizer.name!r} created outside it")
    if model.built and not all(created_in_scope(w.value) for w in model.weights):
        raise ValueError("With a `strategy`, create and build the model inside "
                         f"`strategy.scope()`. Received: model={model.name!r} built outside it")


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
            `resolve_jit_compile`; the resolved bool is `self.jit_compile`).
        steps_per_execution: Positive number of training steps `train_steps` runs per call
            (see the module docstring); 1 keeps one call per step.

    If the model's dtype policy computes in float16 ('mixed_float16'), `optimizer` is wrapped
    in a `LossScaleOptimizer` (see `maybe_wrap_for_mixed_precision`).
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
            _check_created_in_scope(strategy, model, optimizer)
        if loss_object is None:
            # Keras losses compute in floatx() (float32) unless told otherwise, which would
            # round a float64 model's probabilities, loss and gradients to float32: follow the
            # model's weights instead (float32 for mixed precision, float64 for parity runs).
            loss_object = tf.keras.losses.SparseCategoricalCrossentropy(
                dtype=model.dtype_policy.variable_dtype)
        self.loss_object = loss_object
        self._per_example_loss = _unreduced(loss_object) if strategy is not None else None
        with _scope(strategy):
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
        self._train_steps_fn = None  # the loop over `_train_fn` (see `train_steps`)
        self._ordered_fn = None  # (ImageBatches, the loop over its batches by index)

    @property
    def metrics(self):
        return [self.train_loss, self.train_accuracy, self.test_loss, self.test_accuracy]

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def results(self):
        """The four metrics as Python floats, keyed by `HISTORY_KEYS`."""
        return {metric.name: float(metric.result()) for metric in self.metrics}

    def tracing_counts(self):
        """How many times each step function has been traced (0 before its first call);
        with `steps_per_execution > 1`, also the loop of `train_steps`."""
        functions = [("train_step", self._train_fn), ("test_step", self._test_fn)]
        if self.steps_per_execution > 1:
            functions.append(("train_steps", self._train_steps_fn))
        counts = {name: fn.experimental_get_tracing_count() if fn is not None else 0
                  for name, fn in functions}
        if self._ordered_fn is not None:  # the loop over OrderedBatches (one per source)
            counts["train_steps"] += self._ordered_fn[1].experimental_get_tracing_count()
        return counts

    # -- per-batch math: without a strategy, the whole step; with one, what each replica runs.

    def compute_loss(self, labels, predictions):
        """The scalar loss of one batch (or, under a strategy, of this replica's share of it).

        Under a strategy each replica's per-example losses are summed and divided by the
        *global* batch size (every replica's examples, counted from the actual batch, so a
        smaller, unevenly split final batch is right too): summing over replicas then gives
        the global batch mean, and the summed gradients its gradient.
        """
        if self.strategy is None:
            return self.loss_object(labels, predictions)
        per_example = self._per_example_loss(labels, predictions)  # (n,)
        # Counted as a float: all-reduce implementations (NCCL, collectives) are made for
        # floating-point gradients.
        count = tf.cast(tf.shape(per_example)[0], per_example.dtype)
        global_count = tf.distribute.get_replica_context().all_reduce(_SUM, count)
        return tf.nn.compute_average_loss(per_example,
                                          global_batch_size=tf.cast(global_count, tf.int64))

    def _update_loss_metric(self, metric, loss):
        """Adds the batch loss to a `Mean` once per step, with or without a strategy."""
        if self.strategy is None:
            metric.update_state(loss)
            return
        # The Mean's total and count are summed over replicas when read: every replica adds
        # the all-reduced batch loss, but only the first with weight 1 (the others 0).
        context = tf.distribute.get_replica_context()
        batch_loss = context.all_reduce(_SUM, loss)
        first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), batch_loss.dtype)
        metric.update_state(batch_loss, sample_weight=first)

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
            gradients = _non_finite_on_every_replica(gradients)
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
        if self._train_fn is None:
            self._train_fn = self._compile(self._train_step, images, labels)
        return self._train_fn(*self._inputs(images, labels))

    def test_step(self, images, labels):
        """Evaluates a batch (no weight change); updates the test metrics and returns the loss.

        Under a strategy, as for `train_step`."""
        if self._test_fn is None:
            self._test_fn = self._compile(self._test_step, images, labels)
        return self._test_fn(*self._inputs(images, labels))

    def steps_iterator(self, batches):
        """An iterator over `batches` for `train_steps`, or None where `train_step` per batch
        is the way: `steps_per_execution` is 1, or `batches` is not a tf.data dataset (or,
        under a strategy, a distributed one) or an iterator over one."""
        if self.steps_per_execution == 1:
            return None
        if self.strategy is None and isinstance(batches, data.OrderedBatches):
            return _OrderCursor(batches)  # gathered inside the compiled loop
        if self.strategy is None:
            dataset, iterator = tf.data.Dataset, tf.data.Iterator
        else:
            dataset, iterator = tf.distribute.DistributedDataset, tf.distribute.DistributedIterator
        if isinstance(batches, iterator):
            return batches
        return iter(batches) if isinstance(batches, dataset) else None

    def train_steps(self, iterator, max_count=None):
        """Up to `min(steps_per_execution, max_count)` training steps on the batches of
        `iterator` (see `steps_iterator`), in one call; returns their losses as floats.

        Fewer at the end of the data, and none past the first non-finite loss: that step's
        update is done, as with `train_step`, and its loss is the last one returned.
        """
        count = self.steps_per_execution
        if max_count is not None:
            count = min(count, max_count)
        if count < 1:
            return []
        if isinstance(iterator, _OrderCursor):
            return self._ordered_steps(iterator, count)
        if self._train_steps_fn is None:
            self._train_steps_fn = self._compile_loop(iterator.element_spec)
        return self._train_steps_fn(iterator, tf.constant(count, tf.int32)).numpy().tolist()

    def _ordered_steps(self, cursor, count):
        """`train_steps` on `OrderedBatches`: up to `count` full batches of the order, each
        gathered from the images TensorFlow holds, in one call of one compiled loop (XLA
        too with `jit_compile`: the whole chunk is then one XLA computation). The block of
        indices it takes always has the same shape, so it is compiled once; the order's
        last, smaller batch, if any, is one `train_step` of its own."""
        batches, size = cursor.batches, cursor.batches.batch_size
        left = len(batches.order) - cursor.position
        if left < size:  # the last, partial batch, or the end
            if left == 0:
                return []
            images, labels = batches.images.gather(tf.constant(batches.order[cursor.position:]))
            cursor.position = len(batches.order)
            return [float(self.train_step(images, labels))]
        rows = min(self.steps_per_execution, len(batches.order) // size)
        n = min(count, left // size)
        block = np.zeros((rows, size), np.int64)
        block[:n] = batches.order[cursor.position:cursor.position + n * size].reshape(n, size)
        losses, done = self._ordered_loop(batches.images)(tf.constant(block),
                                                          tf.constant(n, tf.int32))
        done = int(done)
        cursor.position += done * size
        return losses.numpy()[:done].tolist()

    def _ordered_loop(self, images):
        """The compiled loop of `_ordered_steps` for this `ImageBatches` (made once per
        source: its images are captured by the function)."""
        if self._ordered_fn is not None and self._ordered_fn[0] is images:
            return self._ordered_fn[1]
        if self._train_fn is None:
            self._train_fn = self._compile(self._train_step,
                                           *images.gather(tf.constant([0], tf.int64)))
        step = self._train_fn  # the same function as train_step's: the same numbers

        def loop(indices, count):  # (rows, batch_size) sample indices, steps to run
            def body(i, finite, losses):
                loss = step(*images.gather(indices[i]))
                return i + 1, tf.math.is_finite(loss), losses.write(i, tf.cast(loss, tf.float64))

            losses = tf.TensorArray(tf.float64, size=tf.shape(indices)[0])
            done, _, losses = tf.while_loop(lambda i, finite, _: finite & (i < count), body,
                                            (tf.constant(0), tf.constant(True), losses))
            return losses.stack(), done

        fn = tf.function(loop, jit_compile=self.jit_compile, input_signature=[
            tf.TensorSpec((None, None), tf.int64), tf.TensorSpec((), tf.int32)])
        self._ordered_fn = (images, fn)
        return fn

    def _compile_loop(self, element_spec):
        """The outer tf.function of `train_steps`: a graph loop that calls `_train_fn`
        (XLA-compiled if `jit_compile`) per batch. The loop itself is not XLA-compiled: it
        reads the iterator, which XLA cannot."""
        if self._train_fn is None:
            images, labels = _zeros_like_spec(element_spec, self.strategy)
            self._train_fn = self._compile(self._train_step, images, labels)
        loss_dtype = self._train_fn.get_concrete_function().structured_outputs.dtype
        # Under a strategy the per-replica step is traced into the loop itself: called as a
        # nested tf.function inside the loop's `tf.cond`, a mirrored step's cross-replica
        # values miss their inputs at run time ("You must feed a value for placeholder").
        step = self._train_fn if self.strategy is None else self._train_fn.python_function

        def loop(iterator, max_count):
            def body(i, finite, losses):
                batch = iterator.get_next_as_optional()

                def run():
                    loss = step(*batch.get_value())
                    return i + 1, tf.math.is_finite(loss), losses.write(i, loss)

                return tf.cond(batch.has_value(), run, lambda: (i, tf.constant(False), losses))

            losses = tf.TensorArray(loss_dtype, size=0, dynamic_size=True)
            _, _, losses = tf.while_loop(lambda i, finite, _: finite & (i < max_count), body,
                                         (tf.constant(0), tf.constant(True), losses))
            return losses.stack()  # (steps run,)

        return tf.function(loop)

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
        strategy = self.strategy
        with strategy.scope():
            self._build(strategy.experimental_local_results(images)[0])

        def distributed_step(images, labels):
            per_replica_loss = strategy.run(step, args=(images, labels))
            return strategy.reduce(_SUM, per_replica_loss, axis=None)

        return tf.function(distributed_step,
                           input_signature=distributed_batch_signature(images, labels))

    def _build(self, images):
        # Create the model's and the optimizer's variables eagerly, so that the single trace
        # of each step function only reads and updates variables, never creates them.
        if not self.model.built:
            self.model(images[:1], training=False)
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)


class _OrderCursor:
    """How far `Trainer.train_steps` has come through an `OrderedBatches` (one epoch)."""

    def __init__(self, batches):
        self.batches, self.position = batches, 0


def _zeros_like_spec(element_spec, strategy):
    """A batch of zeros `(images, labels)` shaped like `element_spec` with a batch of 1
    (per replica, as a distributed value under a strategy): what `Trainer._compile` needs
    to build the model and the signature before the iterator's first batch."""
    def zeros(spec):
        return tf.zeros((1, *spec.shape[1:]), spec.dtype)

    if strategy is None:
        return tuple(zeros(spec) for spec in element_spec)
    return tuple(strategy.experimental_distribute_values_from_function(
        lambda _, spec=spec: zeros(tf.nest.flatten(spec, expand_composites=True)[0]))
        for spec in element_spec)


def _distribute(strategy, dataset):
    if isinstance(dataset, tf.distribute.DistributedDataset):
        return dataset
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError("With a `strategy`, `fit` takes `tf.data.Dataset`s. "
                         f"Received: a {type(dataset).__name__}")
    return strategy.experimental_distribute_dataset(dataset)


def fit(model, train_ds, test_ds=None, epochs=1, optimizer=None, loss_object=None, callback=None,
        trainer=None, strategy=None):
    """Trains `model` for `epochs` epochs with the material's loop and returns the history.

    Each epoch resets the metrics, runs `train_step` over `train_ds` and `test_step` over
    `test_ds` (both yielding `(images, labels)` batches), logs the material's line and calls
    `callback(epoch, logs)` (epoch counted from 1, logs the epoch's four metrics) if given.

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
            with _scope(strategy):
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
    if trainer.strategy is not None:
        train_ds = _distribute(trainer.strategy, train_ds)
        test_ds = None if test_ds is None else _distribute(trainer.strategy, test_ds)

    def log_epoch(epoch, logs):
        logging.info("%s", epoch_summary(epoch, logs, test=test_ds is not None))
        if callback is not None:
            callback(epoch, dict(logs))

    return run_epochs(trainer, lambda epoch: train_ds,
                      None if test_ds is None else (lambda: test_ds), epochs, on_epoch=log_epoch)


__all__ = ["HISTORY_KEYS", "JIT_COMPILE_CHOICES", "Trainer", "batch_signature",
           "distributed_batch_signature", "fit", "maybe_wrap_for_mixed_precision",
           "resolve_jit_compile"]
