"""A guard that reads a MAT-file v5's headers before ``scipy.io.loadmat`` does.

scipy's compiled reader trusts a data element's type code (scipy/scipy#25349):
one flipped bit in a damaged file can crash the interpreter instead of raising.
``check_mat5_file`` walks the variables' headers the way scipy will and
refuses, with ``DatasetError``, the files that would crash it.
"""

import struct
import zlib

from tfmodels.errors import DatasetError

# MAT-file v5 codes (MathWorks, "MAT-File Format"): the data element types
# that scipy turns into numbers (miINT8..miUINT32, miSINGLE, miDOUBLE, miINT64,
# miUINT64, miUTF8..miUTF32) and the numeric array classes (mxDOUBLE..mxUINT64).
_MI_NUMBERS = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 12, 13, 16, 17, 18})
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_MX_NUMERIC, _MX_OPAQUE = range(6, 16), 17
_MX_NAMES = ("class 0", "cell", "struct", "object", "char", "sparse", "double",
             "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
             "int64", "uint64", "function", "opaque")
_MX_COMPLEX_FLAG = 0x800
_MAT5_HEAD_BYTES = 512  # holds a variable's tags, flags, <= 32 dims, a short name


def _mat5_element(buf, pos, order):
    """(type, data, end) of the data element at buf[pos], read as scipy does.

    A "small data element" packs its type and size into 4 bytes and its data
    into the next 4; a full one has an 8-byte tag, then data padded to 8.
    """
    kind, size = struct.unpack_from(order + "II", buf, pos)
    if kind >> 16:
        return kind & 0xFFFF, buf[pos + 4:pos + 4 + (kind >> 16)], pos + 8
    end = pos + 8 + size
    return kind, buf[pos + 8:end], end + -size % 8


def _inflate_start(f, size, limit):
    """The first `limit` bytes inflated from the zlib stream in f's next `size` bytes."""
    inflater, out = zlib.decompressobj(), b""
    while len(out) < limit and size > 0 and not inflater.eof:
        chunk = f.read(min(size, 1 << 16))
        if not chunk:
            break
        size -= len(chunk)
        out += inflater.decompress(chunk, limit - len(out))
    return out


def _check_mat5_variable(head, order, wanted, path):
    """Checks one variable (`head`: its first bytes, from the miMATRIX tag on).

    Returns its name; raises unless a wanted variable is a real numeric array
    whose data element has a type that scipy knows.
    """
    kind, _ = struct.unpack_from(order + "II", head, 0)
    if kind != _MI_MATRIX:
        raise DatasetError(f"{path}: damaged .mat file: a variable of "
                           f"element type {kind} instead of miMATRIX (14).")
    flags, = struct.unpack_from(order + "I", head, 16)  # after two 8-byte tags
    mclass, pos = flags & 0xFF, 24
    if mclass != _MX_OPAQUE:  # opaque objects have no dimensions element
        _, _, pos = _mat5_element(head, pos, order)
    _, name, pos = _mat5_element(head, pos, order)
    if name not in wanted:
        return name
    if mclass not in _MX_NUMERIC or flags & _MX_COMPLEX_FLAG:
        stored = _MX_NAMES[mclass] if mclass < len(_MX_NAMES) else f"class {mclass}"
        raise DatasetError(
            f"{path}: variable {name.decode()} must be a real numeric array; "
            f"the file holds a MATLAB "
            f"{'complex ' if flags & _MX_COMPLEX_FLAG else ''}{stored} array.")
    data_kind, _, _ = _mat5_element(head, pos, order)
    if data_kind not in _MI_NUMBERS:
        raise DatasetError(
            f"{path}: damaged .mat file: variable {name.decode()} has data "
            f"of unknown element type {data_kind}.")
    return name


def check_mat5_file(path):
    """Refuses, before scipy reads them, damaged v5 `.mat` files that crash it.

    scipy's compiled reader looks a data element's type code up in a table
    without a bounds check (`VarReader5.read_numeric` and `read_char`, see
    scipy/scipy#25349): a damaged code (one flipped bit is enough) kills the
    interpreter with a segmentation fault instead of raising. This walks
    the variables as scipy does (every header, the data of X and y only) and
    checks that X and y are real numeric arrays with data of a known type.
    v4 files (scipy reads them in Python) and other damage, which scipy
    reports itself, are left to scipy.
    """
    with open(path, "rb") as f:
        header = f.read(128)
        if len(header) < 128 or 0 in header[:4]:
            return  # scipy: too short, or a v4 file
        # Bytes 124..127: the version, then 'IM' (little-endian) or 'MI'.
        version = header[124 + (header[126] == ord("I"))]
        if version == 2:
            raise DatasetError(
                f"{path}: a MATLAB v7.3 (HDF5) file; scipy.io.loadmat reads "
                "v4 to v7.2 only. Save it again with save(..., '-v7').")
        if version != 1:
            return  # scipy reports the unknown version
        order = "<" if header[126:128] == b"IM" else ">"
        wanted = {b"X", b"y"}
        try:
            while wanted:
                tag = f.read(8)
                if len(tag) < 8:
                    return  # end of file: scipy stops there
                kind, size = struct.unpack(order + "II", tag)
                end = f.tell() + size
                if kind == _MI_COMPRESSED:
                    head = _inflate_start(f, size, _MAT5_HEAD_BYTES)
                else:
                    head = tag + f.read(min(size, _MAT5_HEAD_BYTES))
                wanted.discard(_check_mat5_variable(head, order, wanted, path))
                f.seek(end)
        except (struct.error, zlib.error) as e:
            raise DatasetError(
                f"{path}: truncated or corrupt .mat file ({e}).") from e
