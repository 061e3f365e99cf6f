"""The twin of a compiled model: its loss (object, string or function) and its optimizer.

``twin(model)`` takes the loss ``model.compile`` was given. Checked against
Keras on a small float64 model for each crossentropy (``from_logits`` both
ways, on a softmax or sigmoid output and on a linear one) and the mean squared
error:
- a float64 loss (``dtype="float64"``) against the loss object itself. (Keras's
  ``model.compute_loss`` would round the value to float32: its compile wrapper
  computes in floatx. A cast's gradient is exact, so training is unaffected.)
- the default float32 loss, and the loss given as a string or a function,
  against ``model.compute_loss``, what ``fit`` minimises.
Then Keras's loss reading the logits cached on a softmax or sigmoid output, and
``twin_optimizer`` continuing a ``fit``.

Tolerances (differences scaled as in ``keras_twins.scaled``):
- float64 loss, 1e-12: the same IEEE operations up to summation order and the
  last ulp of exp/log; measured <= 7.6e-15 (binary crossentropy on a linear
  output, whose clipped logs of tiny probabilities are large).
- float32 loss, 1e-6: Keras casts the float64 output to float32 and computes the
  loss there, so its value and dL/d(output) carry float32 rounding (eps 1.2e-7;
  a log, a sum and a mean: a few ulps); measured <= 1.7e-7.
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_twins import F64, assert_agree, twin_of
from tfmodels import parity

K = keras.losses
TOL64, TOL32 = 1e-12, 1e-6
CLASSES = 4

# loss name -> (class, function, the outputs it is tried on)
LOSSES = {
    "sparse_categorical_crossentropy": (K.SparseCategoricalCrossentropy,
                                        K.sparse_categorical_crossentropy,
                                        ("softmax", "softmax-layer", "linear")),
    "categorical_crossentropy": (K.CategoricalCrossentropy, K.categorical_crossentropy,
                                 ("softmax", "softmax-layer", "linear")),
    "binary_crossentropy": (K.BinaryCrossentropy, K.binary_crossentropy,
                            ("sigmoid", "sigmoid-layer", "linear")),
    "mean_squared_error": (K.MeanSquaredError, K.mean_squared_error, ("linear", "softmax")),
}
CROSSENTROPIES = [name for name in LOSSES if name.endswith("crossentropy")]


def make_model(output, seed=0, stddev=None):
    """Dense(6, tanh), then an output 'out': Dense(4) with the activation ('softmax'),
    or Dense(4) followed by an activation layer 'prob' ('softmax-layer'), or linear."""
    keras.utils.set_random_seed(seed)
    init = "glorot_uniform" if stddev is None else keras.initializers.RandomNormal(stddev=stddev)
    inputs = keras.Input((5,), dtype=F64)
    h = keras.layers.Dense(6, activation="tanh", dtype=F64)(inputs)
    activation, _, as_layer = output.partition("-")
    dense = keras.layers.Dense(CLASSES, activation=None if as_layer else activation,
                               kernel_initializer=init, dtype=F64, name="out")
    out = dense(h)
    if as_layer:
        out = (keras.layers.Softmax(dtype=F64, name="prob") if activation == "softmax" else
               keras.layers.Activation(activation, dtype=F64, name="prob"))(out)
    return keras.Model(inputs, out)


def batch(name, seed=0, n=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 2, (n, 5))
    labels = rng.integers(0, CLASSES, n)
    y = {"sparse_categorical_crossentropy": labels,
         "categorical_crossentropy": np.eye(CLASSES)[labels],
         "binary_crossentropy": rng.integers(0, 2, (n, CLASSES)).astype(np.float64),
         "mean_squared_error": rng.normal(size=(n, CLASSES))}[name]
    return x, y


def compiled_loss(model):
    """Keras's compiled loss as ``fit`` computes it, called like a loss object."""
    return lambda y, y_pred: model.compute_loss(y=y, y_pred=y_pred)


def loss_cases():
    for name, (_, _, outputs) in LOSSES.items():
        for output in outputs:
            for from_logits in ((False, True) if name in CROSSENTROPIES else (None,)):
                suffix = "" if from_logits is None else f"-from_logits={from_logits}"
                yield pytest.param(name, output, from_logits, id=f"{name}-{output}{suffix}")


def make_loss(name, from_logits, **kwargs):
    cls = LOSSES[name][0]
    return cls(**kwargs) if from_logits is None else cls(from_logits=from_logits, **kwargs)


def reads_logits(name, output):
    """Where Keras's crossentropy finds logits cached on a softmax/sigmoid output, it
    reads them whatever from_logits says; then so does the twin."""
    return name in CROSSENTROPIES and output != "linear"


# from_logits=True on a softmax/sigmoid output is a misuse Keras warns about (and then
# reads the cached logits): tried on purpose.
MISUSE = pytest.mark.filterwarnings("ignore:.*received `from_logits=True`:UserWarning")


@MISUSE
@pytest.mark.parametrize("name, output, from_logits", list(loss_cases()))
def test_a_float64_compiled_loss(name, output, from_logits):
    model = make_model(output)
    model.compile(loss=make_loss(name, from_logits, dtype=F64))
    net = twin_of(model, None)
    x, y = batch(name)
    assert_agree(model, x, y, model.loss, TOL64, net=net)
    logits = "out/logits" if output in ("softmax", "sigmoid") else "out"
    assert net.loss_input == (logits if reads_logits(name, output) else net.outputs[0])


@MISUSE
@pytest.mark.parametrize("name, output, from_logits", list(loss_cases()))
def test_the_default_float32_compiled_loss(name, output, from_logits):
    model = make_model(output)
    model.compile(loss=make_loss(name, from_logits))
    net = twin_of(model, None)
    assert net.last_layer.get_config()["dtype"] == "float32"
    x, y = batch(name)
    assert_agree(model, x, y, compiled_loss(model), TOL32, net=net)
    # Keras casts the float64 output to the loss's float32, and the cast drops the
    # cached logits: Keras's loss, and the twin's, read the probabilities.
    assert net.loss_input == net.outputs[0]


@pytest.mark.parametrize("name", list(LOSSES))
@pytest.mark.parametrize("form", ["string", "function", "partial"])
def test_a_loss_compiled_as_a_string_or_a_function(name, form):
    cls, function, outputs = LOSSES[name]
    from_logits = name in CROSSENTROPIES and form == "partial"
    output = "linear" if from_logits else outputs[0]
    loss = {"string": name, "function": function,
            "partial": functools.partial(function, from_logits=True)
            if name in CROSSENTROPIES else functools.partial(function)}[form]
    model = make_model(output)
    model.compile(loss=loss)
    net = twin_of(model, None)
    expected = parity.twin_loss(cls(from_logits=True) if from_logits else cls())
    assert type(net.last_layer) is type(expected)
    assert net.last_layer.get_config() == expected.get_config()
    x, y = batch(name)
    assert_agree(model, x, y, compiled_loss(model), TOL32, net=net)


def test_a_loss_function_without_a_twin_is_named():
    def my_loss(y_true, y_pred):
        return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

    model = make_model("linear")
    model.compile(loss=my_loss)
    with pytest.raises(ValueError, match="loss function 'my_loss' has no NumPy twin.*"
                                         "sparse_categorical_crossentropy"):
        parity.twin(model)


# --- cached logits: saturated probabilities tell the formulas apart --------------------

SATURATED = [("sparse_categorical_crossentropy", "softmax"),
             ("categorical_crossentropy", "softmax-layer"),
             ("binary_crossentropy", "sigmoid"),
             ("binary_crossentropy", "sigmoid-layer")]


@pytest.mark.parametrize("name, output", SATURATED, ids=[f"{n}-{o}" for n, o in SATURATED])
def test_the_loss_reads_the_cached_logits_as_keras_does(name, output):
    """Large weights push the probabilities to 0 and 1 in float64, where the clipped
    probability formula (clip to [1e-7, 1 - 1e-7]) and the logits formula part by
    tens: Keras's loss reads the logits cached on the output, and so does the twin."""
    model = make_model(output, stddev=30.0)
    model.compile(loss=make_loss(name, False, dtype=F64))
    net = parity.twin(model)
    assert net.loss_input == ("out" if output.endswith("-layer") else "out/logits")
    x, y = batch(name, seed=1)
    probabilities = net.predict(x)
    assert probabilities.min() < 1e-7 and probabilities.max() > 1 - 1e-7  # the clip is active
    keras_loss = float(model.loss(y, model(x)))
    # The same formula on the same logits: equal to the last ulps (log-sum-exp order).
    assert net.loss(x, y) == pytest.approx(keras_loss, rel=1e-15, abs=0)
    clipped = parity.twin_loss(model.loss).forward(probabilities, y)
    assert abs(clipped - keras_loss) > 1.0


# --- the optimizer: twin_optimizer continues a fit ---------------------------------------

O = keras.optimizers
OPTIMIZERS = {
    "sgd-nesterov": lambda: O.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop-centered-momentum": lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: O.Adagrad(0.1),
    "adam-amsgrad": lambda: O.Adam(0.05, amsgrad=True),
    "adamw": lambda: O.AdamW(0.05, weight_decay=0.01),
}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_twin_optimizer_continues_a_fit(optimizer):
    """Three steps of ``fit``, then ten more on each side from the same weights and state.

    ``fit`` reads a ``tf.data.Dataset``: given float64 NumPy arrays, Keras's data
    adapter casts them to floatx (float32) first. Weights agree to 1e-13: the
    gradients differ in the last ulps (summation order) and ten steps carry that
    along; measured <= 6e-16.
    """
    model = make_model("softmax", seed=2)
    model.compile(optimizer=OPTIMIZERS[optimizer](),
                  loss=K.SparseCategoricalCrossentropy(dtype=F64))
    x, y = batch("sparse_categorical_crossentropy", seed=2, n=8)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    model.fit(data, epochs=3, verbose=0, shuffle=False)
    net, numpy_optimizer = parity.twin(model), parity.twin_optimizer(model.optimizer)
    assert numpy_optimizer.iterations == 3
    for _ in range(10):
        _, grads = net.loss_and_gradient(x, y)
        numpy_optimizer.update(net.params, grads)
    model.fit(data, epochs=10, verbose=0, shuffle=False)
    assert numpy_optimizer.iterations == int(model.optimizer.iterations) == 13
    for variable in model.trainable_variables:
        np.testing.assert_allclose(net.params[variable.path], variable.numpy(), rtol=0,
                                   atol=1e-13, err_msg=variable.path)
