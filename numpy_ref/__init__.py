"""From-scratch NumPy twins of the project's networks (no TensorFlow here).

Bottom-up, what a learner reads:

    functions.py     pure math: step, sigmoid, ReLU, softmax, cross-entropy, Keras's activations
    gradient.py      numerical differentiation and gradient descent
    perceptron.py    AND, NAND, OR, XOR
    layers/          forward/backward pairs: the book's (base), Keras's core, activations
                     (with piecewise, smooth), merge, conv and im2col, pooling, dropout,
                     normalization
    losses/          Keras's losses (crossentropy, regression, divergence, hinge) and
                     the penalties a network adds (regularizers)
    network/         the graph (node, arrays, graph), saving it (config, serialization),
                     chains of layers (chain) and the book's networks (networks)
    optim/           Keras's optimizers, learning-rate schedules, Keras's scalar rounding
    training.py      the one epoch loop, ``fit``, ``evaluate``, ``train_step``
    book/            the book's ``common`` and ``dataset`` packages on these modules

and beside it, the speed path: ``fast/`` (``TrainStep``: the same numbers, bit for
bit, in fewer NumPy calls; flat buffers, kernels, BLAS threads).
"""
