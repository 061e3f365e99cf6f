"""A network's fast twin: the same graph and the same weights, with kernels in its nodes.

``fast_network(network, grad_out)`` builds a ``Network`` over the same layers
(so the same ``params`` arrays), where a ``Dense`` used by one node is a
``DenseKernel`` writing its gradients into the buffers ``grad_out`` gives, and
a ``Softmax`` of the logits a sparse cross-entropy reads is computed once for
both (``SoftmaxCrossentropy``). A ``Conv2D`` is a ``ConvKernel``; one with a plain ReLU
whose output only a max pooling reads hands the ReLU to that pooling
(``numpy_ref.fast.conv``). Its ``loss_and_gradient`` is the network's, bit for bit; its
forward values are its own (``last_output``; a fused convolution's value is its output
before the ReLU).
"""

import dataclasses

import numpy as np

from numpy_ref.fast import conv as C
from numpy_ref.fast import flat
from numpy_ref.fast import kernels as K
from numpy_ref.layers import activations
from numpy_ref.network import Network


def pack_weights(params):
    """Lays the arrays of ``params`` (a network's ``ArrayView``) end to end, one buffer per
    dtype in ``params`` order, unless they already are: every layer holding one then holds a
    view of its stretch, with the same values. An array taken from a layer before is no
    longer the layer's afterwards."""
    named = dict(params.items())
    for dtype in dict.fromkeys(a.dtype for a in named.values()):
        group = {name: a for name, a in named.items() if a.dtype == dtype}
        if flat.span(list(group.values())) is not None:
            continue
        for name, view in flat.pack_by_dtype(group).items():
            for node, key in params.owners(name):
                node.layer.params[key] = view


def fast_network(network, grad_out):
    """The fast twin of ``network``; ``grad_out`` ({public name: array}) holds the buffers a
    kernel writes the gradient of a weight into (one no other layer shares)."""
    softmax = None
    nodes = []
    fused = fused_convolutions(network)
    for node in network.nodes:  # each node holds a layer of its own (Network checks it)
        layer = node.layer
        names = node.public_names("params")
        kernel = K.kernel_for(layer, {key: grad_out[name] for key, name in names.items()
                                      if len(network.params.owners(name)) == 1})
        if type(layer) is C.conv.Conv2D:
            kernel = C.ConvKernel(layer, fused=node.name in fused)
        elif node.inputs and node.inputs[0] in fused:
            kernel = C.MaxPoolKernel(layer)
        if (softmax is None and type(layer) is activations.Softmax and layer.axis == -1
                and node.inputs == [network.loss_input] and K.fusable(network.last_layer)):
            kernel = softmax = K.SoftmaxKernel(layer)
        layer = kernel or layer
        nodes.append(dataclasses.replace(node, layer=layer))
    loss = network.last_layer if softmax is None else K.SoftmaxCrossentropy(network.last_layer,
                                                                          softmax)
    return Network(nodes, network.inputs, network.outputs, loss, network.loss_input,
                   network.input_grad, network.penalties)


def fused_convolutions(network):
    """The names of the nodes whose ``Conv2D`` (with a plain ReLU) hands its ReLU to the
    max pooling that alone reads its output (``numpy_ref.fast.conv``): not an output,
    no Keras mask, no activity penalty on it."""
    readers = {}
    for node in network.nodes:
        for name in {*node.inputs, *_mask_sources(node)}:
            readers.setdefault(name, []).append(node)
    watched = {*network.outputs, network.loss_input,
               *(getattr(p, "node", None) for p in network.penalties)}
    fused = set()
    for node in network.nodes:
        after = readers.get(node.name, [])
        if (C.fusable_conv(node.layer) and node.name not in watched and node.output_mask is None
                and len(after) == 1 and after[0].inputs == [node.name] and not after[0].masks
                and C.fusable_pool(after[0].layer)):
            fused.add(node.name)
    return fused


def _mask_sources(node):
    return [s for v in (node.masks or {}).values()
            for s in (v if isinstance(v, list) else [v]) if s is not None]


def gradient_buffers(params):
    """{public name: zeros}: one buffer per dtype, in ``params`` order, for the gradients."""
    return flat.pack_by_dtype({name: np.zeros_like(a) for name, a in params.items()})
