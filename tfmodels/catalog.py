"""What the flags offer, and what ``--help`` says of each, without TensorFlow or Keras.

The scripts define their flags from these tables alone, so ``--help`` prints without
loading TensorFlow (seconds). Each name is still declared once: the registries that
implement a vocabulary derive from its table here, or a test holds them equal
(tests/test_help_fast.py):

    MODEL_INFO          --model: default sizes, depth, options, activation, description;
                        ``tfmodels.models.MODELS`` adds how each kind is built
    HIDDEN_ACTIVATIONS  --activation: the names Keras and numpy_ref both know, so that a
                        twin can follow (``tfmodels.models.checks`` derives them)
    OPTIMIZER_INFO      --optimizer: the Keras class's name, its options and its default
                        learning rate; ``tfmodels.optimizers.OPTIMIZERS`` adds the class
                        and its numpy_ref twin
    DEVICES, STRATEGIES --device, --distribution_strategy (``tfmodels.distribute``)
    BACKEND_NAMES       --backend (``tfmodels.run.backends.BACKENDS`` holds the classes)
    INVERT_CHOICES      predict.py's --invert (``tfmodels.run.predict``)

The data sets (--dataset) are ``tfmodels.data.DATASETS``, which needs NumPy only.
This module imports nothing.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What the settings and ``--help`` know of a ``--model`` kind.

    Attributes:
        hidden_units: the default hidden sizes.
        fixed_depth: the number of hidden layers if the model has a fixed depth.
        options: the regularisation options it takes (``dropout``, ``batchnorm``,
            ``weight_decay``).
        description: one line for ``--help``.
        activation: the default activation (``--activation`` when not given): the hidden
            layers' (relu), an LSTM cell's (tanh), a Transformer MLP's (gelu).
    """

    hidden_units: tuple
    fixed_depth: int = None
    options: tuple = ()
    description: str = ""
    activation: str = "relu"


MLP_OPTIONS = ("dropout", "batchnorm", "weight_decay")  # what the dense stacks take
MODEL_INFO = {
    "mymodel": ModelInfo((32, 64, 128, 256), options=MLP_OPTIONS,
                         description="Dense 32-64-128-256 + softmax 10 (the Keras tutorial-style "
                                     "subclassed MLP the project starts from)"),
    "two_layer_net": ModelInfo((50,), fixed_depth=1, options=MLP_OPTIONS,
                               description="the book's one hidden layer of 50"),
    "simple_convnet": ModelInfo((100,), fixed_depth=1,
                                description="the book's ch07 network: conv 30 5x5, max-pool, "
                                            "Dense 100, softmax 10"),
    "deep_convnet": ModelInfo((50,), fixed_depth=1,
                              description="the book's ch08 network: six 3x3 convs, three "
                                          "max-pools, Dense 50, dropout, softmax 10"),
    "lstm": ModelInfo((128,), activation="tanh",
                      description="each image a sequence of its rows (MNIST 28 steps of 28, "
                                  "SVHN 32 of 96), one LSTM per hidden size (cell activation "
                                  "tanh by default), softmax 10 on the last output"),
    "vit": ModelInfo((64, 64, 64), activation="gelu", options=("dropout",),
                     description="a small Vision Transformer: 16 patches (7x7 MNIST, 8x8 SVHN) "
                                 "by a strided conv, learned position embeddings, one pre-norm "
                                 "encoder block (4-head attention, MLP of twice the width, gelu "
                                 "by default) per hidden size, all equal (the token width), "
                                 "mean token, softmax 10; --dropout in the attention and MLP"),
}
MODEL_NAMES = tuple(MODEL_INFO)

# The activations of numpy_ref.layers.activations that Keras knows too, sorted
# (tfmodels.models.checks.twinnable_activations computes them; a test holds them equal).
HIDDEN_ACTIVATIONS = (
    "celu", "elu", "exponential", "gelu", "hard_sigmoid", "hard_silu", "hard_swish",
    "hard_tanh", "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu",
    "relu6", "selu", "sigmoid", "silu", "soft_shrink", "softmax", "softplus", "softsign",
    "sparse_plus", "squareplus", "swish", "tanh", "tanh_shrink")


@dataclasses.dataclass(frozen=True)
class OptimizerInfo:
    """One ``--optimizer`` value: ``keras.optimizers.<keras_class>(learning_rate=...,
    **options)``; ``learning_rate`` is that class's own default (a test reads Keras's)."""

    keras_class: str
    options: dict
    learning_rate: float

    def describe(self):
        """'SGD(momentum=0.9)' for ``--help``."""
        return f"{self.keras_class}({', '.join(f'{k}={v}' for k, v in self.options.items())})"


OPTIMIZER_INFO = {
    "adam": OptimizerInfo("Adam", {}, 0.001),
    "sgd": OptimizerInfo("SGD", {}, 0.01),
    "momentum": OptimizerInfo("SGD", {"momentum": 0.9}, 0.01),
    "nesterov": OptimizerInfo("SGD", {"momentum": 0.9, "nesterov": True}, 0.01),
    "rmsprop": OptimizerInfo("RMSprop", {}, 0.001),
    "adagrad": OptimizerInfo("Adagrad", {}, 0.001),
    "adamw": OptimizerInfo("AdamW", {}, 0.001),
    "adamax": OptimizerInfo("Adamax", {}, 0.001),
    "nadam": OptimizerInfo("Nadam", {}, 0.001),
    "lion": OptimizerInfo("Lion", {}, 0.001),
    "adadelta": OptimizerInfo("Adadelta", {}, 0.001),
}
OPTIMIZER_NAMES = tuple(OPTIMIZER_INFO)
DEFAULT_OPTIMIZER = "adam"  # when neither --optimizer nor a model file names one

DEVICES = ("auto", "cpu", "gpu")
STRATEGIES = ("off", "one_device", "mirrored", "multi_worker_mirrored")
BACKEND_NAMES = ("tensorflow", "numpy")
INVERT_CHOICES = ("auto", "yes", "no")
