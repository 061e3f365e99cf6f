"""The project's Keras models, and `MODELS`: the registry `--model` reads.

    dense.py      Mymodel (the Keras tutorial-style subclassed MLP the project starts from)
                  and TwoLayerNet (the book's), dense stacks
    convnets.py   the book's SimpleConvNet (ch07) and DeepConvNet (ch08)
    sequence.py   an LSTM over the image rows and a small Vision Transformer (ViT), with
                  PositionEmbedding, the ViT's learned position table
    checks.py     argument checks; the activations a twin can follow

Adding a model kind is one `MODELS` entry: the flags, the settings, both backends and the
run directory derive from it (the NumPy backend trains `tfmodels.parity.twin` of it). A
model option is a setting of `tfmodels.run.config.RunConfig` (`model_option=True`) that the
kinds listing it in their `options` take as a keyword argument.
"""

import dataclasses

import numpy as np

from tfmodels.models.checks import HIDDEN_ACTIVATIONS
from tfmodels.models.convnets import deep_convnet, simple_convnet
from tfmodels.models.dense import Mymodel, TwoLayerNet
from tfmodels.models.sequence import (PositionEmbedding, check_vit_widths, lstm_classifier,
                                      vit_classifier)


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How `--model=<name>` builds its model.

    Attributes:
        make: `make(units, input_shape=..., activation=..., num_classes=..., dtype=...,
            name=..., **options)` -> a Keras model (built when it needs the input shape).
        hidden_units: the default hidden sizes.
        fixed_depth: the number of hidden layers if the model has a fixed depth.
        options: the regularisation options it takes (`dropout`, `batchnorm`, `weight_decay`).
        description: one line for `--help`.
        activation: the default activation (`--activation` when not given): the hidden
            layers' (relu), an LSTM cell's (tanh), a Transformer MLP's (gelu).
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


MLP_OPTIONS = ("dropout", "batchnorm", "weight_decay")  # what the dense stacks take
MODELS = {
    "mymodel": ModelKind(_dense(Mymodel, lambda units: {"hidden_units": units}),
                         (32, 64, 128, 256), options=MLP_OPTIONS,
                         description="Dense 32-64-128-256 + softmax 10 (the Keras tutorial-style "
                                     "subclassed MLP the project starts from)"),
    "two_layer_net": ModelKind(_dense(TwoLayerNet, lambda units: {"hidden_size": units[0]}),
                               (50,), fixed_depth=1, options=MLP_OPTIONS,
                               description="the book's one hidden layer of 50"),
    "simple_convnet": ModelKind(_functional(simple_convnet), (100,), fixed_depth=1,
                                description="the book's ch07 network: conv 30 5x5, max-pool, "
                                            "Dense 100, softmax 10"),
    "deep_convnet": ModelKind(_functional(deep_convnet), (50,), fixed_depth=1,
                              description="the book's ch08 network: six 3x3 convs, three "
                                          "max-pools, Dense 50, dropout, softmax 10"),
    "lstm": ModelKind(_functional(lstm_classifier), (128,), activation="tanh",
                      description="each image a sequence of its rows (MNIST 28 steps of 28, "
                                  "SVHN 32 of 96), one LSTM per hidden size (cell activation "
                                  "tanh by default), softmax 10 on the last output"),
    "vit": ModelKind(_functional(vit_classifier), (64, 64, 64), activation="gelu",
                     check_units=check_vit_widths, options=("dropout",),
                     description="a small Vision Transformer: 16 patches (7x7 MNIST, 8x8 SVHN) "
                                 "by a strided conv, learned position embeddings, one pre-norm "
                                 "encoder block (4-head attention, MLP of twice the width, gelu "
                                 "by default) per hidden size, all equal (the token width), "
                                 "mean token, softmax 10; --dropout in the attention and MLP"),
}
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
