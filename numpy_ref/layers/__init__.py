"""Layers: a forward pass with its backward pass right next to it.

``base`` holds the protocol every layer follows (``Layer``) and the book's layers
(``Affine``, ``Relu``, ``SoftmaxWithLoss``, ...), re-exported here; the Keras twins
live in modules named for what they hold: ``core`` (``Dense``, ``Flatten``, ...),
``activations`` (the registry, and the common ones) with ``piecewise`` and ``smooth``,
``merge``, ``conv`` and ``im2col`` (2-D), ``conv_nd`` and ``conv_transpose`` (1-D to 3-D:
grouped, depthwise, separable, transposed), ``pooling`` (1-D to 3-D, global) and
``adaptive_pooling``, ``reshaping`` (crop, pad, upsample, permute, repeat),
``resampling`` (bilinear and nearest resizing), ``dropout`` and ``noise`` (Gaussian
noise and dropout, alpha dropout), ``normalization`` (batch, layer, RMS, group, unit),
``prelu``, ``preprocessing`` (Normalization, the augmentation layers in inference),
``encoding`` (Discretization, CategoryEncoding), ``dot``, ``spectral``
(SpectralNormalization), ``contrast`` (AutoContrast, Equalization), ``elementwise``
(the ``keras.ops`` arithmetic a functional model applies between layers) and
``applications`` (the layers keras.applications defines for itself).
"""

from numpy_ref.layers.base import (LAYER_CLASSES, AddLayer, Affine, BookWeightNames, Layer,
                                   MeanSquaredErrorLoss, MulLayer, Relu, Sigmoid,
                                   SoftmaxWithLoss, Tanh, class_key, set_kernel_and_bias)

__all__ = ["LAYER_CLASSES", "AddLayer", "Affine", "BookWeightNames", "Layer",
           "MeanSquaredErrorLoss", "MulLayer", "Relu", "Sigmoid", "SoftmaxWithLoss", "Tanh",
           "class_key", "set_kernel_and_bias"]
