"""Optimizers with Keras 3's formulas, defaults and rounding.

Each ``update(params, grads)`` changes the arrays in ``params`` in place, in
the same order of operations as ``keras/src/optimizers/*.py`` so a float64
step here equals a Keras step to the last bit. Two Keras details matter:

- Keras stores the learning rate in a float32 variable, and some
  hyperparameters go through ``ops.cast(python_float, var.dtype)``, which
  makes a float32 tensor first. Those values are float32-rounded even for
  float64 weights: ``_keras_cast`` below does the same. Where Keras uses the
  Python float directly (``1 - beta_1``, ``epsilon``), it stays a double.
- The book's versions differ: its RMSprop puts epsilon outside the square
  root, its AdaGrad starts the accumulator at 0, its Adam applies bias
  correction to m and v separately. The Keras forms are used here.
"""

import abc

import numpy as np


def _keras_cast(value, dtype):
    """A Python float as Keras's ``ops.cast(value, dtype)`` sees it."""
    return np.asarray(np.float32(value), dtype=dtype)


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0. Received: {name}={value}")


class Optimizer(abc.ABC):
    """Holds per-parameter state (by name) and counts applied steps.

    Subclasses define ``_update_one(name, param, grad, lr)``.
    """

    def __init__(self, learning_rate):
        _check_positive(learning_rate=learning_rate)
        self.learning_rate = learning_rate
        self.iterations = 0
        self.state = {}  # slot name -> {param name -> array}

    def _slot(self, slot, name, param, initial=0.0):
        """The optimizer array `slot` for parameter `name`, created on first use."""
        store = self.state.setdefault(slot, {})
        if name not in store:
            store[name] = np.full_like(param, _keras_cast(initial, param.dtype))
        return store[name]

    def update(self, params, grads):
        """Applies one step to every parameter in ``params`` (in place)."""
        for name, param in params.items():
            grad = np.asarray(grads[name], dtype=param.dtype)
            lr = _keras_cast(self.learning_rate, param.dtype)
            self._update_one(name, param, grad, lr)
        self.iterations += 1

    def get_state(self):
        """Flat dict of arrays ("slot/param" -> array, plus "iterations") for saving."""
        flat = {f"{slot}/{name}": array.copy()
                for slot, store in self.state.items() for name, array in store.items()}
        flat["iterations"] = np.array(self.iterations)
        return flat

    def set_state(self, flat):
        """Restores what ``get_state`` returned."""
        flat = dict(flat)
        self.iterations = int(flat.pop("iterations"))
        self.state = {}
        for key, array in flat.items():
            slot, name = key.split("/", 1)
            self.state.setdefault(slot, {})[name] = np.array(array)

    @abc.abstractmethod
    def _update_one(self, name, param, grad, lr):
        """Updates one parameter array in place."""


class SGD(Optimizer):
    """param -= grad * lr (Keras default lr 0.01)."""

    def __init__(self, learning_rate=0.01):
        super().__init__(learning_rate)

    def _update_one(self, name, param, grad, lr):
        param -= grad * lr


class Momentum(Optimizer):
    """Keras ``SGD(momentum=0.9)``: v = v * m - grad * lr; param += v."""

    nesterov = False

    def __init__(self, learning_rate=0.01, momentum=0.9):
        super().__init__(learning_rate)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum}")
        self.momentum = momentum

    def _update_one(self, name, param, grad, lr):
        m = _keras_cast(self.momentum, param.dtype)
        v = self._slot("momentum", name, param)
        v[...] = v * m - grad * lr
        param += (v * m - grad * lr) if self.nesterov else v


class Nesterov(Momentum):
    """Keras ``SGD(momentum=0.9, nesterov=True)``: param += v * m - grad * lr."""

    nesterov = True


class AdaGrad(Optimizer):
    """Keras ``Adagrad``: h += grad^2; param -= lr * grad / sqrt(h + eps).

    h starts at ``initial_accumulator_value`` (0.1), not 0 as in the book.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
        super().__init__(learning_rate)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _update_one(self, name, param, grad, lr):
        h = self._slot("accumulator", name, param, self.initial_accumulator_value)
        h += grad * grad
        param -= lr * grad / np.sqrt(h + self.epsilon)


class RMSprop(Optimizer):
    """Keras ``RMSprop``: v = rho v + (1 - rho) grad^2; param -= lr grad / sqrt(v + eps).

    Epsilon sits inside the square root (the book puts it outside). With
    ``momentum`` > 0 the increment feeds a momentum buffer first; ``centered``
    subtracts the square of a running mean gradient from v.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False):
        super().__init__(learning_rate)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def _update_one(self, name, param, grad, lr):
        rho = self.rho
        v = self._slot("velocity", name, param)
        v[...] = rho * v + (1 - rho) * (grad * grad)
        if self.centered:
            g_avg = self._slot("average_gradient", name, param)
            g_avg[...] = rho * g_avg + (1 - rho) * grad
            denominator = v - g_avg * g_avg + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * grad / np.sqrt(denominator)
        if self.momentum > 0:
            buf = self._slot("momentum", name, param)
            buf[...] = self.momentum * buf + increment
            param -= buf
        else:
            param -= increment


class Adam(Optimizer):
    """Keras ``Adam``, bias correction folded into the step size.

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (grad - m) * (1 - beta_1);  v += (grad^2 - v) * (1 - beta_2)
    param -= m * alpha / (sqrt(v) + epsilon)

    alpha depends on the step only, so it is computed once per step and dtype.
    The array updates run in place through one scratch buffer per parameter
    (the same operations in the same order, so the result is bit for bit the
    formula above): for a small network, temporaries and Python overhead, not
    arithmetic, would otherwise dominate the step.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        super().__init__(learning_rate)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self._alpha = {}  # dtype -> alpha of the current step (cleared every step)
        self._scratch = {}  # param name -> work array, not state: never saved

    def update(self, params, grads):
        self._alpha.clear()
        super().update(params, grads)

    def _step_size(self, lr, dtype):
        if dtype not in self._alpha:
            step = np.asarray(self.iterations + 1, dtype=dtype)
            beta_1_power = np.power(_keras_cast(self.beta_1, dtype), step)
            beta_2_power = np.power(_keras_cast(self.beta_2, dtype), step)
            self._alpha[dtype] = lr * np.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        return self._alpha[dtype]

    def _update_one(self, name, param, grad, lr):
        alpha = self._step_size(lr, param.dtype)
        m = self._slot("m", name, param)
        v = self._slot("v", name, param)
        tmp = self._scratch.get(name)
        if tmp is None or tmp.shape != param.shape or tmp.dtype != param.dtype:
            tmp = self._scratch[name] = np.empty_like(param)
        np.subtract(grad, m, out=tmp)          # m += (grad - m) * (1 - beta_1)
        tmp *= 1 - self.beta_1
        m += tmp
        np.multiply(grad, grad, out=tmp)       # v += (grad^2 - v) * (1 - beta_2)
        tmp -= v
        tmp *= 1 - self.beta_2
        v += tmp
        np.sqrt(v, out=tmp)                    # param -= m * alpha / (sqrt(v) + eps)
        tmp += self.epsilon
        np.divide(np.multiply(m, alpha), tmp, out=tmp)
        param -= tmp


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov,
              "adagrad": AdaGrad, "rmsprop": RMSprop, "adam": Adam}


def get(name, **kwargs):
    """An optimizer by its lower-case name, e.g. ``get("adam", learning_rate=1e-3)``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}. "
                         f"Received: optimizer={name!r}")
    return OPTIMIZERS[name](**kwargs)
