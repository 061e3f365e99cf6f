"""The twin of a model's regularizers: the penalties ``model.losses`` holds, for the twin's loss.

Keras adds to ``model.losses`` (which ``fit`` sums into the loss it minimises,
and a custom loop adds as ``sum(model.losses)``):

- for each call of a layer with an ``activity_regularizer``, r(output) / batch
  size, per output tensor;
- for each trainable weight with a regularizer (``kernel_regularizer``,
  ``bias_regularizer``, ``gamma_regularizer``...), r(weight), in the order of
  ``model.trainable_weights``.

The twin gets one ``numpy_ref.losses.regularizers`` penalty per term, in that order.
``REGULARIZERS`` is the one table from Keras regularizer classes to their twins.
"""

import keras

from numpy_ref.losses import regularizers as R

REGULARIZERS = {
    keras.regularizers.L1: lambda r: R.L1(float(r.l1)),  # Keras keeps l1 as a float32 tensor
    keras.regularizers.L2: lambda r: R.L2(r.l2),
    keras.regularizers.L1L2: lambda r: R.L1L2(r.l1, r.l2),
}


def twin_regularizer(regularizer, owner):
    """The ``numpy_ref.losses.regularizers`` twin of a Keras regularizer; ``owner`` names its user."""
    builder = REGULARIZERS.get(type(regularizer))
    if builder is None:
        raise ValueError(f"{owner} is {regularizer!r}, which has no NumPy twin. Regularizers "
                         f"with a twin: {', '.join(sorted(c.__name__ for c in REGULARIZERS))}")
    return builder(regularizer)


def penalties(model, root, node_of, param_names):
    """The twin's penalties: activity ones (in call order) then weight ones.

    Args:
        root: the trace's root ``Call``; every call under it is looked at.
        node_of: ``node_of(tensor, consumer)`` -> the node name of a traced tensor.
        param_names: the twin's parameter names (Keras variable paths).
    """
    terms = []
    for call in _calls(root):
        regularizer = getattr(call.layer, "activity_regularizer", None)
        if regularizer is None:
            continue
        owner = f"The activity_regularizer of Keras layer {call.layer.name!r}"
        twin = twin_regularizer(regularizer, owner)
        terms += [R.ActivityPenalty(node_of(t, owner), twin) for t in call.outputs]
    for variable in model.trainable_weights:
        if variable.regularizer is None:
            continue
        owner = f"The regularizer of Keras weight {variable.path!r}"
        if variable.path not in param_names:
            raise ValueError(f"{owner} adds to model.losses, but the weight is not used by "
                             f"the model's call, so the twin has no parameter to penalise")
        terms.append(R.WeightPenalty(variable.path, twin_regularizer(variable.regularizer, owner)))
    return terms


def check_count(model, terms, keras_count):
    """``model.losses`` (``keras_count`` terms, counted in the trace) holds nothing the
    twin does not add (an ``add_loss`` in some ``call``)."""
    if keras_count is not None and keras_count != len(terms):
        raise ValueError(
            f"Model {model.name!r}: model.losses holds {keras_count} term(s) but its "
            f"regularizers account for {len(terms)}; a loss added with add_loss() in a "
            "call has no NumPy twin")


def _calls(call):
    yield call
    for child in call.children:
        yield from _calls(child)
