"""The base of Keras's losses in NumPy: dtype, shapes and reduction, as Keras 3 does them.

Protocol (a loss is the last layer of a network):

- ``forward(y_pred, y_true)`` returns the reduced loss, a scalar (or, with
  ``reduction=None``/"none", the per-sample losses, shaped like y_pred without
  its last axis);
- ``backward(dout=1)`` returns dL/dy_pred with y_pred's shape and dtype, where
  L = dout * loss. With ``reduction=None`` the loss is an array and ``dout``
  is its gradient, any array that broadcasts to it (1: the gradient of the
  sum of the per-sample losses).

Like ``keras.losses.Loss``, the computation runs in ``dtype``: y_pred and
y_true are cast to it first, and the gradient is the derivative of exactly
that computation, cast back to y_pred's dtype. Keras's default is floatx
(float32); here ``dtype=None`` means y_pred's own dtype, so pass Keras's
``loss.dtype`` to reproduce a Keras loss.

Reductions (``keras.losses.Loss``): "sum_over_batch_size" and "mean" divide
the sum of the per-sample losses by their number (0 for none), "sum" sums,
None/"none" returns them. "mean_with_sample_weight" is "mean" here, as there
are no sample weights, except where a loss masks samples out (Keras's mask
weighs the others total / valid for the means, so the result is the mean over
the valid samples).
"""

import numpy as np

from numpy_ref import layers as L

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def same_rank(y_true, y_pred):
    """Keras's squeeze-or-expand: a trailing axis of size 1 on one side only is
    removed (or, against a 1-D other side, added to it)."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        if y_pred.ndim == 1:
            return y_true, y_pred[:, None]
        return y_true[..., 0], y_pred
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        if y_true.ndim == 1:
            return y_true[:, None], y_pred
        return y_true, y_pred[..., 0]
    return y_true, y_pred


class Loss(L.Layer):
    """Base: subclasses define ``values(y_true, y_pred)``, the per-sample losses
    (caching what they need), and ``values_grad(dvalues)``, dL/dy_pred from dL/dvalues.

    Args:
        reduction: see the module docstring.
        dtype: the computation's dtype; None for y_pred's.
    """

    def __init__(self, reduction="sum_over_batch_size", dtype=None):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}. "
                             f"Received: reduction={reduction!r}")
        self.reduction = reduction
        self.dtype = None if dtype is None else np.dtype(dtype).name
        self.mask = None  # set by a loss that leaves samples out (ignore_class)

    def forward(self, y_pred, y_true):
        y_pred = np.asarray(y_pred)
        self.pred_shape, self.pred_dtype = y_pred.shape, y_pred.dtype
        dtype = np.dtype(self.dtype or y_pred.dtype)
        y_true, y_pred = same_rank(np.asarray(y_true).astype(dtype), y_pred.astype(dtype))
        values = self.values(y_true, y_pred)
        self.weights = None
        if self.mask is not None:
            if self.reduction in ("sum_over_batch_size", "mean"):
                valid = np.sum(self.mask, dtype=dtype)
                share = dtype.type(self.mask.size) / valid if valid else dtype.type(0)
                self.weights = np.where(self.mask, share, dtype.type(0))
            else:
                self.weights = self.mask.astype(dtype)
            values = values * self.weights
        self.values_shape = values.shape
        if self.reduction in (None, "none") or values.ndim == 0 or values.size == 0:
            self.divisor = None
            return values
        total = np.sum(values)
        if self.reduction == "sum":
            self.divisor = None
            return total
        by_weight = self.reduction == "mean_with_sample_weight" and self.weights is not None
        self.divisor = np.sum(self.weights) if by_weight else dtype.type(values.size)
        return total / self.divisor if self.divisor else dtype.type(0)

    def backward(self, dout=1):
        dtype = np.dtype(self.dtype or self.pred_dtype)
        dout = np.asarray(dout, dtype=dtype)
        if self.divisor is not None:
            dout = dout / self.divisor if self.divisor else np.zeros_like(dout)
        dvalues = np.broadcast_to(dout, self.values_shape)
        if self.weights is not None:
            dvalues = dvalues * self.weights
        dy = self.values_grad(dvalues)
        return dy.reshape(self.pred_shape).astype(self.pred_dtype, copy=False)


def mean_grad(dvalues, n, axis=-1):
    """TF's gradient of a mean over ``axis`` of n entries: dvalues spread along it, / n."""
    return np.expand_dims(dvalues, axis) / n


__all__ = ["Loss", "REDUCTIONS", "mean_grad", "same_rank"]
