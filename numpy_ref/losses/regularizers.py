"""Weight decay and Keras's regularizers, and the penalty terms a ``Network`` adds to its loss.

A regularizer maps an array to a scalar, ``r(x)``, and gives
``gradient(x, upstream)`` = d(upstream * r(x)) / dx:

    WeightDecay(lambda)   the book's: 0.5 * lambda * sum(W^2);  gradient lambda * W
    L2(l2)                Keras's:    l2 * sum(x^2);            gradient 2 * l2 * x
    L1(l1)                Keras's:    l1 * sum(|x|);            gradient l1 * sign(x)
    L1L2(l1, l2)          the sum of the two (a zero factor leaves its term out)

The factor of 2: the book's ``weight_decay_lambda`` equals 2 * Keras's ``l2``.
Keras turns its factor into a float32 tensor and then casts it to the weight's
dtype (``ops.cast``), so a float64 model is penalised with float32(l2); the
twins do the same (``keras_cast``).

A ``Network`` takes a list of penalties (``Network(..., penalties=...)``):

    WeightPenalty(param, regularizer)    r(params[param])
    ActivityPenalty(node, regularizer)   r(output of node) / N, N the batch size,
                                         as Keras adds a layer's activity_regularizer
"""

import dataclasses

import numpy as np

from numpy_ref.optim.keras_scalars import keras_cast


class WeightDecay:
    """The book's weight decay term: 0.5 * weight_decay_lambda * sum(W^2) per weight matrix."""

    def __init__(self, weight_decay_lambda):
        self.weight_decay_lambda = weight_decay_lambda

    def __call__(self, x):
        return 0.5 * self.weight_decay_lambda * np.sum(x ** 2)

    def gradient(self, x, upstream=1):
        return (upstream * self.weight_decay_lambda) * x

    def get_config(self):
        return {"weight_decay_lambda": self.weight_decay_lambda}


class L1L2:
    """Keras's ``L1L2``: l1 * sum(|x|) + l2 * sum(x^2), each factor cast as Keras casts it."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def _factor(self, value, x):
        return keras_cast(value, x.dtype)

    def __call__(self, x):
        total = x.dtype.type(0)
        if self.l1:
            total = total + self._factor(self.l1, x) * np.sum(np.abs(x))
        if self.l2:
            total = total + self._factor(self.l2, x) * np.sum(np.square(x))
        return total

    def gradient(self, x, upstream=1):
        """d(upstream * r)/dx in TF's order: (upstream * factor) * dr/dx of each term."""
        grad = np.zeros_like(x)
        if self.l1:
            grad = grad + (upstream * self._factor(self.l1, x)) * np.sign(x)
        if self.l2:
            grad = grad + (upstream * self._factor(self.l2, x)) * (x * 2)
        return grad

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """Keras's ``L1(l1=0.01)``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """Keras's ``L2(l2=0.01)``."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


REGULARIZERS = {cls.__name__: cls for cls in (WeightDecay, L1, L2, L1L2)}


def get(name, **config):
    """A regularizer by class name (``REGULARIZERS``) and its config."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; known: {sorted(REGULARIZERS)}")
    return REGULARIZERS[name](**config)


@dataclasses.dataclass
class WeightPenalty:
    """regularizer(params[param]), added to the loss; its gradient to the parameter's."""

    param: str
    regularizer: object

    def value(self, net):
        return self.regularizer(net.params[self.param])

    def get_config(self):
        return _config(self, "param", self.param)


@dataclasses.dataclass
class ActivityPenalty:
    """regularizer(y) / N for the value y of ``node`` (N = y.shape[0]; 0 when N is 0),
    as Keras adds a layer's ``activity_regularizer``; its gradient flows back from the node."""

    node: str
    regularizer: object

    def value(self, net):
        y = net.values[self.node]
        return self.per_sample(self.regularizer(y), y)

    @staticmethod
    def per_sample(value, y):
        """Keras's ``divide_no_nan(value, batch size)`` (a scalar output is not divided)."""
        if y.ndim == 0:
            return value
        n = value.dtype.type(y.shape[0])
        return value / n if n else value.dtype.type(0)

    def gradient(self, y, dout=1):
        upstream = self.per_sample(np.asarray(dout, y.dtype), y)
        return self.regularizer.gradient(y, upstream)

    def get_config(self):
        return _config(self, "node", self.node)


def _config(penalty, kind, target):
    return {"kind": kind, "target": target,
            "regularizer": {"class": type(penalty.regularizer).__name__,
                            "config": penalty.regularizer.get_config()}}


def penalty_from_config(config):
    """The penalty ``get_config`` described."""
    regularizer = get(config["regularizer"]["class"], **config["regularizer"]["config"])
    kinds = {"param": WeightPenalty, "node": ActivityPenalty}
    if config.get("kind") not in kinds:
        raise ValueError(f"unknown penalty kind {config.get('kind')!r}")
    return kinds[config["kind"]](config["target"], regularizer)


def weight_decay_penalties(param_names, weight_decay_lambda):
    """The book's ``weight_decay_lambda``: a ``WeightDecay`` penalty on each named weight
    matrix (``["W1", "W2", ...]``, not the biases)."""
    return [WeightPenalty(name, WeightDecay(weight_decay_lambda)) for name in param_names]


__all__ = ["ActivityPenalty", "L1", "L1L2", "L2", "REGULARIZERS", "WeightDecay",
           "WeightPenalty", "get", "penalty_from_config", "weight_decay_penalties"]
