"""`tfmodels.parity.optimizers`: Keras optimizers and their numpy_ref twins step
side by side on the same random gradients and must agree.

Tolerances (max absolute difference of the weights, which are of size ~1):
- float64, exact (rtol=0, atol=0): the twins repeat Keras's operations in
  Keras's order with its float32 rounding and the C library's scalar pow.
- float64 with clipnorm / global_clipnorm, atol=1e-14: TF sums the squares of
  a gradient in Eigen's order (4-lane packets, threads for large tensors),
  NumPy pairwise, so a norm can differ by an ulp or two; measured <= 1.4e-15
  after 30 steps.
- float32, atol=2e-6 (~16 float32 ulps at 1): besides the same norms, TF's
  float32 powf/cosf are not correctly rounded and the twins' are, so a bias
  correction or scheduled rate can differ by an ulp at rare steps; each such
  difference moves a weight by about one ulp. Measured <= 7.2e-7 over 30 steps.
"""

import keras
import numpy as np
import pytest

from numpy_ref.optim import optimizers as np_optimizers
from tfmodels import optimizers as registry
from tfmodels.parity import optimizers as popt

K = keras.optimizers
KS = keras.optimizers.schedules

SHAPES = {"dense_1/kernel": (6, 4), "dense_1/bias": (4,)}
EXACT, NORM_TOL = 0.0, 1e-14
FLOAT32_TOL = 2e-6

OPTIMIZERS = {  # class and hyperparameters; options are added to these
    "sgd": (K.SGD, {"learning_rate": 0.1}),
    "sgd-momentum": (K.SGD, {"learning_rate": 0.1, "momentum": 0.9}),
    "sgd-nesterov": (K.SGD, {"learning_rate": 0.1, "momentum": 0.8, "nesterov": True}),
    "rmsprop": (K.RMSprop, {"learning_rate": 0.01}),
    "rmsprop-momentum": (K.RMSprop, {"learning_rate": 0.01, "momentum": 0.7}),
    "rmsprop-centered": (K.RMSprop, {"learning_rate": 0.01, "centered": True}),
    "rmsprop-momentum-centered": (K.RMSprop, {"learning_rate": 0.01, "momentum": 0.5,
                                              "centered": True}),
    "adagrad": (K.Adagrad, {"learning_rate": 0.3}),
    "adam": (K.Adam, {"learning_rate": 0.1}),
    "adam-amsgrad": (K.Adam, {"learning_rate": 0.1, "beta_2": 0.9, "amsgrad": True}),
    "adamw": (K.AdamW, {"learning_rate": 0.1}),
    "adamax": (K.Adamax, {"learning_rate": 0.1}),
    "nadam": (K.Nadam, {"learning_rate": 0.1}),
    "lion": (K.Lion, {"learning_rate": 0.01}),
    "adadelta": (K.Adadelta, {"learning_rate": 1.0}),
}
OPTIONS = {
    "plain": {},
    "weight_decay": {"weight_decay": 0.05},
    "clipnorm": {"clipnorm": 1.0},
    "clipvalue": {"clipvalue": 0.5},
    "global_clipnorm": {"global_clipnorm": 1.5},
}


def make(name, **options):
    cls, hyperparameters = OPTIMIZERS[name]
    return cls(**{**hyperparameters, **options})


def tolerance(dtype, options):
    if dtype == "float32":
        return FLOAT32_TOL
    return NORM_TOL if {"clipnorm", "global_clipnorm"} & set(options) else EXACT


def make_variables(values, dtype):
    """Keras variables with paths like `dense_1/kernel`."""
    variables = []
    for path, value in values.items():
        scope, name = path.split("/")
        with keras.name_scope(scope):
            variables.append(keras.Variable(value, dtype=dtype, name=name))
    return variables


class Pair:
    """A Keras optimizer with its variables, and its twin with a params dict."""

    def __init__(self, keras_optimizer, dtype="float64", seed=0, shapes=None):
        self.rng = np.random.default_rng(seed)
        self.dtype, self.shapes = dtype, shapes or SHAPES
        start = {path: self.rng.normal(size=s).astype(dtype) for path, s in self.shapes.items()}
        self.variables = make_variables(start, dtype)
        self.keras = keras_optimizer
        self.numpy = popt.twin_optimizer(keras_optimizer, self.variables)
        self.params = {path: value.copy() for path, value in start.items()}

    def grads(self):
        return {path: 2 * self.rng.normal(size=s).astype(self.dtype)
                for path, s in self.shapes.items()}

    def step_keras(self, grads):
        self.keras.apply([grads[v.path] for v in self.variables], self.variables)

    def step(self, steps, atol):
        for step in range(steps):
            grads = self.grads()
            self.step_keras(grads)
            self.numpy.update(self.params, grads)
            self.assert_same(atol, f"step {step}")

    def assert_same(self, atol, where=""):
        for v in self.variables:
            np.testing.assert_allclose(self.params[v.path], v.numpy(), rtol=0, atol=atol,
                                       err_msg=f"{v.path} {where}")


# --- every optimizer x option, both dtypes -----------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_twin_steps_like_keras(name, option, dtype):
    options = OPTIONS[option]
    Pair(make(name, **options), dtype).step(6, tolerance(dtype, options))


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_thirty_float64_steps_are_identical(name):
    Pair(make(name, weight_decay=0.01), seed=1).step(30, EXACT)


@pytest.mark.parametrize("exclude", [
    {"var_names": ["bias"]},
    {"var_list": "kernel"},
], ids=["by-name-pattern", "by-variable"])
def test_weight_decay_exclusions_are_resolved_to_paths(exclude):
    keras_optimizer = K.AdamW(0.1, weight_decay=0.2)
    pair = Pair(keras_optimizer)  # twinned before the exclusion: must be redone below
    if "var_list" in exclude:
        exclude = {"var_list": [v for v in pair.variables if v.name == exclude["var_list"]]}
    keras_optimizer.exclude_from_weight_decay(**exclude)
    pair.numpy = popt.twin_optimizer(keras_optimizer, pair.variables)
    excluded = {"dense_1/bias"} if "var_names" in exclude else {"dense_1/kernel"}
    assert pair.numpy.exclude_from_weight_decay == excluded
    pair.step(10, EXACT)


# --- learning-rate schedules ---------------------------------------------------------

SCHEDULES = {
    "exponential": lambda lr0: KS.ExponentialDecay(lr0, 7, 0.5),
    "exponential-staircase": lambda lr0: KS.ExponentialDecay(lr0, 4, 0.9, staircase=True),
    "piecewise": lambda lr0: KS.PiecewiseConstantDecay([3, 8], [lr0, lr0 / 2, lr0 / 10]),
    "inverse-time": lambda lr0: KS.InverseTimeDecay(lr0, 3, 0.5),
    "inverse-time-staircase": lambda lr0: KS.InverseTimeDecay(lr0, 3, 0.5, staircase=True),
    "polynomial": lambda lr0: KS.PolynomialDecay(lr0, 15, power=0.5),
    "polynomial-cycle": lambda lr0: KS.PolynomialDecay(lr0, 6, end_learning_rate=0.01,
                                                       power=2.0, cycle=True),
    "cosine": lambda lr0: KS.CosineDecay(lr0, 15, alpha=0.1),
    "cosine-warmup": lambda lr0: KS.CosineDecay(0.0, 12, alpha=0.1, warmup_target=lr0,
                                                warmup_steps=5),
}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("name", list(SCHEDULES))
def test_scheduled_learning_rates_step_like_keras(name, optimizer):
    # A float32 schedule (Python float rates) on float64 weights: the schedule's
    # powf/cosf agree with the twins' for these 25 steps, so exact.
    schedule = SCHEDULES[name](0.1)
    Pair(make(optimizer, learning_rate=schedule, weight_decay=0.01)).step(25, EXACT)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_values_match_keras(name):
    """Every step up to 400: float64 schedules exactly (same libm double pow/cos);
    float32 ones within 2 float32 ulps (glibc's powf/cosf are not correctly
    rounded; measured: a few steps in a thousand differ, by 1 ulp, 2 near a
    cosine's zero crossing)."""
    for dtype, lr0, atol_ulps in (("float64", np.float64(0.1), 0), ("float32", 0.1, 2)):
        keras_schedule = SCHEDULES[name](lr0)
        twin = popt.twin_optimizer(K.SGD(keras_schedule)).learning_rate
        for step in range(0, 400, 3 if dtype == "float32" else 7):
            expected = keras_schedule(np.int64(step)).numpy()
            got = twin(step)
            assert got.dtype == expected.dtype, (dtype, step)
            assert abs(got - expected) <= atol_ulps * np.spacing(expected), (dtype, step)


def test_a_float64_floatx_learning_rate_variable_is_twinned_unrounded():
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        keras_optimizer = K.SGD(0.1)
    finally:
        keras.config.set_floatx(previous)
    pair = Pair(keras_optimizer)
    assert pair.numpy.learning_rate == 0.1 and pair.numpy.learning_rate.dtype == np.float64
    pair.step(5, EXACT)


# --- state: built optimizers, mid-trajectory, back to Keras --------------------------


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_twin_of_a_built_optimizer_continues_its_trajectory(name):
    keras_optimizer = make(name, weight_decay=0.01)
    pair = Pair(keras_optimizer, seed=2)
    for _ in range(5):  # Keras alone, then the twin takes over its state
        pair.step_keras(pair.grads())
    pair.params = {v.path: v.numpy().copy() for v in pair.variables}
    pair.numpy = popt.twin_optimizer(keras_optimizer)
    assert pair.numpy.iterations == 5
    keras_slots = {slot for slot, attr in popt.TWINS[type(keras_optimizer)].slots.items()
                   if getattr(keras_optimizer, attr, None)}
    assert set(pair.numpy.state) == keras_slots
    pair.step(10, EXACT)


@pytest.mark.parametrize("name", registry.OPTIMIZER_NAMES)
def test_every_optimizer_flag_value_twins_to_its_registered_numpy_ref_class(name):
    entry = registry.OPTIMIZERS[name]
    keras_optimizer = registry.make_optimizer(name)
    assert type(keras_optimizer) is entry.keras and popt.TWINS[entry.keras] is entry.twin
    twin = popt.twin_optimizer(keras_optimizer)
    assert type(twin) is entry.twin.cls
    assert twin.learning_rate == np.float32(registry.default_learning_rate(name))
    for option, value in entry.options.items():
        assert getattr(twin, option) == value


def test_twin_of_a_compiled_models_optimizer_is_keyed_by_variable_path():
    # Named: Keras numbers default names per process, so they depend on the tests before.
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="dense"),
                              keras.layers.Dense(2, name="dense_1")], name="sequential")
    model.compile(optimizer=K.Adam(0.01, amsgrad=True), loss="mse")
    rng = np.random.default_rng(3)
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), epochs=1, verbose=0)
    twin = popt.twin_optimizer(model.optimizer)
    paths = {v.path for v in model.trainable_variables}
    assert set(twin.state) == {"momentum", "velocity", "velocity_hat"}
    assert all(set(store) == paths for store in twin.state.values())
    assert "sequential/dense/kernel" in paths
    velocity_hats = model.optimizer._velocity_hats  # pylint: disable=protected-access
    for v in model.trainable_variables:
        index = model.optimizer._get_variable_index(v)  # pylint: disable=protected-access
        np.testing.assert_array_equal(twin.state["velocity_hat"][v.path],
                                      velocity_hats[index].numpy())


def test_an_unbuilt_optimizer_gives_an_empty_state():
    twin = popt.twin_optimizer(K.RMSprop(0.01, momentum=0.5, centered=True))
    assert twin.iterations == 0 and twin.state == {}
    assert set(twin.slots) == {"velocity", "momentum", "average_gradient"}
    assert (twin.rho, twin.momentum, twin.centered) == (0.9, 0.5, True)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_state_to_keras_continues_the_numpy_trajectory(name):
    pair = Pair(make(name), seed=4)
    for _ in range(5):  # NumPy alone, then its state goes into the Keras optimizer
        pair.numpy.update(pair.params, pair.grads())
    for v in pair.variables:
        v.assign(pair.params[v.path])
    pair.keras.build(pair.variables)
    popt.optimizer_state_to_keras(pair.numpy, pair.keras)
    assert int(pair.keras.iterations.numpy()) == 5
    pair.step(5, EXACT)


def test_state_to_keras_fills_slots_the_numpy_side_has_not_created():
    pair = Pair(K.Adagrad(0.1, initial_accumulator_value=0.3))
    pair.step(3, EXACT)  # Keras accumulators now differ from their initial value
    popt.optimizer_state_to_keras(np_optimizers.AdaGrad(0.1, initial_accumulator_value=0.3),
                                  pair.keras)
    accumulators = pair.keras._accumulators  # pylint: disable=protected-access
    assert int(pair.keras.iterations.numpy()) == 0
    assert all(np.all(a.numpy() == np.float32(0.3)) for a in accumulators)


# --- what has no twin, and what does not fit ------------------------------------------


class _MySchedule(KS.ExponentialDecay):
    pass


def _constant_rate():
    return 0.1


def _with_rate(keras_optimizer, learning_rate):
    keras_optimizer.learning_rate = learning_rate
    return keras_optimizer


@pytest.mark.parametrize("make, match", [
    (lambda: K.Ftrl(), r"Ftrl has no numpy_ref twin; supported optimizers: \['Adadelta'"),
    (lambda: K.LossScaleOptimizer(K.SGD()), "LossScaleOptimizer has no numpy_ref twin"),
    (lambda: K.Lamb(), "Lamb has no numpy_ref twin"),
    (lambda: K.Adam(use_ema=True), r"use_ema=True\) has no numpy_ref twin"),
    (lambda: K.SGD(gradient_accumulation_steps=2), "gradient_accumulation_steps=2"),
    (lambda: K.SGD(loss_scale_factor=128.0), "loss_scale_factor=128.0"),
    (lambda: K.SGD(KS.CosineDecayRestarts(0.1, 10)), "schedule CosineDecayRestarts has no"),
    (lambda: K.SGD(_MySchedule(0.1, 10, 0.5)), "schedule _MySchedule has no numpy_ref twin"),
    (lambda: K.SGD(_constant_rate), "callable learning_rate"),
    (lambda: _with_rate(K.SGD(), 0.0), "learning_rate must be > 0"),
], ids=["ftrl", "loss-scale", "lamb", "ema", "accumulation", "loss-scale-factor",
        "restarts", "schedule-subclass", "callable", "zero-rate"])
def test_what_has_no_twin_is_refused_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        popt.twin_optimizer(make())


def test_exclusions_of_an_unbuilt_optimizer_need_the_variables():
    keras_optimizer = K.AdamW()
    keras_optimizer.exclude_from_weight_decay(var_names=["bias"])
    with pytest.raises(ValueError, match="pass variables=model.trainable_variables"):
        popt.twin_optimizer(keras_optimizer)


@pytest.mark.parametrize("problem", ["other-variables", "same-path", "constraint"])
def test_variables_the_twin_cannot_key_or_follow_are_refused(problem):
    values = {path: np.zeros(shape) for path, shape in SHAPES.items()}
    variables = make_variables(values, "float64")
    keras_optimizer = K.SGD()
    if problem == "other-variables":
        keras_optimizer.build(variables)
        variables = variables[:1]
        match = "is built on"
    elif problem == "same-path":
        variables = variables + make_variables({"dense_1/bias": np.zeros(4)}, "float64")
        match = r"paths \['dense_1/bias'\] occur more than once"
    else:
        variables[0].constraint = keras.constraints.NonNeg()
        match = "'dense_1/kernel' has a constraint"
    with pytest.raises(ValueError, match=match):
        popt.twin_optimizer(keras_optimizer, variables)


def _built(keras_optimizer, shapes=None, dtype="float64"):
    values = {path: np.zeros(shape) for path, shape in (shapes or SHAPES).items()}
    keras_optimizer.build(make_variables(values, dtype))
    return keras_optimizer


def _stepped(numpy_optimizer, shapes=None, dtype=np.float64):
    params = {path: np.zeros(shape, dtype) for path, shape in (shapes or SHAPES).items()}
    numpy_optimizer.update(params, {path: np.ones_like(p) for path, p in params.items()})
    return numpy_optimizer


@pytest.mark.parametrize("make_numpy, make_keras, match", [
    (lambda: np_optimizers.Adam(), lambda: K.SGD(), "numpy_ref Adam cannot hold the state of Keras SGD"),
    (lambda: np_optimizers.Adam(), lambda: K.Adam(), "Adam is not built"),
    (lambda: np_optimizers.Adam(amsgrad=True), lambda: _built(K.Adam()),
     r"slots \['momentum', 'velocity', 'velocity_hat'\] but Keras Adam \['momentum', 'velocity'\]"),
    (lambda: _stepped(np_optimizers.Adam(), {"dense_1/kernel": (6, 5)}), lambda: _built(K.Adam()),
     r"slot 'momentum' of 'dense_1/kernel': NumPy float64\(6, 5\) does not fit Keras float64\(6, 4\)"),
    (lambda: _stepped(np_optimizers.Momentum(), dtype=np.float32), lambda: _built(K.SGD(momentum=0.9)),
     r"NumPy float32\(6, 4\) does not fit Keras float64\(6, 4\)"),
    (lambda: _stepped(np_optimizers.Adam(), {"other/kernel": (2,)}), lambda: _built(K.Adam()),
     r"state for \['other/kernel'\], which Adam does not track"),
    (lambda: np_optimizers.Adam(), lambda: K.Adam(use_ema=True), "use_ema"),
], ids=["class", "unbuilt", "slots", "shape", "dtype", "unknown-parameter", "option"])
def test_state_to_keras_refuses_what_does_not_fit(make_numpy, make_keras, match):
    keras_optimizer = make_keras()
    before = [v.numpy().copy() for v in keras_optimizer.variables]
    with pytest.raises(ValueError, match=match):
        popt.optimizer_state_to_keras(make_numpy(), keras_optimizer)
    for variable, value in zip(keras_optimizer.variables, before):  # nothing half-assigned
        np.testing.assert_array_equal(variable.numpy(), value)
