"""The ``numpy_ref`` twin of a Keras optimizer, and its state back into Keras.

``twin_optimizer(keras_optimizer)`` gives the ``numpy_ref.optim.optimizers``
optimizer with the same class, hyperparameters (the learning rate read from
Keras's variable, in its dtype), options (weight decay and its exclusions,
clipping, a learning-rate schedule) and state (iterations and every slot
array, keyed by the Keras variable's ``path``). ``optimizer_state_to_keras``
copies such a state into a built Keras optimizer. ``TWINS`` (Keras optimizer class ->
twin) derives from ``tfmodels.optimizers.OPTIMIZERS``, the one optimizer registry; Keras
options that change the numbers and have no twin are refused with a ``ValueError``, never
ignored.
"""

import keras
import numpy as np

from numpy_ref.optim import schedules
from numpy_ref.optim.keras_scalars import keras_cast
from tfmodels.optimizers import TWINS

_BASE_OPTIONS = ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm")
# Options that change the numbers, with the value that means "off".
_NO_TWIN = {"use_ema": False, "gradient_accumulation_steps": None, "loss_scale_factor": None}


def _twin_of(keras_optimizer):
    twin = TWINS.get(type(keras_optimizer))
    if twin is None:
        supported = sorted(cls.__name__ for cls in TWINS)
        raise ValueError(f"{type(keras_optimizer).__name__} has no numpy_ref twin; "
                         f"supported optimizers: {supported}")
    for option, off in _NO_TWIN.items():
        value = getattr(keras_optimizer, option)
        if (value or None) != (off or None):
            raise ValueError(f"{type(keras_optimizer).__name__}({option}={value!r}) "
                             f"has no numpy_ref twin; twin it without {option}")
    return twin


def _learning_rate(keras_optimizer):
    """The twin of Keras's learning rate: its variable's value (in its dtype) or schedule."""
    rate = keras_optimizer._learning_rate  # pylint: disable=protected-access
    if isinstance(rate, keras.Variable):
        return rate.numpy()[()]
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        name = type(rate).__name__
        if name not in schedules.SCHEDULES or type(rate) is not getattr(
                keras.optimizers.schedules, name, None):
            raise ValueError(f"learning-rate schedule {name} has no numpy_ref twin; "
                             f"supported schedules: {sorted(schedules.SCHEDULES)}")
        config = rate.get_config()
        config.pop("name", None)
        return schedules.SCHEDULES[name](**config)
    raise ValueError(f"a callable learning_rate ({rate!r}) has no numpy_ref twin: Keras calls "
                     "it without the step, so what it returns cannot be followed; use a "
                     "keras.optimizers.schedules class instead")


def _tracked_variables(keras_optimizer, variables):
    """The variables whose paths key the twin's state, checked for what it cannot twin."""
    if keras_optimizer.built:
        tracked = list(keras_optimizer._trainable_variables)  # pylint: disable=protected-access
        if variables is not None and {v.path for v in variables} != {v.path for v in tracked}:
            raise ValueError(f"{type(keras_optimizer).__name__} is built on "
                             f"{sorted(v.path for v in tracked)}, not on the variables given "
                             f"({sorted(v.path for v in variables)})")
    else:
        tracked = list(variables or ())
    paths = [v.path for v in tracked]
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    if repeated:
        raise ValueError(f"variable paths {repeated} occur more than once; the twin keys "
                         "its state by path, so give the variables distinct names")
    for v in tracked:
        if v.constraint is not None or getattr(v, "overwrite_with_gradient", False):
            raise ValueError(f"variable {v.path!r} has a constraint or overwrite_with_gradient, "
                             "which the Keras optimizer applies and numpy_ref does not")
    return tracked


def _excluded_from_weight_decay(keras_optimizer, tracked):
    """Paths of the variables Keras's own rule leaves out of weight decay."""
    if keras_optimizer.weight_decay is None:
        return set()
    # pylint: disable=protected-access
    if not tracked and (getattr(keras_optimizer, "_exclude_from_weight_decay", None)
                        or getattr(keras_optimizer, "_exclude_from_weight_decay_pattern", None)):
        raise ValueError("this optimizer excludes variables from weight decay but is not "
                         "built: pass variables=model.trainable_variables to twin it")
    return {v.path for v in tracked if not keras_optimizer._use_weight_decay(v)}


def _keras_state(keras_optimizer, twin, tracked, slots):
    """``get_state()``-style dict of the built Keras optimizer's state."""
    # pylint: disable=protected-access
    flat = {"iterations": np.array(int(keras_optimizer.iterations.numpy()))}
    for slot in slots:
        variables = getattr(keras_optimizer, twin.slots[slot])
        for v in tracked:
            flat[f"{slot}/{v.path}"] = np.array(
                variables[keras_optimizer._get_variable_index(v)].numpy())
    if hasattr(keras_optimizer, "_u_product"):
        flat["u_product"] = np.array(keras_optimizer._u_product.numpy())
    return flat


def twin_optimizer(keras_optimizer, variables=None):
    """The ``numpy_ref`` optimizer that steps exactly as ``keras_optimizer`` does.

    A built optimizer gives the keys (its variables' paths) and the state; an
    unbuilt one starts empty, and ``variables`` (e.g. ``model.trainable_variables``)
    are needed only to resolve ``exclude_from_weight_decay``.
    """
    twin = _twin_of(keras_optimizer)
    tracked = _tracked_variables(keras_optimizer, variables)
    kwargs = {key: getattr(keras_optimizer, key) for key in twin.hyperparameters + _BASE_OPTIONS}
    numpy_optimizer = twin.cls(
        learning_rate=_learning_rate(keras_optimizer),
        exclude_from_weight_decay=_excluded_from_weight_decay(keras_optimizer, tracked), **kwargs)
    if keras_optimizer.built:
        numpy_optimizer.set_state(_keras_state(keras_optimizer, twin, tracked,
                                               numpy_optimizer.slots))
    return numpy_optimizer


def _keras_slots(keras_optimizer, twin):
    return {slot for slot, attr in twin.slots.items() if getattr(keras_optimizer, attr, None)}


def _check_pair(numpy_optimizer, keras_optimizer, twin):
    expected = twin.cls
    kind = type(numpy_optimizer)
    if not (issubclass(kind, expected) or issubclass(expected, kind)):
        raise ValueError(f"a numpy_ref {kind.__name__} cannot hold the state of Keras "
                         f"{type(keras_optimizer).__name__} (its twin is {expected.__name__})")
    if not keras_optimizer.built:
        raise ValueError(f"{type(keras_optimizer).__name__} is not built: call "
                         "keras_optimizer.build(model.trainable_variables) first")
    keras_slots = _keras_slots(keras_optimizer, twin)
    if set(numpy_optimizer.slots) != keras_slots:
        raise ValueError(f"numpy_ref {kind.__name__} keeps the slots {sorted(numpy_optimizer.slots)}"
                         f" but Keras {type(keras_optimizer).__name__} {sorted(keras_slots)}: "
                         "their hyperparameters differ (momentum, centered, amsgrad...)")


def optimizer_state_to_keras(numpy_optimizer, keras_optimizer):
    """Assigns ``numpy_optimizer``'s iterations and slots to the built ``keras_optimizer``.

    Every array is checked (shape and dtype, naming the slot and variable)
    before anything is assigned; a slot the NumPy side has not created yet is
    given its initial value.
    """
    twin = _twin_of(keras_optimizer)
    _check_pair(numpy_optimizer, keras_optimizer, twin)
    tracked = _tracked_variables(keras_optimizer, None)
    paths = {v.path for v in tracked}
    unknown = sorted({name for store in numpy_optimizer.state.values() for name in store} - paths)
    if unknown:
        raise ValueError(f"the numpy_ref optimizer has state for {unknown}, which "
                         f"{type(keras_optimizer).__name__} does not track ({sorted(paths)})")
    assignments = []
    for slot, initial in sorted(numpy_optimizer.slots.items()):
        variables = getattr(keras_optimizer, twin.slots[slot])
        for v in tracked:
            target = variables[keras_optimizer._get_variable_index(v)]  # pylint: disable=protected-access
            value = numpy_optimizer.state.get(slot, {}).get(v.path)
            if value is None:
                value = np.full(target.shape, keras_cast(initial, target.dtype))
            assignments.append((f"slot {slot!r} of {v.path!r}", target, value))
    if hasattr(keras_optimizer, "_u_product"):
        target = keras_optimizer._u_product  # pylint: disable=protected-access
        value = numpy_optimizer.u_product
        assignments.append(("u_product", target,
                            np.ones((), target.dtype) if value is None else value))
    for what, target, value in assignments:
        if tuple(value.shape) != tuple(target.shape) or np.dtype(value.dtype) != target.dtype:
            raise ValueError(f"{what}: NumPy {value.dtype}{tuple(value.shape)} does not fit "
                             f"Keras {target.dtype}{tuple(target.shape)}")
    keras_optimizer.iterations.assign(numpy_optimizer.iterations)
    for _, target, value in assignments:
        target.assign(value)
