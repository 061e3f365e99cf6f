"""The book's ``common/layers.py``: numpy_ref's layers under the book's names.

Each layer computes with the arrays it is given (``Affine(W, b)`` keeps ``W``
and ``b`` themselves, so updating ``params`` in place updates the layer) and has
the book's attributes (``W``, ``b``, ``dW``, ``db``; ``Convolution.col``,
``Pooling.arg_max``; ``Dropout.mask``; ``BatchNormalization.running_mean``).
``Dropout`` and ``BatchNormalization`` take the book's ``forward(x, train_flg=True)``;
the other layers' optional ``training`` flag changes nothing. As in the book, a star
import also brings the functions of ``common.functions`` and ``im2col``/``col2im``.

They round as the book's code does, so a book script prints the same numbers on either:
``Convolution`` adds its bias after the product and sums dout for db (numpy_ref's
layer, ``bias_in_product = False``), and ``SoftmaxWithLoss`` (its 'book' variant) divides
by the batch size.
"""

import numpy as np  # noqa: F401  (the book's module exports np to star imports)

from numpy_ref.book.functions import *  # noqa: F401,F403  (the book's layers.py does)
from numpy_ref.book.util import col2im, im2col  # noqa: F401
from numpy_ref.layers.conv import Convolution  # noqa: F401
from numpy_ref.layers.dropout import Dropout  # noqa: F401
from numpy_ref.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss  # noqa: F401
from numpy_ref.layers.normalization import BatchNormalization  # noqa: F401
from numpy_ref.layers.pooling import Pooling  # noqa: F401

