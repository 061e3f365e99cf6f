"""The book's ch08 ``DeepConvNet``: six 3x3 convolutions, three poolings, dropout; over 99%.

    conv - relu - conv - relu - pool -
    conv - relu - conv - relu - pool -
    conv - relu - conv - relu - pool -
    affine - relu - dropout - affine - dropout - softmax
"""

from collections import OrderedDict

import numpy as np

from numpy_ref.network.chain import ClassifierNet, random_weight
from numpy_ref.book.layers import Affine, Convolution, Dropout, Pooling, Relu


def _conv(filter_num, pad, stride=1, filter_size=3):
    return {"filter_num": filter_num, "filter_size": filter_size, "pad": pad, "stride": stride}


# The book's defaults; its fourth convolution pads by 2, which makes the third pooling
# output 64 x 4 x 4 on a 28 x 28 image.
DEFAULT_CONV_PARAMS = (_conv(16, 1), _conv(16, 1), _conv(32, 1), _conv(32, 2), _conv(64, 1),
                       _conv(64, 1))
POOLED_AFTER = (2, 4, 6)  # a 2x2, stride-2 max pooling follows these convolutions (1-based)


class DeepConvNet(ClassifierNet):
    """The book's deep convolutional network for (N, C, H, W) images.

    Args:
        input_dim: (C, H, W) of one image.
        conv_param_1 ... conv_param_6: dicts with 'filter_num', 'filter_size', 'pad',
            'stride', as in the book (defaults: 16, 16, 32, 32, 64, 64 filters of
            3x3, pad 1 but 2 for the fourth, stride 1).
        hidden_size, output_size: units of the two Affine layers.

    Parameters ``W1 b1 ... W6 b6`` (convolutions), ``W7 b7``, ``W8 b8`` (Affine),
    float64, He-initialised (std sqrt(2 / fan_in)) from NumPy's global generator,
    biases zero. The book takes the fan-ins and the first Affine's input size
    (64 x 4 x 4) as fixed numbers; here both follow from ``input_dim`` and the
    conv parameters, which gives the book's numbers for its defaults and a
    working network for other inputs (e.g. (3, 32, 32) for SVHN). ``layers`` is
    the book's list; ``predict(x, train_flg)``, ``loss`` in training mode (as the
    book's) and ``accuracy(x, t, batch_size=100)``.
    """

    def __init__(self, input_dim=(1, 28, 28), conv_param_1=None, conv_param_2=None,
                 conv_param_3=None, conv_param_4=None, conv_param_5=None, conv_param_6=None,
                 hidden_size=50, output_size=10):
        given = (conv_param_1, conv_param_2, conv_param_3, conv_param_4, conv_param_5,
                 conv_param_6)
        conv_params = [{**default, **(param or {})}
                       for default, param in zip(DEFAULT_CONV_PARAMS, given)]
        channels, height, width = input_dim
        layers = OrderedDict()
        for idx, param in enumerate(conv_params, start=1):
            size, pad, stride = param["filter_size"], param["pad"], param["stride"]
            shape = (param["filter_num"], channels, size, size)
            W = random_weight(shape, "he", channels * size * size)
            layers[f"Conv{idx}"] = Convolution(W, np.zeros(param["filter_num"]), stride, pad)
            layers[f"Relu{idx}"] = Relu()
            channels = param["filter_num"]
            height, width = ((n + 2 * pad - size) // stride + 1 for n in (height, width))
            if idx in POOLED_AFTER:
                layers[f"Pool{idx // 2}"] = Pooling(pool_h=2, pool_w=2, stride=2)
                height, width = height // 2, width // 2
        for idx, (fan_in, fan_out) in enumerate(
                ((channels * height * width, hidden_size), (hidden_size, output_size)), start=7):
            W = random_weight((fan_in, fan_out), "he", fan_in)
            layers[f"Affine{idx - 6}"] = Affine(W, np.zeros(fan_out))
            if idx == 7:
                layers["Relu7"] = Relu()
            layers[f"Dropout{idx - 6}"] = Dropout(0.5)
        super().__init__(layers)  # W1 b1 ... W6 b6 (the convolutions), W7 b7, W8 b8

    def loss(self, x, t, train_flg=True, training=None):
        """The batch's cross-entropy on a training-mode pass (dropout on), as the book's."""
        return super().loss(x, t, train_flg=train_flg, training=training)

    def accuracy(self, x, t, batch_size=100):
        """Fraction of correct arg-max predictions (dropout off), ``batch_size`` images
        at a time (a last, shorter batch included; the book's loop skips it)."""
        return super().accuracy(x, t, batch_size=batch_size)
