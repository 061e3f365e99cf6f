"""How a model is read: what each layer call receives, in which mode, with which weights frozen.

Each test here failed on the trace that recorded ``Layer.__call__`` with its
positional tensors only (before Keras cast them), kept no ``training`` a layer
was given, dropped a layer option equal to 0, refused frozen weights and matched
weights by their full paths only; each case there either twinned without
complaint and computed something else, or was refused with a message about the
twin's internals.

Tolerance: float64 1e-12 scaled (as in test_twin_layers: a few ulps of the values,
a wrong formula is off by far more); float32 cases compare at 2e-6 (float32's
eps is 1.2e-7 and the reductions here are short).
"""

import keras
import numpy as np
import pytest

from keras_twins import assert_agree, mse, twin_of
from tfmodels import parity
from tfmodels.parity import registry

L = keras.layers
F64 = "float64"
TOL = {"float64": 1e-12, "float32": 2e-6}


def batch(shape=(4, 6), seed=0):
    return np.random.default_rng(seed).normal(0, 2, shape)


def test_a_relu_option_equal_to_zero_is_kept():
    inputs = keras.Input((6,), dtype=F64)
    model = keras.Model(inputs, L.ReLU(max_value=0.0, negative_slope=0.1, dtype=F64)(inputs))
    x = batch()
    np.testing.assert_allclose(parity.twin(model).predict(x), model(x).numpy(), rtol=0, atol=0)
    assert np.any(x < 0) and np.all(model(x).numpy() <= 0)  # the option mattered


class ForcedModes(keras.Model):
    """A subclassed call that fixes its sublayers' modes, both ways."""

    def __init__(self):
        super().__init__(dtype=F64)
        self.dense = L.Dense(8, dtype=F64)
        self.bn = L.BatchNormalization(dtype=F64)
        self.dropout = L.Dropout(0.5, seed=3, dtype=F64)
        self.frozen_bn = L.BatchNormalization(dtype=F64)
        self.head = L.Dense(3, dtype=F64)

    def call(self, x, training=None):
        h = self.bn(self.dense(x), training=True)
        h = self.dropout(h, training=True)
        return self.head(self.frozen_bn(h, training=False))


@pytest.mark.parametrize("training", [False, True])
def test_a_training_value_given_in_call_is_followed(training):
    model = ForcedModes()
    x = batch((6, 6))
    model(x)
    net = parity.twin(model)
    modes = {node.name: node.training for node in net.nodes}
    assert modes[model.bn.name] is True and modes[model.dropout.name] is True
    assert modes[model.frozen_bn.name] is False
    report = parity.compare(model, x, np.arange(6) % 3, training=training)
    assert report.ok, str(report)
    assert max(row.forward.rel for row in report.rows) <= TOL[F64]


def test_a_tensor_passed_by_keyword_is_an_input():
    inputs = keras.Input((6,), dtype=F64)
    hidden = L.Dense(4, dtype=F64)(inputs=inputs)
    model = keras.Model(inputs, L.Dense(2, dtype=F64, name="head")(inputs=hidden))
    x = batch()
    assert_agree(model, x, batch((4, 2), 1), mse(F64), TOL[F64])


class MixedDtypes(keras.Model):
    """A float64 model whose sublayers were made without a dtype: Keras computes them in
    float32 (the global policy) and returns float32."""

    def __init__(self):
        super().__init__(dtype=F64)
        self.hidden = L.Dense(5, activation="tanh")
        self.head = L.Dense(3, dtype=F64)
        self.out = L.Dense(2)

    def call(self, x):
        return self.out(self.head(self.hidden(x)))


def test_each_layer_computes_in_its_own_compute_dtype():
    model = MixedDtypes()
    x = batch()
    keras_out = model(x).numpy()
    net = parity.twin(model)
    out = net.predict(x)
    assert out.dtype == keras_out.dtype == np.float32
    # float32 layers round where Keras rounds: equal to float32 rounding, not float64's
    np.testing.assert_allclose(out, keras_out, rtol=TOL["float32"], atol=TOL["float32"])
    casts = [node.name for node in net.nodes if "cast_" in node.name]
    assert len(casts) == 3, casts  # into hidden (f32), head (f64), out (f32)


def frozen_model(freeze):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6,), dtype=F64)
    base = keras.Sequential([L.Dense(5, activation="relu", dtype=F64),
                             L.BatchNormalization(dtype=F64)], name="base")
    h = base(inputs)
    frozen_dense = L.Dense(4, dtype=F64, name="frozen_dense")
    model = keras.Model(inputs, L.Dense(3, dtype=F64, name="head")(frozen_dense(h)))
    freeze(base, frozen_dense)
    return model


@pytest.mark.parametrize("freeze", ["layer", "submodel"])
def test_frozen_weights_are_the_twins_non_trainable_arrays(freeze):
    model = frozen_model(lambda base, dense: (
        setattr(dense, "trainable", False) if freeze == "layer" else
        setattr(base, "trainable", False)))
    net = twin_of(model, mse(F64))
    trainable = {v.path for v in model.trainable_weights}
    assert set(net.params) == trainable
    assert set(net.state) == {v.path for v in model.non_trainable_weights}
    x = batch((8, 6))
    found = assert_agree(model, x, batch((8, 3), 2), mse(F64), TOL[F64], net=net)
    assert found["state"] <= TOL[F64]  # a frozen BatchNormalization keeps its statistics
    optimizer = parity.twin_optimizer(keras.optimizers.SGD(0.1), model.trainable_variables)
    before = {name: np.array(value) for name, value in net.state.items()}
    _, grads = net.loss_and_gradient(x, batch((8, 3), 2))
    optimizer.update(net.params, grads)
    assert set(grads) == trainable
    moving = freeze == "layer"  # the base's BatchNormalization still trains its statistics
    for name, value in net.state.items():
        if not (moving and "moving_" in name):
            np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_lora_is_refused_by_name():
    inputs = keras.Input((6,), dtype=F64)
    dense = L.Dense(4, dtype=F64, name="adapted")
    model = keras.Model(inputs, dense(inputs))
    dense.enable_lora(2)
    with pytest.raises(ValueError, match=r"'adapted' \(.*Dense\) has lora_rank=2"):
        parity.twin(model)


class TwoDense(keras.Model):
    def __init__(self):
        super().__init__(dtype=F64)
        self.hidden = L.Dense(4, dtype=F64)
        self.out = L.Dense(3, dtype=F64)

    def call(self, x):
        return self.out(self.hidden(x))


def functional_pair():
    inputs = keras.Input((6,), dtype=F64)
    return keras.Model(inputs, L.Dense(3, dtype=F64)(L.Dense(4, dtype=F64)(inputs)))


@pytest.mark.parametrize("make", [TwoDense, functional_pair])
def test_weights_move_between_instances_of_one_architecture(make):
    first, second = make(), make()
    x = batch()
    first(x), second(x)
    assert {v.path for v in first.weights} != {v.path for v in second.weights}
    net = parity.twin(first)
    parity.to_keras(net, second)
    np.testing.assert_array_equal(second(x).numpy(), first(x).numpy())
    dense = next(layer for layer in second.layers if hasattr(layer, "kernel"))
    dense.kernel.assign(dense.kernel * 2)
    parity.from_keras(net, second)
    np.testing.assert_array_equal(net.params[next(iter(net.params))], dense.kernel.numpy())
    np.testing.assert_allclose(net.predict(x), second(x).numpy(), rtol=TOL[F64], atol=TOL[F64])


def test_weights_of_another_architecture_are_refused_by_name():
    first = functional_pair()
    inputs = keras.Input((6,), dtype=F64)
    other = keras.Model(inputs, L.Dense(3, dtype=F64, name="only")(inputs))
    with pytest.raises(ValueError, match=r"do not match model .*the twin has \['dense.*"
                                         r"the model \[\]"):
        parity.to_keras(parity.twin(first), other)


def test_a_refusal_names_the_keras_layer_not_its_inside(monkeypatch):
    """A ConvLSTM1D without its twin (taken out of the registry here): the leaf the
    trace reaches is the cell inside it."""
    monkeypatch.delitem(registry._TWINS, L.ConvLSTM1D)
    inputs = keras.Input((5, 6, 3), dtype=F64)
    seq = L.ConvLSTM1D(2, 3, dtype=F64, name="seq")(inputs)
    model = keras.Model(inputs, L.Dense(2, dtype=F64)(L.Flatten(dtype=F64)(seq)))
    with pytest.raises(ValueError, match=r"Keras layer 'seq' \(.*ConvLSTM1D\)"):
        parity.twin(model)


@keras.saving.register_keras_serializable(package="tfmodels_tests")
class Gated(L.Dense):
    """A Dense whose call takes a second tensor: its registered twin (Dense's) takes one."""

    def call(self, inputs, gate=None):
        return super().call(inputs) * gate


def test_a_second_tensor_a_one_input_twin_would_ignore_is_refused():
    from tfmodels.parity import registry
    parity.register_twin(Gated, registry.builder_for_class(L.Dense))
    inputs = keras.Input((6,), dtype=F64)
    gate = keras.Input((4,), dtype=F64)
    model = keras.Model([inputs, gate], Gated(4, dtype=F64, name="gated")(inputs, gate=gate))
    with pytest.raises(ValueError, match=r"'gated' .* is given 2 tensors \(in inputs, gate\)"):
        parity.twin(model)


def test_compare_reads_a_model_with_keras_ops_between_layers():
    inputs = keras.Input((6,), dtype=F64)
    h = L.Dense(4, dtype=F64)(inputs)
    h = L.ReLU(6.0, dtype=F64)(h + 3.0) * (1.0 / 6.0)  # MobileNetV3's hard sigmoid
    model = keras.Model(inputs, L.Dense(3, dtype=F64, name="head")(2.0 - h))
    for training in (False, True):
        report = parity.compare(model, batch(), np.array([0, 1, 2, 0]), training=training)
        assert report.ok, str(report)
        assert {"Add", "Multiply", "Subtract"} <= {row.class_name for row in report.rows}
