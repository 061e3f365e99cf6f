"""Which public Keras layer classes have a NumPy twin, and why the others are refused.

Every concrete class ``keras.layers`` exports is twinned (its builder is in the
registry), traced through (``TRACED``: it only applies other layers) or on
``REFUSED`` with the reason; ``tests/test_layer_coverage.py``
holds each twinned class against Keras and fails on a class in neither place (a
new Keras version adding layers says so). The layer table of docs/layers.md is
``markdown_table()``, printed by ``scripts/layer_table.py``.
"""

import keras

from tfmodels.parity import registry

_STRINGS = ("maps strings or integers through a vocabulary or a hash: a lookup table, "
            "not arithmetic to twin")
_FOREIGN = "wraps a function of another framework, which the twin cannot read"
_CELL = ("one time step of a recurrent layer: twinned inside the RNN (or Bidirectional) "
         "that loops it over time; called on its own it has no twin")

# class name -> why it has no twin (one line, read by users in docs/layers.md's table)
REFUSED = {
    "Layer": "the base class: a subclass is traced through the layers it calls, or gets "
             "a twin with register_twin",
    "Wrapper": "an abstract base class of wrappers",
    "InputLayer": "not a computation: the model's inputs are the twin's inputs",
    "Lambda": "runs arbitrary Python, which a twin cannot know; write a Layer subclass and "
              "register its twin",
    "StringLookup": _STRINGS, "IntegerLookup": _STRINGS, "TextVectorization": _STRINGS,
    "Hashing": _STRINGS, "HashedCrossing": _STRINGS,
    "ContrastLimitedAdaptiveHistogramEqualization": "equalises each image's histogram by "
                                                    "tiles, interpolating between tiles; "
                                                    "not twinned",
    "MelSpectrogram": "framed FFTs of audio, a mel filter bank and a log; not twinned",
    "STFTSpectrogram": "framed FFTs of audio; not twinned",
    "TFSMLayer": _FOREIGN, "JaxLayer": _FOREIGN, "FlaxLayer": _FOREIGN,
    "TorchModuleWrapper": _FOREIGN,
    **{name: _CELL for name in ("SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells")},
}


# class name -> how the trace handles it: layers that only apply other layers
TRACED = {
    "Pipeline": "applies its layers in turn: the trace follows it, each layer twinned as itself",
}


def public_layer_classes():
    """{class: the name ``keras.layers`` exports it under} for every public layer class
    (an alias such as ``Convolution2D`` counted once, under its class's own name)."""
    found = {}
    for name in dir(keras.layers):
        value = getattr(keras.layers, name)
        if isinstance(value, type) and issubclass(value, keras.layers.Layer):
            if value not in found or name == value.__name__:
                found[value] = name
    return found


def status(cls):
    """('twinned', None), ('traced', how), ('refused', reason) or ('other', None) for a
    Keras layer class."""
    if registry.builder_for_class(cls) is not None:
        return "twinned", None
    if cls.__name__ in TRACED:
        return "traced", TRACED[cls.__name__]
    if cls.__name__ in REFUSED:
        return "refused", REFUSED[cls.__name__]
    return "other", None


def markdown_table():
    """docs/layers.md's table: every public Keras layer class, twinned or refused (why)."""
    rows = sorted((name, *status(cls)) for cls, name in public_layer_classes().items())
    twinned = [name for name, kind, _ in rows if kind == "twinned"]
    lines = [f"Twinned ({len(twinned)} of {len(rows)} public `keras.layers` classes): "
             + ", ".join(f"`{name}`" for name in twinned) + ".", "",
             "| not twinned itself | why |", "|---|---|"]
    lines += [f"| `{name}` | {'traced through: ' if kind == 'traced' else ''}{why} |"
              for name, kind, why in rows if kind in ("traced", "refused")]
    return "\n".join(lines)
