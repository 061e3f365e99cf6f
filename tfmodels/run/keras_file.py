"""What a Keras model file may hold, checked before Keras reads it.

A model file is a ``.keras`` archive (a zip of ``config.json``, ``metadata.json`` and
``model.weights.h5``) or a legacy HDF5 file (``model.save("m.h5")``: the config in the
``model_config`` attribute); ``kind`` tells them apart by content, not by name.
``checked_config`` reads the model's config within bounds and refuses, with one line
(``WeightsFileError``) naming the file and the limit:

- a config (or metadata) larger than ``MAX_CONFIG_BYTES``, judged by the size the zip
  declares, before a byte is inflated;
- an archive member that inflates more than ``MAX_EXPANSION`` times its stored size
  (past ``EXPANSION_FLOOR``): a decompression bomb, not a saved model;
- JSON nested deeper than ``MAX_NESTING``, measured without recursion before
  ``json.loads`` (which recurses, as Keras's deserialization does, per level);
- an archive member named outside the archive (absolute, or with a ``..`` part): no
  saved model has one (zipfile would skip it, with a warning per member);
- Python code in the config (a ``Lambda``'s lambda or a lambda activation, saved as
  marshalled bytecode), which Keras's safe mode refuses: the line names where it is and
  what to do instead;
- an object of a module outside Keras (``{"module": "os", "class_name": "system"}``)
  that is not a registered class (the project's and a user's own classes are saved
  with the ``registered_name`` "package>Name" of
  ``@keras.saving.register_keras_serializable``, and load where that registration was
  imported), a Keras class carrying a registered name that names no registered class,
  and keys that are Python attribute names (``__class__``, ``__reduce__``): the line
  names the layer (or where the object is), the module and class. Keras would refuse
  each too (it imports no module outside its own packages), with a line naming
  neither.

``explain`` turns an error Keras raised while loading into such a line where the config
says why (a Python function Keras cannot find by its name), else Keras's first line
without the full config it appends.
"""

import base64
import json
import re
import zipfile

import numpy as np

from tfmodels.errors import WeightsFileError

# config.json and metadata.json (a .keras archive), model_config and training_config (an
# .h5 file): the largest keras.applications model's config (NASNetLarge) is ~1 MB, and
# Keras holds a config in memory several times over while it reads it, so 16x that room
# lets every real model through and keeps a crafted one (1 GiB of spaces zips to 1 MB)
# from costing gigabytes.
MAX_CONFIG_BYTES = 16 * 2**20
# JSON levels: keras.applications' configs nest 11 deep, a model inside a model ~17.
# Python's json module and Keras's deserialization recurse once per level or more, and
# fail with a RecursionError some hundreds of levels down.
MAX_NESTING = 100
# Uncompressed / stored size of an archive member. Keras stores members as they are
# (1:1) and weights hardly compress; DEFLATE reaches ~1000:1 only on repetitive filler.
# Members up to EXPANSION_FLOOR are exempt (a small, repetitive config may compress well).
MAX_EXPANSION = 100
EXPANSION_FLOOR = MAX_CONFIG_BYTES
CONFIG_MEMBERS = ("config.json", "metadata.json")
HDF5_ATTRIBUTES = ("model_config", "training_config")
# An HDF5 file starts with this signature, at offset 0 or, after a user block, at 512,
# 1024, 2048, ... bytes.
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# The packages whose modules Keras's deserialization imports classes from (a
# KerasSaveable's module, "keras.src.models.functional"); any other module's classes it
# finds only registered.
KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")
# Keys of the form __name__ a Keras config holds: the legacy (Keras 2) marker of a nested
# object's config.
KERAS_DUNDER_KEYS = ("__passive_serialization__",)
SAFE_MODE = ("safe mode loads only Keras's own classes and those registered "
             "(@keras.saving.register_keras_serializable) where the model is loaded")


def kind(path):
    """"keras" (a complete zip archive) or "hdf5" (a legacy .h5 model file), by content;
    a one-line ``WeightsFileError`` for anything else."""
    try:
        if zipfile.is_zipfile(path):
            return "keras"
        if _hdf5_signature(path):
            return "hdf5"
    except OSError as e:
        raise WeightsFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    raise WeightsFileError(f"{path}: not a complete .keras archive (no zip directory at "
                           "its end) nor an HDF5 (.h5) Keras file: truncated or damaged, "
                           "or not a Keras model file")


def _hdf5_signature(path):
    with open(path, "rb") as f:
        offset = 0
        while True:
            f.seek(offset)
            head = f.read(len(HDF5_SIGNATURE))
            if head == HDF5_SIGNATURE:
                return True
            if len(head) < len(HDF5_SIGNATURE):
                return False
            offset = 512 if offset == 0 else 2 * offset


def checked_config(path, file_kind=None):
    """The model config (a dict) of the model file at ``path``, read within the module's
    bounds and holding no Python code; a one-line ``WeightsFileError`` otherwise."""
    file_kind = file_kind or kind(path)
    texts = _keras_texts(path) if file_kind == "keras" else _hdf5_texts(path)
    main = "config.json" if file_kind == "keras" else "model_config"
    if main not in texts:
        raise WeightsFileError(
            f"{path}: an HDF5 file without a model_config attribute: weights alone (as "
            "save_weights writes them), not a Keras model file" if file_kind == "hdf5" else
            f"{path}: a zip archive without config.json: not a .keras model file")
    parsed = {name: parse(text, f"{path}: {name}") for name, text in texts.items()}
    for value in parsed.values():
        _refuse_code(path, value)
    _refuse_foreign(path, parsed[main])
    return parsed[main]


def _keras_texts(path):
    """{member: its bytes} of the archive's config members, after the size checks."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                _check_member(path, info)
            names = set(archive.namelist())
            return {name: _read_member(archive, name) for name in CONFIG_MEMBERS
                    if name in names}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        raise WeightsFileError(f"{path}: unreadable .keras archive ({e})") from None


def _check_member(path, info):
    parts = info.filename.replace("\\", "/").split("/")
    if info.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise WeightsFileError(
            f"{path}: refused: its member {info.filename!r} is named outside the archive "
            "(an absolute or parent-relative path), which no saved Keras model has")
    if info.filename in CONFIG_MEMBERS and info.file_size > MAX_CONFIG_BYTES:
        raise WeightsFileError(
            f"{path}: its {info.filename} declares {_size(info.file_size)}; a .keras "
            f"model's {info.filename} may hold at most {_size(MAX_CONFIG_BYTES)} (a large "
            "real model's config holds about 1 MB)")
    if (info.file_size > EXPANSION_FLOOR
            and info.file_size > MAX_EXPANSION * max(info.compress_size, 1)):
        raise WeightsFileError(
            f"{path}: its {info.filename} inflates from {_size(info.compress_size)} to "
            f"{_size(info.file_size)}, more than {MAX_EXPANSION} times: a decompression "
            "bomb, not a saved model (Keras stores a model's files uncompressed)")


def _read_member(archive, name):
    with archive.open(name) as f:  # zipfile stops at the declared size, checked above
        return f.read(MAX_CONFIG_BYTES + 1)


def _hdf5_texts(path):
    """{attribute: its text} of the .h5 file's config attributes, after the size check.
    (HDF5 attributes are never compressed: reading one costs no more than the file's
    size.)"""
    import h5py  # pylint: disable=import-outside-toplevel  # Keras's own dependency

    try:
        with h5py.File(path, "r") as f:
            texts = {name: f.attrs[name] for name in HDF5_ATTRIBUTES if name in f.attrs}
    except (OSError, TypeError, ValueError, KeyError, RuntimeError) as e:
        raise WeightsFileError(f"{path}: unreadable HDF5 file ({e})") from None
    for name, text in texts.items():
        if not isinstance(text, (str, bytes)):
            raise WeightsFileError(f"{path}: its {name} attribute is not text "
                                   f"({type(text).__name__}): not a Keras model file")
        if len(text) > MAX_CONFIG_BYTES:
            raise WeightsFileError(
                f"{path}: its {name} attribute holds {_size(len(text))}; a Keras model's "
                f"config may hold at most {_size(MAX_CONFIG_BYTES)} (a large real model's "
                "holds about 1 MB)")
    return texts


def parse(text, where):
    """``json.loads(text)`` once its size and nesting are within bounds; ``where`` (the
    file and member) starts each refusal's line."""
    if len(text) > MAX_CONFIG_BYTES:
        raise WeightsFileError(f"{where} holds more than {_size(MAX_CONFIG_BYTES)}, the "
                               "most a Keras model's config may hold")
    try:
        if isinstance(text, bytes):
            text = text.decode(json.detect_encoding(text))
        depth = nesting_depth(text)
        if depth > MAX_NESTING:
            raise WeightsFileError(
                f"{where} nests {depth} levels deep; a Keras model's config may nest at "
                f"most {MAX_NESTING} (keras.applications' nest 11, a model inside a model "
                "about 17)")
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsFileError(f"{where} is not valid JSON ({e})") from None


# A JSON string: quotes around characters other than quote and backslash, or escapes.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def nesting_depth(text):
    """The deepest nesting of brackets in the JSON ``text``, outside its strings; counted
    without recursion (and without a Python loop over the characters)."""
    code = np.frombuffer(_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    steps = np.isin(code, _OPEN).astype(np.int8) - np.isin(code, _CLOSE).astype(np.int8)
    steps = steps[steps != 0]
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _walk(config):
    """(owner, key, value) of every value in the config, iteratively: ``owner`` is the
    (name, class name) of the innermost object that has both (a layer, a model, an
    optimizer; None above the first), ``key`` the innermost dictionary key above the
    value."""
    stack = [(config, None, None)]
    while stack:
        value, owner, key = stack.pop()
        yield owner, key, value
        if isinstance(value, dict):
            inner = value.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str) and (
                    isinstance(value.get("class_name"), str)):
                owner = (inner["name"], value["class_name"])
            only_value = list(value) == ["value"]  # {"value": code}: keep the outer key
            stack.extend((item, owner, key if only_value else k) for k, item in value.items())
        elif isinstance(value, list):
            stack.extend((item, owner, key) for item in value)


def _place(owner, key):
    if owner is None:
        return f"the config's {key!r}"
    name, class_name = owner
    return f"{name!r} ({class_name})'s {key!r}"


def _is_bytecode(value):
    """A lambda as Keras saves it: ``{"class_name": "__lambda__", ...}``, or the
    ``[code, defaults, closure]`` list (a lambda activation; a Keras 2 Lambda) whose code
    is base64 of a marshalled code object (type byte "c", with or without its reference
    flag)."""
    if isinstance(value, dict):
        return value.get("class_name") == "__lambda__"
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        try:
            first = base64.b64decode(value[0][:4], validate=True)[:1]
        except ValueError:
            return False
        return first in (b"c", b"\xe3")
    return False


def _refuse_code(path, config):
    """A one-line refusal naming where the config holds a lambda's bytecode, if it does."""
    found = {(owner, key) for owner, key, value in _walk(config) if _is_bytecode(value)}
    if not found:
        return
    lambdas = sorted(owner[0] for owner, _ in found if owner and owner[1] == "Lambda")
    others = sorted(_place(owner, key) for owner, key in found
                    if not (owner and owner[1] == "Lambda"))
    if lambdas:
        layers = ", ".join(map(repr, lambdas))
        what = (f"the Lambda layer{'s' if len(lambdas) > 1 else ''} {layers}"
                + (f" (and {', '.join(others)})" if others else ""))
        remedy = ("replace the Lambda by built-in Keras layers, or by a custom layer "
                  "registered with @keras.saving.register_keras_serializable (imported "
                  "where the model is loaded)")
    else:
        what = ", ".join(others)
        remedy = ("replace it by a built-in Keras function or layer, or by one registered "
                  "with @keras.saving.register_keras_serializable (imported where the "
                  "model is loaded)")
    raise WeightsFileError(
        f"{path}: refused: {what} hold{'' if len(found) > 1 else 's'} Python code (a "
        "lambda, saved as bytecode), and safe mode loads no code from a model file: "
        f"{remedy}, and save the model again")


_DUNDER = re.compile(r"^__\w+__$")


def _refuse_foreign(path, config):
    """A one-line refusal naming the first object of the config that is neither Keras's
    nor registered (a custom class whose registration was not imported included), a
    Keras class carrying a registered name that names nothing registered, or a key that
    is a Python attribute's name. A function (``"class_name": "function"``) is left to
    Keras, which looks it up by name only, and to ``explain``."""
    for owner, key, value in _walk(config):
        if not isinstance(value, dict):
            continue
        dunders = sorted(k for k in value if isinstance(k, str) and _DUNDER.match(k)
                         and k not in KERAS_DUNDER_KEYS)
        if dunders:
            more = f" (and {', '.join(map(repr, dunders[1:]))})" if dunders[1:] else ""
            where = "the config" if owner is None else f"{owner[0]!r} ({owner[1]})'s config"
            raise WeightsFileError(
                f"{path}: refused: {where} holds the key {dunders[0]!r}{more}: a Python "
                "attribute's name, which no Keras config holds")
        module, class_name = value.get("module"), value.get("class_name")
        if not isinstance(class_name, str) or class_name == "function" or not (
                module is None or isinstance(module, str)):
            continue
        registered = value.get("registered_name")
        custom = isinstance(registered, str) and ">" in registered
        keras_own = isinstance(module, str) and module.split(".", 1)[0] in KERAS_PACKAGES
        if custom and not keras_own:
            if _is_registered(registered):
                continue
            saved_as = f"{module}.{class_name}" if module else f"class {class_name}, no module"
            what = (f"the custom class {registered!r} ({saved_as}), which is not registered "
                    "where the model is loaded")
        elif isinstance(module, str) and not keras_own:
            what = f"{module}.{class_name}, neither a Keras class nor a registered one"
        elif keras_own and isinstance(registered, str) and registered not in (
                class_name, "") and not _is_registered(registered):
            what = (f"{module}.{class_name} but carries registered_name {registered!r}, "
                    "which names no registered class (a Keras class has no registered "
                    "name)")
        else:
            continue
        raise WeightsFileError(f"{path}: refused: {_object_place(owner, key, value)} is "
                               f"{what}; {SAFE_MODE}")


def _object_place(owner, key, value):
    """"the layer 'hid'" for a layer, "the model 'net'" for the whole config, else where
    the object is (and its name, if it has one)."""
    inner = value.get("config")
    name = inner.get("name") if isinstance(inner, dict) else None
    if not isinstance(name, str):
        return (f"a layer of {owner[0]!r} ({owner[1]})" if key == "layers" and owner
                else _place(owner, key))
    if key in ("layers", "layer"):
        return f"the layer {name!r}"
    return f"the model {name!r}" if owner is None and key is None else (
        f"{_place(owner, key)} ({name!r})")


def _is_registered(name):
    """Whether ``name`` is registered with Keras (``register_keras_serializable``)."""
    import keras  # pylint: disable=import-outside-toplevel  # the caller loads it next

    return keras.saving.get_registered_object(name) is not None


def explain(path, config, error):
    """The one line for ``error``, which Keras raised while loading the model file at
    ``path`` whose config is ``config``: the Python functions the config names that Keras
    cannot find, else Keras's own first line."""
    missing = sorted({f"{value['config']!r} in {_place(owner, key)}"
                      for owner, key, value in _walk(config) if _unknown_function(value)})
    if missing:
        return (f"{path}: names Python function{'s' if len(missing) > 1 else ''} Keras "
                f"cannot find: {', '.join(missing)}; a model file holds a function's name, "
                "not its code, and Keras finds only its own functions and those registered "
                "(@keras.saving.register_keras_serializable) where the model is loaded: "
                "replace it by built-in Keras layers or functions, and save the model again")
    first = str(error).splitlines()[0] if str(error) else repr(error)
    first = first.split(" Full object config: ", 1)[0]  # the object's whole config
    if "safe_mode" in first:
        return (f"{path}: refused by Keras's safe mode, which loads no Python code from a "
                f"model file ({first})")
    return f"{path}: refused or unreadable Keras model file: {first}"


def _unknown_function(value):
    """A function named in the config (``{"class_name": "function", "config": name}``)
    that Keras cannot find: neither Keras's own nor registered."""
    if not (isinstance(value, dict) and value.get("class_name") == "function"
            and isinstance(value.get("config"), str)):
        return False
    import keras  # pylint: disable=import-outside-toplevel  # loaded already: Keras failed
    from keras.src.saving import serialization_lib  # pylint: disable=import-outside-toplevel

    try:
        with serialization_lib.SafeModeScope(True):
            keras.saving.deserialize_keras_object(value)
    except (TypeError, ValueError):
        return True
    return False


def _size(n):
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
