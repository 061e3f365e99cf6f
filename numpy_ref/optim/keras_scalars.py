"""Scalar arithmetic as Keras 3 on TensorFlow does it, in NumPy.

Optimizers and learning-rate schedules turn Python numbers into tensors and
take powers and cosines of scalars. Three facts, measured against TF 2.21:

- ``ops.cast(x, dtype)`` and ``ops.convert_to_tensor(x)`` make a Python float
  a float32 tensor first (a Python int an int32 one), whatever ``floatx`` is;
  a NumPy scalar keeps its own dtype. ``keras_cast`` does the same.
- TF computes a scalar ``pow``/``cos`` with the C library (``std::pow``), so
  ``math.pow`` reproduces float64 bit for bit. ``np.power`` does not: on
  AVX-512 machines NumPy uses its own SIMD routines, 1 ulp off in ~5% of cases.
- In float32 TF calls ``powf``/``cosf``, which are not correctly rounded;
  rounding the double result gives the correctly rounded float32, which
  differs from glibc's by one float32 ulp for well under 1% of arguments.
- TF runs with flush-to-zero: a result below the smallest normal number is 0.
  ``flush_subnormal`` does that for the scalars here; NumPy's array
  arithmetic keeps subnormals (differences below 1e-38, far under any tolerance).
"""

import math

import numpy as np


def keras_dtype(value):
    """The dtype Keras gives ``value`` when it makes it a tensor."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.dtype
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    if isinstance(value, int):
        return np.dtype(np.int32 if -2**31 <= value < 2**31 else np.int64)
    return np.dtype(np.float32)


def keras_cast(value, dtype):
    """``value`` as ``ops.cast(value, dtype)`` returns it (a 0-d array for a scalar)."""
    return np.asarray(value, dtype=keras_dtype(value)).astype(dtype)


def _libm(function, *args):
    try:
        return function(*args)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.nan


def flush_subnormal(x):
    """``x``, or a zero of its sign when it is subnormal (TF's flush-to-zero)."""
    if x == 0 or not abs(x) < np.finfo(x.dtype).tiny:
        return x
    return x * 0


def scalar_pow(base, exponent, dtype):
    """``ops.power`` of two scalars of ``dtype`` (see the module docstring)."""
    return flush_subnormal(np.dtype(dtype).type(_libm(math.pow, float(base), float(exponent))))


def scalar_cos(x, dtype):
    """``ops.cos`` of a scalar of ``dtype``."""
    return flush_subnormal(np.dtype(dtype).type(_libm(math.cos, float(x))))
