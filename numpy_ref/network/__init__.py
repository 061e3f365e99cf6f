"""A network: layers wired as a graph, its weights by name, and how it is saved.

``node`` (one layer applied to earlier values), ``arrays`` (``ArrayView``: public
name -> the layers' own arrays), ``graph`` (``Network``: forward, backward,
numerical gradients), ``config`` (the graph as JSON-able data, the classes a
file names), ``serialization`` (``.npz`` without pickle), ``chain`` (a chain of
layers with the book's parameter names) and ``networks`` (``SimpleNet``,
``TwoLayerNet``, ``MultiLayerNet``, ``DNN``).
"""

from numpy_ref.network.arrays import ArrayView, ParamView, gathered
from numpy_ref.network.config import NETWORK_CLASSES, layer_class, network_class
from numpy_ref.network.graph import Network
from numpy_ref.network.node import Node

__all__ = ["NETWORK_CLASSES", "ArrayView", "Network", "Node", "ParamView", "gathered",
           "layer_class", "network_class"]
