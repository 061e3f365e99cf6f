"""Element-wise arithmetic written between layers: the twins of the ``keras.ops``
operations a functional model applies to its tensors (``x + 3.0``, ``2.0 * x``,
``x / y``, ``-x``), which are not layers.

Each binary layer computes ``y = a (op) b``; either operand may be a constant the
layer holds (``constant``, with ``constant_first`` saying whether it is ``a``, as in
``3.0 - x``), else both come in as a list of two arrays (``multi_input``):

    OpAdd      y = a + b    da = dout             db = dout
    OpSubtract y = a - b    da = dout             db = -dout
    OpMultiply y = a * b    da = dout * b         db = a * dout
    OpDivide   y = a / b    da = dout / b         db = dout * ((-a / b) / b)
    OpNegative y = -x       dx = -dout
    OpMaximum  y = max(a, b)  da = dout where a >= b   db = dout where a < b
    OpMinimum  y = min(a, b)  da = dout where a <= b   db = dout where a > b

As Keras does, both operands are first converted to the result dtype (``dtype``, the
one Keras chose: a Python float takes the tensor's dtype, so ``x * (1 / 6)`` multiplies
a float32 tensor by float32's 1/6 and a float64 one by float64's); the gradient goes
back in each input's own dtype. Operands broadcast like NumPy arrays (no axes are
inserted, unlike the merge layers), and the gradient of a broadcast operand is summed
back to its shape. The gradients follow TensorFlow's formulas operation by operation
(``(-a / b) / b``, not ``-a / b**2``), so they match it to the bit.
"""

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.merge import unbroadcast


class _Binary(L.Layer):
    """y = a (op) b on two tensors, or on a tensor and a constant."""

    def __init__(self, dtype, constant=None, constant_first=False):
        super().__init__()
        self.dtype = np.dtype(dtype).name
        self.constant, self.constant_first = constant, bool(constant_first)
        self.multi_input = constant is None  # two tensors come in as a list
        self.constant_value = None if constant is None else np.asarray(constant, self.dtype)

    def forward(self, x, training=False):
        if self.constant is None:
            if len(x) != 2:
                raise ValueError(f"{type(self).__name__} takes 2 inputs. Received: {len(x)}")
            a, b = x
        elif self.constant_first:
            a, b = self.constant_value, x
        else:
            a, b = x, self.constant_value
        self.input_dtypes = [np.asarray(v).dtype for v in (a, b)]
        a, b = np.asarray(a, self.dtype), np.asarray(b, self.dtype)
        self.shapes = [a.shape, b.shape]
        return self._forward(a, b)

    def backward(self, dout):
        grads = [_in_dtype(unbroadcast(g, shape), dtype) for g, shape, dtype
                 in zip(self._backward(dout), self.shapes, self.input_dtypes)]
        if self.constant is None:
            return grads
        return grads[1] if self.constant_first else grads[0]


def _in_dtype(grad, dtype):
    """The gradient in its input's dtype; None for an integer input (no gradient)."""
    if not np.issubdtype(dtype, np.inexact):
        return None
    return grad if grad.dtype == dtype else grad.astype(dtype)


class OpAdd(_Binary):
    """y = a + b."""

    def _forward(self, a, b):
        return a + b

    def _backward(self, dout):
        return dout, dout


class OpSubtract(_Binary):
    """y = a - b."""

    def _forward(self, a, b):
        return a - b

    def _backward(self, dout):
        return dout, -dout


class OpMultiply(_Binary):
    """y = a * b."""

    def _forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def _backward(self, dout):
        return dout * self.b, self.a * dout


class OpDivide(_Binary):
    """y = a / b (true division: integers become floats first, ``dtype`` says which)."""

    def _forward(self, a, b):
        self.a, self.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):  # x / 0 is inf, as in TF
            return a / b

    def _backward(self, dout):
        with np.errstate(divide="ignore", invalid="ignore"):
            return dout / self.b, dout * ((-self.a / self.b) / self.b)


class OpMaximum(_Binary):
    """y = max(a, b) (NaN wins, as in TensorFlow); a tie sends the gradient to a, as
    TensorFlow's gradient does."""

    pick = staticmethod(np.greater_equal)  # where a gets the gradient
    extremum = staticmethod(np.maximum)

    def _forward(self, a, b):
        self.a_wins = self.pick(a, b)
        return self.extremum(a, b)

    def _backward(self, dout):
        zeros = np.zeros_like(dout)
        return np.where(self.a_wins, dout, zeros), np.where(self.a_wins, zeros, dout)


class OpMinimum(OpMaximum):
    """y = min(a, b); a tie sends the gradient to a."""

    pick = staticmethod(np.less_equal)
    extremum = staticmethod(np.minimum)


class OpNegative(L.Layer):
    """y = -x; dx = -dout."""

    def forward(self, x, training=False):
        return -x

    def backward(self, dout):
        return -dout


class OpNotEqual(L.Layer):
    """mask = x != constant, the Keras mask an ``Embedding(mask_zero=True)`` makes (a
    functional model computes it as an operation of its graph and passes it on). A Python
    float constant is first rounded to float32 and an int taken as int32, as TensorFlow
    converts them. Booleans carry no gradient: nothing flows back (``makes_mask``: the
    value is a Keras mask)."""

    makes_mask = True

    def __init__(self, constant):
        super().__init__()
        self.constant = constant

    def forward(self, x, training=False):
        constant = (np.float32(self.constant) if isinstance(self.constant, float)
                    else np.int32(self.constant))
        return np.asarray(x) != constant

    def backward(self, dout):
        return None


class OpAny(L.Layer):
    """mask = any(x, axis): ``Masking``'s mask of (N, T, D) features, (N, T)."""

    makes_mask = True

    def __init__(self, axis=None, keepdims=False):
        super().__init__()
        self.axis, self.keepdims = axis, bool(keepdims)

    def forward(self, x, training=False):
        return np.any(x, axis=self.axis, keepdims=self.keepdims)

    def backward(self, dout):
        return None


class OpLogicalOr(L.Layer):
    """mask = a | b: two Keras masks merged (an Add of two masked sequences)."""

    multi_input = True
    makes_mask = True

    def forward(self, xs, training=False):
        return np.logical_or(xs[0], xs[1])

    def backward(self, dout):
        return [None, None]


class OpLogicalAnd(OpLogicalOr):
    """mask = a & b."""

    def forward(self, xs, training=False):
        return np.logical_and(xs[0], xs[1])


__all__ = ["OpAdd", "OpAny", "OpDivide", "OpLogicalAnd", "OpLogicalOr", "OpMaximum",
           "OpMinimum", "OpMultiply", "OpNegative", "OpNotEqual", "OpSubtract"]
