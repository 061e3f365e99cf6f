"""The book's pickles, loaded without running what a pickle names.

The book keeps weights in pickles: ``ch03/sample_weight.pkl`` (read by
``neuralnet_mnist.py`` with ``pickle.load``) and the ``params.pkl`` files its
``save_params`` writes hold a dict of NumPy arrays. A pickle may name any importable
callable, and ``pickle.load`` calls it: a crafted file runs whatever it likes. The
``Unpickler`` here builds only what such files hold (dicts, ``OrderedDict``, lists,
tuples, strings, bytes, numbers, bool, None, NumPy arrays, scalars and dtypes): of the
globals a pickle may name it resolves only NumPy's array reconstruction ones, and
refuses any other (protocols 0 to 2 rebuild bytes with ``_codecs.encode``: that is
allowed for Latin-1 only), before importing or calling it, with a ``PickleFileError`` naming
the file and the global.

``scripts/run_book.py`` runs the book's scripts inside ``standing_in_for_pickle()``,
so their ``pickle.load``, ``pickle.loads`` and ``pickle.Unpickler`` are these, and so
are those of the C module ``_pickle`` behind them (for a script importing it).
"""

import contextlib
import importlib
import io
import os
import pickle
from collections import OrderedDict

import _pickle

import numpy as np

_NativeUnpickler = pickle.Unpickler  # the module's own, whatever stands in later


class PickleFileError(pickle.UnpicklingError):
    """A pickle was refused (it names a global that is not NumPy's array
    reconstruction) or could not be unpickled; the message names the file."""


def _numpy_module(name):
    """``numpy._core.<name>`` (NumPy 2), else ``numpy.core.<name>`` (NumPy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{name}")


def _allowed_globals():
    """{(module, name) a pickle may name: the object it stands for}. NumPy 1 writes
    ``numpy.core.*`` and NumPy 2 ``numpy._core.*``; either resolves to this NumPy's."""
    multiarray, numeric = _numpy_module("multiarray"), _numpy_module("numeric")
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("collections", "OrderedDict"): OrderedDict}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        # An array pickled with protocol 5 (Python 3.14's default) is rebuilt from its
        # bytes by _frombuffer, which refuses object arrays.
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("_codecs", "encode")] = _latin1_bytes
    return allowed


def _latin1_bytes(text, encoding):
    """What protocols 0 to 2 name (``_codecs.encode``) to rebuild ``bytes``, such as an
    array's data: the text's code points as bytes, and nothing else codecs do."""
    if not isinstance(text, str) or encoding != "latin1":
        raise ValueError(f"_codecs.encode is unpickled only for bytes (text, 'latin1'), "
                         f"not ({type(text).__name__}, {encoding!r})")
    return text.encode("latin1")


ALLOWED_GLOBALS = _allowed_globals()
WHAT_LOADS = ("only NumPy arrays, dicts, lists, tuples, strings and numbers are "
              "unpickled here, and nothing the pickle names was imported or run")


def _source_name(file):
    """How a message names where the pickle came from: the file's absolute path, or
    "the pickled bytes" (``loads``, or a stream without a file name)."""
    name = getattr(file, "name", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        return os.path.abspath(os.fsdecode(name))
    return "the pickled bytes"


class Unpickler(_NativeUnpickler):
    """``pickle.Unpickler`` for the book's weights files: refuses every global but
    NumPy's array reconstruction, raising ``PickleFileError`` (as for a file that is no
    complete pickle), the file named."""

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._source = _source_name(file)

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise PickleFileError(f"{self._source}: refused: the pickle names the global "
                                  f"{module}.{name}; {WHAT_LOADS}") from None

    def persistent_load(self, pid):
        raise PickleFileError(f"{self._source}: refused: the pickle holds a persistent "
                              f"reference; {WHAT_LOADS}")

    def load(self):
        try:
            return super().load()
        except PickleFileError:
            raise
        except Exception as e:  # pylint: disable=broad-except: any damage, one message
            raise PickleFileError(f"{self._source}: could not be unpickled "
                                  f"({type(e).__name__}: {e})") from None


def load(file, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
    """``pickle.load`` through ``Unpickler``."""
    return Unpickler(file, fix_imports=fix_imports, encoding=encoding, errors=errors,
                     buffers=buffers).load()


def loads(data, /, *, fix_imports=True, encoding="ASCII", errors="strict", buffers=None):
    """``pickle.loads`` through ``Unpickler``."""
    if isinstance(data, str):
        raise TypeError("Can't load pickle from unicode string")
    return load(io.BytesIO(data), fix_imports=fix_imports, encoding=encoding,
                errors=errors, buffers=buffers)


_STAND_INS = {"load": load, "loads": loads, "Unpickler": Unpickler,
              "_load": load, "_loads": loads, "_Unpickler": Unpickler}
# The C module pickle takes them from: a script may import it itself.
_C_STAND_INS = {"load": load, "loads": loads, "Unpickler": Unpickler}


@contextlib.contextmanager
def standing_in_for_pickle():
    """Within: the ``pickle`` module's ``load``, ``loads`` and ``Unpickler`` (and its
    pure-Python ``_load``, ``_loads``, ``_Unpickler``), and the C module ``_pickle``'s
    ``load``, ``loads`` and ``Unpickler``, are this module's, for code that imports
    ``pickle`` (or ``_pickle``) or ``from pickle import load`` then; restored on the way
    out."""
    replaced = [(module, name, stand_in)
                for module, stand_ins in ((pickle, _STAND_INS), (_pickle, _C_STAND_INS))
                for name, stand_in in stand_ins.items()]
    saved = [(module, name, getattr(module, name)) for module, name, _ in replaced]
    for module, name, stand_in in replaced:
        setattr(module, name, stand_in)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)
