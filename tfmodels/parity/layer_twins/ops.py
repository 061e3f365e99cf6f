"""The twins of the ``keras.ops`` operations a functional model applies between its
layers (``x + 3.0``, ``2.0 * x``, ``x / y``, ``-x``, and the ``x != 0`` that makes an
Embedding's Keras mask: ``keras.src.ops.numpy`` operation nodes, not layers): ``{operation class: builder(operation, call)}``, where ``call`` is the
``trace.Call`` holding the arguments it was given, tensors and Python constants alike."""

import numbers

from keras.src.ops import core as keras_core
from keras.src.ops import numpy as keras_numpy
import numpy as np
import tensorflow as tf

from numpy_ref.layers import core, elementwise
from tfmodels.parity import registry


def _binary(twin_class):
    """The builder of a two-operand operation: each operand is a traced tensor or a
    constant (a Python number or a NumPy array), which the twin holds."""
    def build(operation, call):
        (name_a, a), (name_b, b) = list(call.arguments.items())[:2]
        dtype = tf.as_dtype(call.outputs[0].dtype).name  # the result dtype Keras chose
        constants = [(name, value) for name, value in ((name_a, a), (name_b, b))
                     if not tf.is_tensor(value)]
        if not constants:
            return twin_class(dtype)
        if len(constants) == 2:
            raise registry.unsupported_error(operation, "is given no tensor")
        name, value = constants[0]
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.ndarray,
                                                             np.number)):
            raise registry.no_option(operation, name, value,
                                     "a tensor, a Python int or float, or a NumPy array")
        if isinstance(value, (np.ndarray, np.number)):
            value = np.asarray(value).tolist()
        if twin_class is elementwise.OpAdd and name == name_b:
            _check_not_a_bias(operation, a.shape.as_list(), np.shape(value))
        return twin_class(dtype, value, constant_first=name == name_a)
    return build


def _check_not_a_bias(operation, x_shape, constant_shape):
    """TensorFlow's ``ops.add(x, constant)`` adds a constant with one axis longer than 1
    as a bias (``tf.nn.bias_add``) when that length is x's last (or second) axis's, along
    that axis, wherever the constant's axis stands; refused where broadcasting would add
    it along another axis (``x`` (N, 4, 4) + a (4, 1) constant)."""
    long_axes = [i for i, n in enumerate(constant_shape) if n > 1]
    if len(long_axes) != 1 or len(x_shape) < 2:
        return
    length = constant_shape[long_axes[0]]
    if length not in (x_shape[1], x_shape[-1]):
        return
    bias_axis = len(x_shape) - 1 if x_shape[-1] == length else 1
    broadcast_axis = len(x_shape) - len(constant_shape) + long_axes[0]
    if len(constant_shape) > len(x_shape) or broadcast_axis != bias_axis:
        raise registry.unsupported_error(
            operation, f"adds a constant of shape {tuple(constant_shape)} to a tensor of shape "
            f"{tuple(x_shape)}, which Keras adds as a bias along axis {bias_axis}, not as "
            "NumPy broadcasts it (no NumPy twin); give the constant the shape that "
            "broadcasts along that axis")


def _not_equal(operation, call):
    """``x != c`` with one tensor and one Python number, the mask-making comparison."""
    values = list(call.arguments.values())[:2]
    tensors = [v for v in values if tf.is_tensor(v)]
    constants = [v for v in values if not tf.is_tensor(v)]
    if len(tensors) != 1 or not isinstance(constants[0], (int, float)) or isinstance(
            constants[0], bool):
        raise registry.unsupported_error(
            operation, "compares other than one tensor with a Python number, which has no "
                       "NumPy twin")
    return elementwise.OpNotEqual(constants[0])


def _any(operation, call):
    """``ops.any(x, axis, keepdims)``: Keras keeps the axis on the operation, not in the
    call (``Masking``'s mask is ``any(x != v, axis=-1)``)."""
    axis = getattr(operation, "axis", None)
    return elementwise.OpAny(axis if axis is None or isinstance(axis, int) else tuple(axis),
                             bool(getattr(operation, "keepdims", False)))


def _logical(twin_class):
    """``ops.logical_or/and(a, b)`` of two boolean tensors (masks being merged)."""
    def build(operation, call):
        if not all(tf.is_tensor(v) for v in list(call.arguments.values())[:2]):
            raise registry.unsupported_error(operation, "is given a constant, which has no "
                                                        "NumPy twin")
        return twin_class()
    return build


def _expand_dims(operation, call):
    return core.ExpandDims(operation.axis)


def _convert_to_tensor(operation, call):
    """``ops.convert_to_tensor(x, dtype)`` of a tensor: x itself, or x cast (Keras's
    Attention passes its query mask on this way)."""
    dtype = call.arguments.get("dtype")
    if call.arguments.get("sparse") or call.arguments.get("ragged"):
        raise registry.unsupported_error(operation, "makes a sparse or ragged tensor, which "
                                                    "has no NumPy twin")
    return core.Identity() if dtype is None else core.Cast(tf.as_dtype(dtype).name)


BUILDERS = {
    keras_core.ConvertToTensor: _convert_to_tensor,
    keras_numpy.NotEqual: _not_equal,
    keras_numpy.Any: _any,
    keras_numpy.LogicalOr: _logical(elementwise.OpLogicalOr),
    keras_numpy.LogicalAnd: _logical(elementwise.OpLogicalAnd),
    keras_numpy.ExpandDims: _expand_dims,
    keras_numpy.Add: _binary(elementwise.OpAdd),
    keras_numpy.Subtract: _binary(elementwise.OpSubtract),
    keras_numpy.Multiply: _binary(elementwise.OpMultiply),
    keras_numpy.Divide: _binary(elementwise.OpDivide),
    keras_numpy.TrueDivide: _binary(elementwise.OpDivide),
    keras_numpy.Negative: lambda operation, call: elementwise.OpNegative(),
}
