"""Several training steps per `tf.function` call: Keras's `steps_per_execution`.

`MultiStepLoop.run` calls a `Trainer`'s compiled one-step function once per batch inside one
`tf.while_loop`, so Python dispatches once per k steps instead of once per step, and the
numbers are those of one `train_step` per batch. It stops after the first non-finite loss
and returns every step's loss, so `numpy_ref.training.run_epochs` still sees, checks and
reports each step (`MultiStepLoop.iterator` and `run` are its `steps_iterator` and
`train_steps`). The one loop (`_steps`) reads its batches from either source:

- a tf.data iterator (distributed under a strategy), read in the graph;
- `tfmodels.data.OrderedBatches` (images TensorFlow holds, an order, a batch size: what
  train.py's TensorFlow backend trains on), walked with its cursor: each call takes a block
  of sample indices and gathers each batch in the graph, so a chunk is one graph (with
  `jit_compile`, one XLA computation) with no tf.data element per step, the lever that
  matters at small batches (measured in BENCHMARKS.md).
"""

import tensorflow as tf

from tfmodels import data


def _steps(step, next_batch, count, capacity):
    """Up to `count` calls `loss = step(*batch)` in a `tf.while_loop`, stopping after the
    first non-finite loss or when there is no batch left.

    `next_batch(i) -> (present, get)`: `get()` gives step `i`'s batch if the boolean tensor
    `present` is true; `present` None means there always is one (no `tf.cond`, so XLA can
    compile the loop whole). Returns the losses `(capacity,)` float64, of which the first
    `done` are the steps run, and `done`.
    """
    def body(i, finite, losses):
        present, get = next_batch(i)

        def run():
            loss = step(*get())
            return i + 1, tf.math.is_finite(loss), losses.write(i, tf.cast(loss, tf.float64))

        if present is None:
            return run()
        return tf.cond(present, run, lambda: (i, tf.constant(False), losses))

    losses = tf.TensorArray(tf.float64, size=capacity)
    done, _, losses = tf.while_loop(lambda i, finite, _: finite & (i < count), body,
                                    (tf.constant(0), tf.constant(True), losses))
    return losses.stack(), done


class MultiStepLoop:
    """Up to `steps_per_execution` training steps per call of one compiled loop.

    Args:
        steps_per_execution: Positive int, the most steps one `run` takes.
        train_function: `train_function(images, labels)` -> the trainer's compiled one-step
            function (`loss = fn(images, labels)`), compiled for batches like these if it is
            not yet.
        strategy: The trainer's `tf.distribute.Strategy`, or None.
        jit_compile: Whether the loop over `OrderedBatches` is compiled by XLA.
    """

    def __init__(self, steps_per_execution, train_function, strategy=None, jit_compile=False):
        self.steps_per_execution = steps_per_execution
        self._train_function, self._strategy = train_function, strategy
        self._jit_compile = jit_compile
        self._iterator_fn = None  # the loop over a tf.data iterator
        self._ordered_fn = None  # the loop gathering from `self._images`, an ImageBatches
        self._images = None

    def tracing_count(self):
        """How many times the loops have been traced (the one over the current
        `ImageBatches`: a loop captures its images)."""
        return sum(fn.experimental_get_tracing_count()
                   for fn in (self._iterator_fn, self._ordered_fn) if fn is not None)

    def iterator(self, batches):
        """What `run` reads `batches` from, or None where one step per batch is the way:
        `steps_per_execution` is 1, or `batches` is neither `OrderedBatches` (without a
        strategy) nor a tf.data dataset (distributed under a strategy) or iterator."""
        if self.steps_per_execution == 1:
            return None
        if self._strategy is None and isinstance(batches, data.OrderedBatches):
            return batches.cursor()
        if self._strategy is None:
            dataset, iterator = tf.data.Dataset, tf.data.Iterator
        else:
            dataset, iterator = tf.distribute.DistributedDataset, tf.distribute.DistributedIterator
        if isinstance(batches, iterator):
            return batches
        return iter(batches) if isinstance(batches, dataset) else None

    def run(self, iterator, max_count=None):
        """Up to `min(steps_per_execution, max_count)` steps on the batches of `iterator`
        (see `iterator`) in one call; their losses as floats. Fewer at the end of the data,
        and none past the first non-finite loss (that step's update is done)."""
        count = self.steps_per_execution
        if max_count is not None:
            count = min(count, max_count)
        if count < 1:
            return []
        if isinstance(iterator, data.BatchCursor):
            return self._run_ordered(iterator, count)
        losses, done = self._iterator_loop(iterator.element_spec)(
            iterator, tf.constant(count, tf.int32))
        return losses.numpy()[:int(done)].tolist()

    def _run_ordered(self, cursor, count):
        """`run` over a cursor: up to `count` full batches in one call of a loop compiled
        once (its block of indices always has the same shape); the order's last, smaller
        batch, if any, is one call of the one-step function of its own."""
        if cursor.remaining < cursor.batch_size:  # the last, partial batch, or the end
            if cursor.remaining == 0:
                return []
            images, labels = cursor.images.gather(tf.constant(cursor.rest()))
            return [float(self._train_function(images, labels)(images, labels))]
        rows = min(self.steps_per_execution, cursor.full_batches)
        block, n = cursor.block(rows, count)
        losses, done = self._ordered_loop(cursor.images)(tf.constant(block),
                                                         tf.constant(n, tf.int32))
        done = int(done)
        cursor.advance(done)
        return losses.numpy()[:done].tolist()

    def _ordered_loop(self, images):
        """The compiled loop gathering its batches from `images` (an `ImageBatches`: made
        once per source, as the function captures its images)."""
        if self._images is images:
            return self._ordered_fn
        step = self._train_function(*images.gather(tf.constant([0], tf.int64)))

        def loop(indices, count):  # (rows, batch_size) sample indices, steps to run
            return _steps(step, lambda i: (None, lambda: images.gather(indices[i])), count,
                          capacity=tf.shape(indices)[0])

        self._images = images
        self._ordered_fn = tf.function(loop, jit_compile=self._jit_compile, input_signature=[
            tf.TensorSpec((None, None), tf.int64), tf.TensorSpec((), tf.int32)])
        return self._ordered_fn

    def _iterator_loop(self, element_spec):
        """The compiled loop reading its batches from an iterator. Not XLA-compiled: XLA
        cannot read an iterator (the step it calls is, with `jit_compile`)."""
        if self._iterator_fn is not None:
            return self._iterator_fn
        fn = self._train_function(*_zeros_like_spec(element_spec, self._strategy))
        # Under a strategy the per-replica step is traced into the loop itself: called as a
        # nested tf.function inside the loop's `tf.cond`, a mirrored step's cross-replica
        # values miss their inputs at run time ("You must feed a value for placeholder").
        step = fn if self._strategy is None else fn.python_function

        def loop(iterator, count):
            def next_batch(_):
                batch = iterator.get_next_as_optional()
                return batch.has_value(), batch.get_value

            return _steps(step, next_batch, count, capacity=count)

        self._iterator_fn = tf.function(loop)
        return self._iterator_fn


def _zeros_like_spec(element_spec, strategy):
    """A batch of zeros `(images, labels)` shaped like `element_spec` with a batch of 1
    (per replica, as a distributed value under a strategy): what compiling the one-step
    function needs before the iterator's first batch."""
    def zeros(spec):
        return tf.zeros((1, *spec.shape[1:]), spec.dtype)

    if strategy is None:
        return tuple(zeros(spec) for spec in element_spec)
    return tuple(strategy.experimental_distribute_values_from_function(
        lambda _, spec=spec: zeros(tf.nest.flatten(spec, expand_composites=True)[0]))
        for spec in element_spec)


__all__ = ["MultiStepLoop"]
