"""The material's Keras models: `Mymodel` and the Keras twin of the book's `TwoLayerNet`.

Both are a `_DenseStack`: Flatten, Dense hidden layers, Dense softmax classifier. The NumPy
side copies weights across by `dense_layers`, so that list is the contract between the two.

Shape letters: N batch, D flattened input features (784 for MNIST, 3072 for SVHN), C classes.
"""

import dataclasses
import numbers

import keras
import numpy as np

from numpy_ref import activations


def _twinnable_activations():
    """Activation names both Keras and numpy_ref know: those a twin can follow."""
    names = []
    for name in sorted(activations.ACTIVATIONS):
        try:
            keras.activations.get(name)
        except ValueError:
            continue
        names.append(name)
    return tuple(names)


HIDDEN_ACTIVATIONS = _twinnable_activations()


def _is_positive_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _check_args(hidden_units, activation, num_classes):
    """Fails early, Keras-style, naming the bad value."""
    if not all(_is_positive_int(u) for u in hidden_units):
        raise ValueError("Every entry of `hidden_units` must be a positive integer. "
                         f"Received: hidden_units={list(hidden_units)}")
    if activation not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {HIDDEN_ACTIVATIONS}. "
                         f"Received: activation={activation!r}")
    if not _is_positive_int(num_classes) or num_classes < 2:
        raise ValueError("`num_classes` must be an integer >= 2. "
                         f"Received: num_classes={num_classes!r}")


class _DenseStack(keras.Model):
    """Flatten -> Dense(u, activation) for u in hidden_units -> Dense(num_classes, softmax).

    The common body of `Mymodel` and `TwoLayerNet`; they differ only in their arguments and
    in how the kernels are initialised. `dtype` goes to every layer (and the model), so
    `dtype="float64"` gives float64 weights and outputs for parity tests.
    """

    def __init__(self, hidden_units, activation, num_classes, output_activation="softmax",
                 kernel_initializer="glorot_uniform", dtype=None, **kwargs):
        hidden_units = tuple(hidden_units)
        _check_args(hidden_units, activation, num_classes)
        super().__init__(dtype=dtype, **kwargs)
        self.activation = activation
        self.num_classes = num_classes
        self.flatten = keras.layers.Flatten(dtype=dtype)
        # Each Dense learns its input dimension at the first call, so one model
        # accepts (N, 28, 28), (N, 28, 28, 1), (N, 784) or (N, 32, 32, 3).
        self.hidden = [
            keras.layers.Dense(units, activation=activation, kernel_initializer=kernel_initializer,
                               dtype=dtype, name=f"dense_{i}")
            for i, units in enumerate(hidden_units)
        ]
        # The classifier computes in the policy's variable dtype: float32 under
        # mixed_float16, so the softmax and the loss never run in float16.
        self.classifier = keras.layers.Dense(
            num_classes, activation=output_activation, kernel_initializer=kernel_initializer,
            dtype=keras.dtype_policies.get(dtype).variable_dtype, name="classifier")

    @property
    def dense_layers(self):
        """All Dense layers in forward order: hidden..., classifier."""
        return [*self.hidden, self.classifier]

    def call(self, inputs, training=False):
        x = self.flatten(inputs)  # (N, D)
        for layer in self.hidden:
            x = layer(x)
        return self.classifier(x)  # (N, C)


@keras.saving.register_keras_serializable(package="tfmodels")
class Mymodel(_DenseStack):
    """The material's subclassed MNIST classifier.

    `y = output_activation(W_L h_{L-1} + b_L)`, `h_i = activation(W_i h_{i-1} + b_i)`,
    `h_0 = flatten(x)`; by default hidden layers of 32, 64, 128 and 256 ReLU units and a
    10-way softmax (71,146 parameters on 784 inputs).

    Args:
        hidden_units: Sequence of positive ints, the width of each hidden Dense layer.
        activation: Hidden activation, one of `"relu"`, `"sigmoid"`, `"tanh"`.
        num_classes: Number of output units, at least 2.
        output_activation: Activation of the classifier; `"softmax"` gives probabilities
            (what `SparseCategoricalCrossentropy()` expects by default), `None` gives logits.
        dtype: Dtype (policy) of every layer, e.g. `"float64"`; `None` means the global
            default (float32).

    Input shape:
        `(N, ...)`: any shape that flattens to `(N, D)`; D is fixed at the first call.

    Output shape:
        `(N, num_classes)`.
    """

    def __init__(self, hidden_units=(32, 64, 128, 256), activation="relu", num_classes=10,
                 output_activation="softmax", dtype=None, **kwargs):
        super().__init__(hidden_units, activation, num_classes,
                         output_activation=output_activation, dtype=dtype, **kwargs)
        self.hidden_units = tuple(hidden_units)
        self.output_activation = output_activation

    def get_config(self):
        return {**super().get_config(),
                "hidden_units": list(self.hidden_units), "activation": self.activation,
                "num_classes": self.num_classes, "output_activation": self.output_activation}


@keras.saving.register_keras_serializable(package="tfmodels")
class TwoLayerNet(_DenseStack):
    """Keras twin of the book's `TwoLayerNet(input_size, hidden_size, output_size)`.

    `y = softmax(W2 activation(W1 flatten(x) + b1) + b2)`, with the book's initialisation:
    kernels drawn from N(0, weight_init_std^2), biases zero. The input size is not an
    argument: it is read from the first batch.

    Args:
        hidden_size: Positive int, width of the hidden layer (the book trains with 50).
        num_classes: Number of output units (the book's `output_size`), at least 2.
        activation: Hidden activation, one of `"relu"`, `"sigmoid"`, `"tanh"`.
        weight_init_std: Positive float, standard deviation of the initial kernels.
        dtype: Dtype (policy) of every layer; `None` means the global default (float32).

    Input shape:
        `(N, ...)`: any shape that flattens to `(N, D)`; D is fixed at the first call.

    Output shape:
        `(N, num_classes)`.
    """

    def __init__(self, hidden_size=50, num_classes=10, activation="relu", weight_init_std=0.01,
                 dtype=None, **kwargs):
        if not _is_positive_int(hidden_size):
            raise ValueError(f"`hidden_size` must be a positive integer. "
                             f"Received: hidden_size={hidden_size!r}")
        if not isinstance(weight_init_std, numbers.Real) or not weight_init_std > 0:
            raise ValueError(f"`weight_init_std` must be a positive number. "
                             f"Received: weight_init_std={weight_init_std!r}")
        super().__init__((hidden_size,), activation, num_classes,
                         kernel_initializer=keras.initializers.RandomNormal(stddev=weight_init_std),
                         dtype=dtype, **kwargs)
        self.hidden_size = hidden_size
        self.weight_init_std = float(weight_init_std)

    def get_config(self):
        return {**super().get_config(),
                "hidden_size": self.hidden_size, "num_classes": self.num_classes,
                "activation": self.activation, "weight_init_std": self.weight_init_std}


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """How `--model=<name>` builds its model from the run's hidden sizes.

    Attributes:
        make: `make(hidden_units, **kwargs)` -> an unbuilt Keras model.
        hidden_units: the default hidden sizes.
        fixed_depth: the number of hidden layers if the model has a fixed depth.
        description: one line for `--help`.
    """

    make: object
    hidden_units: tuple
    fixed_depth: int = None
    description: str = ""


MODELS = {
    "mymodel": ModelKind(lambda units, **kw: Mymodel(hidden_units=units, **kw),
                         (32, 64, 128, 256),
                         description="Dense 32-64-128-256 + softmax 10 (the material's model)"),
    "two_layer_net": ModelKind(lambda units, **kw: TwoLayerNet(hidden_size=units[0], **kw), (50,),
                               fixed_depth=1,
                               description="the book's one hidden layer of 50"),
}
MODEL_NAMES = tuple(MODELS)


def build_model(name, hidden_units=None, activation="relu", num_classes=10, dtype=None,
                input_shape=None):
    """The model `--model=<name>` trains, named `name` so that its variable paths
    (`mymodel/dense_0/kernel`) are the same in every process; built when
    `input_shape` (without the batch dimension) is given.

    `hidden_units=None` keeps the model's default sizes; `dtype=None` the global
    dtype policy (float32, or mixed_float16 under mixed precision).
    """
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODEL_NAMES}. Received: name={name!r}")
    kind = MODELS[name]
    units = tuple(hidden_units) if hidden_units is not None else kind.hidden_units
    if kind.fixed_depth is not None and len(units) != kind.fixed_depth:
        raise ValueError(f"{name} has {kind.fixed_depth} hidden layer(s). "
                         f"Received: hidden_units={list(units)}")
    model = kind.make(units, activation=activation, num_classes=num_classes, dtype=dtype,
                      name=name)
    if input_shape is not None:  # one call on a zero batch creates every weight
        model(np.zeros((1, *input_shape), dtype or "float32"))
    return model


__all__ = ["HIDDEN_ACTIVATIONS", "MODELS", "MODEL_NAMES", "ModelKind", "Mymodel", "TwoLayerNet",
           "build_model"]
