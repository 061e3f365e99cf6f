"""Arrays laid end to end in one buffer, so that element-wise work on all of them is one call.

A network's weights are a dozen arrays; an optimizer step applies the same
element-wise formula to each. Done array by array that is a dozen NumPy calls
per operation, and for a small network the calls, not the arithmetic, take the
time. With the arrays stored one after another in a single 1-D buffer (each a
reshaped view of its stretch), the optimizer runs each operation once over the
buffer. Element-wise operations do not depend on where an element sits, so the
numbers are the same to the last bit.

``pack`` makes such a buffer; ``span`` finds the buffer a list of arrays tiles
(None when they do not), which is how an optimizer notices that it can work on
the weights and gradients in place.
"""

import numpy as np


def pack(arrays, dtype=None):
    """(buffer, views): a new 1-D buffer holding copies of ``arrays`` end to end, and the
    views of it shaped like each array (in order)."""
    arrays = [np.asarray(a) for a in arrays]
    dtype = np.dtype(dtype or arrays[0].dtype)
    buffer = gather(arrays, np.empty(sum(a.size for a in arrays), dtype))
    views, start = [], 0
    for a in arrays:
        views.append(buffer[start:start + a.size].reshape(a.shape))
        start += a.size
    return buffer, views


def pack_by_dtype(named):
    """{name: view}: the arrays of ``named`` ({name: array}) packed into one buffer per
    dtype, each buffer in the order ``named`` gives."""
    views = {}
    for dtype in dict.fromkeys(a.dtype for a in named.values()):
        group = [name for name, a in named.items() if a.dtype == dtype]
        views.update(zip(group, pack([named[name] for name in group], dtype)[1]))
    return views


def gather(arrays, buffer):
    """Copies ``arrays`` end to end into the 1-D ``buffer``; returns it."""
    start = 0
    for a in arrays:
        buffer[start:start + a.size] = np.reshape(a, -1)
        start += a.size
    return buffer


def scatter(buffer, arrays):
    """Copies the consecutive stretches of the 1-D ``buffer`` back into ``arrays``, in place
    (the inverse of ``gather``)."""
    start = 0
    for a in arrays:
        a[...] = buffer[start:start + a.size].reshape(a.shape)
        start += a.size


def _address(a):
    return a.__array_interface__["data"][0]


def span(arrays):
    """The 1-D array whose consecutive stretches are ``arrays`` (in order), or None.

    It exists when every array is C-contiguous, all share one dtype, each starts where
    the one before ends, and they all lie in one contiguous base array, as the views
    ``pack`` returns do.
    """
    if not arrays or not all(isinstance(a, np.ndarray) for a in arrays):
        return None
    first = arrays[0]
    base = first
    while isinstance(base.base, np.ndarray):
        base = base.base
    if not base.flags.c_contiguous:
        return None
    dtype, itemsize = first.dtype, first.dtype.itemsize
    expected = _address(first)
    total = 0
    for a in arrays:
        if a.dtype != dtype or not a.flags.c_contiguous or _address(a) != expected:
            return None
        expected += a.nbytes
        total += a.size
    offset, rest = divmod(_address(first) - _address(base), itemsize)
    if rest or offset < 0 or (offset + total) * itemsize > base.nbytes or base.dtype != dtype:
        return None
    return base.reshape(-1)[offset:offset + total]
