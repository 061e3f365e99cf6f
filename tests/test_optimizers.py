"""Tests for `numpy_ref.optim.optimizers` and `numpy_ref.optim.schedules` against hand-written
Keras 3 formulas (NumPy only; `test_parity_optimizers.py` steps Keras itself).

Each expected trajectory below is written out step by step with plain NumPy,
following `keras/src/optimizers/*.py`: values Keras passes through
`ops.cast(python_float, variable.dtype)` (the learning rate, SGD's momentum,
the betas in bias corrections, Adagrad's initial accumulator, weight decay) are
float32-rounded first, everything else stays a double; scalar powers are the C
library's (`math.pow`). With the same order of operations a float64 step must
agree to the last bit, hence rtol=0, atol=0.
"""

import math

import numpy as np
import pytest

from numpy_ref.optim import keras_scalars
from numpy_ref.optim import optimizers as O
from numpy_ref.optim import schedules as S

STEPS = 3


def f32(value):
    """A Python float as Keras's `ops.cast(value, "float64")` sees it: rounded to float32."""
    return np.float64(np.float32(value))


def _start(seed=0, steps=STEPS):
    """Float64 parameters under two names and `steps` gradients for each."""
    rng = np.random.default_rng(seed)
    params = {"W": rng.normal(size=(2, 3)), "b": rng.normal(size=3)}
    grads = [{name: rng.normal(size=p.shape) for name, p in params.items()} for _ in range(steps)]
    return params, grads


def _run(optimizer, params, grads):
    params = {name: p.copy() for name, p in params.items()}
    for step_grads in grads:
        optimizer.update(params, step_grads)
    return params


# --- hand-written trajectories, one parameter array at a time ---------------------


def sgd_by_hand(w, gs, lr, momentum=0.0, nesterov=False):
    v = np.zeros_like(w)
    for g in gs:
        if momentum == 0:
            w = w - g * f32(lr)
            continue
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


def adam_by_hand(w, gs, lr, beta_1, beta_2, eps, amsgrad=False):
    m, v, v_hat = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        # Bias correction folded into the step size, with float32-rounded betas.
        alpha = f32(lr) * np.sqrt(1 - math.pow(f32(beta_2), t)) / (1 - math.pow(f32(beta_1), t))
        m = m + (g - m) * (1 - beta_1)
        v = v + (g * g - v) * (1 - beta_2)
        v_hat = np.maximum(v_hat, v)
        w = w - m * alpha / (np.sqrt(v_hat if amsgrad else v) + eps)
    return w


def adamax_by_hand(w, gs, lr, beta_1, beta_2, eps):
    m, u = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, start=1):
        m = m + (g - m) * (1 - beta_1)
        u = np.maximum(beta_2 * u, np.abs(g))
        w = w - f32(lr) * m / ((1 - math.pow(f32(beta_1), t)) * (u + eps))
    return w


def nadam_by_hand(w, gs, lr, beta_1, beta_2, eps):
    m, v, product = np.zeros_like(w), np.zeros_like(w), 1.0
    for t, g in enumerate(gs, start=1):
        # The stored product uses the double 0.96 and beta_1; the step float32-rounded ones.
        product = product * beta_1 * (1.0 - 0.5 * math.pow(0.96, t))
        u_t, u_next = (f32(beta_1) * (1.0 - 0.5 * math.pow(f32(0.96), s)) for s in (t, t + 1))
        m = m + (g - m) * (1 - f32(beta_1))
        v = v + (g * g - v) * (1 - f32(beta_2))
        m_hat = u_next * m / (1 - product * u_next) + (1 - u_t) * g / (1 - product)
        v_hat = v / (1 - math.pow(f32(beta_2), t))
        w = w - m_hat * f32(lr) / (np.sqrt(v_hat) + eps)
    return w


def lion_by_hand(w, gs, lr, beta_1, beta_2):
    m = np.zeros_like(w)
    for g in gs:
        w = w - f32(lr) * np.sign(m * f32(beta_1) + g * (1.0 - f32(beta_1)))
        m = m * f32(beta_2) + g * (1.0 - f32(beta_2))
    return w


def adadelta_by_hand(w, gs, lr, rho, eps):
    a, d = np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        a = rho * a + (1 - rho) * (g * g)
        delta = -(np.sqrt(d + eps) * g / np.sqrt(a + eps))
        d = rho * d + (1 - rho) * (delta * delta)
        w = w + f32(lr) * delta
    return w


CASES = {
    "sgd": (lambda: O.SGD(0.1), lambda w, gs: sgd_by_hand(w, gs, 0.1)),
    "sgd-momentum": (lambda: O.SGD(0.1, momentum=0.7),
                     lambda w, gs: sgd_by_hand(w, gs, 0.1, 0.7)),
    "momentum": (lambda: O.Momentum(0.1, 0.9), lambda w, gs: sgd_by_hand(w, gs, 0.1, 0.9)),
    "nesterov": (lambda: O.Nesterov(0.1, 0.8),
                 lambda w, gs: sgd_by_hand(w, gs, 0.1, 0.8, nesterov=True)),
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
    "adam-amsgrad": (lambda: O.Adam(0.1, beta_2=0.5, amsgrad=True),
                     lambda w, gs: adam_by_hand(w, gs, 0.1, 0.9, 0.5, 1e-7, amsgrad=True)),
    "adamax": (lambda: O.Adamax(0.1), lambda w, gs: adamax_by_hand(w, gs, 0.1, 0.9, 0.999, 1e-7)),
    "nadam": (lambda: O.Nadam(0.1), lambda w, gs: nadam_by_hand(w, gs, 0.1, 0.9, 0.999, 1e-7)),
    "lion": (lambda: O.Lion(0.1), lambda w, gs: lion_by_hand(w, gs, 0.1, 0.9, 0.99)),
    "adadelta": (lambda: O.Adadelta(1.0), lambda w, gs: adadelta_by_hand(w, gs, 1.0, 0.95, 1e-7)),
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


def test_a_numpy_float64_learning_rate_is_used_exactly():
    # Keras with floatx float64 keeps its learning-rate variable in float64.
    params = {"w": np.array([1.0])}
    O.SGD(np.float64(0.1)).update(params, {"w": np.array([0.5])})
    assert params["w"][0] == 1.0 - 0.5 * 0.1


def test_adam_first_step_moves_by_about_the_learning_rate():
    # After one step m = 0.1 g and v = 0.001 g^2, and the bias correction makes
    # the move lr * g / |g|, up to two small terms: Keras's float32 beta_2 in the
    # correction (1 - float32(0.999) is 1.3e-5 relative off 1 - 0.999; its square
    # root 6.4e-6) and epsilon / sqrt(v) (6.3e-6 for g = 0.5). Together ~1.3e-5 * lr.
    params = {"w": np.array([1.0, 1.0])}
    O.Adam(0.01).update(params, {"w": np.array([0.5, -2.0])})
    np.testing.assert_allclose(params["w"], [1.0 - 0.01, 1.0 + 0.01], rtol=0, atol=2e-7)


# --- base options: weight decay and clipping, by hand --------------------------------


def test_weight_decay_comes_first_with_float32_rounded_factors():
    params, grads = _start(4)
    got = _run(O.SGD(0.1, weight_decay=0.01, exclude_from_weight_decay={"b"}), params, grads)
    w, b = params["W"], params["b"]
    for g in grads:
        w = w - w * f32(0.01) * f32(0.1)  # Keras: variable - variable * wd * lr
        w = w - g["W"] * f32(0.1)
        b = b - g["b"] * f32(0.1)  # excluded by name: no decay
    np.testing.assert_allclose(got["W"], w, rtol=0, atol=0)
    np.testing.assert_allclose(got["b"], b, rtol=0, atol=0)


def test_adamw_is_adam_with_weight_decay_0_004():
    params, grads = _start(5)
    got = _run(O.AdamW(0.1), params, grads)
    expected = _run(O.Adam(0.1, weight_decay=0.004), params, grads)
    for name in params:
        np.testing.assert_array_equal(got[name], expected[name])
    assert O.AdamW().weight_decay == 0.004


def _clipped_sgd(grads_by_hand, **option):
    """SGD(lr=1.0) with `option` against SGD on gradients clipped by `grads_by_hand`."""
    params, grads = _start(6)
    grads = [{name: 3 * g for name, g in step.items()} for step in grads]  # norms above 1
    got = _run(O.SGD(1.0, **option), params, grads)
    expected = _run(O.SGD(1.0), params, [grads_by_hand(step) for step in grads])
    for name in params:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=0, err_msg=name)


def test_clipvalue_clips_each_entry():
    _clipped_sgd(lambda step: {n: np.clip(g, -0.5, 0.5) for n, g in step.items()}, clipvalue=0.5)


def test_clipnorm_scales_each_gradient_as_tf_clip_by_norm():
    # TF computes g * c / max(norm, c) even when the norm is below c.
    def by_hand(step):
        return {n: g * 2.0 / max(np.sqrt(np.sum(g * g)), 2.0) for n, g in step.items()}
    _clipped_sgd(by_hand, clipnorm=2.0)


def test_global_clipnorm_scales_all_gradients_together():
    def by_hand(step):
        norm = np.sqrt(np.sum(np.stack([np.sum(g * g) for g in step.values()])))
        scale = 2.0 * min(1.0 / norm, 1.0 / 2.0)
        return {n: g * scale for n, g in step.items()}
    _clipped_sgd(by_hand, global_clipnorm=2.0)


def test_zero_clip_options_are_off_as_in_keras():
    _clipped_sgd(lambda step: step, clipnorm=0.0)


def test_only_one_clip_option():
    with pytest.raises(ValueError, match="Only one of clipnorm, clipvalue and global_clipnorm"):
        O.Adam(clipnorm=1.0, clipvalue=1.0)


def test_a_none_gradient_skips_the_parameter_as_in_keras():
    params = {"a": np.ones(2), "b": np.ones(2)}
    O.SGD(0.5, weight_decay=0.1).update(params, {"a": np.ones(2), "b": None})
    np.testing.assert_array_equal(params["b"], np.ones(2))  # neither decayed nor stepped
    assert params["a"][0] < 0.5


def test_no_gradient_at_all_raises_and_no_parameters_is_no_step():
    with pytest.raises(ValueError, match="No gradients"):
        O.SGD().update({"a": np.ones(2)}, {"a": None})
    optimizer = O.SGD()
    optimizer.update({}, {})
    assert optimizer.iterations == 0


# --- learning rates that change with the step -------------------------------------


def test_a_callable_learning_rate_gets_the_iterations():
    seen = []
    params, grads = _start(7)

    def learning_rate(step):
        seen.append(step)
        return 0.1 / (step + 1)

    got = _run(O.SGD(learning_rate), params, grads)
    assert seen == [0, 1, 2]
    w = params["W"]
    for step, g in enumerate(grads):
        w = w - g["W"] * f32(0.1 / (step + 1))  # a returned Python float is float32-rounded
    np.testing.assert_allclose(got["W"], w, rtol=0, atol=0)


F64 = np.float64  # a float64 initial rate makes Keras compute the schedule in float64

SCHEDULES_BY_HAND = {
    "exponential": (S.ExponentialDecay(F64(0.1), 7, 0.9),
                    lambda s: 0.1 * math.pow(f32(0.9), s / 7)),
    "exponential-staircase": (S.ExponentialDecay(F64(0.1), 7, 0.9, staircase=True),
                              lambda s: 0.1 * math.pow(f32(0.9), s // 7)),
    "inverse-time": (S.InverseTimeDecay(F64(0.1), 3, 0.5),
                     lambda s: 0.1 / (1 + f32(0.5) * (s / 3))),
    "polynomial": (S.PolynomialDecay(F64(0.1), 10, power=0.5),
                   lambda s: ((0.1 - f32(0.0001)) * math.pow(1 - min(s, 10) / 10, f32(0.5))
                              + f32(0.0001))),
    "polynomial-cycle": (S.PolynomialDecay(F64(0.1), 4, end_learning_rate=0.01, cycle=True),
                         lambda s: ((0.1 - f32(0.01)) * (1 - s / (4 * max(1, math.ceil(s / 4))))
                                    + f32(0.01))),
    "cosine": (S.CosineDecay(F64(0.1), 10, alpha=0.1),
               lambda s: 0.1 * (0.9 * (0.5 * (1 + math.cos(math.pi * min(s, 10) / 10))) + 0.1)),
    "cosine-warmup": (S.CosineDecay(F64(0.0), 10, warmup_target=0.2, warmup_steps=4),
                      lambda s: (f32(0.2) * s / 4 if s < 4 else f32(0.2) * (
                          0.5 * (1 + math.cos(math.pi * (min(s, 14) - 4) / 10))))),
    "piecewise": (S.PiecewiseConstantDecay([3, 6], [0.1, 0.05, 0.01]),
                  lambda s: f32(0.1 if s <= 3 else 0.05 if s <= 6 else 0.01)),
}


@pytest.mark.parametrize("case", list(SCHEDULES_BY_HAND))
def test_schedules_follow_the_keras_formulas(case):
    schedule, by_hand = SCHEDULES_BY_HAND[case]
    for step in range(20):
        assert schedule(step) == by_hand(step), step


@pytest.mark.parametrize("name", sorted(S.SCHEDULES))
def test_a_python_float_schedule_computes_in_float32(name):
    args = {"PiecewiseConstantDecay": ([5], [0.1, 0.01])}.get(name, (0.1, 10))
    if name in ("ExponentialDecay", "InverseTimeDecay"):
        args += (0.5,)
    values = [S.SCHEDULES[name](*args)(step) for step in range(12)]
    assert all(value.dtype == np.float32 for value in values)
    assert values[0] == np.float32(0.1)


@pytest.mark.parametrize("make, match", [
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
    (lambda: S.CosineDecay(1, 10), "initial_learning_rate must be a float"),
    (lambda: S.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), "length of boundaries"),
], ids=["zero-decay-steps", "int-rate", "boundaries-values"])
def test_schedule_arguments_are_checked(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_schedule_drives_the_optimizer_step_by_step():
    schedule = S.PiecewiseConstantDecay([0, 1], [0.5, 0.25, 0.125])
    params = {"w": np.zeros(1)}
    optimizer = O.SGD(schedule)
    for _ in range(3):
        optimizer.update(params, {"w": np.ones(1)})
    assert params["w"][0] == -(0.5 + 0.25 + 0.125)


# --- Keras's scalar arithmetic -----------------------------------------------------


def test_keras_cast_rounds_python_floats_through_float32_only():
    assert keras_scalars.keras_cast(0.1, np.float64) == f32(0.1)
    assert keras_scalars.keras_cast(np.float64(0.1), np.float64) == 0.1
    assert keras_scalars.keras_cast(2**40, np.float64) == 2.0**40  # int64, exact
    assert keras_scalars.keras_dtype(3) == np.int32


def test_flush_subnormal_as_tf_does():
    tiny = np.finfo(np.float32).tiny
    assert keras_scalars.flush_subnormal(np.float32(tiny / 4)) == 0
    assert keras_scalars.flush_subnormal(np.float32(tiny)) == tiny
    assert keras_scalars.scalar_pow(np.float32(0.5), np.float32(140), np.float32) == 0
    assert np.isnan(keras_scalars.scalar_pow(-1.0, 0.5, np.float64))


# --- defaults, dtypes, state and construction ----------------------------------------


@pytest.mark.parametrize("cls, expected", [
    (O.SGD, {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    (O.Momentum, {"learning_rate": 0.01, "momentum": 0.9, "nesterov": False}),
    (O.Nesterov, {"learning_rate": 0.01, "momentum": 0.9, "nesterov": True}),
    (O.AdaGrad, {"learning_rate": 1e-3, "initial_accumulator_value": 0.1, "epsilon": 1e-7}),
    (O.RMSprop, {"learning_rate": 1e-3, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7,
                 "centered": False}),
    (O.Adam, {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7,
              "amsgrad": False, "weight_decay": None}),
    (O.AdamW, {"learning_rate": 1e-3, "weight_decay": 0.004, "amsgrad": False}),
    (O.Adamax, {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    (O.Nadam, {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}),
    (O.Lion, {"learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.99}),
    (O.Adadelta, {"learning_rate": 1e-3, "rho": 0.95, "epsilon": 1e-7}),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_defaults_are_keras_3s(cls, expected):
    optimizer = cls()
    for name, value in expected.items():
        assert getattr(optimizer, name) == value, name
    assert optimizer.iterations == 0
    assert optimizer.clipnorm is optimizer.clipvalue is optimizer.global_clipnorm is None


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


@pytest.mark.parametrize("case", list(CASES))
def test_state_round_trip_continues_the_same_trajectory(case):
    make, _ = CASES[case]
    params, grads = _start(3, steps=6)
    first = make()
    params = _run(first, params, grads[:3])
    second = make()
    second.set_state(first.get_state())
    assert second.iterations == 3
    assert first.get_state().keys() == second.get_state().keys()
    np.testing.assert_equal(_run(second, params, grads[3:]), _run(first, params, grads[3:]))


@pytest.mark.parametrize("make, slots", [
    (O.Adam, {"momentum", "velocity"}),
    (lambda: O.Adam(amsgrad=True), {"momentum", "velocity", "velocity_hat"}),
    (O.SGD, set()),
    (O.Momentum, {"momentum"}),
    (lambda: O.RMSprop(momentum=0.5, centered=True), {"velocity", "momentum", "average_gradient"}),
    (O.Adamax, {"momentum", "norm"}),
    (O.Nadam, {"momentum", "velocity"}),
], ids=["adam", "amsgrad", "sgd", "momentum", "rmsprop-all", "adamax", "nadam"])
def test_state_arrays_are_named_like_keras_slots_and_the_parameters(make, slots):
    params, grads = _start(3)
    optimizer = make()
    _run(optimizer, params, grads)
    assert set(optimizer.state) == slots == set(optimizer.slots)
    assert all(set(arrays) == {"W", "b"} for arrays in optimizer.state.values())
    assert {key.split("/")[0] for key in optimizer.get_state() if "/" in key} == slots


def test_nadam_saves_its_momentum_product():
    optimizer = O.Nadam()
    _run(optimizer, *_start(3))
    state = optimizer.get_state()
    assert state["u_product"].dtype == np.float64 and state["u_product"] < 0.9 ** STEPS


def test_set_state_refuses_unknown_slots_and_needs_iterations():
    with pytest.raises(ValueError, match="unknown optimizer state 'm/W'.*momentum"):
        O.Adam().set_state({"iterations": np.array(1), "m/W": np.zeros(2)})
    with pytest.raises(ValueError, match="velocity_hat"):
        O.Adam().set_state({"iterations": np.array(1), "velocity_hat/W": np.zeros(2)})
    with pytest.raises(ValueError, match="iterations"):
        O.Adam().set_state({})


def test_update_changes_the_callers_arrays_in_place():
    w = np.ones(3)
    params = {"w": w}
    O.SGD(0.5).update(params, {"w": np.ones(3)})
    assert params["w"] is w
    np.testing.assert_array_equal(w, [0.5, 0.5, 0.5])


# Every optimizer class numpy_ref defines (tfmodels.optimizers.OPTIMIZERS names them for
# --optimizer; tests/test_parity_optimizers.py checks that registry).
EVERY_OPTIMIZER = [cls for cls in vars(O).values() if isinstance(cls, type)
                   and issubclass(cls, O.Optimizer) and cls is not O.Optimizer]


def test_optimizer_base_class_is_abstract():
    with pytest.raises(TypeError):
        O.Optimizer(0.1)


@pytest.mark.parametrize("cls", EVERY_OPTIMIZER, ids=lambda c: c.__name__)
@pytest.mark.parametrize("learning_rate", [0.0, -0.1], ids=["zero", "negative"])
def test_non_positive_learning_rate_raises(cls, learning_rate):
    with pytest.raises(ValueError, match="learning_rate"):
        cls(learning_rate=learning_rate)


@pytest.mark.parametrize("make, match", [
    (lambda: O.Momentum(momentum=1.5), "momentum"),
    (lambda: O.SGD(momentum=-0.1), "momentum"),
    (lambda: O.AdamW(weight_decay=None), "weight_decay"),
    (lambda: O.Lion(beta_1=0.0), "beta_1"),
], ids=["momentum-above-one", "momentum-negative", "adamw-without-decay", "lion-beta-1"])
def test_out_of_range_hyperparameters_raise_as_in_keras(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# --- they all minimise a quadratic ----------------------------------------------------

MINIMISE = {
    "sgd": lambda: O.SGD(0.05),
    "momentum": lambda: O.Momentum(0.02, 0.9),
    "nesterov": lambda: O.Nesterov(0.02, 0.9),
    "adagrad": lambda: O.AdaGrad(0.5),
    "rmsprop": lambda: O.RMSprop(0.01),
    "rmsprop-momentum-centered": lambda: O.RMSprop(0.005, momentum=0.5, centered=True),
    "adam": lambda: O.Adam(0.05),
    "adam-amsgrad": lambda: O.Adam(0.05, amsgrad=True),
    "adamw": lambda: O.AdamW(0.05, weight_decay=1e-4),
    "adamax": lambda: O.Adamax(0.05),
    "nadam": lambda: O.Nadam(0.05),
    "lion": lambda: O.Lion(0.005),
    "adadelta": lambda: O.Adadelta(5.0),
    "sgd-cosine-decay": lambda: O.SGD(S.CosineDecay(0.05, 1000)),
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
