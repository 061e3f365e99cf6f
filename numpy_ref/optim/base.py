"""The machinery every optimizer shares, as Keras 3's base optimizer has it.

State per parameter name, the step count, the learning rate (a float or a
callable of the step), gradient clipping and weight decay. One step:

1. gradients clipped: ``clipnorm`` (each gradient), ``global_clipnorm`` (all
   together) or ``clipvalue``; TF sums the squares in Eigen's order (4-lane
   packets, threads for large tensors), NumPy pairwise, so a norm here can
   differ from Keras's by an ulp or two;
2. weight decay ``param -= param * wd * lr`` (wd and lr cast as Keras casts
   them, see ``keras_scalars``), except for ``exclude_from_weight_decay``;
3. the optimizer's own ``update_step(param, grad, slots, lr, k)`` on each weight,
   ``slots`` its state arrays by slot name (``momentum``, ``velocity``...);
4. ``iterations += 1``.

``numpy_ref.fast.optimizer`` runs step 3 of an element-wise optimizer once over
all the weights laid end to end, for the same numbers in fewer NumPy calls.
"""

import abc

import numpy as np

from numpy_ref.optim.keras_scalars import keras_cast


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0. Received: {name}={value}")


def clip_by_norm(grad, clipnorm):
    """TF's ``clip_by_norm``: grad * c / max(||grad||, c), computed even when not clipping."""
    c = grad.dtype.type(clipnorm)
    l2sum = np.sum(grad * grad)
    norm = np.sqrt(l2sum) if l2sum > 0 else l2sum
    return grad * c / np.maximum(norm, c)


def clip_by_global_norm(grads, clipnorm):
    """Keras's: every grad * c * min(1 / norm, 1 / c), norm over all of them."""
    norm = np.sqrt(np.sum(np.stack([np.sum(g * g) for g in grads])))
    real = norm.dtype.type
    scale = real(clipnorm) * np.minimum(real(1.0) / norm, real(1.0 / clipnorm))
    scale = scale + (norm - norm)  # nan when the norm is not finite, as in Keras
    return [(g * scale).astype(g.dtype, copy=False) for g in grads]


class Optimizer(abc.ABC):
    """Per-parameter state (by name), step count and Keras's base options.

    Keyword options of every optimizer: ``weight_decay`` (None: off),
    ``exclude_from_weight_decay`` (parameter names), ``clipnorm``,
    ``clipvalue``, ``global_clipnorm`` (at most one; None or 0: off).
    Subclasses set ``slots`` (slot name -> initial value) and define
    ``update_step(param, grad, slots, lr, k)``, where ``slots`` holds the weight's
    state arrays and ``k`` is what their ``_step_constants(lr, dtype)`` returned for
    this step and dtype.
    """

    SCALAR_STATE = ("iterations",)

    def __init__(self, learning_rate, *, weight_decay=None, exclude_from_weight_decay=(),
                 clipnorm=None, clipvalue=None, global_clipnorm=None):
        if not callable(learning_rate):
            _check_positive(learning_rate=learning_rate)
        clipping = {"clipnorm": clipnorm, "clipvalue": clipvalue,
                    "global_clipnorm": global_clipnorm}
        if sum(value is not None for value in clipping.values()) > 1:
            raise ValueError(f"Only one of clipnorm, clipvalue and global_clipnorm can be set. "
                             f"Received: {clipping}")
        if isinstance(exclude_from_weight_decay, str):
            exclude_from_weight_decay = (exclude_from_weight_decay,)
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.exclude_from_weight_decay = frozenset(exclude_from_weight_decay)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.iterations = 0
        self.slots = {}
        self.state = {}  # slot name -> {param name -> array}

    def current_learning_rate(self):
        """The learning rate of the coming step (before the cast to a parameter's dtype)."""
        lr = self.learning_rate
        return lr(self.iterations) if callable(lr) else lr

    def _clip(self, grads):
        if self.clipnorm and self.clipnorm > 0:
            return [clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and self.global_clipnorm > 0:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue and self.clipvalue > 0:
            v = self.clipvalue
            return [np.clip(g, -v, v) for g in grads]
        return grads

    def update(self, params, grads):
        """One step on every parameter in ``params`` (in place); a None gradient skips it.

        Gradients are cast to their parameter's dtype first (Keras clips before
        that cast: the same when the dtypes agree, as a twin's do). As in
        Keras, an empty ``params`` is no step at all.
        """
        work = self.gradients_to_apply(params, grads)
        if not work:
            return
        constants = self.step_constants(work)
        for name, param, grad in work:
            lr, wd, k = constants[param.dtype]
            self.decay_weight(name, param, lr, wd)
            self.update_step(param, grad, self.slots_of(name, param), lr, k)
        self.iterations += 1

    def gradients_to_apply(self, params, grads):
        """[(name, param, grad)] for the parameters with a gradient, each cast to its
        parameter's dtype and clipped."""
        work = [(name, param, grad if type(grad) is np.ndarray and grad.dtype == param.dtype
                 else np.asarray(grad, dtype=param.dtype))
                for name, param, grad in ((n, p, grads[n]) for n, p in params.items())
                if grad is not None]
        if not work and params:
            raise ValueError("No gradients provided for any parameter.")
        if work and (self.clipnorm or self.clipvalue or self.global_clipnorm):
            clipped = self._clip([grad for _, _, grad in work])
            work = [(name, param, grad) for (name, param, _), grad in zip(work, clipped)]
        return work

    def step_constants(self, work):
        """{dtype: (lr, wd, k)} for this step: the learning rate and weight decay cast as
        Keras casts them, and ``_step_constants``' scalars (after ``_begin_step``)."""
        lr_value = self.current_learning_rate()
        self._begin_step(work)
        constants = {}
        for _, param, _ in work:
            dtype = param.dtype
            if dtype not in constants:
                lr = keras_cast(lr_value, dtype)
                wd = None if self.weight_decay is None else keras_cast(self.weight_decay, dtype)
                constants[dtype] = (lr, wd, self._step_constants(lr, dtype))
        return constants

    def decay_weight(self, name, param, lr, wd):
        """Weight decay, param -= param * wd * lr, unless it is off or excluded for ``name``."""
        if wd is not None and name not in self.exclude_from_weight_decay:
            param -= param * wd * lr

    def _begin_step(self, work):
        """Hook before the parameters of a step are updated."""

    def _step_constants(self, lr, dtype):
        """Scalars that depend on the step and dtype only (computed once per step)."""
        return None

    def slots_of(self, name, param):
        """{slot: array}: the state of parameter ``name``, each slot created on first use
        (filled with its initial value, cast as Keras casts it)."""
        slots = {}
        for slot, initial in self.slots.items():
            store = self.state.setdefault(slot, {})
            array = store.get(name)
            if array is None:
                array = store[name] = np.full_like(param, keras_cast(initial, param.dtype))
            slots[slot] = array
        return slots

    def get_state(self):
        """Flat dict of arrays ("slot/param" -> array, "iterations", ...) for saving."""
        flat = {f"{slot}/{name}": array.copy()
                for slot, store in self.state.items() for name, array in store.items()}
        for key in self.SCALAR_STATE:
            value = getattr(self, key)
            if value is not None:
                flat[key] = np.array(value)
        return flat

    def set_state(self, flat):
        """Restores what ``get_state`` returned; an unknown slot is a ValueError."""
        flat = dict(flat)
        if "iterations" not in flat:
            raise ValueError("optimizer state has no 'iterations'")
        state = {}
        for key, array in flat.items():
            if key in self.SCALAR_STATE:
                continue
            slot, sep, name = key.partition("/")
            if not sep or slot not in self.slots:
                raise ValueError(f"unknown optimizer state {key!r}: {type(self).__name__} keeps "
                                 f"{list(self.SCALAR_STATE)} and the slots {sorted(self.slots)}")
            state.setdefault(slot, {})[name] = np.array(array)
        self.state = state
        self.iterations = int(flat["iterations"])
        for key in self.SCALAR_STATE[1:]:
            setattr(self, key, np.array(flat[key]) if key in flat else None)

    @abc.abstractmethod
    def update_step(self, param, grad, slots, lr, k):
        """Updates one parameter array (and its ``slots``) in place."""
