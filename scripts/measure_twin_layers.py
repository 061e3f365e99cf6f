"""Prints the largest float64 differences between each convolution, pooling, dropout and
normalization layer (and Dense with Keras's L1/L2 regularizers) and its twin, over a
few configurations each, of the kinds the parity tests check.

    .venv/bin/python scripts/measure_twin_layers.py

Each layer sits in a small model (``test_twin_conv.model_around``: the layer, Flatten,
Dense softmax) and goes through ``tfmodels.parity.compare``; a row reports the largest
relative difference (to the largest |value| of each tensor) over every output, the
gradients at outputs and inputs and the weight gradients. Dropout and batch normalization
run in training mode (Keras's masks, batch statistics) and in inference; for batch
normalization the moving statistics after the training step are compared too.
"""

import os
import pathlib
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# model_around and batch are test_twin_conv's, the model each parity test puts a layer in:
# tests/ is on the path under pytest, and must be here.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import keras  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from test_twin_conv import batch, model_around  # noqa: E402  pylint: disable=wrong-import-position
from tfmodels import parity  # noqa: E402  pylint: disable=wrong-import-position

L = keras.layers
F64 = "float64"

CONFIGS = {
    "Conv2D": [(dict(filters=4, kernel_size=3), (7, 7, 2)),
               (dict(filters=3, kernel_size=(2, 3), strides=2, padding="same"), (8, 7, 3)),
               (dict(filters=2, kernel_size=3, dilation_rate=2, use_bias=False), (9, 9, 1)),
               (dict(filters=30, kernel_size=5, activation="relu"), (28, 28, 1))],
    "MaxPooling2D": [(dict(pool_size=2), (6, 6, 2)), (dict(pool_size=3, strides=2,
                                                           padding="same"), (7, 8, 2))],
    "AveragePooling2D": [(dict(pool_size=2), (6, 6, 2)), (dict(pool_size=3, strides=2,
                                                               padding="same"), (7, 8, 2))],
    "GlobalAveragePooling2D": [(dict(), (5, 6, 3)), (dict(keepdims=True), (5, 6, 3))],
    "GlobalMaxPooling2D": [(dict(), (5, 6, 3))],
    "ZeroPadding2D": [(dict(padding=1), (4, 5, 2)), (dict(padding=((0, 2), (3, 1))), (4, 5, 2))],
    "Dropout": [(dict(rate=0.5, seed=1), (12,)), (dict(rate=0.3, noise_shape=(None, 1, 3),
                                                       seed=2), (4, 3))],
    "Dense": [(dict(units=4, kernel_regularizer=keras.regularizers.L2(0.01)), (6,)),
              (dict(units=4, kernel_regularizer=keras.regularizers.L1L2(0.01, 0.02),
                    activity_regularizer=keras.regularizers.L2(0.1)), (6,))],
    "LayerNormalization": [(dict(gamma_initializer="random_normal",
                                 beta_initializer="random_normal"), (6,)),
                           (dict(axis=[1, 2], gamma_initializer="random_normal"), (3, 4))],
    "RMSNormalization": [(dict(), (6,)), (dict(axis=[1, 2], epsilon=0.1), (3, 4))],
    "BatchNormalization": [(dict(), (6,)), (dict(axis=-1), (4, 4, 3)),
                           (dict(momentum=0.5, epsilon=0.1, center=False), (3, 4))],
}


def differences(report):
    found = [report.loss["difference"], *report.input_gradients.values()]
    for row in report.rows:
        found += [row.forward, *row.weights.values()]
        found += [] if row.backward is None else [row.backward]
    return found


def measure(name, kwargs, shape, training):
    keras.utils.set_random_seed(0)
    layer = getattr(L, name)(dtype=F64, **kwargs)
    model = model_around(layer, shape, F64)
    x, y = batch(shape, F64, n=5)
    net = parity.twin(model)
    report = parity.compare(model, x, y, training=training, net=net)
    worst = max(d.rel for d in differences(report))
    if name == "BatchNormalization" and training:  # the moving statistics after the step
        for variable in model.non_trainable_weights:
            keras_value = variable.numpy()
            scale = max(np.max(np.abs(keras_value)), 1e-300)
            worst = max(worst, float(np.max(np.abs(net.state[variable.path] - keras_value))
                                     / scale))
    return report.ok, worst


def main():
    warnings.simplefilter("ignore", UserWarning)
    for name, configs in CONFIGS.items():
        modes = (False, True) if name in ("Dropout", "BatchNormalization") else (False,)
        results = [measure(name, kwargs, shape, training)
                   for kwargs, shape in configs for training in modes]
        ok = all(r[0] for r in results)
        print(f"{name:24s} {len(results)} cases, all agree: {ok}, largest relative "
              f"difference {max(r[1] for r in results):.1e}")


if __name__ == "__main__":
    main()
