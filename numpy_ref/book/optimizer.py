"""The book's ``common/optimizer.py``: its update rules, defaults and keyword names.

``update(params, grads)`` changes whatever ``params`` holds: arrays in place (so
a network whose layers share those arrays learns), and plain Python floats by
rebinding the entry (ch06 keeps a point ``params['x']`` as a float). State
(``v``, ``h``, ``m``) is kept per key, zeros of the parameter's shape at the
first update. These are the book's formulas; ``numpy_ref.optim.optimizers`` has
Keras's (AdaGrad's accumulator starting at 0.1, RMSprop's epsilon inside the
root, ...), for parity with the Keras twins.
"""

import numpy as np

EPSILON = 1e-7  # the book's guard in AdaGrad, RMSprop and Adam


def _zeros_for(state, key, value):
    """``state[key]``, created as zeros like ``value`` (0-d for a float) on first use."""
    if key not in state:
        state[key] = np.zeros_like(value)
    return state[key]


class SGD:
    """p -= lr * g."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum:
    """v = momentum * v - lr * g;  p += v."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum = lr, momentum
        self.v = {}

    def update(self, params, grads):
        for key in params.keys():
            v = _zeros_for(self.v, key, params[key])
            self.v[key] = self.momentum * v - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov(Momentum):
    """Nesterov's accelerated gradient as the book writes it:
    v = momentum * v - lr * g;  p += momentum^2 * v - (1 + momentum) * lr * g."""

    def update(self, params, grads):
        for key in params.keys():
            v = _zeros_for(self.v, key, params[key])
            v *= self.momentum
            v -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * v
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class AdaGrad:
    """h += g * g (h from 0);  p -= lr * g / (sqrt(h) + 1e-7)."""

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = {}

    def update(self, params, grads):
        for key in params.keys():
            h = _zeros_for(self.h, key, params[key])
            self._accumulate(h, grads[key])
            params[key] -= self.lr * grads[key] / (np.sqrt(h) + EPSILON)

    def _accumulate(self, h, g):
        """h += g * g, in place."""
        h += g * g


class RMSprop(AdaGrad):
    """AdaGrad with a decaying h: h = decay_rate * h + (1 - decay_rate) * g * g;
    p -= lr * g / (sqrt(h) + 1e-7)."""

    def __init__(self, lr=0.01, decay_rate=0.99):
        super().__init__(lr)
        self.decay_rate = decay_rate

    def _accumulate(self, h, g):
        h *= self.decay_rate
        h += (1 - self.decay_rate) * g * g


class Adam:
    """Adam as the book writes it: with t the step (from 1),

    lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m += (1 - beta1) * (g - m);  v += (1 - beta2) * (g^2 - v)
    p -= lr_t * m / (sqrt(v) + 1e-7)
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter = 0
        self.m, self.v = {}, {}

    def update(self, params, grads):
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params.keys():
            m = _zeros_for(self.m, key, params[key])
            v = _zeros_for(self.v, key, params[key])
            m += (1 - self.beta1) * (grads[key] - m)
            v += (1 - self.beta2) * (grads[key] ** 2 - v)
            params[key] -= lr_t * m / (np.sqrt(v) + EPSILON)


OPTIMIZERS = {"sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
              "rmsprop": RMSprop, "adam": Adam}

# np too: the book's scripts use the np a star import of its modules brings.
__all__ = ["np", "AdaGrad", "Adam", "Momentum", "Nesterov", "RMSprop", "SGD"]
