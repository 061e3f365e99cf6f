"""A network: layers wired as a graph (``graph``), and saved without pickle (``serialization``)."""

from numpy_ref.network.graph import (NETWORK_CLASSES, ArrayView, Network, Node, ParamView,
                                     gathered, layer_class, network_class)

__all__ = ["NETWORK_CLASSES", "ArrayView", "Network", "Node", "ParamView", "gathered",
           "layer_class", "network_class"]
