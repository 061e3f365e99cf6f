"""Small synthetic data sets for tests."""

import numpy as np


def tiny_digits(n, seed, classes=10):
    """uint8 (n, 28, 28) images whose class is a bright bar at a class-specific row."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for k in range(classes):
        x[y == k, 2 * k + 4:2 * k + 6, 4:24] = 255
    return x, y
