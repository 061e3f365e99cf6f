"""tfmodels.parity.twin: the NumPy twin of Sequential, functional, nested and subclassed models.

Tolerances (float64): both sides do the same IEEE operations up to the summation
order inside matrix products (oneDNN vs OpenBLAS), a few ulps of the values
involved; 1e-12 absolute on O(1) outputs, losses and gradients. A wrong twin is
off by orders of magnitude more.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_ref import layers as L
from numpy_ref.network import serialization
from tfmodels import models, parity
from untwinned import Cube

ATOL = 1e-12
F64 = "float64"


def keras_loss_and_grads(model, x, y, loss=None):
    loss = loss or keras.losses.SparseCategoricalCrossentropy(dtype=F64)
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    grads = tape.gradient(value, model.trainable_variables)
    return float(value), {v.path: g.numpy() for v, g in zip(model.trainable_variables, grads)}


def assert_twin_matches(model, x, y, net=None):
    net = net or parity.twin(model)
    np.testing.assert_allclose(net.predict(x), model(x, training=False).numpy(), atol=ATOL, rtol=0)
    keras_loss, keras_grads = keras_loss_and_grads(model, x, y)
    loss, grads = net.loss_and_gradient(x, y)
    assert loss == pytest.approx(keras_loss, abs=ATOL)
    assert set(grads) == set(keras_grads) == set(net.params)
    for path, grad in keras_grads.items():
        np.testing.assert_allclose(grads[path], grad, atol=ATOL, rtol=0, err_msg=path)
    return net


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.random((6, 28, 28)), rng.integers(0, 10, 6)


def dense(units, activation=None):
    return keras.layers.Dense(units, activation=activation, dtype=F64)


def test_mymodel_twin_is_keyed_by_variable_path(batch):
    x, y = batch
    model = models.build_model("mymodel", dtype=F64, input_shape=(28, 28))
    net = assert_twin_matches(model, x, y)
    assert list(net.params) == [v.path for v in model.trainable_variables]
    assert list(net.params)[:2] == ["mymodel/dense_0/kernel", "mymodel/dense_0/bias"]
    # Keras's loss reads the logits cached inside the softmax classifier; so does the twin's.
    assert net.loss_input == "classifier/logits" and net.outputs == ["classifier"]


def test_sequential(batch):
    x, y = batch
    model = keras.Sequential([keras.Input((28, 28), dtype=F64), keras.layers.Flatten(dtype=F64),
                              dense(12, "tanh"), keras.layers.Reshape((3, 4), dtype=F64),
                              keras.layers.Flatten(dtype=F64), dense(10),
                              keras.layers.Softmax(dtype=F64)])
    net = assert_twin_matches(model, x, y)
    assert net.loss_input == net.nodes[-2].name  # the logits before the Softmax layer


def test_functional_dag_with_merges_and_a_shared_layer(batch):
    x, y = batch
    inputs = keras.Input((28, 28), dtype=F64)
    h = keras.layers.Flatten(dtype=F64)(inputs)
    a, b = dense(16, "relu")(h), dense(16, "sigmoid")(h)
    shared = dense(16)
    c = shared(keras.layers.Add(dtype=F64)([a, b]))
    d = shared(keras.layers.Subtract(dtype=F64)([a, b]))
    e = keras.layers.Concatenate(dtype=F64)([keras.layers.Multiply(dtype=F64)([c, d]),
                                             keras.layers.Average(dtype=F64)([a, c]),
                                             keras.layers.Maximum(dtype=F64)([b, d]),
                                             keras.layers.Minimum(dtype=F64)([a, d])])
    out = keras.layers.Activation("softmax", dtype=F64)(dense(10)(e))
    model = keras.Model(inputs, out)
    net = assert_twin_matches(model, x, y)
    shared_nodes = [n for n in net.nodes if n.name.startswith(shared.name)]
    assert len(shared_nodes) == 2  # two calls, one set of weights
    assert shared_nodes[0].layer.params["kernel"] is shared_nodes[1].layer.params["kernel"]


def test_two_inputs(batch):
    x, y = batch
    left, right = keras.Input((28, 28), dtype=F64), keras.Input((5,), dtype=F64)
    h = keras.layers.Concatenate(dtype=F64)([keras.layers.Flatten(dtype=F64)(left), right])
    model = keras.Model([left, right], dense(10, "softmax")(h))
    extra = np.random.default_rng(1).random((6, 5))
    net = parity.twin(model)
    np.testing.assert_allclose(net.predict([x, extra]), model([x, extra]).numpy(), atol=ATOL)


class Block(keras.layers.Layer):
    """A composite layer made only of layers: traced through."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner, self.gate, self.add = dense(8, "relu"), dense(8), keras.layers.Add(dtype=F64)

    def call(self, x):
        return self.add([self.inner(x), self.gate(x)])


class Subclassed(keras.Model):
    def __init__(self, op=None, **kwargs):
        super().__init__(dtype=F64, **kwargs)
        self.flatten, self.block, self.out = keras.layers.Flatten(dtype=F64), Block(dtype=F64), dense(10, "softmax")
        self.op = op

    def call(self, x):
        h = self.block(self.flatten(x))
        if self.op is not None:  # an operation outside any layer
            h = self.op(h)
        return self.out(h)


def test_subclassed_model_with_a_nested_block_and_a_nested_model(batch):
    x, y = batch
    model = Subclassed()
    model(x)
    assert_twin_matches(model, x, y)
    nested_in = keras.Input((28, 28), dtype=F64)
    outer = keras.Model(nested_in, dense(10, "softmax")(
        keras.Sequential([keras.layers.Flatten(dtype=F64), dense(12, "relu")])(nested_in)))
    assert_twin_matches(outer, x, y)


@pytest.mark.parametrize("op", [lambda h: h + 1.0, lambda h: tf.concat([h, h], axis=-1),
                                lambda h: h * h], ids=["add", "concat", "mul"])
def test_an_operation_outside_layers_is_followed(batch, op):
    """Raw TensorFlow operations in a subclassed call (tfmodels/parity/tf_ops.py)."""
    x, y = batch
    model = Subclassed(op=op, name="with_op")
    model(x)
    assert_twin_matches(model, x, y)


@pytest.mark.parametrize("op, name", [(tf.math.abs, "Abs"), (tf.math.cumsum, "Cumsum")],
                         ids=["abs", "cumsum"])
def test_an_operation_without_a_twin_is_named(batch, op, name):
    model = Subclassed(op=op, name="with_op")
    model(batch[0])
    with pytest.raises(ValueError, match=f"'with_op'.*{name!r}.*register_twin"):
        parity.twin(model)


def test_an_unsupported_layer_is_named_with_the_supported_list(batch):
    model = keras.Sequential([keras.Input((28, 28)), Cube(name="cube"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ValueError, match=r"'cube' \(untwinned.Cube\) has no NumPy "
                                         r"twin.*Dense.*register_twin\(Cube"):
        parity.twin(model)


def test_an_unbuilt_model_is_refused():
    with pytest.raises(ValueError, match="is not built"):
        parity.twin(models.Mymodel())


# --- a custom layer with a registered twin, and a wrong one that compare catches --------


class Scale(keras.layers.Layer):
    """y = x * scale, one trainable weight per feature."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


class ScaleTwin(L.Layer):
    def __init__(self, scale, wrong_backward=False):
        super().__init__()
        self.params["scale"] = scale
        self.wrong_backward = wrong_backward

    def forward(self, x, training=False):
        self.x = x
        return x * self.params["scale"]

    def backward(self, dout):
        self.grads["scale"] = (dout * self.x).reshape(-1, self.x.shape[-1]).sum(axis=0)
        return dout * self.params["scale"] * (2.0 if self.wrong_backward else 1.0)


@pytest.fixture
def scale_model(batch):
    inputs = keras.Input((28, 28), dtype=F64)
    h = Scale(dtype=F64, name="scale")(dense(8, "tanh")(keras.layers.Flatten(dtype=F64)(inputs)))
    model = keras.Model(inputs, dense(10, "softmax")(h))
    model.get_layer("scale").scale.assign(np.linspace(0.5, 1.5, 8))
    return model


def test_a_registered_custom_twin(batch, scale_model):
    parity.register_twin(Scale, lambda layer: ScaleTwin(layer.scale.numpy()))
    net = assert_twin_matches(scale_model, *batch)
    assert f"{scale_model.get_layer('scale').name}/scale" in net.params
    report = parity.compare(scale_model, *batch)
    assert report.ok and report.first_divergence is None


def test_compare_names_a_wrong_twin_as_the_first_divergence(batch, scale_model):
    parity.register_twin(Scale, lambda layer: ScaleTwin(layer.scale.numpy(), wrong_backward=True))
    report = parity.compare(scale_model, *batch)
    assert not report.ok
    assert (report.first_divergence, report.divergence) == ("scale", "backward")
    rows = {row.name: row for row in report.rows}
    assert rows["scale"].forward.ok and rows["scale"].backward.ok  # its own output agrees ...
    assert not rows[report.rows[1].name].backward.ok  # ... what it passes back does not
    assert "<-- differs" in str(report) and "part at 'scale'" in str(report)
    assert '"first_divergence": "scale"' in report.to_json()


class Shift(keras.layers.Layer):
    """y = x + shift: a layer no test registers a twin for."""

    def build(self, input_shape):
        self.shift = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="shift")

    def call(self, x):
        return x + self.shift


class ShiftTwin(L.Layer):
    def __init__(self, shift, wrong_forward=False):
        super().__init__()
        self.params["shift"] = shift
        self.wrong_forward = wrong_forward

    def forward(self, x, training=False):
        return x + self.params["shift"] * (2.0 if self.wrong_forward else 1.0)

    def backward(self, dout):
        self.grads["shift"] = dout.reshape(-1, dout.shape[-1]).sum(axis=0)
        return dout


def _shift_model_and_hand_made_twin(wrong_forward=False):
    """A model with a layer that has no registered twin, and its twin written by hand, nodes
    named after the Keras layers and the loss reading the logits split off the softmax."""
    from numpy_ref.layers import activations, core  # pylint: disable=import-outside-toplevel
    from numpy_ref.losses import SparseCategoricalCrossentropy  # pylint: disable=import-outside-toplevel
    from numpy_ref.network import Network, Node  # pylint: disable=import-outside-toplevel

    inputs = keras.Input((28, 28), dtype=F64)
    h = keras.layers.Dense(8, activation="tanh", dtype=F64, name="hidden")(
        keras.layers.Flatten(dtype=F64, name="flat")(inputs))
    h = Shift(dtype=F64, name="shift")(h)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", dtype=F64,
                                                   name="out")(h), name="shifted")
    model.get_layer("shift").shift.assign(np.linspace(-0.5, 0.5, 8))
    weights = {v.path: v.numpy() for v in model.weights}
    paths = {layer: {v.name: v.path for v in model.get_layer(layer).weights}
             for layer in ("hidden", "shift", "out")}
    nodes = [
        Node("flat", core.Flatten(), ["input"]),
        Node("hidden", core.Dense(weights[paths["hidden"]["kernel"]],
                                  weights[paths["hidden"]["bias"]], "tanh"), ["flat"],
             param_names=paths["hidden"]),
        Node("shift", ShiftTwin(weights[paths["shift"]["shift"]], wrong_forward), ["hidden"],
             param_names=paths["shift"]),
        Node("out/logits", core.Dense(weights[paths["out"]["kernel"]],
                                      weights[paths["out"]["bias"]]), ["shift"],
             param_names=paths["out"]),
        Node("out", activations.get("softmax"), ["out/logits"]),
    ]
    net = Network(nodes, outputs=["out"], loss_input="out/logits",
                  loss_layer=SparseCategoricalCrossentropy(from_logits=True, dtype=F64))
    return model, net


def test_compare_checks_a_hand_made_twin_of_a_layer_without_a_registered_twin(batch):
    model, net = _shift_model_and_hand_made_twin()
    with pytest.raises(ValueError, match="Shift"):
        parity.twin(model)  # no twin is registered for Shift ...
    report = parity.compare(model, *batch, net=net)  # ... yet the hand-made one is compared
    assert report.ok, report
    rows = {row.name: row for row in report.rows}
    assert list(rows) == ["flat", "hidden", "shift", "out"]
    assert rows["out"].inputs == ["shift"]  # the layer's input, not the split-off logits node


def test_compare_names_the_layer_where_a_hand_made_twin_parts(batch):
    model, net = _shift_model_and_hand_made_twin(wrong_forward=True)
    report = parity.compare(model, *batch, net=net)
    assert not report.ok
    assert (report.first_divergence, report.divergence) == ("shift", "forward")


def test_a_twin_with_keys_other_than_the_keras_weight_names_is_refused(batch, scale_model):
    def renamed(layer):
        twin = ScaleTwin(layer.scale.numpy())
        twin.params = {"gamma": twin.params.pop("scale")}
        return twin

    parity.register_twin(Scale, renamed)
    with pytest.raises(ValueError, match=r"holds \[.gamma.\] \(params\).*weights are \[.scale.\]"):
        parity.twin(scale_model)


def test_register_twin_checks_its_arguments():
    with pytest.raises(ValueError, match="needs a Keras layer"):
        parity.register_twin(object, lambda layer: None)
    with pytest.raises(ValueError, match="needs a callable builder"):
        parity.register_twin(Scale, "not callable")


# --- weights both ways, saving ----------------------------------------------------------


def test_to_keras_and_from_keras(batch):
    x, _ = batch
    model = models.build_model("mymodel", dtype=F64, input_shape=(28, 28))
    net = parity.twin(model)
    for name in net.params:
        net.params[name] *= 0.5
    parity.to_keras(net, model)
    np.testing.assert_allclose(model(x).numpy(), net.predict(x), atol=ATOL)
    other = parity.twin(models.build_model("mymodel", dtype=F64, input_shape=(28, 28)))
    parity.from_keras(other, model)
    np.testing.assert_array_equal(other.predict(x), net.predict(x))


def test_to_keras_checks_every_shape_before_assigning(batch):
    model = models.build_model("mymodel", dtype=F64, input_shape=(28, 28))
    small = models.build_model("mymodel", hidden_units=(32, 64, 128, 8), dtype=F64,
                               input_shape=(28, 28))
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(ValueError, match="Shape mismatch.*mymodel/dense_3/kernel"):
        parity.to_keras(parity.twin(small), model)
    for w, old in zip(model.weights, before):
        np.testing.assert_array_equal(w.numpy(), old)  # nothing was assigned


def test_a_twin_saves_and_loads_without_tensorflow_objects(tmp_path, batch):
    x, _ = batch
    model = models.build_model("two_layer_net", dtype=F64, input_shape=(28, 28))
    net = parity.twin(model)
    serialization.save_npz(net, tmp_path / "twin.npz")
    loaded, extra = serialization.load_npz(tmp_path / "twin.npz")
    assert extra == {} and list(loaded.params) == list(net.params)
    np.testing.assert_array_equal(loaded.predict(x), net.predict(x))
    assert loaded.loss_input == net.loss_input


@pytest.mark.integration
def test_a_saved_twin_loads_with_numpy_alone(tmp_path, batch):
    """weights.npz is the common format: numpy_ref reads it without TensorFlow or Keras."""
    import procs  # pylint: disable=import-outside-toplevel

    x, _ = batch
    net = parity.twin(models.build_model("mymodel", dtype=F64, input_shape=(28, 28)))
    serialization.save_npz(net, tmp_path / "twin.npz")
    np.save(tmp_path / "x.npy", x)
    expected = net.predict(x)
    statement = (f"from numpy_ref.network.serialization import load_npz; import numpy as np; "
                 f"net, _ = load_npz({str(tmp_path / 'twin.npz')!r}); "
                 f"np.save({str(tmp_path / 'y.npy')!r}, net.predict(np.load({str(tmp_path / 'x.npy')!r})))")
    assert procs.heavy_modules_after(statement) == "[]"
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)
