"""The Keras model a run trains, its optimizer, loss and twin; loading and saving `.keras` files.

Both backends start here: ``build_model`` makes the model ``--model`` names
(``tfmodels.models``) or loads the one of ``--model_file``, with weights drawn from
``--seed``, so that for one seed the two backends start from the same weights;
``training_setup`` gives its Keras optimizer and loss, ``checked_twin`` its
numpy_ref twin (``tfmodels.parity``).

``save_keras_model`` writes a run's model.keras: the model ``compiled`` with the run's
optimizer (its state included) and loss, the dense stacks as the ``keras.Sequential`` of
their own layers (``portable``), so that plain ``keras.models.load_model`` reads it.

``--model_file`` (a ``.keras`` file, or a legacy ``.h5`` one) is loaded in Keras's safe
mode, after ``keras_file`` has bounded what it may make Keras read. Its compiled loss
must take integer class labels (sparse categorical cross-entropy; a compiled categorical
cross-entropy is trained as its integer-label form, the same loss for one-hot targets);
its compiled optimizer is copied fresh (its configuration, not its state) unless
``--optimizer`` is given.
"""

import math
import os
import pathlib
import warnings
import zipfile

from absl import logging
import keras
from keras.src.legacy.saving import legacy_h5_format
from keras.src.saving import serialization_lib

from tfmodels import data, models, optimizers, parity
from tfmodels.errors import ConfigError, WeightsFileError
from tfmodels.parity import cast, losses, twins
from tfmodels.run import keras_file, names


def load_keras_model(path):
    """The model of a Keras model file, loaded in Keras's safe mode: code (a Lambda
    layer's function, say) is refused instead of being run.

    A ``.keras`` archive, or a legacy HDF5 file (``model.save("m.h5")``), told apart by
    content; ``keras_file.checked_config`` first bounds what the file may make Keras
    read (config size and nesting, inflation) and refuses code, each with one line."""
    file_kind = keras_file.kind(path)
    config = keras_file.checked_config(path, file_kind)
    if file_kind == "keras" and not str(path).endswith(".keras"):
        raise WeightsFileError(f"{path}: a zip archive, as a .keras file is, but Keras "
                               "reads one only under a name ending in .keras: rename it")
    try:
        with warnings.catch_warnings(), serialization_lib.SafeModeScope(True):
            # An optimizer state it cannot restore: irrelevant here.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            if file_kind == "hdf5":
                return _load_hdf5(path)
            return keras.models.load_model(path, safe_mode=True)
    except RecursionError:  # bounded above; a backstop for what the bound lets through
        raise WeightsFileError(f"{path}: nested too deeply for Keras to load "
                               "(RecursionError)") from None
    except MemoryError:
        raise WeightsFileError(f"{path}: too large to load into memory") from None
    except (ValueError, TypeError, KeyError, OSError, zipfile.BadZipFile) as e:
        raise WeightsFileError(keras_file.explain(path, config, e)) from None


def _load_hdf5(path):
    """A legacy HDF5 model file, by Keras's own loader (whatever the file's name: the
    public ``load_model`` goes by the name's ending), in safe mode."""
    import h5py  # pylint: disable=import-outside-toplevel  # Keras's own dependency

    with h5py.File(path, "r") as f:
        return legacy_h5_format.load_model_from_hdf5(f, safe_mode=True)


def load_model_file(path):
    """The model of ``--model_file=path`` (``load_keras_model``); the flag is named if the
    file is missing."""
    if not os.path.isfile(path):
        raise WeightsFileError(f"--model_file={path}: no such file")
    return load_keras_model(path)


def save_keras_model(model, path):
    """``portable(model)`` saved to a temporary ``.keras`` file, then renamed onto ``path``."""
    path = pathlib.Path(path)
    tmp = path.with_name(names.keras_temporary(os.getpid()))
    try:
        portable(model).save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def default_loss(model):
    """The loss a run trains with unless a model file brings its own: sparse categorical
    cross-entropy in the model's variable dtype (``training.Trainer``'s default)."""
    return keras.losses.SparseCategoricalCrossentropy(dtype=model.dtype_policy.variable_dtype)


def _metrics():
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def compiled(model, optimizer, loss=None):
    """``model`` compiled as its run trained it, for model.keras: ``optimizer`` (built
    and holding its state, which the file keeps), ``loss`` (None: ``default_loss``) and
    an accuracy metric, so that the loaded file's ``optimizer``, ``evaluate`` and ``fit``
    go on from the run. Compiling changes neither the weights nor the model's call."""
    model.compile(optimizer=optimizer, loss=default_loss(model) if loss is None else loss,
                  metrics=_metrics())
    return model


def portable(model):
    """What model.keras holds of ``model``: the subclassed dense stacks (``Mymodel``,
    ``TwoLayerNet``) as the ``keras.Sequential`` of their very layers, weights and
    compiled optimizer and loss, named as the model, which plain
    ``keras.models.load_model`` reads without importing tfmodels (its outputs are the
    model's, bit for bit: the same layers in the same order); any other model as it is.
    The functional models are made of Keras layers only, but the ViT's
    ``PositionEmbedding`` (``import tfmodels`` registers it)."""
    if type(model) not in (models.Mymodel, models.TwoLayerNet):
        return model
    spec, = twins.input_specs(model)
    inputs = keras.Input(tuple(spec.shape[1:]), dtype=model.dtype, name="images")
    layers = [model.flatten, *(layer for block in model.blocks for layer in block),
              model.classifier]
    sequential = keras.Sequential([inputs, *layers], name=model.name)
    if getattr(model, "optimizer", None) is not None:
        sequential.compile(optimizer=model.optimizer, loss=model.loss, metrics=_metrics())
    return sequential


def build_model(config):
    """The configured Keras model, built, with weights drawn from ``config.seed`` (or
    those of ``--model_file``)."""
    keras.utils.set_random_seed(config.seed)
    if config.model_file is not None:
        return _users_model(config)
    dtype = None if config.dtype == "float32" else config.dtype  # None: the global policy
    return models.build_model(config.model, config.hidden_units, config.activation,
                              config.num_classes, dtype=dtype, input_shape=config.input_shape,
                              **config.model_options())


def _users_model(config):
    """The model of ``config.model_file``, in the run's dtype, checked against the data set."""
    path = config.model_file
    model = load_model_file(path)
    try:
        if config.dtype != "float32":
            model = _keep_compiled(model, cast.cast_model(model, config.dtype))
    except ValueError as e:
        raise WeightsFileError(f"--model_file={path}: {str(e).splitlines()[0]}") from None
    check_fits_dataset(model, path, config.dataset)
    return model


def check_fits_dataset(model, path, dataset):
    """A ``ConfigError`` (exit 2) unless the model of the model file ``path`` takes one
    image of ``dataset`` and outputs one value per class (when its outputs say how many);
    train.py and compare.py both check a model file so, before using it."""
    kind = data.DATASETS[dataset]
    try:
        specs = twins.input_specs(model)
    except ValueError as e:
        raise WeightsFileError(f"--model_file={path}: {str(e).splitlines()[0]}") from None
    if len(specs) != 1 or None in specs[0].shape[1:] or (
            math.prod(specs[0].shape[1:]) != math.prod(kind.input_shape)):
        raise ConfigError(f"--model_file={path} takes inputs of shape "
                          f"{[tuple(s.shape[1:]) for s in specs]}, which do not hold a "
                          f"--dataset={dataset} image {kind.input_shape}")
    outputs = twins.symbolic_tensors(model, "outputs")
    classes = outputs[0].shape[-1] if outputs else None
    if classes is not None and classes != kind.num_classes:
        raise ConfigError(f"--model_file={path} has {classes} outputs; --dataset="
                          f"{dataset} has {kind.num_classes} classes")


def _keep_compiled(original, copy):
    """The cast copy, compiled with the original's loss and optimizer (when it had them)."""
    if getattr(original, "optimizer", None) is not None and getattr(original, "loss", None):
        copy.compile(loss=original.loss, optimizer=_fresh_optimizer(original.optimizer))
    return copy


def _fresh_optimizer(optimizer, learning_rate=None):
    """A new optimizer of the same class and configuration (no state)."""
    config = optimizer.get_config()
    if learning_rate is not None:
        config["learning_rate"] = learning_rate
    return type(optimizer).from_config(config)


def training_setup(config, model, steps_per_epoch=None):
    """(Keras optimizer, Keras loss or None for the default) of the run: ``--optimizer``,
    else a model file's compiled optimizer, else Adam; a model file's compiled loss.

    With ``--learning_rate_decay`` below 1 and ``steps_per_epoch`` given (training), the
    optimizer's rate is ``decayed``; without ``steps_per_epoch`` (evaluation, which never
    steps the optimizer) it is the constant first rate."""
    if config.model_file is None:
        name = config.optimizer or optimizers.DEFAULT
        rate = config.learning_rate
        if rate is None:
            rate = optimizers.default_learning_rate(name)
        return optimizers.make_optimizer(name, decayed(rate, config, steps_per_epoch)), None
    compiled = getattr(model, "optimizer", None)
    if config.optimizer is not None or compiled is None:
        name = config.optimizer or "adam"
        rate = config.learning_rate or optimizers.default_learning_rate(name)
        optimizer = optimizers.make_optimizer(name, decayed(rate, config, steps_per_epoch))
    else:
        logging.info("Optimizer: the model file's %s", type(compiled).__name__)
        rate = config.learning_rate
        if rate is None and config.learning_rate_decay != 1:
            rate = compiled.get_config()["learning_rate"]
            if not isinstance(rate, float):
                raise ConfigError(f"--model_file={config.model_file}'s optimizer has a "
                                  "learning-rate schedule of its own; --learning_rate_decay "
                                  "takes a constant rate (give --learning_rate)")
        optimizer = _fresh_optimizer(compiled, None if rate is None
                                     else decayed(rate, config, steps_per_epoch))
    return optimizer, _integer_label_loss(model)


def decayed(rate, config, steps_per_epoch):
    """``rate``, or with ``--learning_rate_decay=d`` below 1 during training, Keras's
    ``ExponentialDecay(rate, steps_per_epoch, d, staircase=True)``: the rate times d to
    the number of completed epochs (``parity.twin_optimizer`` twins the schedule)."""
    if config.learning_rate_decay == 1 or steps_per_epoch is None:
        return rate
    return keras.optimizers.schedules.ExponentialDecay(
        rate, decay_steps=steps_per_epoch, decay_rate=config.learning_rate_decay,
        staircase=True)


def _integer_label_loss(model):
    """The Keras loss to train with: the compiled one in its integer-label form, or None
    (the default sparse cross-entropy)."""
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


def checked_twin(config, model, loss=None):
    """``parity.twin(model)``; for a model file, a layer or loss without a twin is the
    file's one-line error (exit 3), before any training."""
    try:
        return parity.twin(model, loss=loss)
    except ValueError as e:
        if config.model_file is None:
            raise
        raise WeightsFileError(f"--model_file={config.model_file}: "
                               f"{str(e).splitlines()[0]}") from None


def batch_shape(config, model):
    """The shape batches are given to the model in: a model file's own input shape (e.g.
    (28, 28, 1) or (784,) for MNIST's (28, 28) images), else None (the data's)."""
    if config.model_file is None:
        return None
    return tuple(twins.input_specs(model)[0].shape[1:])
