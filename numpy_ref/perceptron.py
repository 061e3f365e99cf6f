"""Perceptron logic gates: a weighted sum plus bias against the threshold 0.

Each gate returns 1 when w1*x1 + w2*x2 + b > 0 and 0 otherwise. XOR is not
linearly separable, so no single perceptron computes it; two layers do.
"""

import numpy as np


def _gate(w, b):
    w = np.array(w, dtype=np.float64)

    def gate(x1, x2):
        return int(np.sum(w * np.array([x1, x2])) + b > 0)

    return gate


AND = _gate([0.5, 0.5], -0.7)
NAND = _gate([-0.5, -0.5], 0.7)
OR = _gate([0.5, 0.5], -0.2)


def XOR(x1, x2):
    """Two-layer perceptron: AND(NAND(x1, x2), OR(x1, x2))."""
    return AND(NAND(x1, x2), OR(x1, x2))
