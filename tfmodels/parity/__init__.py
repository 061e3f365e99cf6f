"""Copies weights between a Keras model and its ``numpy_ref`` twin, checked.

The mapping is explicit: the i-th Dense layer of ``model.dense_layers``
(hidden layers in order, then the classifier) is the i-th Affine layer of the
NumPy network, and

    Keras ``dense_layers[i].kernel`` (D, M)  <->  NumPy ``params["W{i+1}"]`` (D, M)
    Keras ``dense_layers[i].bias``   (M,)    <->  NumPy ``params["b{i+1}"]`` (M,)

Both use ``x @ W + b``, so no transpose is needed. Every tensor's shape is
checked before anything is copied, and a mismatch names the layer.
"""

import numpy as np

from numpy_ref import networks
from tfmodels import models


def weight_mapping(model):
    """[(keras_variable, numpy_param_name), ...] in forward order."""
    pairs = []
    for i, layer in enumerate(model.dense_layers, start=1):
        if not layer.built:
            raise ValueError(f"{type(model).__name__} is not built: call it on a batch "
                             f"first so layer {layer.name!r} has weights")
        pairs.append((layer.kernel, f"W{i}"))
        pairs.append((layer.bias, f"b{i}"))
    return pairs


def _check_shapes(model, net, pairs):
    if len(pairs) != len(net.params):
        raise ValueError(f"{type(model).__name__} has {len(pairs)} weight tensors "
                         f"({len(model.dense_layers)} Dense layers) but the NumPy "
                         f"{type(net).__name__} has {len(net.params)} parameters "
                         f"({sorted(net.params)})")
    for variable, name in pairs:
        if name not in net.params:
            raise ValueError(f"Keras weight {variable.path!r} maps to NumPy parameter "
                             f"{name!r}, which {type(net).__name__} does not have")
        if tuple(variable.shape) != net.params[name].shape:
            raise ValueError(f"shape mismatch for Keras weight {variable.path!r} "
                             f"{tuple(variable.shape)} and NumPy {name} "
                             f"{net.params[name].shape}")


def _check_activations(model):
    output = getattr(model, "output_activation", "softmax")
    if output not in ("softmax", None):
        raise ValueError(f"numpy_ref twins end in softmax (or logits); "
                         f"{type(model).__name__} has output_activation={output!r}")


def keras_to_numpy(model, loss_variant="logits"):
    """A ``numpy_ref`` network holding copies of the built Keras model's weights.

    ``models.TwoLayerNet`` becomes ``networks.TwoLayerNet``, any other Dense
    stack (``Mymodel``) a ``networks.MultiLayerNet``, in the Keras weights'
    dtype. ``loss_variant`` picks the NumPy loss; the default 'logits' is what
    Keras's ``SparseCategoricalCrossentropy`` computes on the output of these
    models' softmax layer (it reads the logits cached on that tensor, eager and
    in ``tf.function`` alike). See ``numpy_ref.layers.SoftmaxWithLoss``.
    """
    _check_activations(model)
    pairs = weight_mapping(model)
    sizes = [pairs[0][0].shape[0]] + [layer.units for layer in model.dense_layers]
    dtype = np.dtype(pairs[0][0].dtype)
    if isinstance(model, models.TwoLayerNet):
        net = networks.TwoLayerNet(sizes[0], sizes[1], sizes[2], activation=model.activation,
                                   dtype=dtype, loss_variant=loss_variant)
    else:
        net = networks.MultiLayerNet(sizes[0], sizes[1:-1], sizes[-1],
                                     activation=model.activation, dtype=dtype,
                                     loss_variant=loss_variant)
    _check_shapes(model, net, pairs)
    for variable, name in pairs:
        net.params[name] = np.asarray(variable.numpy(), dtype=dtype)
    return net


def numpy_to_keras(net, model):
    """Copies ``net``'s parameters into the built Keras ``model``; returns the model.

    Values are cast to each Keras variable's dtype. Nothing is assigned unless
    every shape matches.
    """
    _check_activations(model)
    pairs = weight_mapping(model)
    _check_shapes(model, net, pairs)
    for variable, name in pairs:
        variable.assign(np.asarray(net.params[name], dtype=variable.dtype))
    return model


def keras_loss_and_gradient(model, x, t, loss_object=None):
    """Keras's loss and its gradients, keyed like the NumPy ``params``.

    The loss defaults to ``SparseCategoricalCrossentropy`` in the model's
    weight dtype (a Keras loss otherwise computes in float32, which would round
    a float64 model's loss and gradients). Returns ``(loss, {"W1": ..., ...})``
    as NumPy values, directly comparable with ``net.loss_and_gradient(x, t)``.
    """
    import tensorflow as tf  # this module is imported with TF anyway, via models

    if loss_object is None:
        loss_object = tf.keras.losses.SparseCategoricalCrossentropy(
            dtype=model.dtype_policy.variable_dtype)
    pairs = weight_mapping(model)
    with tf.GradientTape() as tape:
        loss = loss_object(t, model(x, training=True))
    grads = tape.gradient(loss, [variable for variable, _ in pairs])
    return float(loss), {name: g.numpy() for (_, name), g in zip(pairs, grads)}


def compare(model, net, x, t):
    """Largest absolute differences between a Keras model and its NumPy twin.

    Returns a dict: ``output`` (probabilities), ``loss``, and one entry per
    parameter name for its gradient. The first place to look when a Keras
    model and the transparent NumPy version disagree.
    """
    keras_out = model(x, training=False).numpy()
    keras_loss, keras_grads = keras_loss_and_gradient(model, x, t)
    net_loss, net_grads = net.loss_and_gradient(x, t)
    report = {"output": float(np.max(np.abs(keras_out - net.predict_proba(x)))),
              "loss": abs(keras_loss - float(net_loss))}
    for name, grad in net_grads.items():
        report[name] = float(np.max(np.abs(keras_grads[name] - grad)))
    return report
