"""The project's Keras models, and `MODELS`: the registry `--model` reads.

    dense.py      Mymodel (the Keras tutorial-style subclassed MLP the project starts from)
                  and TwoLayerNet (the book's), dense stacks
    convnets.py   the book's SimpleConvNet (ch07) and DeepConvNet (ch08)
    sequence.py   an LSTM over the image rows and a small Vision Transformer (ViT), with
                  PositionEmbedding, the ViT's learned position table
    checks.py     argument checks; the activations a twin can follow

Adding a model kind is one entry in `tfmodels.catalog.MODEL_INFO` (what the flags and
`--help` know of it, without Keras) and its builder in `_BUILDERS` here: the flags, the
settings, both backends and the run directory derive from them (the NumPy backend trains
`tfmodels.parity.twin` of it). A model option is a setting of `tfmodels.run.config.RunConfig` (`model_option=True`) that the
kinds listing it in their `options` take as a keyword argument.
"""

import dataclasses

import numpy as np

from tfmodels import catalog
from tfmodels.models.checks import HIDDEN_ACTIVATIONS
from tfmodels.models.convnets import deep_convnet, simple_convnet
from tfmodels.models.dense import Mymodel, TwoLayerNet
from tfmodels.models.sequence import (PositionEmbedding, check_vit_widths, lstm_classifier,
                                      vit_classifier)


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How `--model=<name>` builds its model, with its `catalog.ModelInfo` (what the flags
    know of it without Keras).

    Attributes:
        make: `make(units, input_shape=..., activation=..., num_classes=..., dtype=...,
            name=..., **options)` -> a Keras model (built when it needs the input shape).
        hidden_units, fixed_depth, options, description, activation: the kind's
            `catalog.ModelInfo`.
        check_units: `check_units(hidden_units)` raises a ValueError for sizes the model
            cannot take, beyond `fixed_depth` (the ViT's widths must be equal), or None.
    """

    make: object
    hidden_units: tuple
    fixed_depth: int = None
    options: tuple = ()
    description: str = ""
    activation: str = "relu"
    check_units: object = None


def _dense(cls, sizes):
    """A dense stack's `make` (`sizes(units)`: its size arguments); the input shape is
    read at the first call."""
    def make(units, input_shape=None, **kwargs):
        del input_shape
        return cls(**sizes(units), **kwargs)
    return make


def _functional(build):
    """A functional model's `make`: it needs the input shape."""
    def make(units, input_shape=None, **kwargs):
        return build(input_shape, hidden_units=units, **kwargs)
    return make


# How each kind of catalog.MODEL_INFO is built: (make, check_units).
_BUILDERS = {
    "mymodel": (_dense(Mymodel, lambda units: {"hidden_units": units}), None),
    "two_layer_net": (_dense(TwoLayerNet, lambda units: {"hidden_size": units[0]}), None),
    "simple_convnet": (_functional(simple_convnet), None),
    "deep_convnet": (_functional(deep_convnet), None),
    "lstm": (_functional(lstm_classifier), None),
    "vit": (_functional(vit_classifier), check_vit_widths),
}
MLP_OPTIONS = catalog.MLP_OPTIONS
MODELS = {name: ModelKind(_BUILDERS[name][0], check_units=_BUILDERS[name][1],
                          **dataclasses.asdict(info))
          for name, info in catalog.MODEL_INFO.items()}
MODEL_NAMES = tuple(MODELS)


def build_model(name, hidden_units=None, activation=None, num_classes=10, dtype=None,
                input_shape=None, **options):
    """The model `--model=<name>` trains, named `name` so that its variable paths
    (`mymodel/dense_0/kernel`) are the same in every process; built when
    `input_shape` (without the batch dimension) is given.

    `hidden_units=None` keeps the model's default sizes, `activation=None` its default
    activation (`ModelKind.activation`); `dtype=None` the global
    dtype policy (float32, or mixed_float16 under mixed precision); `options` are the
    kind's regularisation options (a value that is off may be given to any kind).
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODEL_NAMES}. Received: name={name!r}")
    kind = MODELS[name]
    units = tuple(hidden_units) if hidden_units is not None else kind.hidden_units
    if kind.fixed_depth is not None and len(units) != kind.fixed_depth:
        raise ValueError(f"{name} has {kind.fixed_depth} hidden layer(s). "
                         f"Received: hidden_units={list(units)}")
    unknown = [k for k, v in options.items() if v and k not in kind.options]
    if unknown:
        raise ValueError(f"{name} takes none of {unknown}; {', '.join(kind.options) or 'no'} "
                         "option(s)")
    given = {k: v for k, v in options.items() if k in kind.options}
    activation = kind.activation if activation is None else activation
    model = kind.make(units, input_shape=input_shape, activation=activation,
                      num_classes=num_classes, dtype=dtype, name=name, **given)
    if input_shape is not None:  # one call on a zero batch creates every weight
        model(np.zeros((1, *input_shape), dtype or "float32"))
    return model


__all__ = ["HIDDEN_ACTIVATIONS", "MLP_OPTIONS", "MODELS", "MODEL_NAMES", "ModelKind", "Mymodel",
           "PositionEmbedding", "TwoLayerNet", "build_model", "deep_convnet", "lstm_classifier",
           "simple_convnet", "vit_classifier"]
