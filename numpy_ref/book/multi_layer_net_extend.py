"""The book's ``common/multi_layer_net_extend.py``: a MultiLayerNet with dropout and batch norm."""

from collections import OrderedDict

import numpy as np

from numpy_ref.book.layers import BatchNormalization, Dropout
from numpy_ref.book.multi_layer_net import activation_layer
from numpy_ref.network.chain import ClassifierNet, book_names, dense_stack


class MultiLayerNetExtend(ClassifierNet):
    """A fully connected net with the book's weight decay, dropout and batch normalization.

    Each hidden layer is ``Affine{i}``, then ``BatchNorm{i}`` (``use_batchnorm``;
    ``gamma{i}`` ones, ``beta{i}`` zeros, the book's momentum 0.9), then
    ``Activation_function{i}``, then ``Dropout{i}`` (``use_dropout``, ratio
    ``dropout_ration``, the book's spelling); the last is ``Affine{n+1}``.
    Parameters ``W{i} b{i}`` (and ``gamma{i} beta{i}``), float64, weights drawn
    from NumPy's global generator as ``MultiLayerNet`` draws them, so a seed gives
    both the same weights. ``gradient`` and ``numerical_gradient`` follow the
    book: both differentiate the training-mode loss (batch statistics; with
    dropout, fresh masks at every evaluation, so check gradients without it).

    Args: those of ``MultiLayerNet``, and
        use_dropout: a ``Dropout`` after every hidden activation.
        dropout_ration: the fraction of units each drops while training.
        use_batchnorm: a ``BatchNormalization`` between every hidden Affine and its
            activation.
    """

    layers_by_name = True

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False):
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list = list(hidden_size_list)
        self.hidden_layer_num = len(self.hidden_size_list)
        self.use_dropout, self.use_batchnorm = use_dropout, use_batchnorm
        sizes = [input_size, *self.hidden_size_list, output_size]
        stack = book_names(dense_stack(sizes, activation_layer(activation), weight_init_std),
                           "Activation_function")
        layers, param_names, state_names = OrderedDict(), {}, {}
        for name, layer in stack.items():
            hidden = name.startswith("Activation_function")  # after hidden layer idx
            idx = name.removeprefix("Activation_function")
            if hidden and use_batchnorm:
                width = self.hidden_size_list[int(idx) - 1]
                layers[f"BatchNorm{idx}"] = BatchNormalization(np.ones(width), np.zeros(width))
                param_names[f"BatchNorm{idx}"] = {"gamma": f"gamma{idx}", "beta": f"beta{idx}"}
                state_names[f"BatchNorm{idx}"] = {"running_mean": f"running_mean{idx}",
                                                  "running_var": f"running_var{idx}"}
            layers[name] = layer
            if hidden and use_dropout:
                layers[f"Dropout{idx}"] = Dropout(dropout_ration)
        super().__init__(layers, param_names=param_names, state_names=state_names,
                         weight_decay_lambda=weight_decay_lambda)

    def numerical_gradient(self, x, t, train_flg=True):
        """Central differences of the training-mode loss, as the book's (its ch06
        ``batch_norm_gradient_check.py`` compares them with ``gradient``)."""
        return super().numerical_gradient(x, t, train_flg=train_flg)
