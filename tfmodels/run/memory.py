"""Whether a run's model can fit in this machine's memory, known before it is built.

A ``--model`` kind's parameter count follows from its sizes, so a run that asks for
``--hidden_units=100000000`` is refused with one line (``ConfigError``, exit 2) naming
the flag, the count and the memory it needs, instead of failing deep inside TensorFlow
or NumPy while the weights are allocated. The estimate is a lower bound: the weights,
plus the optimizer's slots (``OPTIMIZER_SLOTS``, e.g. Adam's two moments per trainable
weight), at the bytes of the run's variable dtype; activations, the data and a second
copy of the weights (the NumPy twin) come on top. A ``--model_file`` run is not
estimated: its model is whatever the file holds, and loading it allocates the weights.

``parameter_counts(config)`` gives (trainable, non-trainable) per kind from the same
sizes the builders use (``tests/test_process_limits.py`` holds them equal to Keras's
``count_params`` for every kind).
"""

import math
import os

import numpy as np

from tfmodels.errors import ConfigError
from tfmodels.models import convnets, sequence

GIB = 2 ** 30
# Per-weight state each --optimizer keeps beside a trainable weight (Keras 3): moments,
# velocities, accumulators. (Scalars such as the step count are left out.)
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "adamax": 2, "nadam": 2, "adadelta": 2,
                   "sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adagrad": 1,
                   "lion": 1}
SIMPLE_CONVNET_FILTERS, SIMPLE_CONVNET_KERNEL = 30, 5  # simple_convnet's defaults
DENSE_KINDS = ("mymodel", "two_layer_net")


def _dense(inputs, units, outputs):
    """Weights and biases of a Dense layer."""
    return inputs * units + units, outputs


def _image(input_shape):
    """(height, width, channels) of an image of ``input_shape`` ((H, W) is grey)."""
    height, width = input_shape[:2]
    return height, width, (input_shape[2] if len(input_shape) == 3 else 1)


def _dense_stack(input_shape, units, num_classes, batchnorm):
    trainable = frozen = 0
    width = math.prod(input_shape)
    for size in units:
        trainable += width * size + size
        if batchnorm:  # gamma and beta learn; the moving mean and variance do not
            trainable += 2 * size
            frozen += 2 * size
        width = size
    return trainable + width * num_classes + num_classes, frozen


def _simple_convnet(input_shape, units, num_classes):
    height, width, channels = _image(input_shape)
    filters, kernel = SIMPLE_CONVNET_FILTERS, SIMPLE_CONVNET_KERNEL
    conv = kernel * kernel * channels * filters + filters
    flat = ((height - kernel + 1) // 2) * ((width - kernel + 1) // 2) * filters
    (hidden,) = units
    return conv + flat * hidden + hidden + hidden * num_classes + num_classes, 0


def _deep_convnet(input_shape, units, num_classes):
    height, width, channels = _image(input_shape)
    total = 0
    for i, (filters, pad) in enumerate(convnets.DEEP_CONVS, start=1):
        total += 9 * channels * filters + filters
        height, width, channels = height + 2 * pad - 2, width + 2 * pad - 2, filters
        if i % 2 == 0:
            height, width = height // 2, width // 2
    (hidden,) = units
    flat = height * width * channels
    return total + flat * hidden + hidden + hidden * num_classes + num_classes, 0


def _lstm(input_shape, units, num_classes):
    height, width, channels = _image(input_shape)
    del height  # the sequence's length: no weights
    total, features = 0, width * channels
    for size in units:
        total += 4 * size * (features + size) + 4 * size
        features = size
    return total + features * num_classes + num_classes, 0


def _vit(input_shape, units, num_classes):
    height, width, channels = _image(input_shape)
    patch = height // sequence.VIT_PATCHES_PER_SIDE
    tokens = (height // patch) * (width // patch)
    d = units[0]
    total = patch * patch * channels * d + d + tokens * d  # patches, position table
    block = (2 * d  # norm1
             + 4 * (d * d + d)  # attention: query, key, value, output
             + 2 * d  # norm2
             + d * sequence.VIT_MLP_RATIO * d + sequence.VIT_MLP_RATIO * d  # mlp1
             + sequence.VIT_MLP_RATIO * d * d + d)  # mlp2
    return total + len(units) * block + 2 * d + d * num_classes + num_classes, 0


def parameter_counts(config):
    """(trainable, non-trainable) weights of the model ``config`` builds, or None for a
    ``--model_file`` run (its file decides)."""
    if config.model_file is not None:
        return None
    shape, units, classes = config.input_shape, tuple(config.hidden_units), config.num_classes
    if config.model in DENSE_KINDS:
        return _dense_stack(shape, units, classes, config.batchnorm)
    counts = {"simple_convnet": _simple_convnet, "deep_convnet": _deep_convnet,
              "lstm": _lstm, "vit": _vit}[config.model]
    return counts(shape, units, classes)


def variable_bytes(config):
    """Bytes of one weight: the run's dtype (float32 under mixed precision, whose
    variables stay float32)."""
    return np.dtype(config.dtype).itemsize


def bytes_needed(config):
    """A lower bound on the bytes the model and its optimizer hold (see the module
    docstring), or None for a ``--model_file`` run."""
    counts = parameter_counts(config)
    if counts is None:
        return None
    trainable, frozen = counts
    slots = OPTIMIZER_SLOTS.get(config.optimizer, 0)
    return (trainable * (1 + slots) + frozen) * variable_bytes(config)


def physical_memory():
    """This machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(config, available=None):
    """ConfigError naming ``--hidden_units``, the parameter count and the memory needed
    when the model of ``config`` cannot fit in ``available`` bytes (default: this
    machine's memory)."""
    needed = bytes_needed(config)
    available = physical_memory() if available is None else available
    if needed is None or available is None or needed <= available:
        return
    trainable, frozen = parameter_counts(config)
    slots = OPTIMIZER_SLOTS.get(config.optimizer, 0)
    held = (f" and {config.optimizer}'s {slots} slot{'s' * (slots > 1)} per weight"
            if slots else "")
    units = ",".join(str(u) for u in config.hidden_units)
    raise ConfigError(
        f"--hidden_units={units}: --model={config.model} would have "
        f"{trainable + frozen:,} parameters; in {config.dtype} its weights{held} take at "
        f"least {needed / GIB:,.1f} GiB, and this machine has {available / GIB:,.1f} GiB "
        "of memory: give smaller --hidden_units")


__all__ = ["OPTIMIZER_SLOTS", "bytes_needed", "check_fits", "parameter_counts",
           "physical_memory"]
