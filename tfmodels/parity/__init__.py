"""The NumPy twin of a Keras model, and the tools that compare the two.

    twin(model)                  the numpy_ref network computing what the model computes
    register_twin(cls, builder)  the twin of a custom Keras layer class
    to_keras(net, model)         the twin's weights back into the model
    from_keras(net, model)       the model's weights into the twin
    twin_loss(keras_loss)        the numpy_ref loss computing what a Keras loss computes
    twin_optimizer(optimizer)    the numpy_ref optimizer stepping like a Keras optimizer
    compare(model, x, y)         a per-layer report of where model and twin part

Modules: ``registry`` (Keras layer class -> twin builder), ``layer_twins`` (the
built-in builders, by family), ``trace`` (what a model's
call applies), ``twins``, ``losses``, ``regularizers`` (``model.losses`` as penalties),
``optimizers``, ``compare``, ``dropout_masks`` (the masks Keras drew, for ``compare``).
"""

from tfmodels.parity import layer_twins  # noqa: F401  (registers the built-in twins)
from tfmodels.parity.compare import Report, compare
from tfmodels.parity.losses import twin_loss
from tfmodels.parity.optimizers import optimizer_state_to_keras, twin_optimizer
from tfmodels.parity.registry import register_twin, twin_activation
from tfmodels.parity.twins import from_keras, to_keras, twin

__all__ = ["Report", "compare", "from_keras", "optimizer_state_to_keras", "register_twin",
           "to_keras", "twin", "twin_activation", "twin_loss", "twin_optimizer"]
