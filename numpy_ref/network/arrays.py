"""A network's weights by public name: a live view onto the arrays its layers hold.

Parameters are gathered from the layers under public names: a node maps each
of its layer's keys (``kernel``, ``bias``) to a name (``W1``, or the Keras
variable path ``dense_1/kernel``). Two nodes may share a name: they then hold
the *same* array (a layer applied twice shares its weights).
"""

from collections.abc import Mapping, MutableMapping

import numpy as np


def owners_by_name(nodes, kind):
    """{public name: [(node, key), ...]} of 'params' or 'state'; a shared name must be
    one array."""
    owners = {}
    for node in nodes:
        for key, name in node.public_names(kind).items():
            owners.setdefault(name, []).append((node, key))
    for name, pairs in owners.items():
        if len({id(node.arrays(kind)[key]) for node, key in pairs}) > 1:
            raise ValueError(f"{kind} name {name!r} is shared by layers holding "
                             "different arrays; shared weights must be one array")
    return owners


class ArrayView(MutableMapping):
    """Public name -> array, read from and written to the layers themselves.

    ``view["W1"]`` is the layer's own array, so an in-place update
    (``params["W1"] -= lr * dW``) changes the network. Assigning copies the
    value into that array after a shape check, so every layer sharing it sees
    the change.
    """

    def __init__(self, nodes, kind):
        self._owners = owners_by_name(nodes, kind)
        self._kind = kind

    def owners(self, name):
        """The (node, layer key) pairs holding the array ``name``: one, or several for a
        shared weight."""
        return self._owners[name]

    def __getitem__(self, name):
        node, key = self._owners[name][0]
        return node.arrays(self._kind)[key]

    def __setitem__(self, name, value):
        current = self[name]
        if value is current:  # the `params[k] -= ...` round trip
            return
        if np.shape(value) != current.shape:
            raise ValueError(f"{self._kind}[{name!r}] has shape {current.shape}. "
                             f"Received: an array of shape {np.shape(value)}")
        np.copyto(current, value, casting="same_kind")

    def __delitem__(self, name):
        raise TypeError(f"a network's {self._kind} cannot be deleted")

    def __iter__(self):
        return iter(self._owners)

    def __len__(self):
        return len(self._owners)

    def items(self):
        """(name, array) pairs, read from the layers now, as a list (an optimizer asks for
        them every step)."""
        kind = self._kind
        return [(name, pairs[0][0].arrays(kind)[pairs[0][1]])
                for name, pairs in self._owners.items()]

    def values(self):
        return [array for _, array in self.items()]


ParamView = ArrayView  # the name the book-facing docs use


def gathered(mapping):
    """A plain dict copy of a params/state view (arrays copied)."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"expected a mapping. Received: {type(mapping).__name__}")
    return {name: np.array(value) for name, value in mapping.items()}
