"""The machinery every optimizer shares, as Keras 3's base optimizer has it.

State per parameter name, the step count, the learning rate (a float or a
callable of the step), gradient clipping and weight decay. One step:

1. gradients clipped: ``clipnorm`` (each gradient), ``global_clipnorm`` (all
   together) or ``clipvalue``; TF sums the squares in Eigen's order (4-lane
   packets, threads for large tensors), NumPy pairwise, so a norm here can
   differ from Keras's by an ulp or two;
2. weight decay ``param -= param * wd * lr`` (wd and lr cast as Keras casts
   them, see ``keras_scalars``), except for ``exclude_from_weight_decay``;
3. the optimizer's own update; 4. ``iterations += 1``.

Step 3 of an element-wise optimizer (all of Keras's here: each element of a
weight is updated from the same element of its gradient and slots only) runs
once over all the weights of a dtype laid end to end (``numpy_ref.fast.flat``), not
once per weight: a handful of NumPy calls per step instead of a handful per
weight, the same numbers to the last bit. The slots live in such buffers too;
``state[slot][name]`` are views of them. When the weights (or the gradients)
already are consecutive views of one buffer, as a packed network's are
(``Network.pack_params``), the step works on that buffer in place; otherwise it
copies them into one and the new weights back.
"""

import abc
import operator

import numpy as np

from numpy_ref.fast import flat
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
    ``_update_one(name, param, grad, lr, k)``, where ``k`` is what their
    ``_step_constants(lr, dtype)`` returned for this step and dtype.

    ``elementwise = True`` (a class attribute) says that ``_update_one`` treats every
    element on its own, so that it may run once on all weights laid end to end; a
    subclass whose update looks across a weight (a norm per weight, say) sets it False.
    """

    SCALAR_STATE = ("iterations",)
    elementwise = False

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
        self._scratch = {}  # param name -> work array, not state: never saved
        self._plans = {}  # dtype -> _FlatPlan of the element-wise step

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
        work = [(name, param, grad if type(grad) is np.ndarray and grad.dtype == param.dtype
                 else np.asarray(grad, dtype=param.dtype))
                for name, param, grad in ((n, p, grads[n]) for n, p in params.items())
                if grad is not None]
        if not work:
            if params:
                raise ValueError("No gradients provided for any parameter.")
            return
        if self.clipnorm or self.clipvalue or self.global_clipnorm:
            clipped = self._clip([grad for _, _, grad in work])
            work = [(name, param, grad) for (name, param, _), grad in zip(work, clipped)]
        lr_value = self.current_learning_rate()
        self._begin_step(work)
        per_dtype, groups = {}, {}
        for name, param, grad in work:
            constants = per_dtype.get(param.dtype)
            if constants is None:
                lr = keras_cast(lr_value, param.dtype)
                wd = None if self.weight_decay is None else keras_cast(self.weight_decay,
                                                                       param.dtype)
                constants = per_dtype[param.dtype] = (lr, wd, self._step_constants(lr, param.dtype))
            lr, wd, k = constants
            if wd is not None and name not in self.exclude_from_weight_decay:
                param -= param * wd * lr
            if self.elementwise:
                groups.setdefault(param.dtype, []).append((name, param, grad))
            else:
                self._update_one(name, param, grad, lr, k)
        for dtype, items in groups.items():
            lr, _, k = per_dtype[dtype]
            plan = self._plans.get(dtype)
            if plan is None or not plan.fits(items, self.state):
                plan = self._plans[dtype] = _FlatPlan(self, items)
            plan.step(self, items, lr, k)
        self.iterations += 1

    def _begin_step(self, work):
        """Hook before the parameters of a step are updated."""

    def _step_constants(self, lr, dtype):
        """Scalars that depend on the step and dtype only (computed once per step)."""
        return None

    def _slot(self, slot, name, param):
        """The optimizer array ``slot`` for parameter ``name``, created on first use (for
        a flat step, ``name`` is its plan's key and the slot its whole buffer)."""
        if isinstance(name, _FlatKey):
            return self._plans[name.dtype].slots[slot]
        store = self.state.setdefault(slot, {})
        array = store.get(name)
        if array is None:
            array = store[name] = np.full_like(param, keras_cast(self.slots[slot], param.dtype))
        return array

    def _work(self, name, param):
        """A scratch array shaped like ``param``, reused from step to step."""
        tmp = self._scratch.get(name)
        if tmp is None or tmp.shape != param.shape or tmp.dtype != param.dtype:
            tmp = self._scratch[name] = np.empty_like(param)
        return tmp

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
        self._plans = {}
        self.iterations = int(flat["iterations"])
        for key in self.SCALAR_STATE[1:]:
            setattr(self, key, np.array(flat[key]) if key in flat else None)

    @abc.abstractmethod
    def _update_one(self, name, param, grad, lr, k):
        """Updates one parameter array in place."""


class _FlatKey(tuple):
    """The ``name`` an element-wise step is called with when it runs on a whole buffer."""

    dtype = property(lambda self: self[1])


class _FlatPlan:
    """The buffers of the element-wise step over the weights of one dtype, in order.

    ``fits`` says whether the plan still holds for a step's weights: the same names and
    arrays, and slots still the views it made (``set_state`` or a user replacing a slot
    array makes a new plan, which copies the values in).
    """

    def __init__(self, optimizer, items):
        names, params, grads = zip(*items)
        dtype = params[0].dtype
        self.key = _FlatKey(("flat", dtype))
        self.names, self.params = names, params
        self.size = sum(p.size for p in params)
        self.param_span = flat.span(list(params))
        self.param_buffer = None if self.param_span is not None else np.empty(self.size, dtype)
        self.grad_arrays = grads
        self.grad_span = flat.span(list(grads))
        self.grad_buffer = None
        self.slots, self.views = {}, {}
        for slot, initial in optimizer.slots.items():
            store = optimizer.state.setdefault(slot, {})
            fill = keras_cast(initial, dtype)
            buffer, views = flat.pack(
                [store[n] if n in store else np.full(p.shape, fill, dtype)
                 for n, p in zip(names, params)], dtype)
            store.update(zip(names, views))
            self.slots[slot], self.views[slot] = buffer, views

    def fits(self, items, state):
        names, params, _ = zip(*items)
        if names != self.names or not all(map(operator.is_, params, self.params)):
            return False
        for slot, views in self.views.items():
            store = state.get(slot, {})
            if not all(map(operator.is_, map(store.get, names), views)):
                return False
        return True

    def _gradient(self, items):
        if self.grad_span is not None and all(
                map(operator.is_, (grad for _, _, grad in items), self.grad_arrays)):
            return self.grad_span
        if self.grad_buffer is None:
            self.grad_buffer = np.empty(self.size, self.key.dtype)
        return flat.gather([grad for _, _, grad in items], self.grad_buffer)

    def step(self, optimizer, items, lr, k):
        """The element-wise update of every weight of the plan, in place."""
        grad = self._gradient(items)
        param = self.param_span
        if param is None:
            param = flat.gather(self.params, self.param_buffer)
        optimizer._update_one(self.key, param, grad, lr, k)  # pylint: disable=protected-access
        if self.param_span is None:
            flat.scatter(param, self.params)
