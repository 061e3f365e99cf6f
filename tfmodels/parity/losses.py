"""The twin of a Keras loss: which loss, with which options, in which dtype.

Every built-in Keras loss is a ``LossFunctionWrapper`` around a function
(``sparse_categorical_crossentropy``) and its keyword arguments; the twin is
the ``numpy_ref.losses`` class registered under that function's name, with the
same arguments, reduction and dtype (Keras losses compute in their own dtype,
float32 unless told otherwise, whatever the model's).
"""

import functools

import keras
from keras.src.losses.losses import LossFunctionWrapper
import tensorflow as tf

from numpy_ref import losses as np_losses


def resolve(model, loss=None):
    """The Keras loss object ``twin`` uses: ``loss``, else the compiled one; None
    when neither is given (see ``default_loss``)."""
    if loss is None:
        loss = getattr(model, "loss", None)
    if loss is None:
        return None
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError(f"Model {model.name!r} was compiled with one loss per output "
                         f"({loss!r}); the twin covers one loss")
    if isinstance(loss, str) and loss.lower() in ("crossentropy", "ce"):
        raise ValueError(f"loss={loss!r} lets Keras choose a crossentropy from the data; "
                         "name the one you mean, e.g. 'sparse_categorical_crossentropy'")
    obj = keras.losses.get(loss) if not isinstance(loss, keras.losses.Loss) else loss
    if not isinstance(obj, keras.losses.Loss):  # a loss function, as compile wraps it
        fn, kwargs = obj, {}
        if isinstance(fn, functools.partial) and not fn.args:  # from_logits=True bound to it
            fn, kwargs = fn.func, dict(fn.keywords)
        obj = LossFunctionWrapper(fn, name=getattr(fn, "__name__", None), **kwargs)
    return obj


def with_dtype(keras_loss, dtype):
    """The same Keras loss computing in ``dtype`` (its options kept)."""
    config = {**keras_loss.get_config(), "dtype": dtype}
    if type(keras_loss) is LossFunctionWrapper:  # a wrapped function: rebuilt around it
        kwargs = dict(keras_loss._fn_kwargs)  # pylint: disable=protected-access
        return LossFunctionWrapper(keras_loss.fn, reduction=keras_loss.reduction,
                                   name=keras_loss.name, dtype=dtype, **kwargs)
    return type(keras_loss).from_config(config)


def default_loss(predictions):
    """``SparseCategoricalCrossentropy`` computing in the dtype of the model's output
    (a Keras loss would otherwise compute in float32 and round a float64 model)."""
    return keras.losses.SparseCategoricalCrossentropy(dtype=predictions.dtype.name)


def twin_loss(keras_loss, from_logits=None):
    """The ``numpy_ref.losses`` layer computing what ``keras_loss`` computes.

    ``from_logits=True`` makes it read logits (what Keras does with the logits
    it cached on a softmax or sigmoid output).
    """
    if not isinstance(keras_loss, LossFunctionWrapper):
        raise ValueError(f"The loss {keras_loss!r} ({type(keras_loss).__name__}) has no "
                         f"NumPy twin. Losses with a twin: {', '.join(sorted(np_losses.LOSSES))}")
    name = keras_loss.fn.__name__
    if name not in np_losses.LOSSES:
        raise ValueError(f"The loss function {name!r} has no NumPy twin. "
                         f"Losses with a twin: {', '.join(sorted(np_losses.LOSSES))}")
    kwargs = dict(keras_loss._fn_kwargs)  # pylint: disable=protected-access
    if from_logits is not None:
        kwargs["from_logits"] = from_logits
    return np_losses.get(name, reduction=keras_loss.reduction, dtype=keras_loss.dtype,
                         **kwargs)


def is_sparse(keras_loss):
    """Whether the loss takes integer labels (one fewer axis than the predictions)."""
    fn = getattr(keras_loss, "fn", None)
    return getattr(fn, "__name__", "") == "sparse_categorical_crossentropy"


def probe_labels(keras_loss, predictions):
    """Zero labels shaped for ``keras_loss`` against symbolic ``predictions``."""
    if is_sparse(keras_loss):
        return tf.zeros(tf.shape(predictions)[:-1], tf.int64)
    return tf.zeros_like(predictions)
