"""One node of a network's graph: a layer applied to earlier values, with public weight names."""

import dataclasses


@dataclasses.dataclass
class Node:
    """One application of ``layer`` to the values named in ``inputs``.

    Args:
        name: unique within the network.
        layer: a ``numpy_ref`` layer (``forward``/``backward``, ``params``/``grads``).
        inputs: names of earlier nodes or of the network's inputs.
        param_names: layer key -> public name; default ``"{name}/{key}"``.
        state_names: the same for the layer's non-trainable ``state``.
    """

    name: str
    layer: object
    inputs: list
    param_names: dict = None
    state_names: dict = None

    def public_names(self, kind):
        """{layer key: public name} for 'params' or 'state'."""
        given = (self.param_names if kind == "params" else self.state_names) or {}
        return {key: given.get(key, f"{self.name}/{key}")
                for key in getattr(self.layer, kind, {})}
