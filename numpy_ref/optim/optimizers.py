"""Optimizers with Keras 3's formulas, defaults and rounding.

Each ``update(params, grads)`` changes the arrays in ``params`` in place, in
the same order of operations as ``keras/src/optimizers/*.py``, so a float64
step here equals a Keras step to the last bit (the shared options, clipping
and weight decay, are in ``numpy_ref.optim.base``). Keras details that matter:

- The learning rate lives in a float32 variable, and some hyperparameters go
  through ``ops.cast(python_float, var.dtype)``, which makes a float32 tensor
  first: those are float32-rounded even for float64 weights (``keras_cast``).
  Where Keras uses the Python float directly (``1 - beta_1``, ``epsilon``,
  ``rho``), it stays a double. A NumPy float keeps its dtype in both.
- Scalar powers are the C library's (``keras_scalars.scalar_pow``).

The book's versions differ (its RMSprop puts epsilon outside the square root,
its AdaGrad starts the accumulator at 0, its Adam corrects m and v separately);
these are the Keras forms. Slot names are Keras's (``momentum``, ``velocity``...).
"""

import numpy as np

from numpy_ref.optim.keras_scalars import keras_cast, scalar_pow
from numpy_ref.optim.base import Optimizer


class SGD(Optimizer):
    """Keras ``SGD``. Without momentum: param -= grad * lr. With momentum m:
    v = v * m - grad * lr; param += v (nesterov: param += v * m - grad * lr).
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **options):
        super().__init__(learning_rate, **options)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1]. Received: momentum={momentum}")
        self.momentum, self.nesterov = momentum, nesterov
        self.slots = {"momentum": 0.0} if momentum != 0 else {}

    def _step_constants(self, lr, dtype):
        return keras_cast(self.momentum, dtype)

    def update_step(self, param, grad, slots, lr, k):
        if "momentum" not in slots:
            param -= grad * lr
            return
        v = slots["momentum"]
        v[...] = v * k - grad * lr
        param += (v * k - grad * lr) if self.nesterov else v


class Momentum(SGD):
    """The book's Momentum: Keras ``SGD(momentum=0.9)``."""

    def __init__(self, learning_rate=0.01, momentum=0.9, **options):
        super().__init__(learning_rate, momentum=momentum, **options)


class Nesterov(SGD):
    """The book's Nesterov: Keras ``SGD(momentum=0.9, nesterov=True)``."""

    def __init__(self, learning_rate=0.01, momentum=0.9, **options):
        super().__init__(learning_rate, momentum=momentum, nesterov=True, **options)


class AdaGrad(Optimizer):
    """Keras ``Adagrad``: h += grad^2; param -= lr * grad / sqrt(h + eps).

    h starts at ``initial_accumulator_value`` (0.1, float32-rounded), not 0 as in the book.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **options):
        super().__init__(learning_rate, **options)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon
        self.slots = {"accumulator": initial_accumulator_value}

    def update_step(self, param, grad, slots, lr, k):
        h = slots["accumulator"]
        h += grad * grad
        param -= lr * grad / np.sqrt(h + self.epsilon)


class RMSprop(Optimizer):
    """Keras ``RMSprop``: v = rho v + (1 - rho) grad^2; param -= lr grad / sqrt(v + eps).

    Epsilon sits inside the square root (the book puts it outside). With
    ``momentum`` > 0 the increment feeds a momentum buffer first; ``centered``
    subtracts the square of a running mean gradient from v.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **options):
        super().__init__(learning_rate, **options)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered
        self.slots = {"velocity": 0.0}
        if momentum > 0:
            self.slots["momentum"] = 0.0
        if centered:
            self.slots["average_gradient"] = 0.0

    def update_step(self, param, grad, slots, lr, k):
        rho = self.rho
        v = slots["velocity"]
        v[...] = rho * v + (1 - rho) * (grad * grad)
        if self.centered:
            g_avg = slots["average_gradient"]
            g_avg[...] = rho * g_avg + (1 - rho) * grad
            denominator = v - g_avg * g_avg + self.epsilon
        else:
            denominator = v + self.epsilon
        increment = lr * grad / np.sqrt(denominator)
        if self.momentum > 0:
            buf = slots["momentum"]
            buf[...] = self.momentum * buf + increment
            param -= buf
        else:
            param -= increment


class Adam(Optimizer):
    """Keras ``Adam``, bias correction folded into the step size.

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)   (float32-rounded betas)
    m += (grad - m) * (1 - beta_1);  v += (grad^2 - v) * (1 - beta_2)
    amsgrad: v_hat = max(v_hat, v), used instead of v below
    param -= m * alpha / (sqrt(v) + epsilon)
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **options):
        super().__init__(learning_rate, **options)
        self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad
        self.slots = {"momentum": 0.0, "velocity": 0.0}
        if amsgrad:
            self.slots["velocity_hat"] = 0.0

    def _step_constants(self, lr, dtype):
        t = dtype.type(self.iterations + 1)
        beta_1_power = scalar_pow(keras_cast(self.beta_1, dtype), t, dtype)
        beta_2_power = scalar_pow(keras_cast(self.beta_2, dtype), t, dtype)
        one = dtype.type(1)
        return lr * np.sqrt(one - beta_2_power) / (one - beta_1_power)

    def update_step(self, param, grad, slots, lr, k):
        m, v = slots["momentum"], slots["velocity"]  # (like param)
        m += (grad - m) * (1 - self.beta_1)
        v += (grad * grad - v) * (1 - self.beta_2)
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            v_hat[...] = np.maximum(v_hat, v)
            v = v_hat
        alpha = k  # the step size, bias correction folded in (_step_constants)
        param -= m * alpha / (np.sqrt(v) + self.epsilon)


class AdamW(Adam):
    """Keras ``AdamW``: Adam with decoupled weight decay (default 0.004), applied
    before the step as ``param -= param * wd * lr``."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **options):
        if weight_decay is None:
            raise ValueError("AdamW needs a float weight_decay. Received: weight_decay=None")
        super().__init__(learning_rate, weight_decay=weight_decay, **options)


class Adamax(Optimizer):
    """Keras ``Adamax``: Adam with an infinity norm u instead of v.

    m += (grad - m) * (1 - beta_1);  u = max(beta_2 * u, |grad|)
    param -= lr * m / ((1 - beta_1^t) * (u + epsilon))   (float32-rounded beta_1)
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **options):
        super().__init__(learning_rate, **options)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.slots = {"momentum": 0.0, "norm": 0.0}

    def _step_constants(self, lr, dtype):
        t = dtype.type(self.iterations + 1)
        return dtype.type(1) - scalar_pow(keras_cast(self.beta_1, dtype), t, dtype)

    def update_step(self, param, grad, slots, lr, k):
        m = slots["momentum"]
        u = slots["norm"]
        m += (grad - m) * (1 - self.beta_1)
        u[...] = np.maximum(self.beta_2 * u, np.abs(grad))
        param -= lr * m / (k * (u + self.epsilon))


class Nadam(Optimizer):
    """Keras ``Nadam``: Adam with Nesterov momentum and a momentum schedule.

    u_t = beta_1 * (1 - 0.5 * 0.96^t); the product of the u_t so far is state
    (``u_product``, one scalar in the dtype of the first parameter, as Keras has it).
    m_hat = u_{t+1} m / (1 - prod_{t+1}) + (1 - u_t) grad / (1 - prod_t)
    param -= m_hat * lr / (sqrt(v / (1 - beta_2^t)) + epsilon)
    """

    SCALAR_STATE = ("iterations", "u_product")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **options):
        super().__init__(learning_rate, **options)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.slots = {"momentum": 0.0, "velocity": 0.0}
        self.u_product = None

    def _begin_step(self, work):
        # Keras updates the product once per step, with the Python floats 0.96
        # and beta_1 (not float32-rounded), before any parameter.
        if self.u_product is None:
            self.u_product = np.ones((), dtype=work[0][1].dtype)
        real = self.u_product.dtype.type
        t = real(self.iterations + 1)
        decay = real(1.0) - real(0.5) * scalar_pow(real(0.96), t, real)
        self.u_product = self.u_product * real(self.beta_1) * decay

    def _step_constants(self, lr, dtype):
        real = dtype.type
        decay, beta_1, beta_2 = (keras_cast(x, dtype) for x in (0.96, self.beta_1, self.beta_2))
        u_t, u_next = (beta_1 * (real(1.0) - real(0.5) * scalar_pow(decay, real(t), dtype))
                       for t in (self.iterations + 1, self.iterations + 2))
        product = keras_cast(self.u_product, dtype)
        beta_2_power = scalar_pow(beta_2, real(self.iterations + 1), dtype)
        return (u_t, u_next, product, product * u_next, beta_1, beta_2, beta_2_power)

    def update_step(self, param, grad, slots, lr, k):
        u_t, u_next, product, product_next, beta_1, beta_2, beta_2_power = k
        m = slots["momentum"]
        v = slots["velocity"]
        m += (grad - m) * (1 - beta_1)
        v += (grad * grad - v) * (1 - beta_2)
        m_hat = u_next * m / (1 - product_next) + (1 - u_t) * grad / (1 - product)
        v_hat = v / (1 - beta_2_power)
        param -= m_hat * lr / (np.sqrt(v_hat) + self.epsilon)


class Lion(Optimizer):
    """Keras ``Lion`` (float32-rounded betas):

    param -= lr * sign(m * beta_1 + grad * (1 - beta_1));  m = m * beta_2 + grad * (1 - beta_2)
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **options):
        super().__init__(learning_rate, **options)
        if not 0 < beta_1 <= 1:
            raise ValueError(f"beta_1 must be in (0, 1]. Received: beta_1={beta_1}")
        self.beta_1, self.beta_2 = beta_1, beta_2
        self.slots = {"momentum": 0.0}

    def _step_constants(self, lr, dtype):
        beta_1, beta_2 = keras_cast(self.beta_1, dtype), keras_cast(self.beta_2, dtype)
        return beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2

    def update_step(self, param, grad, slots, lr, k):
        beta_1, one_minus_beta_1, beta_2, one_minus_beta_2 = k
        m = slots["momentum"]
        param -= lr * np.sign(m * beta_1 + grad * one_minus_beta_1)
        m[...] = m * beta_2 + grad * one_minus_beta_2


class Adadelta(Optimizer):
    """Keras ``Adadelta``: with rms(x) = sqrt(x + epsilon),

    a = rho a + (1 - rho) grad^2;  delta = -rms(d) * grad / rms(a)
    d = rho d + (1 - rho) delta^2;  param += lr * delta
    """

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **options):
        super().__init__(learning_rate, **options)
        self.rho, self.epsilon = rho, epsilon
        self.slots = {"accumulated_grad": 0.0, "accumulated_delta_var": 0.0}

    def update_step(self, param, grad, slots, lr, k):
        rho, eps = self.rho, self.epsilon
        a = slots["accumulated_grad"]
        d = slots["accumulated_delta_var"]
        a[...] = rho * a + (1 - rho) * (grad * grad)
        delta = -(np.sqrt(d + eps) * grad / np.sqrt(a + eps))
        d[...] = rho * d + (1 - rho) * (delta * delta)
        param += lr * delta

