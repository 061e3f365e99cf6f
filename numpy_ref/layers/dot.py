"""The twin of ``keras.layers.Dot``: per sample, the dot product of two inputs along
one axis of each.

For x1 (N, *P, K) and x2 (N, K, *Q) (the summed axes moved next to each other, the
other axes in their order):

    y[n, p, q] = sum_k x1[n, p, k] x2[n, k, q]          -> (N, *P, *Q)
    dx1 = dout @ x2^T,  dx2 = x1^T @ dout   (per sample)

with y of shape (N, 1) when both inputs are (N, K), as Keras's ``batch_dot`` returns.

``normalize=True`` first scales each input to unit L2 norm along its summed axis, as
Keras's ``ops.normalize`` does: x * min(1 / sqrt(sum x^2), 1 / epsilon). Its backward
follows TensorFlow's gradient of those operations (the gradient goes through the
1/sqrt where it is not above 1/epsilon, ties included).
"""

import numpy as np

from numpy_ref import layers as L


def normalize(x, axis, epsilon):
    """(x * r, r, raw r) with r = min(1 / sqrt(sum(x^2, axis)), 1 / epsilon)."""
    square_sum = np.sum(x * x, axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        raw = 1 / np.sqrt(square_sum)
    r = np.minimum(raw, x.dtype.type(1.0 / epsilon))
    return x * r, r, raw


def normalize_backward(dy, x, r, raw, axis, epsilon):
    """dx for y = x * r: dy * r plus the path through r (where raw <= 1/epsilon)."""
    dr = np.sum(dy * x, axis=axis, keepdims=True)
    dr = np.where(raw <= x.dtype.type(1.0 / epsilon), dr, 0)
    with np.errstate(invalid="ignore", over="ignore"):
        d_square_sum = dr * (-0.5 * raw * raw * raw)  # d(1/sqrt(s))/ds = -s^(-3/2) / 2
        return dy * r + d_square_sum * (2 * x)


class Dot(L.Layer):
    """The twin of ``keras.layers.Dot``.

    Args:
        axes: one axis for both inputs, or (axis of x1, axis of x2); negative axes count
            from the end of each input; never 0 (the batch).
        normalize: L2-normalise both inputs along their axis first (cosine similarity).
        epsilon: Keras's ``epsilon()``, the smallest norm ``normalize`` divides by.
    """

    multi_input = True

    def __init__(self, axes, normalize=False, epsilon=1e-7):
        super().__init__()
        self.axes = axes if isinstance(axes, int) else [int(a) for a in axes]
        self.normalize, self.epsilon = bool(normalize), float(epsilon)

    def _resolved_axes(self, x1, x2):
        axes = [self.axes, self.axes] if isinstance(self.axes, int) else self.axes
        axes = [a % x.ndim if a < 0 else a for a, x in zip(axes, (x1, x2))]
        if 0 in axes or x1.shape[axes[0]] != x2.shape[axes[1]]:
            raise ValueError(f"Dot sums over axes {axes}, which must not be the batch axis "
                             f"and must have one size. Received: input shapes "
                             f"{x1.shape} and {x2.shape}")
        return axes

    def forward(self, xs, training=False):
        if len(xs) != 2:
            raise ValueError(f"Dot takes exactly 2 inputs. Received: {len(xs)}")
        x1, x2 = (np.asarray(x) for x in xs)
        self.axes_used = a1, a2 = self._resolved_axes(x1, x2)
        if self.normalize:
            self.raw_inputs = x1, x2
            (x1, r1, raw1), (x2, r2, raw2) = (normalize(x, a, self.epsilon)
                                              for x, a in ((x1, a1), (x2, a2)))
            self.scales = (r1, raw1), (r2, raw2)
        left = np.moveaxis(x1, a1, -1)  # (N, *P, K)
        right = np.moveaxis(x2, a2, 1)  # (N, K, *Q)
        self.left_shape, self.right_shape = left.shape, right.shape
        n, k = left.shape[0], left.shape[-1]
        self.left = left.reshape(n, -1, k)  # (N, p, K)
        self.right = right.reshape(n, k, -1)  # (N, K, q)
        out = self.left @ self.right  # (N, p, q)
        shape = (n, *left.shape[1:-1], *right.shape[2:])
        return out.reshape(shape if len(shape) > 1 else (n, 1))

    def backward(self, dout):
        n = dout.shape[0]
        dout = dout.reshape(n, self.left.shape[1], self.right.shape[2])  # (N, p, q)
        d_left = (dout @ self.right.transpose(0, 2, 1)).reshape(self.left_shape)
        d_right = (self.left.transpose(0, 2, 1) @ dout).reshape(self.right_shape)
        a1, a2 = self.axes_used
        grads = [np.moveaxis(d_left, -1, a1), np.moveaxis(d_right, 1, a2)]
        if self.normalize:
            grads = [normalize_backward(g, x, r, raw, a, self.epsilon) for g, x, (r, raw), a
                     in zip(grads, self.raw_inputs, self.scales, self.axes_used)]
        return grads


__all__ = ["Dot", "normalize", "normalize_backward"]
