"""A network as JSON-able data and back: its graph, and the classes a saved file names.

``graph_config(net)`` describes the graph: each node's layer class (``class_key``),
layer config, wiring and public weight names, the loss and the penalties.
``graph_arguments(config, arrays)`` rebuilds the layers around given arrays and
returns the arguments of ``Network.__init__``.

A file names classes by module and name (``numpy_ref.layers.core.Dense``). Files
saved before a class moved (``numpy_ref.core.Dense``, ``numpy_ref.networks.TwoLayerNet``)
still load: a numpy_ref class is found by its name alone, and class names within
numpy_ref are unique. A class that was renamed keeps its old key in ``RENAMED``.
"""

import importlib
import pkgutil

from numpy_ref import layers as L
from numpy_ref.losses import regularizers as R
from numpy_ref.network.node import Node

NETWORK_CLASSES = {}  # "module.QualName" -> Network class, filled by Network.__init_subclass__
# Old class key -> the key of the class it became (filled where the class is defined).
RENAMED = {}


def graph_config(net):
    """The graph of ``net`` as JSON-able data: nodes (layer class and config), wiring, loss."""
    return {
        "inputs": net.inputs, "outputs": net.outputs, "loss_input": net.loss_input,
        "input_grad": net.input_grad,
        "nodes": [{"name": n.name, "inputs": n.inputs,
                   "class": L.class_key(type(n.layer)), "config": n.layer.get_config(),
                   "params": n.public_names("params"), "state": n.public_names("state"),
                   **({"training": n.training} if n.training is not None else {}),
                   **({"frozen": list(n.frozen)} if n.frozen else {}),
                   **({"masks": n.masks} if n.masks else {}),
                   **({"output_mask": n.output_mask} if n.output_mask else {})}
                  for n in net.nodes],
        "loss": None if net.last_layer is None else {
            "class": L.class_key(type(net.last_layer)),
            "config": net.last_layer.get_config()},
        "penalties": [p.get_config() for p in net.penalties],
    }


def graph_arguments(config, arrays):
    """The keyword arguments of ``Network.__init__`` that ``graph_config`` describes, the
    layers built around ``arrays`` (public name -> array; used, not copied).
    Raises ValueError on a bad config."""
    nodes = []
    for spec in config["nodes"]:
        frozen = tuple(spec.get("frozen", ()))
        weights = {kind: {key: _array(arrays, name) for key, name in spec[kind].items()}
                   for kind in ("params", "state")}
        params = {**weights["params"], **{key: weights["state"].pop(key) for key in frozen}}
        layer = layer_class(spec["class"]).from_config(spec["config"], params,
                                                       weights["state"])
        nodes.append(Node(spec["name"], layer, list(spec["inputs"]),
                          param_names=spec["params"], state_names=spec["state"],
                          training=spec.get("training"), frozen=frozen,
                          masks=spec.get("masks"), output_mask=spec.get("output_mask")))
    loss = config.get("loss")
    return {"nodes": nodes, "inputs": config["inputs"], "outputs": config["outputs"],
            "loss_layer": (None if loss is None else
                           layer_class(loss["class"]).from_config(loss["config"])),
            "loss_input": config["loss_input"], "input_grad": config["input_grad"],
            "penalties": [R.penalty_from_config(p) for p in config.get("penalties", ())]}


def layer_class(key):
    """The layer class a saved network names (``class_key``): one of numpy_ref's own, found
    by its class name wherever numpy_ref now keeps it (so files saved before a module moved
    still load), or another class already defined (imported) by the caller."""
    return _registered(key, L.LAYER_CLASSES, "layer")


def network_class(key):
    """The network class a saved network names, as ``layer_class`` finds layers."""
    return _registered(key, NETWORK_CLASSES, "network")


def _registered(key, classes, kind):
    if key in classes:
        return classes[key]
    if key.startswith("numpy_ref."):
        _import_numpy_ref()
        key = RENAMED.get(key, key)
        if key in classes:
            return classes[key]
        name = key.rsplit(".", 1)[-1]
        found = {cls for k, cls in classes.items()
                 if k.startswith("numpy_ref.") and cls.__name__ == name}
        if len(found) == 1:
            return found.pop()
    raise ValueError(f"unknown {kind} class {key!r}: define (import) it before loading; "
                     f"known: {sorted(classes)}")


def _import_numpy_ref():
    """Imports every numpy_ref module, so that each of its classes is registered."""
    package = importlib.import_module("numpy_ref")
    for info in pkgutil.walk_packages(package.__path__, "numpy_ref."):
        importlib.import_module(info.name)


def _array(arrays, name):
    if name not in arrays:
        raise ValueError(f"array {name!r} is missing")
    return arrays[name]
