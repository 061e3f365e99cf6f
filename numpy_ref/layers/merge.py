"""Layers that merge several inputs: the twins of Keras's merge layers.

Each takes a list of arrays and its backward returns a list of gradients, one
per input (``multi_input = True``). Inputs of lower rank first get new axes
at position 1 until the ranks match, as Keras's merge layers do; element-wise
merges then broadcast like NumPy, and the gradient of a broadcast input is
summed back to its shape.
The operations run in Keras's order (``((x0 + x1) + x2) ...``) so that float
results match it to the bit.
"""

import numpy as np

from numpy_ref import layers as L


def unbroadcast(grad, shape):
    """``grad`` summed over the axes along which an input of ``shape`` was broadcast."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


class _Merge(L.Layer):
    multi_input = True
    min_inputs = 1

    def forward(self, xs, training=False):
        if len(xs) < self.min_inputs:
            raise ValueError(f"{type(self).__name__} needs at least {self.min_inputs} inputs. "
                             f"Received: {len(xs)}")
        self.shapes = [np.shape(x) for x in xs]
        rank = max(len(shape) for shape in self.shapes)
        xs = [x.reshape(x.shape[:1] + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]
        self.ranked_shapes = [x.shape for x in xs]
        return self._forward(xs)

    def backward(self, dout):
        return [unbroadcast(g, ranked).reshape(shape) for g, ranked, shape
                in zip(self._backward(dout), self.ranked_shapes, self.shapes)]


class Add(_Merge):
    """y = x0 + x1 + ...; every input receives dout."""

    def _forward(self, xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out

    def _backward(self, dout):
        return [dout] * len(self.shapes)


class Subtract(_Merge):
    """y = x0 - x1 (exactly two inputs); dx0 = dout, dx1 = -dout."""

    min_inputs = 2

    def _forward(self, xs):
        if len(xs) != 2:
            raise ValueError(f"Subtract takes exactly 2 inputs. Received: {len(xs)}")
        return xs[0] - xs[1]

    def _backward(self, dout):
        return [dout, -dout]


class Multiply(_Merge):
    """y = x0 * x1 * ...; dx_i = dout * (product of the others, in Keras's order)."""

    def _forward(self, xs):
        self.xs = xs
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out

    def _backward(self, dout):
        grads = []
        for i in range(len(self.xs)):
            g = dout
            for j, x in enumerate(self.xs):
                if j != i:
                    g = g * x
            grads.append(g)
        return grads


class Average(_Merge):
    """y = (x0 + x1 + ...) / n, summed first and divided last as Keras does."""

    def _forward(self, xs):
        return Add._forward(self, xs) / len(xs)

    def _backward(self, dout):
        return [dout / len(self.shapes)] * len(self.shapes)


class _Extremum(_Merge):
    """Element-wise max or min, applied pairwise in order.

    TensorFlow's gradient of maximum(a, b) goes to a where a >= b, else to b
    (minimum: a <= b); applied pairwise, ties go to the earlier input.
    """

    pick = None  # np.greater_equal or np.less_equal

    def _forward(self, xs):
        self.winners = []  # per pairwise step: where the running result won
        out = xs[0]
        for x in xs[1:]:
            mask = self.pick(out, x)
            self.winners.append(mask)
            out = np.where(mask, out, x)
        return out

    def _backward(self, dout):
        grads = [None] * len(self.shapes)
        g = dout
        for i in range(len(self.shapes) - 1, 0, -1):  # undo the pairwise steps, last first
            mask = self.winners[i - 1]
            grads[i] = np.where(mask, 0, g)
            g = np.where(mask, g, 0)
        grads[0] = g
        return grads


class Maximum(_Extremum):
    """y = max(x0, x1, ...) element-wise."""

    pick = staticmethod(np.greater_equal)


class Minimum(_Extremum):
    """y = min(x0, x1, ...) element-wise."""

    pick = staticmethod(np.less_equal)


class Concatenate(_Merge):
    """y = concatenate(xs, axis); each input receives its slice of dout."""

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = axis

    def _forward(self, xs):
        return np.concatenate(xs, axis=self.axis)

    def backward(self, dout):  # no broadcasting: the slices have the inputs' shapes
        sizes = [shape[self.axis] for shape in self.shapes]
        return np.split(dout, np.cumsum(sizes)[:-1], axis=self.axis)


__all__ = ["Add", "Average", "Concatenate", "Maximum", "Minimum", "Multiply", "Subtract",
           "unbroadcast"]
