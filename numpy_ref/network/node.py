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
        training: None to run in the network's mode; True or False to always run in
            that mode (a Keras layer called with ``training=True`` inside a model).
        frozen: keys of ``layer.params`` that do not train (a Keras layer with
            ``trainable=False``): the layer computes with them as usual, but the
            network lists them with its ``state``, not its ``params``, so no gradient
            or optimizer step reaches them.
        masks: {argument of ``layer.forward``: the value whose Keras mask it receives}
            (``{"mask": "embedding"}``: an LSTM after an ``Embedding(mask_zero=True)``).
        output_mask: the mask of this node's output: None (none), "input" (the mask
            it received as ``mask``, else its first input's: Keras's pass-through),
            "computed" (``layer.compute_mask(x, **masks)``), "item" (a
            ``TakeOutput``: that item of its input's masks) or "value" (the node's
            value is itself a mask: ``x != 0`` in a functional graph).
    """

    name: str
    layer: object
    inputs: list
    param_names: dict = None
    state_names: dict = None
    training: bool = None
    frozen: tuple = ()
    masks: dict = None
    output_mask: str = None

    def public_names(self, kind):
        """{layer key: public name} for 'params' (the trainable ones) or 'state' (the
        layer's state and its frozen params)."""
        given = {**(self.param_names or {}), **(self.state_names or {})}
        return {key: given.get(key, f"{self.name}/{key}") for key in self.arrays(kind)}

    def arrays(self, kind):
        """{layer key: array} for 'params' or 'state', as ``public_names`` divides them."""
        params, state = self.layer.params, getattr(self.layer, "state", {})
        if not self.frozen:
            return params if kind == "params" else state
        if kind == "params":
            return {key: a for key, a in params.items() if key not in self.frozen}
        return {**state, **{key: params[key] for key in self.frozen}}
