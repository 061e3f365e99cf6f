"""A tf.data pipeline over uint8 images held in memory. Imports TensorFlow when called."""

import numpy as np


def _check_positive_int(name, value):
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < 1:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}")


def make_dataset(x, y, batch_size=32, shuffle_buffer=1024, training=True,
                 seed=None):
    """A tf.data pipeline of (float32 images in [0, 1], int64 labels) batches.

    The uint8 images stay uint8 in memory; each batch is cast and divided by
    255 after batching, so there is never a float copy of the whole set.
    What is shuffled and batched are the sample indices; each batch of images
    is then gathered in one op. Shuffling indices with the same buffer and
    seed gives the same order as shuffling the images themselves, without
    moving every image through tf.data one at a time.

    Args:
      x: uint8 images (N, ...), e.g. (N, 28, 28) or (N, 32, 32, 3).
      y: integer class labels (N,).
      batch_size: samples per batch; the final partial batch is kept.
      shuffle_buffer: shuffle buffer size (used when `training`).
      training: shuffle, with a new order every epoch; else keep the order.
      seed: makes the sequence of shuffled orders reproducible.

    Returns:
      A `tf.data.Dataset` of `(x_batch, y_batch)`, prefetched.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("shuffle_buffer", shuffle_buffer)
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype != np.uint8:
        raise ValueError(
            "x must hold uint8 pixels 0..255 (make_dataset scales them). "
            f"Received: x.dtype={x.dtype}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "y must be integer class labels of shape (N,). "
            f"Received: y.dtype={y.dtype}, y.shape={y.shape}")
    if x.ndim < 1 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            "x and y must hold the same, non-zero number of samples. "
            f"Received: x.shape={x.shape}, y.shape={y.shape}")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    images = tf.constant(x)  # TensorFlow's one copy of the set
    labels = tf.constant(y.astype(np.int64))

    def gather(indices):  # (B,) -> (B, ...) float32 in [0, 1], (B,) int64
        batch = tf.cast(tf.gather(images, indices), tf.float32) / 255.0
        return batch, tf.gather(labels, indices)

    ds = tf.data.Dataset.range(len(x))
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed,
                        reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=False)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    # tf.data's default graph rewrites serialise the pipeline, and with it a
    # second copy of every image (`images` already is one): for SVHN, 225 MB
    # more at the peak. This pipeline is already in the order they would give
    # it (batch indices, then one vectorised map, then prefetch).
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)
