"""The book's ch07 ``SimpleConvNet``: conv - relu - pool - affine - relu - affine - softmax."""

from collections import OrderedDict

import numpy as np

from numpy_ref.network.chain import ClassifierNet, random_weight
from numpy_ref.book.layers import Affine, Convolution, Pooling, Relu

DEFAULT_CONV_PARAM = {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}


class SimpleConvNet(ClassifierNet):
    """The book's convolutional network for (N, C, H, W) images.

    Layers ``Conv1`` (filter_num filters of filter_size^2, the given stride and pad),
    ``Relu1``, ``Pool1`` (2x2 max pooling, stride 2), ``Affine1`` (to hidden_size),
    ``Relu2``, ``Affine2`` (to output_size); parameters ``W1 b1`` (convolution),
    ``W2 b2``, ``W3 b3``, float64, weights ``weight_init_std * N(0, 1)`` from NumPy's
    global generator, biases zero.

    Args:
        input_dim: (C, H, W) of one image.
        conv_param: dict with 'filter_num', 'filter_size', 'pad', 'stride' (a key
            left out takes the book's value: 30, 5, 0, 1).
        hidden_size, output_size: units of the two Affine layers.
        weight_init_std: the std of every weight (a number, or 'relu'/'he',
            'sigmoid'/'xavier' for the std from each layer's fan-in).
    """

    layers_by_name = True

    def __init__(self, input_dim=(1, 28, 28), conv_param=None, hidden_size=100, output_size=10,
                 weight_init_std=0.01):
        conv = {**DEFAULT_CONV_PARAM, **(conv_param or {})}
        channels, height, width = input_dim
        size, pad, stride = conv["filter_size"], conv["pad"], conv["stride"]
        conv_h, conv_w = ((n + 2 * pad - size) // stride + 1 for n in (height, width))
        pool_output_size = conv["filter_num"] * (conv_h // 2) * (conv_w // 2)

        fan_ins = (channels * size * size, pool_output_size, hidden_size)
        shapes = ((conv["filter_num"], channels, size, size), (pool_output_size, hidden_size),
                  (hidden_size, output_size))
        W1, W2, W3 = (random_weight(shape, weight_init_std, fan_in)
                      for shape, fan_in in zip(shapes, fan_ins))
        layers = OrderedDict([
            ("Conv1", Convolution(W1, np.zeros(shapes[0][0]), stride, pad)),
            ("Relu1", Relu()),
            ("Pool1", Pooling(pool_h=2, pool_w=2, stride=2)),
            ("Affine1", Affine(W2, np.zeros(hidden_size))),
            ("Relu2", Relu()),
            ("Affine2", Affine(W3, np.zeros(output_size))),
        ])
        super().__init__(layers)  # W1 b1 (Conv1), W2 b2 (Affine1), W3 b3 (Affine2)

    def accuracy(self, x, t, batch_size=100):
        """Fraction of correct arg-max predictions, computed ``batch_size`` images at a
        time (a last, shorter batch included; the book's loop skips it)."""
        return super().accuracy(x, t, batch_size=batch_size)
