"""The order in which an epoch visits the training examples, the same for both backends.

The Keras TF2 tutorial-style custom loop the project's study notes wrote
shuffles with ``tf.data``'s ``shuffle(1024)``: a buffer holds the next 1,024
examples, each step emits a random one and refills its slot from the stream.
``buffered_order`` does exactly that with NumPy, seeded by (seed, epoch), so
the TensorFlow and the NumPy backends read the same batches in the same order,
and a resumed run the same batches as an uninterrupted one.
"""

import numpy as np


def buffered_order(n, buffer_size, seed, epoch):
    """The permutation of range(n) a shuffle buffer of ``buffer_size`` emits in ``epoch``."""
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be >= 1. Received: buffer_size={buffer_size}")
    rng = np.random.default_rng([seed, epoch])
    size = min(buffer_size, n)
    buffer = list(range(size))
    # One uniform draw per emitted example picks a slot of the current buffer.
    draws = rng.random(n)
    order = np.empty(n, np.int64)
    following = size
    for i in range(n):
        slot = int(draws[i] * len(buffer))
        order[i] = buffer[slot]
        if following < n:  # refill the slot from the stream
            buffer[slot] = following
            following += 1
        else:  # the stream is done: the buffer shrinks
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order
