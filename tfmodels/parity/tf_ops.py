"""The twins of the TensorFlow operations a custom layer's ``call`` applies between its
sublayers.

Inside a subclassed layer's ``call`` the code between sublayers is plain tensor code:
``x + positions``, ``ops.reshape(h, (-1, T, H, K))``, ``ops.matmul(q, k, ...)``.
Keras records no operation for it (``keras.ops`` on TensorFlow tensors call TensorFlow
directly), so the trace records the TensorFlow operations themselves
(``trace.TFOperation``), and this module maps each operation type it follows to the
``numpy_ref`` layer that computes the same, and the same gradient as TensorFlow's
gradient function. ``TWINS`` lists them: ``{op type: builder(call)}``, where ``call``
is the ``trace.Call`` of the operation in the traced graph (its ``inputs`` are the data
tensors, its ``arguments`` every input, constants included, by position).

Some inputs of an operation are settings, not data: a reshape's target shape, a
transpose's permutation, an axis. ``STATIC_INPUTS`` names their positions; the twin
holds their values, which must be known when the model is traced (constants, or static
dimensions: ``keras.ops.shape`` gives Python ints for those).
"""

import numpy as np
import tensorflow as tf

from numpy_ref import layers as L
from numpy_ref.layers import activations, core, elementwise, merge, tensor_ops

# op type -> positions of its inputs that are settings (a negative position counts
# from the end: ConcatV2's axis comes after its N values)
STATIC_INPUTS = {"Reshape": (1,), "Transpose": (1,), "ExpandDims": (1,), "Mean": (1,),
                 "Sum": (1,), "ConcatV2": (-1,), "StridedSlice": (1, 2, 3)}


def static_positions(op_type, count):
    """The positions among ``count`` inputs of an ``op_type`` operation that are settings."""
    return {p % count for p in STATIC_INPUTS.get(op_type, ()) if count}


def _operation(call):
    """The graph operation a call records (its attributes are read off it)."""
    return call.outputs[0].op


def _setting(call, position, what):
    """The value of a setting input, known when the model is traced; else a refusal."""
    inputs = list(call.arguments.values())
    value = tf.get_static_value(inputs[position % len(inputs)])
    if value is None:
        raise refusal(call, f"takes its {what} from a tensor computed when the model runs; "
                            "its twin holds a constant: give one (static dimensions, "
                            "and -1 for the batch axis)")
    return np.asarray(value)


def refusal(call, why):
    """A ValueError naming the operation, the layer whose ``call`` applies it, and why."""
    operation = call.layer
    owner = operation.owner
    where = ("A model" if owner is None else
             f"Keras layer {owner.name!r} ({type(owner).__name__})")
    return ValueError(f"{where} applies the TensorFlow operation {operation.type!r} in its "
                      f"call (its result feeds {operation.consumer or 'the model'}), which "
                      f"{why}.")


def _binary(twin_class):
    def build(call):
        return twin_class(call.outputs[0].dtype.name)
    return build


def _unary(twin_class):
    def build(call):
        return twin_class()
    return build


def _float(build):
    """Only for floating inputs (the activations have no integer form in TensorFlow)."""
    def checked(call):
        if not call.outputs[0].dtype.is_floating:
            raise refusal(call, f"is applied to {call.outputs[0].dtype.name} values, which "
                                "its twin does not take")
        return build(call)
    return checked


def _concat(call):
    return merge.Concatenate(int(_setting(call, -1, "axis")))


def _reshape(call):
    return tensor_ops.OpReshape(_setting(call, 1, "target shape").tolist())


def _transpose(call):
    return tensor_ops.OpTranspose(_setting(call, 1, "permutation").tolist())


def _expand_dims(call):
    return core.ExpandDims(int(np.ravel(_setting(call, 1, "axis"))[0]))


def _squeeze(call):
    return tensor_ops.OpSqueeze(_operation(call).get_attr("squeeze_dims"))


def _strided_slice(call):
    """``x[...]``: TensorFlow's begin, end and strides with their bit masks, written as
    the NumPy index they stand for (one entry per position of the spec)."""
    begin, end, strides = (_setting(call, i, what).tolist() for i, what in (
        (1, "begin"), (2, "end"), (3, "strides")))
    op = _operation(call)
    masks = {name: op.get_attr(f"{name}_mask") for name in (
        "begin", "end", "ellipsis", "new_axis", "shrink_axis")}
    index = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        def bit(name, i=i):
            return bool(masks[name] >> i & 1)
        if bit("ellipsis"):
            index.append("...")
        elif bit("new_axis"):
            index.append("newaxis")
        elif bit("shrink_axis"):
            index.append(int(b))
        else:
            index.append([None if bit("begin") else int(b), None if bit("end") else int(e),
                          int(s)])
    return tensor_ops.OpSlice(index)


def _reduce(twin_class):
    def build(call):
        axes = _setting(call, 1, "axes").tolist()
        return twin_class(axes, keepdims=_operation(call).get_attr("keep_dims"))
    return build


def _matmul(call):
    op = _operation(call)
    if op.type == "MatMul":
        return tensor_ops.OpMatMul(op.get_attr("transpose_a"), op.get_attr("transpose_b"))
    dtypes = {t.dtype for t in (*op.inputs, *op.outputs)}
    if len(dtypes) != 1 or not op.outputs[0].dtype.is_floating:
        raise refusal(call, "multiplies values of several dtypes, or not floating, which its "
                            "twin does not take")
    # For real values the adjoint is the transpose.
    return tensor_ops.OpMatMul(op.get_attr("adj_x"), op.get_attr("adj_y"))


def _bias_add(call):
    data_format = _operation(call).get_attr("data_format")
    data_format = data_format.decode() if isinstance(data_format, bytes) else data_format
    return tensor_ops.OpBiasAdd(channels_first=data_format.startswith("NC"))


TWINS = {
    "AddV2": _binary(elementwise.OpAdd), "Add": _binary(elementwise.OpAdd),
    "Sub": _binary(elementwise.OpSubtract), "Mul": _binary(elementwise.OpMultiply),
    "RealDiv": _binary(elementwise.OpDivide), "Maximum": _binary(elementwise.OpMaximum),
    "Minimum": _binary(elementwise.OpMinimum), "Neg": _unary(elementwise.OpNegative),
    "Square": _unary(tensor_ops.OpSquare), "Sqrt": _float(_unary(tensor_ops.OpSqrt)),
    "Rsqrt": _float(_unary(tensor_ops.OpRsqrt)), "Exp": _float(_unary(tensor_ops.OpExp)),
    "Log": _float(_unary(tensor_ops.OpLog)), "Tanh": _float(_unary(L.Tanh)),
    "Sigmoid": _float(_unary(L.Sigmoid)), "Relu": _unary(L.Relu),
    "Softmax": _float(lambda call: activations.Softmax(axis=-1)),
    "ConcatV2": _concat, "Reshape": _reshape, "Transpose": _transpose,
    "ExpandDims": _expand_dims, "Squeeze": _squeeze, "StridedSlice": _strided_slice,
    "Mean": _reduce(tensor_ops.OpMean), "Sum": _reduce(tensor_ops.OpSum),
    "MatMul": _float(_matmul), "BatchMatMulV2": _matmul, "BatchMatMulV3": _matmul,
    "BiasAdd": _bias_add,
}


def supports(op_type):
    return op_type in TWINS


def build(call):
    """The ``numpy_ref`` layer computing what the recorded operation computes."""
    builder = TWINS.get(call.layer.type)
    if builder is None:
        raise refusal(call, "has no NumPy twin")
    return builder(call)
