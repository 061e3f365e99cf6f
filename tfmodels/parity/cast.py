"""A copy of a Keras model in another float dtype, holding the same weights.

Comparing a float32 model with its twin shows float32 rounding everywhere; the
float64 copy of the same model shows only what the twin gets wrong. (A copy is
not compiled: pass the loss, ``losses.with_dtype(loss, dtype)``, to ``compare``.)
"""

import keras
import numpy as np

from tfmodels.parity import twins as twinning


def _recast_layer(dtype):
    def clone(layer):
        config = layer.get_config()
        config["dtype"] = dtype
        return type(layer).from_config(config)
    return clone


def cast_model(model, dtype):
    """``model`` itself when its weights are all ``dtype``; else a built copy in ``dtype``.

    Sequential and functional models are cloned layer by layer with the new
    dtype; a subclassed model is rebuilt from its config under that dtype
    policy. Raises ValueError when the copy does not end up in ``dtype``.
    """
    dtype = np.dtype(dtype).name
    if all(np.dtype(w.dtype).name == dtype for w in model.weights):
        return model
    specs = twinning.input_specs(model)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(dtype)  # layers a config leaves unset take it
    try:
        try:
            inputs = [keras.Input(s.shape[1:], dtype=dtype) for s in specs]
            clone = keras.models.clone_model(
                model, input_tensors=inputs if len(inputs) > 1 else inputs[0],
                clone_function=_recast_layer(dtype), recursive=True)
        except ValueError:  # a subclassed model: rebuilt from its own config
            clone = type(model).from_config({**model.get_config(), "dtype": dtype})
        clone([np.zeros((1, *s.shape[1:]), dtype) for s in specs] if len(specs) > 1
              else np.zeros((1, *specs[0].shape[1:]), dtype))
    finally:
        keras.config.set_dtype_policy(previous)
    stayed = sorted({w.path for w in clone.weights if np.dtype(w.dtype).name != dtype})
    if stayed or len(clone.weights) != len(model.weights):
        raise ValueError(f"Could not make a {dtype} copy of model {model.name!r}: "
                         f"{', '.join(stayed) or 'its weights differ'} "
                         f"{'stay' if stayed else ''} in another dtype")
    clone.set_weights([np.asarray(w, dtype) for w in model.get_weights()])
    return clone
