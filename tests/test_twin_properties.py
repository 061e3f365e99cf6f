"""Property tests: random models of the supported layers, twinned, against Keras in float64.

``random_models`` draws them: Sequential chains; functional DAGs on one or two
inputs with merges, broadcasting, layers applied twice (shared weights) and
nested sub-models; subclassed models whose ``call`` runs such a DAG, with
composite layers nested in them. Each is compared with its twin on a batch:
output, loss (sparse crossentropy, reading the logits when the head is a
softmax, or mean squared error), every weight and input gradient and the moving
statistics after the pass, in training or in inference mode (inference only
when the model has a Dropout, whose masks Keras draws: see test_twin_regularization).
BatchNormalization weights and moving statistics are drawn at random.

Tolerance, float64, 1e-12 scaled as in ``keras_twins.scaled``: the same IEEE
operations up to summation order, through up to a dozen layers; measured
<= 4.4e-16 over the 150 models, the moving statistics bit for bit
(``python scripts/measure_twin_properties.py`` prints their count and largest
differences).

Layers without a twin, and operations in ``call`` that are not layers, put at
a random place in a random model, raise the documented ValueError.
"""

import re

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_twins import F64, Tally, assert_agree, randomise_batch_normalization, twin_of
from property_settings import PROPERTIES
from random_models import (CLASSES, OPS, TWINNED_SPECIALS, UNSUPPORTED, batch_sizes,
                           functional, programs, sequential, subclassed, uses)

# A random model may apply a softmax over an axis of length 1 (always 1), which Keras
# warns about: still a model the twin must follow.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a softmax over axis:UserWarning")

RANDOM_MODELS = settings(PROPERTIES, max_examples=40)
ERRORS = settings(PROPERTIES, max_examples=15)
TOL = 1e-12
REALISE = {"sequential": sequential, "functional": functional, "subclassed": subclassed}
TALLY = Tally()  # what the random-model properties compared (read by the measuring script)
SEEDS = st.integers(0, 2**16)
LOSSES = st.sampled_from(["sparse_categorical_crossentropy", "mean_squared_error"])


def example_batch(program, seed):
    """A batch for the program's inputs (ties in merges: test_twin_layers), and the rng."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice(batch_sizes(program)))
    xs = [rng.normal(size=(n, *shape)) for shape in program.input_shapes]
    return (xs if len(xs) > 1 else xs[0]), rng


def built(form, program, seed, created=None):
    """The program as a Keras model of that form, built, and a batch for it."""
    keras.utils.set_random_seed(seed)
    model = REALISE[form](program, created)
    x, rng = example_batch(program, seed)
    if form == "subclassed":
        model(x)  # a subclassed model is built by its first call
    randomise_batch_normalization(model, np.random.default_rng(seed + 1))
    return model, x, rng


def check_random_model(form, program, seed, loss_name, training):
    training = training and not uses(program, "Dropout")
    model, x, rng = built(form, program, seed)
    n = len(x[0] if isinstance(x, list) else x)
    if loss_name == "mean_squared_error":
        loss, y = keras.losses.MeanSquaredError(dtype=F64), rng.normal(size=(n, CLASSES))
    else:  # on logits, or on a softmax whose cached logits Keras (and the twin) read
        linear = program.layers[-1].options["activation"] == "linear"
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=linear, dtype=F64)
        y = rng.integers(0, CLASSES, n)
    TALLY.add(assert_agree(model, x, y, loss, TOL, net=twin_of(model, loss, x),
                           training=training))


@RANDOM_MODELS
@given(programs(chain=True), SEEDS, LOSSES, st.booleans())
def test_random_sequential_models(program, seed, loss_name, training):
    check_random_model("sequential", program, seed, loss_name, training)


@RANDOM_MODELS
@given(programs(), SEEDS, LOSSES, st.booleans())
def test_random_functional_models(program, seed, loss_name, training):
    check_random_model("functional", program, seed, loss_name, training)


@RANDOM_MODELS
@given(programs(), SEEDS, LOSSES, st.booleans())
def test_random_subclassed_models(program, seed, loss_name, training):
    check_random_model("subclassed", program, seed, loss_name, training)


@settings(PROPERTIES, max_examples=30)
@given(st.sampled_from(list(REALISE)), st.sampled_from(TWINNED_SPECIALS), SEEDS, LOSSES,
       st.booleans(), st.data())
def test_random_models_with_batch_normalization_or_dropout(form, kind, seed, loss_name,
                                                           training, data):
    """One such layer at a random place (in a nested model too), in either mode."""
    program = data.draw(programs(chain=form == "sequential", special=kind))
    check_random_model(form, program, seed, loss_name, training)


# --- what has no twin -------------------------------------------------------------------


@ERRORS
@given(st.sampled_from(list(REALISE)), st.sampled_from(UNSUPPORTED), SEEDS, st.data())
def test_a_layer_without_a_twin_anywhere_is_named(form, kind, seed, data):
    program = data.draw(programs(chain=form == "sequential", special=kind))
    created = []
    model, x, _ = built(form, program, seed, created)
    (layer,) = [layer for layer in created if type(layer).__name__ == kind]
    cls = type(layer)
    with pytest.raises(ValueError, match=re.escape(
            f"Keras layer {layer.name!r} ({cls.__module__}.{cls.__qualname__}) has no NumPy "
            f"twin") + ".*Dense.*" + re.escape(f"register_twin({kind}, builder)")):
        twin_of(model, None, x)


@ERRORS
@given(st.sampled_from(list(OPS)), SEEDS, st.data())
def test_an_operation_that_is_not_a_layer_is_named_with_the_layer_to_use(op, seed, data):
    program = data.draw(programs(special=op))
    model, x, _ = built("subclassed", program, seed)
    op_type, instead = OPS[op]
    with pytest.raises(ValueError, match=re.escape(f"Model {model.name!r} (ProgramModel) "
                                                   f"applies the TensorFlow operation "
                                                   f"{op_type!r} outside any Keras layer")
                       + ".*" + re.escape(f"use {instead} instead")):
        twin_of(model, None, x)
