"""A tf.data pipeline over uint8 images held in memory. Imports TensorFlow when called."""

import numpy as np


def _check_positive_int(name, value):
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < 1:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}")


def _check_arrays(x, y):
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise ValueError(
            "x must hold uint8 pixels 0..255 (the pipeline scales them). "
            f"Received: x.dtype={x.dtype}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "y must be integer class labels of shape (N,). "
            f"Received: y.dtype={y.dtype}, y.shape={y.shape}")
    if x.ndim < 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            "x and y must hold the same, non-zero number of samples. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}")
    return x, y


def scale_images(images, dtype):
    """uint8 pixels -> ``dtype`` in [0, 1]: cast, then divide by 255 in that dtype.

    The NumPy side of the project does the same two operations, so both
    backends see bit-identical batches.
    """
    return images.astype(dtype) / np.asarray(255, dtype)


class ImageBatches:
    """uint8 images and labels held by TensorFlow once; a tf.data pipeline per order.

    What is batched are sample indices; each batch of images is then gathered
    in one op and scaled to ``dtype`` in [0, 1], so there is never a float copy
    of the whole set.

    Args:
      x: uint8 images (N, ...), e.g. (N, 28, 28) or (N, 32, 32, 3).
      y: integer class labels (N,).
      dtype: the float dtype of the scaled batches.
      shape: reshape each batch's images to (B, *shape) (a model's own input shape).
    """

    def __init__(self, x, y, dtype="float32", shape=None):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        x, y = _check_arrays(x, y)
        self.size = len(x)
        self.dtype = tf.as_dtype(dtype)
        self.shape = None if shape is None else tuple(shape)
        self.images = tf.constant(x)  # TensorFlow's one copy of the set
        self.labels = tf.constant(y.astype(np.int64))
        # Made here, not in _gather: a constant written inside a tf.function lets Grappler
        # turn "/ 255" into "* (1 / 255)", which rounds differently from NumPy's division;
        # a captured tensor is an input of the graph, never folded.
        self.divisor = tf.constant(255, self.dtype)

    def ordered(self, batch_size, order=None):
        """``OrderedBatches``: the batches of the examples in ``order`` (default 0..N-1)."""
        return OrderedBatches(self, batch_size, order)

    def gather(self, indices):
        """(B,) sample indices -> ((B, ...) images scaled to the dtype, (B,) int64 labels),
        in TensorFlow ops (so also inside a compiled loop)."""
        return self._gather(indices)

    def _gather(self, indices):  # (B,) -> (B, ...) scaled images, (B,) int64 labels
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        batch = tf.cast(tf.gather(self.images, indices), self.dtype)
        if self.shape is not None:
            batch = tf.reshape(batch, (-1, *self.shape))
        return batch / self.divisor, tf.gather(self.labels, indices)

    def dataset(self, batch_size, order=None, shuffle_buffer=None, seed=None):
        """Batches of the examples in ``order`` (default 0..N-1), or shuffled by
        tf.data with ``shuffle_buffer`` (a new order every iteration)."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        _check_positive_int("batch_size", batch_size)
        if order is not None:
            ds = tf.data.Dataset.from_tensor_slices(np.asarray(order, np.int64))
        else:
            ds = tf.data.Dataset.range(self.size)
            if shuffle_buffer is not None:
                ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=False)
        ds = ds.map(self._gather, num_parallel_calls=tf.data.AUTOTUNE)
        # tf.data's default graph rewrites serialise the pipeline, and with it a
        # second copy of every image (`images` already is one): for SVHN, 225 MB
        # more at the peak. This pipeline is already in the order they would give
        # it (batch indices, then one vectorised map, then prefetch).
        options = tf.data.Options()
        options.experimental_optimization.apply_default_optimizations = False
        return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


class OrderedBatches:
    """The batches of an ``ImageBatches`` in a given order, ``batch_size`` examples each
    (the last may be smaller).

    Iterating gives them through the tf.data pipeline (``ImageBatches.dataset``), one
    batch per step. A loop that gathers the batches itself, inside a compiled function
    (``tfmodels.multistep``: many steps per call, without a tf.data element per step),
    walks them with ``cursor()`` instead. Both give the same batches.
    """

    def __init__(self, images, batch_size, order=None):
        _check_positive_int("batch_size", batch_size)
        self.images, self.batch_size = images, batch_size
        self.order = (np.arange(images.size, dtype=np.int64) if order is None
                      else np.asarray(order, np.int64))

    def __iter__(self):
        return iter(self.images.dataset(self.batch_size, self.order))

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def cursor(self):
        """A ``BatchCursor`` at the first batch."""
        return BatchCursor(self)


class BatchCursor:
    """A position in the batches of an ``OrderedBatches``, as sample indices: blocks of
    full batches, then the last, smaller batch. ``images`` gathers them (``gather``)."""

    def __init__(self, batches):
        self.images, self.batch_size = batches.images, batches.batch_size
        self._order, self._position = batches.order, 0

    @property
    def full_batches(self):
        """How many full batches the whole order holds."""
        return len(self._order) // self.batch_size

    @property
    def remaining(self):
        """How many examples are left to take."""
        return len(self._order) - self._position

    def block(self, rows, count):
        """The next ``n = min(rows, count, full batches left)`` batches' indices, not yet
        taken: ``(block, n)``, the block ``(rows, batch_size)`` int64 with those in its
        first ``n`` rows and zeros below (a fixed shape, whatever ``n``)."""
        size = self.batch_size
        n = min(rows, count, self.remaining // size)
        block = np.zeros((rows, size), np.int64)
        block[:n] = self._order[self._position:self._position + n * size].reshape(n, size)
        return block, n

    def advance(self, batches):
        """Takes ``batches`` full batches (of those ``block`` gave)."""
        self._position += batches * self.batch_size

    def rest(self):
        """Takes the examples left (``remaining``, the last, smaller batch): their indices."""
        indices = self._order[self._position:]
        self._position = len(self._order)
        return indices


def make_dataset(x, y, batch_size=32, shuffle_buffer=1024, training=True, seed=None,
                 order=None, dtype="float32"):
    """A tf.data pipeline of (images scaled to [0, 1], int64 labels) batches.

    Args:
      x: uint8 images (N, ...), e.g. (N, 28, 28) or (N, 32, 32, 3).
      y: integer class labels (N,).
      batch_size: samples per batch; the final partial batch is kept.
      shuffle_buffer: tf.data shuffle buffer size (used when `training` and no `order`).
      training: shuffle, with a new order every epoch; else keep the order.
      seed: makes the sequence of shuffled orders reproducible.
      order: the sample indices to visit, in order (see `tfmodels.data.order`);
        overrides the shuffling.
      dtype: float dtype of the images.

    Returns:
      A `tf.data.Dataset` of `(x_batch, y_batch)`, prefetched.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("shuffle_buffer", shuffle_buffer)
    batches = ImageBatches(x, y, dtype)
    return batches.dataset(batch_size, order, shuffle_buffer if training else None, seed)
