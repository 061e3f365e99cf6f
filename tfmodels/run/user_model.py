"""`--model_file`: a user's saved Keras model as the run's model, with its own loss and optimizer.

The file is loaded in Keras's safe mode. Its compiled loss must take integer class labels
(sparse categorical cross-entropy; a compiled categorical cross-entropy is trained as its
integer-label form, the same loss for one-hot targets); its compiled optimizer is copied
fresh (its configuration, not its state) unless `--optimizer` is given.
"""

import math
import os

from absl import logging
import keras

from tfmodels import optimizers
from tfmodels.errors import ConfigError, WeightsFileError


def load(config):
    """The model of ``config.model_file``, in the run's dtype, checked against the data set."""
    from tfmodels.parity import cast, twins  # pylint: disable=import-outside-toplevel
    from tfmodels.run.artifacts import check_keras_archive  # pylint: disable=import-outside-toplevel
    from tfmodels.run.backend_tf import load_keras_model  # pylint: disable=import-outside-toplevel

    path = config.model_file
    if not os.path.isfile(path):
        raise WeightsFileError(f"--model_file={path}: no such file")
    check_keras_archive(path)
    model = load_keras_model(path)
    try:
        if config.dtype != "float32":
            model = _keep_compiled(model, cast.cast_model(model, config.dtype))
        specs = twins.input_specs(model)
    except ValueError as e:
        raise WeightsFileError(f"--model_file={path}: {str(e).splitlines()[0]}") from None
    if len(specs) != 1 or None in specs[0].shape[1:] or (
            math.prod(specs[0].shape[1:]) != math.prod(config.input_shape)):
        raise ConfigError(f"--model_file={path} takes inputs of shape "
                          f"{[tuple(s.shape[1:]) for s in specs]}, which do not hold a "
                          f"--dataset={config.dataset} image {config.input_shape}")
    classes = model.outputs[0].shape[-1] if _outputs(model) else None
    if classes is not None and classes != config.num_classes:
        raise ConfigError(f"--model_file={path} has {classes} outputs; --dataset="
                          f"{config.dataset} has {config.num_classes} classes")
    return model


def input_shape(model):
    """The model's input shape without the batch axis (what batches are reshaped to)."""
    from tfmodels.parity import twins  # pylint: disable=import-outside-toplevel

    return tuple(twins.input_specs(model)[0].shape[1:])


def _outputs(model):
    try:
        return bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _keep_compiled(original, copy):
    """The cast copy, compiled with the original's loss and optimizer (when it had them)."""
    if getattr(original, "optimizer", None) is not None and getattr(original, "loss", None):
        copy.compile(loss=original.loss, optimizer=fresh_optimizer(original.optimizer))
    return copy


def fresh_optimizer(optimizer, learning_rate=None):
    """A new optimizer of the same class and configuration (no state)."""
    config = optimizer.get_config()
    if learning_rate is not None:
        config["learning_rate"] = learning_rate
    return type(optimizer).from_config(config)


def optimizer_for(model, config):
    """`--optimizer` if given, else the file's compiled optimizer, else Adam."""
    compiled = getattr(model, "optimizer", None)
    if config.optimizer is not None or compiled is None:
        return optimizers.make_optimizer(config.optimizer or "adam", config.learning_rate)
    logging.info("Optimizer: the model file's %s", type(compiled).__name__)
    return fresh_optimizer(compiled, config.learning_rate)


def loss_for(model):
    """The Keras loss to train with: the compiled one in its integer-label form, or None
    (the default sparse cross-entropy)."""
    from tfmodels.parity import losses  # pylint: disable=import-outside-toplevel

    loss = losses.resolve(model)
    if loss is None or losses.is_sparse(loss):
        return loss
    name = getattr(getattr(loss, "fn", None), "__name__", type(loss).__name__)
    options = dict(getattr(loss, "_fn_kwargs", {}))
    if name == "categorical_crossentropy" and not options.get("label_smoothing"):
        logging.info("Training with sparse_categorical_crossentropy, the integer-label form "
                     "of the compiled categorical_crossentropy")
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=options.get("from_logits", False), reduction=loss.reduction,
            dtype=loss.dtype)
    raise ConfigError(f"--model_file's loss {name!r} does not take integer class labels; "
                      "train.py trains classifiers: compile the model with "
                      "sparse_categorical_crossentropy (or categorical_crossentropy)")
