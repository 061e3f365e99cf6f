"""Tests for `numpy_ref.optimizers` against hand-written Keras 3 update formulas.

Each expected trajectory below is written out step by step with plain NumPy,
following `keras/src/optimizers/*.py`: values Keras passes through
`ops.cast(python_float, variable.dtype)` (the learning rate, SGD's momentum,
Adam's betas in the bias-correction powers, Adagrad's initial accumulator) are
float32-rounded first, everything else stays a double. With the same order of
operations a float64 step must agree to the last bit, hence rtol=0, atol=0.
"""

import numpy as np
import pytest

from numpy_ref import optimizers as O

STEPS = 3


def f32(value):
    """A Python float as Keras's `ops.cast(value, "float64")` sees it: rounded to float32."""
    return np.float64(np.float32(value))


def _start(seed=0):
    """Float64 parameters under two names and STEPS gradients for each."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(2, 3)), "b": rng.normal(size=3)}
    grads = [{name: rng.normal(size=p.shape) for name, p in params.items()} for _ in range(STEPS)]
    return params, grads


def _run(optimizer, params, grads):
    params = {name: p.copy() for name, p in params.items()}
    for step_grads in grads:
        optimizer.update(params, step_grads)
    return params


# --- hand-written trajectories, one parameter array at a time ---------------------


def sgd_by_hand(w, gs, lr):
    for g in gs:
        w = w - g * f32(lr)
    return w


def momentum_by_hand(w, gs, lr, momentum, nesterov=False):
    v = np.zeros_like(w)
    for g in gs:
        v = v * f32(momentum) - g * f32(lr)
        w = w + (v * f32(momentum) - g * f32(lr) if nesterov else v)
    return w


def adagrad_by_hand(w, gs, lr, initial, eps):
    acc = np.full_like(w, f32(initial))
    for g in gs:
        acc = acc + g * g
        w = w - f32(lr) * g / np.sqrt(acc + eps)
    return w


def rmsprop_by_hand(w, gs, lr, rho, eps, momentum=0.0, centered=False):
    v, avg, buf = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        v = rho * v + (1 - rho) * (g * g)
        if centered:
            avg = rho * avg + (1 - rho) * g
            denominator = v - avg * avg + eps
        else:
            denominator = v + eps
        increment = f32(lr) * g / np.sqrt(denominator)  # eps inside the root
        if momentum > 0:
            buf = momentum * buf + increment
            w = w - buf
        else:
            w = w - increment
    return w


def adam_by_hand(w, gs, lr, beta_1, beta_2, eps):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        # Bias correction folded into the step size, with float32-rounded betas.
        alpha = f32(lr) * np.sqrt(1 - f32(beta_2) ** np.float64(t)) / (1 - f32(beta_1) ** np.float64(t))
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        w = w - m * alpha / (np.sqrt(v) + eps)
    return w


CASES = {
    "sgd": (lambda: O.SGD(0.1), lambda w, gs: sgd_by_hand(w, gs, 0.1)),
    "momentum": (lambda: O.Momentum(0.1, 0.9), lambda w, gs: momentum_by_hand(w, gs, 0.1, 0.9)),
    "nesterov": (lambda: O.Nesterov(0.1, 0.8),
                 lambda w, gs: momentum_by_hand(w, gs, 0.1, 0.8, nesterov=True)),
    "adagrad": (lambda: O.AdaGrad(0.3, initial_accumulator_value=0.1, epsilon=1e-7),
                lambda w, gs: adagrad_by_hand(w, gs, 0.3, 0.1, 1e-7)),
    "rmsprop": (lambda: O.RMSprop(0.01, rho=0.9, epsilon=1e-7),
                lambda w, gs: rmsprop_by_hand(w, gs, 0.01, 0.9, 1e-7)),
    "rmsprop-momentum": (lambda: O.RMSprop(0.01, rho=0.8, momentum=0.7),
                         lambda w, gs: rmsprop_by_hand(w, gs, 0.01, 0.8, 1e-7, momentum=0.7)),
    "rmsprop-centered": (lambda: O.RMSprop(0.01, centered=True),
                         lambda w, gs: rmsprop_by_hand(w, gs, 0.01, 0.9, 1e-7, centered=True)),
    "rmsprop-momentum-centered": (
        lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
        lambda w, gs: rmsprop_by_hand(w, gs, 0.01, 0.9, 1e-7, momentum=0.5, centered=True)),
    "adam": (lambda: O.Adam(0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
             lambda w, gs: adam_by_hand(w, gs, 0.1, 0.9, 0.999, 1e-7)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_float64_steps_equal_the_keras_formula_exactly(case):
    make, by_hand = CASES[case]
    params, grads = _start()
    got = _run(make(), params, grads)
    for name, start in params.items():
        expected = by_hand(start, [g[name] for g in grads])
        np.testing.assert_allclose(got[name], expected, rtol=0, atol=0, err_msg=name)


def test_sgd_rounds_the_learning_rate_to_float32():
    params = {"w": np.array([1.0])}
    O.SGD(0.1).update(params, {"w": np.array([0.5])})
    # float32(0.1) = 0.10000000149011612, so the step is 0.05000000074505806.
    assert params["w"][0] == 1.0 - 0.5 * 0.10000000149011612
    assert params["w"][0] != 1.0 - 0.5 * 0.1


def test_adam_first_step_moves_by_about_the_learning_rate():
    # After one step m = 0.1 g and v = 0.001 g^2, and the bias correction makes
    # the move lr * g / |g|, up to two small terms: Keras's float32 beta_2 in the
    # correction (1 - float32(0.999) is 1.3e-5 relative off 1 - 0.999; its square
    # root 6.4e-6) and epsilon / sqrt(v) (6.3e-6 for g = 0.5). Together ~1.3e-5 * lr.
    params = {"w": np.array([1.0, 1.0])}
    O.Adam(0.01).update(params, {"w": np.array([0.5, -2.0])})
    np.testing.assert_allclose(params["w"], [1.0 - 0.01, 1.0 + 0.01], rtol=0, atol=2e-7)


# --- defaults, dtypes, state and construction ----------------------------------------


@pytest.mark.parametrize("cls, expected", [
    (O.SGD, {"learning_rate": 0.01}),
    (O.Momentum, {"learning_rate": 0.01, "momentum": 0.9}),
    (O.Nesterov, {"learning_rate": 0.01, "momentum": 0.9}),
    (O.AdaGrad, {"learning_rate": 1e-3, "initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    (O.RMSprop, {"learning_rate": 1e-3, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
                 "centered": False}),
    (O.Adam, {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_defaults_are_keras_3s(cls, expected):
    optimizer = cls()
    for name, value in expected.items():
        assert getattr(optimizer, name) == value, name
    assert optimizer.iterations == 0


@pytest.mark.parametrize("case", list(CASES))
def test_float32_params_stay_float32(case):
    make, _ = CASES[case]
    params, grads = _start(1)
    params = {name: p.astype(np.float32) for name, p in params.items()}
    optimizer = make()
    for step_grads in grads:  # float64 gradients are cast to the parameter's dtype
        optimizer.update(params, step_grads)
    assert all(p.dtype == np.float32 for p in params.values())
    for slot, arrays in optimizer.state.items():
        assert all(a.dtype == np.float32 for a in arrays.values()), slot
    assert optimizer.iterations == STEPS


@pytest.mark.parametrize("case", list(CASES))
def test_state_is_kept_per_parameter_name(case):
    make, _ = CASES[case]
    params, grads = _start(2)
    together = _run(make(), params, grads)
    for name in params:
        alone = _run(make(), {name: params[name]}, [{name: g[name]} for g in grads])
        np.testing.assert_array_equal(together[name], alone[name], err_msg=name)


def test_state_arrays_are_named_like_the_parameters():
    params, grads = _start(3)
    optimizer = O.Adam()
    _run(optimizer, params, grads)
    assert set(optimizer.state) == {"m", "v"}
    assert all(set(arrays) == {"W", "b"} for arrays in optimizer.state.values())


def test_update_changes_the_callers_arrays_in_place():
    w = np.ones(3)
    params = {"w": w}
    O.SGD(0.5).update(params, {"w": np.ones(3)})
    assert params["w"] is w
    np.testing.assert_array_equal(w, [0.5, 0.5, 0.5])


@pytest.mark.parametrize("name, cls", list(O.OPTIMIZERS.items()))
def test_get_by_name(name, cls):
    optimizer = O.get(name, learning_rate=0.05)
    assert type(optimizer) is cls and optimizer.learning_rate == 0.05


def test_get_unknown_name_raises():
    with pytest.raises(ValueError, match="adamw"):
        O.get("adamw")


def test_optimizer_base_class_is_abstract():
    with pytest.raises(TypeError):
        O.Optimizer(0.1)


@pytest.mark.parametrize("cls", list(O.OPTIMIZERS.values()), ids=lambda c: c.__name__)
@pytest.mark.parametrize("learning_rate", [0.0, -0.1], ids=["zero", "negative"])
def test_non_positive_learning_rate_raises(cls, learning_rate):
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=learning_rate)


@pytest.mark.parametrize("momentum", [1.0, -0.1], ids=["one", "negative"])
def test_momentum_out_of_range_raises(momentum):
    with pytest.raises(ValueError, match="momentum"):
        O.Momentum(momentum=momentum)


# --- they all minimise a quadratic ----------------------------------------------------

MINIMISE = {
    "sgd": lambda: O.SGD(0.05),
    "momentum": lambda: O.Momentum(0.02, 0.9),
    "nesterov": lambda: O.Nesterov(0.02, 0.9),
    "adagrad": lambda: O.AdaGrad(0.5),
    "rmsprop": lambda: O.RMSprop(0.01),
    "rmsprop-momentum-centered": lambda: O.RMSprop(0.005, momentum=0.5, centered=True),
    "adam": lambda: O.Adam(0.05),
}


@pytest.mark.parametrize("case", list(MINIMISE))
def test_optimizers_minimise_a_quadratic(case):
    # f(w) = 1/2 * sum(a * (w - c)^2): an ill-conditioned bowl with its minimum at c.
    a, c = np.array([1.0, 10.0]), np.array([1.0, -2.0])
    params = {"w": np.zeros(2)}
    optimizer = MINIMISE[case]()
    for _ in range(1000):
        optimizer.update(params, {"w": a * (params["w"] - c)})
    # Adaptive methods hover within ~lr of the minimum; 0.05 allows for that.
    np.testing.assert_allclose(params["w"], c, rtol=0, atol=0.05)
