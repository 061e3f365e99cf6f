"""Learning-rate schedules with Keras 3's formulas and arithmetic.

A schedule is a callable ``schedule(step) -> learning rate`` that an optimizer
calls with its ``iterations`` before each update, as Keras does. Keras makes
``initial_learning_rate`` a tensor (a Python float becomes float32) and
computes the whole schedule in that dtype, every other number cast to it;
these twins do the same with NumPy scalars, so a schedule agrees with Keras's
to the last bit, except where float32 ``pow``/``cos`` round differently (1-2
float32 ulps, for well under 1% of steps; see ``keras_scalars``).

The class names are Keras's; ``SCHEDULES`` lists them.
"""

import math

import numpy as np

from numpy_ref.optim.keras_scalars import (flush_subnormal, keras_cast, keras_dtype, scalar_cos,
                                     scalar_pow)


def _float_dtype(initial_learning_rate):
    dtype = keras_dtype(initial_learning_rate)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError("initial_learning_rate must be a float (Keras computes the schedule in "
                         f"its dtype). Received: initial_learning_rate={initial_learning_rate!r}")
    return dtype


def _check_decay_steps(decay_steps):
    if not decay_steps > 0:
        raise ValueError(f"decay_steps must be > 0. Received: decay_steps={decay_steps}")


class _Schedule:
    """Holds ``initial_learning_rate`` and the dtype of the whole computation."""

    def __init__(self, initial_learning_rate, decay_steps):
        self.dtype = _float_dtype(initial_learning_rate)
        _check_decay_steps(decay_steps)
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps

    def __call__(self, step):
        return flush_subnormal(self._value(step))

    def _cast(self, value):
        """``ops.cast(value, dtype)``: a Python float is rounded to float32 first."""
        return keras_cast(value, self.dtype)[()]

    def _weak(self, value):
        """A Python number in arithmetic with a tensor: converted to its dtype directly."""
        return self.dtype.type(value)


class _RateDecay(_Schedule):
    """A decay by ``decay_rate`` over p = step / decay_steps (floored if ``staircase``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        super().__init__(initial_learning_rate, decay_steps)
        self.decay_rate, self.staircase = decay_rate, staircase

    def _p(self, step):
        p = self._cast(step) / self._cast(self.decay_steps)
        return np.floor(p) if self.staircase else p


class ExponentialDecay(_RateDecay):
    """lr0 * decay_rate ** p."""

    def _value(self, step):
        rate = scalar_pow(self._cast(self.decay_rate), self._p(step), self.dtype)
        return self._cast(self.initial_learning_rate) * rate


class InverseTimeDecay(_RateDecay):
    """lr0 / (1 + decay_rate * p)."""

    def _value(self, step):
        denominator = self._cast(1) + self._cast(self.decay_rate) * self._p(step)
        return self._cast(self.initial_learning_rate) / denominator


class PolynomialDecay(_Schedule):
    """(lr0 - end) * (1 - s / d) ** power + end.

    Without ``cycle`` s = min(step, decay_steps) and d = decay_steps; with it
    s = step and d = decay_steps * ceil(step / decay_steps) (1 at step 0).
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001,
                 power=1.0, cycle=False):
        super().__init__(initial_learning_rate, decay_steps)
        self.end_learning_rate, self.power, self.cycle = end_learning_rate, power, cycle

    def _value(self, step):
        step, decay_steps = self._cast(step), self._cast(self.decay_steps)
        if self.cycle:
            multiplier = (self._weak(1.0) if step == 0
                          else np.ceil(step / self._weak(self.decay_steps)))
            decay_steps = decay_steps * multiplier
        else:
            step = np.minimum(step, decay_steps)
        p = step / decay_steps
        end = self._cast(self.end_learning_rate)
        factor = scalar_pow(self._weak(1) - p, self._cast(self.power), self.dtype)
        return (self._cast(self.initial_learning_rate) - end) * factor + end


class CosineDecay(_Schedule):
    """Optional linear warmup to ``warmup_target``, then cosine decay to ``alpha`` of it.

    warmup (step < warmup_steps): (target - lr0) * step / warmup_steps + lr0
    decay: from_lr * ((1 - alpha) * 0.5 * (1 + cos(pi * s / decay_steps)) + alpha),
    s = min(step - warmup_steps, decay_steps), from_lr = target, or lr0 without warmup.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        super().__init__(initial_learning_rate, decay_steps)
        self.alpha, self.warmup_target, self.warmup_steps = alpha, warmup_target, warmup_steps

    def _decay(self, step, decay_steps, from_lr):
        fraction = step / decay_steps
        cosine = scalar_cos(self._weak(math.pi) * fraction, self.dtype)
        cosine = self._weak(0.5) * (self._weak(1.0) + cosine)
        decayed = self._weak(1 - self.alpha) * cosine + self._weak(self.alpha)
        return from_lr * decayed

    def _value(self, step):
        initial = self._cast(self.initial_learning_rate)
        step, decay_steps = self._cast(step), self._cast(self.decay_steps)
        if self.warmup_target is None:
            return self._decay(np.minimum(step, decay_steps), decay_steps, initial)
        target, warmup_steps = self._cast(self.warmup_target), self._cast(self.warmup_steps)
        step = np.minimum(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return (target - initial) * (step / warmup_steps) + initial
        return self._decay(step - warmup_steps, decay_steps, target)


class PiecewiseConstantDecay:
    """values[i] for boundaries[i-1] < step <= boundaries[i] (values[0] up to boundaries[0]).

    Keras sums indicator * value over the intervals, in the dtype of values[0];
    the same sum here (so an inf or nan among the values spreads as in Keras).
    """

    def __init__(self, boundaries, values):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of "
                             f"values. Received: boundaries={boundaries} of length "
                             f"{len(boundaries)}, and values={values} of length {len(values)}.")
        self.boundaries, self.values = boundaries, values
        self.dtype = keras_dtype(values[0])

    def __call__(self, step):
        # Keras compares in the step's dtype (int64 iterations): boundaries are cast to it.
        bounds = [int(keras_cast(b, np.int64)) for b in self.boundaries]
        values = [keras_cast(v, self.dtype)[()] for v in self.values]
        indicator = {True: self.dtype.type(1), False: self.dtype.type(0)}
        result = indicator[False]
        result += indicator[step <= bounds[0]] * values[0]
        result += indicator[step > bounds[-1]] * values[-1]
        for low, high, value in zip(bounds[:-1], bounds[1:], values[1:-1]):
            result += indicator[low < step <= high] * value
        return result


SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay,
                                           InverseTimeDecay, PolynomialDecay, CosineDecay)}
