"""The fast training step: ``training.train_step``'s numbers, bit for bit, in fewer NumPy calls.

``TrainStep(network, optimizer)(x, t)`` is one forward pass, one backward pass
and one optimizer update, as ``numpy_ref.training.train_step(network, optimizer,
x, t)`` computes them, with the speed-ups of this package:

- the network's weights laid end to end, one buffer per dtype (``pack_weights``;
  done at the first step, and again if a layer was given another array since);
- the gradients written into one buffer per dtype (by ``DenseKernel``s, or
  copied in), overwritten by every step;
- the graph's fast twin (``fast_network``): ReLU in place inside ``Dense``, the
  softmax of a classifier's logits made once for its output and its loss;
- the optimizer step once over each buffer (``FlatUpdate``).
"""

import operator

import numpy as np

from numpy_ref.fast.graph import fast_network, gradient_buffers, pack_weights
from numpy_ref.fast.optimizer import FlatUpdate


class TrainStep:
    """One training step of ``network`` (a ``numpy_ref.network.Network``) with ``optimizer``.

    Calling it returns the batch loss; ``last_output`` is the output of its forward pass.
    """

    def __init__(self, network, optimizer):
        self.network = network
        self.update = FlatUpdate(optimizer)
        self.graph = self._loss = self._weights = self._grads = None

    def _prepare(self):
        """Packs the weights, makes the gradient buffers and the fast graph."""
        pack_weights(self.network.params)
        self._loss = self.network.last_layer
        self._weights = [array for _, array in self.network.params.items()]
        self._grads = gradient_buffers(self.network.params)
        self.graph = fast_network(self.network, self._grads)

    def _stale(self, params):
        """Whether the network's weights (``params``, its ``(name, array)`` pairs) or loss are
        no longer those the fast graph was made for."""
        if self.graph is None or self._loss is not self.network.last_layer:
            return True
        return not all(map(operator.is_, map(operator.itemgetter(1), params), self._weights))

    def __call__(self, x, t):
        params = self.network.params.items()
        if self._stale(params):
            self._prepare()
            params = self.network.params.items()
        loss, grads = self.graph.loss_and_gradient(x, t)
        for name, buffer in self._grads.items():
            if grads[name] is not buffer:  # a gradient no kernel wrote into its buffer
                np.copyto(buffer, grads[name], casting="same_kind")
                grads[name] = buffer
        self.update(dict(params), grads)
        return loss

    @property
    def last_output(self):
        """The first output of the last step's forward pass."""
        return self.graph.last_output
