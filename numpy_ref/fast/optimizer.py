"""An optimizer step over all weights at once: ``update_step`` once per dtype, not per weight.

A network's weights are a dozen arrays; an element-wise optimizer applies the
same formula to each, and for a small network the NumPy calls, not the
arithmetic, take the time. ``FlatUpdate(optimizer)`` does what
``optimizer.update(params, grads)`` does (casts, clipping, weight decay, the
step count) but calls ``optimizer.update_step`` once per dtype, on the weights,
gradients and slots laid end to end (``numpy_ref.fast.flat``). Element-wise
operations do not depend on where an element sits: the numbers are the same to
the last bit. Adam's step runs in place through one scratch buffer
(``adam_in_place``), its operations in the formula's order.

The slots live in the plan's buffers; ``optimizer.state[slot][name]`` are views
of them, so ``get_state``, ``set_state`` and the per-weight ``update`` keep
working (a slot replaced by another array makes a new plan, which copies it in).
When the weights (or gradients) already tile one buffer, as a packed network's
do (``numpy_ref.fast.graph.pack_weights``), the step works on that buffer in
place; otherwise it copies them into one and the new weights back.
"""

import operator

import numpy as np

from numpy_ref.fast import flat
from numpy_ref.optim import optimizers as O
from numpy_ref.optim.keras_scalars import keras_cast

# The update steps that treat every element on its own (each element of a weight from
# the same element of its gradient and slots): they may run once on all weights laid end
# to end. An optimizer whose class overrides ``update_step`` steps weight by weight,
# unless its step is added here.
ELEMENTWISE_STEPS = {O.SGD.update_step, O.AdaGrad.update_step, O.RMSprop.update_step,
                     O.Adam.update_step, O.Adamax.update_step, O.Nadam.update_step,
                     O.Lion.update_step, O.Adadelta.update_step}


def is_elementwise(optimizer):
    """Whether ``optimizer``'s ``update_step`` is one of ``ELEMENTWISE_STEPS``."""
    return type(optimizer).update_step in ELEMENTWISE_STEPS


def adam_in_place(optimizer, param, grad, slots, alpha, tmp):
    """``Adam.update_step`` through the scratch array ``tmp``: the same operations in the
    same order, without a temporary array per operation."""
    m, v = slots["momentum"], slots["velocity"]
    np.subtract(grad, m, out=tmp)          # m += (grad - m) * (1 - beta_1)
    tmp *= 1 - optimizer.beta_1
    m += tmp
    np.multiply(grad, grad, out=tmp)       # v += (grad^2 - v) * (1 - beta_2)
    tmp -= v
    tmp *= 1 - optimizer.beta_2
    v += tmp
    if optimizer.amsgrad:                  # v_hat = max(v_hat, v), used as v
        v = np.maximum(slots["velocity_hat"], v, out=slots["velocity_hat"])
    np.sqrt(v, out=tmp)                    # param -= m * alpha / (sqrt(v) + eps)
    tmp += optimizer.epsilon
    np.divide(np.multiply(m, alpha), tmp, out=tmp)
    param -= tmp


class _Plan:
    """The buffers of the step over the weights of one dtype, in order.

    ``fits`` says whether the plan still holds for a step's weights: the same names and
    arrays, and slots still the views it made.
    """

    def __init__(self, optimizer, items):
        names, params, grads = zip(*items)
        dtype = params[0].dtype
        self.names, self.params, self.grad_arrays = names, params, grads
        self.size = sum(p.size for p in params)
        self.param_span = flat.span(list(params))
        self.param_buffer = None if self.param_span is not None else np.empty(self.size, dtype)
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
        in_place = type(optimizer).update_step is O.Adam.update_step
        self.scratch = np.empty(self.size, dtype) if in_place else None

    def fits(self, items, state):
        names, params, _ = zip(*items)
        if names != self.names or not all(map(operator.is_, params, self.params)):
            return False
        for slot, views in self.views.items():
            if not all(map(operator.is_, map(state.get(slot, {}).get, names), views)):
                return False
        return True

    def _gradient(self, items):
        grads = list(map(operator.itemgetter(2), items))
        if self.grad_span is not None and all(map(operator.is_, grads, self.grad_arrays)):
            return self.grad_span
        if self.grad_buffer is None:
            self.grad_buffer = np.empty(self.size, self.params[0].dtype)
        return flat.gather(grads, self.grad_buffer)

    def step(self, optimizer, items, lr, k):
        """The element-wise update of every weight of the plan, in place."""
        grad = self._gradient(items)
        param = self.param_span
        if param is None:
            param = flat.gather(self.params, self.param_buffer)
        if self.scratch is not None:
            adam_in_place(optimizer, param, grad, self.slots, k, self.scratch)
        else:
            optimizer.update_step(param, grad, self.slots, lr, k)
        if self.param_span is None:
            flat.scatter(param, self.params)


class FlatUpdate:
    """``optimizer.update(params, grads)``, bit for bit, with an element-wise optimizer's
    ``update_step`` run once per dtype on all weights (``is_elementwise``; others step
    weight by weight)."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self._plans = {}  # dtype -> _Plan

    def __call__(self, params, grads):
        optimizer = self.optimizer
        if not is_elementwise(optimizer):
            optimizer.update(params, grads)
            return
        work = optimizer.gradients_to_apply(params, grads)
        if not work:
            return
        constants = optimizer.step_constants(work)
        groups = {}
        for name, param, grad in work:
            groups.setdefault(param.dtype, []).append((name, param, grad))
            if optimizer.weight_decay is not None:
                lr, wd, _ = constants[param.dtype]
                optimizer.decay_weight(name, param, lr, wd)
        for dtype, items in groups.items():
            plan = self._plans.get(dtype)
            if plan is None or not plan.fits(items, optimizer.state):
                plan = self._plans[dtype] = _Plan(optimizer, items)
            lr, _, k = constants[dtype]
            plan.step(optimizer, items, lr, k)
        optimizer.iterations += 1
