"""Batch normalization twice: the book's layer and the twin of ``keras.layers.BatchNormalization``.

Book, ``BatchNormalization(gamma, beta, momentum=0.9)``: each feature of the
input flattened per sample, (N, D) (a (N, C, H, W) input is (N, C*H*W)):
    training   mu, var = mean(x), mean((x - mu)^2) over the batch;
               running = momentum * running + (1 - momentum) * batch statistic
    inference  mu, var = running_mean, running_var
    y = gamma * (x - mu) / sqrt(var + 10e-7) + beta
Keras, ``KerasBatchNormalization``: one feature per index of ``axis``, the
statistics over every other axis, as ``tf.nn.moments`` and
``tf.nn.batch_normalization`` compute them:
    inv = rsqrt(var + epsilon) * gamma;  y = x * inv + (beta - mean * inv)
    moving = moving * momentum + batch statistic * (1 - momentum)

Then the twins of Keras's per-sample normalisations, which have no state: layer, RMS,
group (``KerasGroupNormalization``) and unit-norm (``KerasUnitNormalization``).
"""

import math

import numpy as np

from numpy_ref import layers as L
from numpy_ref.layers.dropout import training_mode

BOOK_EPSILON = 10e-7  # written so in the book: 1e-6


class BatchNormalization(L.Layer):
    """The book's batch normalization (Ioffe and Szegedy 2015), statistics per flattened feature.

    ``gamma`` and ``beta`` (D,) are used as given; the running statistics (zeros
    like ``gamma`` when not given, as the book starts them) live in ``state``
    and are updated in place by every training pass. ``forward(x, train_flg)``
    is the book's call, ``training=`` is accepted too; the default is the
    book's (training).
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        super().__init__()
        self.params["gamma"], self.params["beta"] = np.asarray(gamma), np.asarray(beta)
        self.momentum = momentum
        for key, value in (("running_mean", running_mean), ("running_var", running_var)):
            self.state[key] = np.zeros_like(self.params["gamma"]) if value is None else value

    # The book's attribute names, views onto the dicts.
    gamma = property(lambda self: self.params["gamma"])
    beta = property(lambda self: self.params["beta"])
    dgamma = property(lambda self: self.grads.get("gamma"))
    dbeta = property(lambda self: self.grads.get("beta"))
    running_mean = property(lambda self: self.state["running_mean"])
    running_var = property(lambda self: self.state["running_var"])

    def forward(self, x, train_flg=True, training=None):
        self.train_flg = training_mode(train_flg, training)
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)  # (N, D)
        if self.train_flg:
            mu = x.mean(axis=0)
            self.xc = x - mu
            var = np.mean(self.xc ** 2, axis=0)
            self.std = np.sqrt(var + BOOK_EPSILON)
            m = self.momentum
            self.running_mean[...] = m * self.running_mean + (1 - m) * mu
            self.running_var[...] = m * self.running_var + (1 - m) * var
        else:
            self.xc = x - self.running_mean
            self.std = np.sqrt(self.running_var + BOOK_EPSILON)
        self.xn = self.xc / self.std
        self.batch_size = x.shape[0]
        return (self.gamma * self.xn + self.beta).reshape(self.input_shape)

    def backward(self, dout):
        """Back through y = gamma * xn + beta, xn = xc / std and, in training mode,
        std = sqrt(mean(xc^2) + eps) and xc = x - mean(x)."""
        dout = dout.reshape(self.xn.shape)
        self.grads["beta"] = dout.sum(axis=0)
        self.grads["gamma"] = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        if self.train_flg:  # the batch statistics depend on x too
            n, xc, std = self.batch_size, self.xc, self.std
            dstd = -np.sum(dxn * xc / (std * std), axis=0)
            dvar = 0.5 * dstd / std
            dxc = dxc + (2.0 / n) * xc * dvar
            dxc = dxc - np.sum(dxc, axis=0) / n  # through mu
        return dxc.reshape(self.input_shape)


class KerasBatchNormalization(L.Layer):
    """The twin of ``keras.layers.BatchNormalization`` (``axis`` an int).

    Args:
        moving_mean, moving_variance: (C,), C the size of ``axis``; in ``state``,
            updated in place by each training pass.
        gamma, beta: (C,), or None (Keras ``scale=False`` / ``center=False``).
        trainable: False is a frozen Keras layer: always the moving statistics,
            and gamma and beta are state, not parameters.

    It computes in ``result_type(x.dtype, float32)`` as Keras does (float16 is
    upcast), returns x's dtype, and updates the moving statistics in their own.
    Batch 1 in training mode: the variance is 0 and the output is beta.
    """

    def __init__(self, moving_mean, moving_variance, gamma=None, beta=None, axis=-1,
                 momentum=0.99, epsilon=1e-3, trainable=True):
        super().__init__()
        self.axis, self.momentum, self.epsilon = int(axis), momentum, epsilon
        self.trainable = trainable
        weights = self.params if trainable else self.state
        for key, value in (("gamma", gamma), ("beta", beta)):
            if value is not None:
                weights[key] = np.asarray(value)
        self.state["moving_mean"] = moving_mean
        self.state["moving_variance"] = moving_variance

    gamma = property(lambda self: self.params.get("gamma", self.state.get("gamma")))
    beta = property(lambda self: self.params.get("beta", self.state.get("beta")))

    def forward(self, x, training=False):
        work = np.result_type(x.dtype, np.float32)
        axis = self.axis % x.ndim
        size = self.state["moving_mean"].shape[0]
        if x.shape[axis] != size:
            raise ValueError(f"KerasBatchNormalization(axis={self.axis}) expects {size} "
                             f"features on that axis. Received: input shape {x.shape}")
        self.x_dtype, self.axes = x.dtype, tuple(i for i in range(x.ndim) if i != axis)
        self.shape = tuple(size if i == axis else 1 for i in range(x.ndim))  # broadcasts (C,)
        self.x = x.astype(work, copy=False)
        self.batch_stats = bool(training) and self.trainable
        if self.batch_stats:
            self.n = work.type(math.prod(x.shape[i] for i in self.axes))
            mean = np.mean(self.x, axis=self.axes)
            var = np.mean(np.square(self.x - mean.reshape(self.shape)), axis=self.axes)
            self._update_moving(mean, var, work)
        else:
            mean = self.state["moving_mean"].astype(work, copy=False)
            var = self.state["moving_variance"].astype(work, copy=False)
        self.mean, self.var = mean, var
        self.rs = 1 / np.sqrt(var + work.type(self.epsilon))  # TF's rsqrt
        gamma, beta = self._cast(self.gamma, work), self._cast(self.beta, work)
        self.inv = self.rs if gamma is None else self.rs * gamma
        shift = -mean * self.inv if beta is None else beta - mean * self.inv
        out = self.x * self.inv.reshape(self.shape) + shift.reshape(self.shape)
        return out.astype(x.dtype, copy=False)

    @staticmethod
    def _cast(value, dtype):
        return None if value is None else value.astype(dtype, copy=False)

    def _update_moving(self, mean, var, work):
        """moving = moving * momentum + statistic * (1 - momentum), in the computation's dtype
        (the scalars rounded once from double, as TF converts Python floats)."""
        keep, take = work.type(self.momentum), work.type(1.0 - self.momentum)
        for key, statistic in (("moving_mean", mean), ("moving_variance", var)):
            moving = self.state[key]
            np.copyto(moving, moving.astype(work) * keep + statistic * take, casting="unsafe")

    def backward(self, dout):
        """TF's gradient of the forward graph: through x * inv, the shift and, with batch
        statistics, through the mean and the variance (rsqrt' = -0.5 * rs^3)."""
        g = dout.astype(self.x.dtype, copy=False)
        dx = g * self.inv.reshape(self.shape)
        if not self.params and not self.batch_stats:
            return dx.astype(self.x_dtype, copy=False)
        gb = g.sum(axis=self.axes)
        d_inv = (g * self.x).sum(axis=self.axes) - self.mean * gb
        if "beta" in self.params:
            self.grads["beta"] = gb.astype(self.params["beta"].dtype, copy=False)
        if "gamma" in self.params:
            self.grads["gamma"] = (d_inv * self.rs).astype(self.params["gamma"].dtype,
                                                            copy=False)
        if self.batch_stats:
            gamma = self.gamma
            d_rs = d_inv if gamma is None else d_inv * gamma.astype(self.x.dtype, copy=False)
            d_var = -0.5 * (d_rs * self.rs) * (self.rs * self.rs)
            d_mean = -gb * self.inv
            centred = self.x - self.mean.reshape(self.shape)
            dx = (dx + (d_mean / self.n).reshape(self.shape)
                  + (2 * (d_var / self.n)).reshape(self.shape) * centred)
        return dx.astype(self.x_dtype, copy=False)


class _PerSampleNormalization(L.Layer):
    """What the layer and RMS normalisations share: statistics per sample over ``axis``,
    weights shaped like the normalised axes, their gradients summed over the others."""

    def _prepare(self, x):
        """Records the axes for ``x``, checks the weights' size; returns x in the
        computation's dtype (``result_type(x.dtype, float32)``, as Keras)."""
        axes = sorted({a % x.ndim for a in np.atleast_1d(self.axis)})
        self.x_dtype, self.axes = x.dtype, tuple(axes)
        self.others = tuple(i for i in range(x.ndim) if i not in axes)
        self.shape = tuple(x.shape[i] if i in axes else 1 for i in range(x.ndim))
        for key, value in self.params.items():
            if value.size != math.prod(self.shape):
                raise ValueError(f"{type(self).__name__}(axis={self.axis}) has {key} of "
                                 f"shape {value.shape}. Received: input shape {x.shape}")
        work = np.result_type(x.dtype, np.float32)
        self.n = work.type(math.prod(x.shape[i] for i in axes))
        return x.astype(work, copy=False)

    def _broadcast(self, key, dtype):
        value = self.params.get(key)
        return None if value is None else value.astype(dtype, copy=False).reshape(self.shape)

    def _param_grad(self, per_element, key):
        total = np.sum(per_element, axis=self.others) if self.others else per_element
        return total.reshape(self.params[key].shape).astype(self.params[key].dtype, copy=False)


class KerasLayerNormalization(_PerSampleNormalization):
    """The twin of ``keras.layers.LayerNormalization``: each sample normalised over ``axis``.

    Args:
        gamma, beta: the shape of the normalised axes, or None (Keras ``scale=False`` /
            ``center=False``; with ``rms_scaling`` Keras has no beta).
        axis: an int or a list of ints.
        epsilon: added to the variance (Keras's default 1e-3).
        rms_scaling: y = x * rsqrt(var + epsilon) * gamma, no centring (Keras uses the
            variance here too, not the mean square).

    As ``keras.ops.layer_normalization`` on TensorFlow: mean and variance over the
    axes (``tf.nn.moments``), inv = rsqrt(var + epsilon) * gamma, y = x * inv +
    (beta - mean * inv), computed in ``result_type(x.dtype, float32)`` and returned
    in x's dtype. The statistics are per sample: no state, the same in training and
    inference.
    """

    def __init__(self, gamma=None, beta=None, axis=-1, epsilon=1e-3, rms_scaling=False):
        super().__init__()
        self.axis = [int(a) for a in axis] if np.ndim(axis) else int(axis)
        self.epsilon, self.rms_scaling = epsilon, bool(rms_scaling)
        for key, value in (("gamma", gamma), ("beta", beta)):
            if value is not None:
                self.params[key] = np.asarray(value)

    def get_config(self):
        """gamma and beta are weights, in ``params`` where the layer has them."""
        return {"axis": self.axis, "epsilon": self.epsilon, "rms_scaling": self.rms_scaling}

    def forward(self, x, training=False):
        self.x = self._prepare(x)
        work = self.x.dtype
        self.mean = np.mean(self.x, axis=self.axes, keepdims=True)
        self.centred = self.x - self.mean
        var = np.mean(np.square(self.centred), axis=self.axes, keepdims=True)
        self.rs = 1 / np.sqrt(var + work.type(self.epsilon))  # TF's rsqrt
        gamma, beta = (self._broadcast(key, work) for key in ("gamma", "beta"))
        if self.rms_scaling:
            out = self.x * self.rs
            out = out if gamma is None else out * gamma
        else:
            self.inv = self.rs if gamma is None else self.rs * gamma
            shift = -self.mean * self.inv if beta is None else -self.mean * self.inv + beta
            out = self.x * self.inv + shift
        return out.astype(x.dtype, copy=False)

    def backward(self, dout):
        """The gradient of the forward graph: through x's direct term and through the
        mean and the variance (rsqrt' = -0.5 * rs^3); gamma and beta summed over
        every axis but the normalised ones."""
        g = dout.astype(self.x.dtype, copy=False)
        gamma = self._broadcast("gamma", self.x.dtype)
        if "beta" in self.params:
            self.grads["beta"] = self._param_grad(g, "beta")
        if self.rms_scaling:
            if gamma is not None:
                self.grads["gamma"] = self._param_grad(g * self.x * self.rs, "gamma")
            gx = g if gamma is None else g * gamma
            d_rs = np.sum(gx * self.x, axis=self.axes, keepdims=True)
            dx = gx * self.rs
        else:
            if gamma is not None:
                self.grads["gamma"] = self._param_grad(g * self.centred * self.rs, "gamma")
            gx = g if gamma is None else g * gamma
            d_rs = np.sum(gx * self.centred, axis=self.axes, keepdims=True)
            dx = g * self.inv
            dx = dx - np.sum(g * self.inv, axis=self.axes, keepdims=True) / self.n
        d_var = -0.5 * d_rs * (self.rs * self.rs * self.rs)
        dx = dx + (2 * d_var / self.n) * self.centred
        return dx.astype(self.x_dtype, copy=False)


class KerasRMSNormalization(_PerSampleNormalization):
    """The twin of ``keras.layers.RMSNormalization``: y = x * rsqrt(mean(x^2) + epsilon) * scale,
    the mean over ``axis`` per sample, as ``keras.ops.rms_normalization`` computes it (in
    ``result_type(x.dtype, float32)``, returned in x's dtype). ``scale`` has the shape of
    the normalised axes."""

    def __init__(self, scale, axis=-1, epsilon=1e-6):
        super().__init__()
        self.params["scale"] = np.asarray(scale)
        self.axis = [int(a) for a in axis] if np.ndim(axis) else int(axis)
        self.epsilon = epsilon

    def forward(self, x, training=False):
        self.x = self._prepare(x)
        work = self.x.dtype
        self.scale_b = self._broadcast("scale", work)
        mean_square = np.mean(np.square(self.x), axis=self.axes, keepdims=True)
        self.rrms = 1 / np.sqrt(mean_square + work.type(self.epsilon))  # TF's rsqrt
        return (self.x * self.rrms * self.scale_b).astype(x.dtype, copy=False)

    def backward(self, dout):
        g = dout.astype(self.x.dtype, copy=False)
        self.grads["scale"] = self._param_grad(g * self.x * self.rrms, "scale")
        gx = g * self.scale_b
        d_rrms = np.sum(gx * self.x, axis=self.axes, keepdims=True)
        d_mean_square = -0.5 * d_rrms * (self.rrms * self.rrms * self.rrms)
        dx = gx * self.rrms + (2 * d_mean_square / self.n) * self.x
        return dx.astype(self.x_dtype, copy=False)


class KerasGroupNormalization(L.Layer):
    """The twin of ``keras.layers.GroupNormalization``: the ``axis`` channels (C) are split
    into ``groups`` (G) of C/G, and each sample is normalised per group over the group's
    channels and every other non-batch axis.

    x is reshaped so that the channel axis becomes (G, C/G), the statistics taken over
    every axis but the batch and G (``tf.nn.moments``), then, as Keras computes in
    ``result_type(x.dtype, float32)`` and returns in x's dtype:
        inv = rsqrt(var + epsilon) * gamma;  y = x * inv + (beta - mean * inv)
    gamma and beta (C,) or None (Keras ``scale=False`` / ``center=False``). No state:
    the same in training and inference.
    """

    def __init__(self, groups, gamma=None, beta=None, axis=-1, epsilon=1e-3):
        super().__init__()
        self.groups, self.axis, self.epsilon = int(groups), int(axis), epsilon
        for key, value in (("gamma", gamma), ("beta", beta)):
            if value is not None:
                self.params[key] = np.asarray(value)

    def get_config(self):
        return {"groups": self.groups, "axis": self.axis, "epsilon": self.epsilon}

    def _grouped_shapes(self, shape):
        """The grouped shape of x, the reduced axes of it, and the weights' broadcast shape."""
        axis = self.axis % len(shape)
        channels = shape[axis]
        if axis == 0 or channels % self.groups:
            raise ValueError(f"KerasGroupNormalization(groups={self.groups}, axis={self.axis}) "
                             f"cannot split axis {axis} of the input. Received: input shape "
                             f"{shape}")
        grouped = (*shape[:axis], self.groups, channels // self.groups, *shape[axis + 1:])
        reduced = tuple(i for i in range(1, len(grouped)) if i != axis)
        weights = tuple(size if i in (axis, axis + 1) else 1 for i, size in enumerate(grouped))
        return grouped, reduced, weights

    def forward(self, x, training=False):
        grouped, self.axes, self.weight_shape = self._grouped_shapes(x.shape)
        self.x_shape, self.x_dtype = x.shape, x.dtype
        work = np.result_type(x.dtype, np.float32)
        self.x = x.reshape(grouped).astype(work, copy=False)
        self.n = work.type(math.prod(grouped[i] for i in self.axes))
        self.mean = np.mean(self.x, axis=self.axes, keepdims=True)
        self.centred = self.x - self.mean
        var = np.mean(np.square(self.centred), axis=self.axes, keepdims=True)
        self.rs = 1 / np.sqrt(var + work.type(self.epsilon))  # TF's rsqrt
        gamma, beta = (self._broadcast(key, work) for key in ("gamma", "beta"))
        self.inv = self.rs if gamma is None else self.rs * gamma
        shift = -self.mean * self.inv
        shift = shift if beta is None else shift + beta
        out = self.x * self.inv + shift
        return out.reshape(x.shape).astype(x.dtype, copy=False)

    def _broadcast(self, key, dtype):
        value = self.params.get(key)
        return None if value is None else value.astype(dtype, copy=False).reshape(
            self.weight_shape)

    def _weight_grad(self, per_element, key):
        keep = [i for i, size in enumerate(self.weight_shape) if size != 1]
        total = np.sum(per_element, axis=tuple(i for i in range(per_element.ndim)
                                               if i not in keep))
        return total.reshape(self.params[key].shape).astype(self.params[key].dtype, copy=False)

    def backward(self, dout):
        """Through x's direct term, the mean (the shift) and the variance (rsqrt' =
        -0.5 * rs^3; tf.nn.moments stops the gradient of the mean inside the variance)."""
        g = dout.reshape(self.x.shape).astype(self.x.dtype, copy=False)
        gamma = self._broadcast("gamma", self.x.dtype)
        if "beta" in self.params:
            self.grads["beta"] = self._weight_grad(g, "beta")
        if gamma is not None:
            self.grads["gamma"] = self._weight_grad(g * self.centred * self.rs, "gamma")
        gx = g if gamma is None else g * gamma
        d_rs = np.sum(gx * self.centred, axis=self.axes, keepdims=True)
        d_var = -0.5 * d_rs * (self.rs * self.rs * self.rs)
        dx = g * self.inv - np.sum(g * self.inv, axis=self.axes, keepdims=True) / self.n
        dx = dx + (2 * d_var / self.n) * self.centred
        return dx.reshape(self.x_shape).astype(self.x_dtype, copy=False)


class KerasUnitNormalization(L.Layer):
    """The twin of ``keras.layers.UnitNormalization``: each sample scaled to unit L2 norm over
    ``axis`` (an int or a list), as ``keras.ops.normalize`` computes it:
        inv = min(rsqrt(sum(x^2)), 1 / 1e-12);  y = x * inv
    (a zero vector stays zero). dx = dout * inv + x * 2 * (-0.5 * rs^3) * sum(dout * x),
    the second term only where rsqrt won the minimum (TensorFlow's Minimum gradient).
    """

    EPSILON = 1e-12

    def __init__(self, axis=-1):
        super().__init__()
        self.axis = [int(a) for a in axis] if np.ndim(axis) else int(axis)

    def forward(self, x, training=False):
        self.x = x
        self.axes = tuple(sorted({a % x.ndim for a in np.atleast_1d(self.axis)}))
        square_sum = np.sum(np.square(x), axis=self.axes, keepdims=True)
        with np.errstate(divide="ignore"):
            self.rs = 1 / np.sqrt(square_sum)  # TF's rsqrt: inf at 0
        cap = x.dtype.type(1.0 / self.EPSILON)
        self.uses_rs = self.rs <= cap
        self.inv = np.minimum(self.rs, cap)
        return x * self.inv

    def backward(self, dout):
        dx = dout * self.inv
        d_inv = np.sum(dout * self.x, axis=self.axes, keepdims=True)
        with np.errstate(invalid="ignore"):  # inf * 0 at a zero vector, where the cap won
            d_square_sum = np.where(self.uses_rs, -0.5 * d_inv * (self.rs * self.rs * self.rs),
                                    0)
        return dx + (2 * self.x) * d_square_sum.astype(dx.dtype, copy=False)


__all__ = ["BOOK_EPSILON", "BatchNormalization", "KerasBatchNormalization",
           "KerasGroupNormalization", "KerasLayerNormalization", "KerasRMSNormalization",
           "KerasUnitNormalization"]
