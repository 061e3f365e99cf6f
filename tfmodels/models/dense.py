"""The dense Keras models: `Mymodel`, the project's starting point, and the Keras twin of
the book's `TwoLayerNet`.

Both are a `_DenseStack`: Flatten, Dense hidden layers, Dense softmax classifier, with
optional batch normalization, dropout and L2 weight decay in the hidden layers.

Shape letters: N batch, D flattened input features (784 for MNIST, 3072 for SVHN), C classes.
"""

import numbers

import keras

from tfmodels.models.checks import check_args, check_regularization, is_positive_int


class _DenseStack(keras.Model):
    """Flatten -> hidden blocks for u in hidden_units -> Dense(num_classes, softmax).

    A hidden block is Dense(u, activation); with `batchnorm`, Dense(u) -> BatchNormalization
    -> Activation (the book's MultiLayerNetExtend order); with `dropout` > 0 a Dropout(rate)
    follows; `weight_decay` > 0 adds Keras's L2 penalty `weight_decay * sum(kernel**2)` of
    every kernel, classifier included, to the training loss (the book's
    `weight_decay_lambda` penalty is half of lambda times that sum: lambda = 2 * weight_decay).

    The common body of `Mymodel` and `TwoLayerNet`; they differ only in their arguments and
    in how the kernels are initialised. `dtype` goes to every layer (and the model), so
    `dtype="float64"` gives float64 weights and outputs for parity tests.
    """

    def __init__(self, hidden_units, activation, num_classes, output_activation="softmax",
                 kernel_initializer="glorot_uniform", dropout=0.0, batchnorm=False,
                 weight_decay=0.0, dtype=None, **kwargs):
        hidden_units = tuple(hidden_units)
        check_args(hidden_units, activation, num_classes)
        check_regularization(dropout, weight_decay)
        super().__init__(dtype=dtype, **kwargs)
        self.activation = activation
        self.num_classes = num_classes
        self.dropout, self.batchnorm, self.weight_decay = dropout, bool(batchnorm), weight_decay
        regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
        self.flatten = keras.layers.Flatten(dtype=dtype)
        # Each Dense learns its input dimension at the first call, so one model
        # accepts (N, 28, 28), (N, 28, 28, 1), (N, 784) or (N, 32, 32, 3).
        self.blocks = []
        for i, units in enumerate(hidden_units):
            block = [keras.layers.Dense(units, activation=None if batchnorm else activation,
                                        kernel_initializer=kernel_initializer,
                                        kernel_regularizer=regularizer, dtype=dtype,
                                        name=f"dense_{i}")]
            if batchnorm:
                block += [keras.layers.BatchNormalization(dtype=dtype, name=f"batchnorm_{i}"),
                          keras.layers.Activation(activation, dtype=dtype,
                                                  name=f"activation_{i}")]
            if dropout:
                block.append(keras.layers.Dropout(dropout, dtype=dtype, name=f"dropout_{i}"))
            self.blocks.append(block)
        # The classifier computes in the policy's variable dtype: float32 under
        # mixed_float16, so the softmax and the loss never run in float16.
        self.classifier = keras.layers.Dense(
            num_classes, activation=output_activation, kernel_initializer=kernel_initializer,
            kernel_regularizer=regularizer,
            dtype=keras.dtype_policies.get(dtype).variable_dtype, name="classifier")

    @property
    def hidden(self):
        """The hidden Dense layers, in forward order."""
        return [block[0] for block in self.blocks]

    @property
    def dense_layers(self):
        """All Dense layers in forward order: hidden..., classifier."""
        return [*self.hidden, self.classifier]

    def call(self, inputs, training=False):
        x = self.flatten(inputs)  # (N, D)
        for block in self.blocks:
            for layer in block:  # Keras hands `training` on to Dropout and BatchNormalization
                x = layer(x)
        return self.classifier(x)  # (N, C)

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "batchnorm": self.batchnorm,
                "weight_decay": self.weight_decay}


@keras.saving.register_keras_serializable(package="tfmodels")
class Mymodel(_DenseStack):
    """The Keras tutorial-style subclassed MLP the project starts from (its study notes'
    MNIST classifier).

    `y = output_activation(W_L h_{L-1} + b_L)`, `h_i = activation(W_i h_{i-1} + b_i)`,
    `h_0 = flatten(x)`; by default hidden layers of 32, 64, 128 and 256 ReLU units and a
    10-way softmax (71,146 parameters on 784 inputs).

    Args:
        hidden_units: Sequence of positive ints, the width of each hidden Dense layer.
        activation: Hidden activation, one of `"relu"`, `"sigmoid"`, `"tanh"`.
        num_classes: Number of output units, at least 2.
        output_activation: Activation of the classifier; `"softmax"` gives probabilities
            (what `SparseCategoricalCrossentropy()` expects by default), `None` gives logits.
        dropout, batchnorm, weight_decay: regularisation of the hidden layers (see
            `_DenseStack`); off by default, as in the study notes' model.
        dtype: Dtype (policy) of every layer, e.g. `"float64"`; `None` means the global
            default (float32).

    Input shape:
        `(N, ...)`: any shape that flattens to `(N, D)`; D is fixed at the first call.

    Output shape:
        `(N, num_classes)`.
    """

    def __init__(self, hidden_units=(32, 64, 128, 256), activation="relu", num_classes=10,
                 output_activation="softmax", dropout=0.0, batchnorm=False, weight_decay=0.0,
                 dtype=None, **kwargs):
        super().__init__(hidden_units, activation, num_classes,
                         output_activation=output_activation, dropout=dropout,
                         batchnorm=batchnorm, weight_decay=weight_decay, dtype=dtype, **kwargs)
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
        dropout, batchnorm, weight_decay: regularisation of the hidden layer (see `_DenseStack`).
        dtype: Dtype (policy) of every layer; `None` means the global default (float32).

    Input shape:
        `(N, ...)`: any shape that flattens to `(N, D)`; D is fixed at the first call.

    Output shape:
        `(N, num_classes)`.
    """

    def __init__(self, hidden_size=50, num_classes=10, activation="relu", weight_init_std=0.01,
                 dropout=0.0, batchnorm=False, weight_decay=0.0, dtype=None, **kwargs):
        if not is_positive_int(hidden_size):
            raise ValueError(f"`hidden_size` must be a positive integer. "
                             f"Received: hidden_size={hidden_size!r}")
        if not isinstance(weight_init_std, numbers.Real) or not weight_init_std > 0:
            raise ValueError(f"`weight_init_std` must be a positive number. "
                             f"Received: weight_init_std={weight_init_std!r}")
        super().__init__((hidden_size,), activation, num_classes,
                         kernel_initializer=keras.initializers.RandomNormal(stddev=weight_init_std),
                         dropout=dropout, batchnorm=batchnorm, weight_decay=weight_decay,
                         dtype=dtype, **kwargs)
        self.hidden_size = hidden_size
        self.weight_init_std = float(weight_init_std)

    def get_config(self):
        return {**super().get_config(),
                "hidden_size": self.hidden_size, "num_classes": self.num_classes,
                "activation": self.activation, "weight_init_std": self.weight_init_std}
