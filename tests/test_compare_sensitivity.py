"""``compare`` judges a difference against how sensitive Keras itself is at that tensor.

In training mode at batch 2, a batch normalization over a 1x1 feature map normalises
each channel over 2 values: ``x_hat = +-(a - b) / sqrt((a - b)^2 + 4 eps)``. The
gradient it passes back is the small remainder of nearly equal terms (and the gradient
of the bias of the convolution before it is mathematically 0, so what both sides compute
there is rounding alone), and where ``|a - b|`` is near ``sqrt(eps)`` its output
magnifies an upstream rounding difference ~1/(2 sqrt(eps)) times. A correct twin then
parts from Keras by more than the fixed tolerance, but no more than Keras parts from
itself when its input and every layer output move by a few ulps. ``compare`` reports
agreement there, and still names a wrong twin, whether it sits before or after such
layers.

What is checked, in float64 (the dtype where a twin must match to rounding):
- a small conv + BN stack whose last BNs normalise over 2 values: the fixed tolerance
  alone (``sensitivity=False``) flags it, the default ``compare`` says ok, the rows that
  pass only by Keras's own sensitivity are marked, and well-conditioned tensors get
  no loosening (their ``keras_self`` is ~1e-16 relative, far below the fixed rtol);
- the same stack with a deliberately wrong twin (``wrong_twin.Shift``) is still named;
- the extra Keras run replays the dropout draws and leaves the moving statistics as
  one training step leaves them;
- ResNet50 at 32x32, batch 2 (slow tier): the issue's case.
"""

import keras
import numpy as np
import pytest

from tfmodels import parity
from tfmodels.parity.compare import PERTURBATION_ULPS, SENSITIVITY_FACTOR
import wrong_twin

F64 = "float64"
EPS64 = np.finfo(np.float64).eps
L = keras.layers


def deep_bn(shift_at=None, dropout=False, width=512, seed=1):
    """Input 8x8x3 -> two [conv 3x3, BN, ReLU, max pool] blocks -> a 2x2 valid conv to a
    1x1 map -> three [BN, ReLU, conv 1x1] -> BN -> global average -> Dense(softmax): at
    batch 2 the last four BNs normalise over 2 values. ``shift_at``: where to put a
    ``wrong_twin.Shift`` (its registered twin passes back twice the gradient): "early"
    (after the first block) or "head" (before the Dense)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3), dtype=F64)
    h = inputs
    for filters in (8, 16):
        h = L.Conv2D(filters, 3, padding="same", dtype=F64)(h)
        h = L.BatchNormalization(epsilon=1.001e-5, dtype=F64)(h)  # ResNet50's epsilon
        h = L.MaxPooling2D(dtype=F64)(L.ReLU(dtype=F64)(h))
        if shift_at == "early" and filters == 8:
            h = wrong_twin.Shift(dtype=F64, name="shift")(h)
    h = L.Conv2D(width, 2, dtype=F64)(h)
    for _ in range(3):
        h = L.BatchNormalization(epsilon=1.001e-5, dtype=F64)(h)
        h = L.Conv2D(width, 1, dtype=F64)(L.ReLU(dtype=F64)(h))
    h = L.BatchNormalization(epsilon=1.001e-5, dtype=F64, name="last_bn")(h)
    h = L.GlobalAveragePooling2D(dtype=F64)(h)
    if dropout:
        h = L.Dropout(0.5, dtype=F64, name="dropout")(h)
    if shift_at == "head":
        h = wrong_twin.Shift(dtype=F64, name="shift")(h)
    return keras.Model(inputs, L.Dense(5, activation="softmax", dtype=F64)(h))


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(1)
    return rng.uniform(0, 1, (2, 8, 8, 3)), np.array([1, 3])


def differences(report):
    found = [report.loss["difference"], *report.input_gradients.values()]
    for row in report.rows:
        found += row.differences()
    return found


def test_fixed_tolerance_flags_a_bn_over_two_values_that_keras_itself_cannot_pin(batch):
    model = deep_bn()
    fixed = parity.compare(model, *batch, training=True, sensitivity=False)
    assert not fixed.ok, str(fixed)  # the old rule: a correct twin reported as wrong
    assert fixed.perturbation is None
    assert all(d.keras_self is None for d in differences(fixed))

    report = parity.compare(model, *batch, training=True)
    assert report.ok, str(report)
    assert report.perturbation == PERTURBATION_ULPS * EPS64
    rows = {row.name: row for row in report.rows}
    assert rows[fixed.first_divergence].by_sensitivity  # passes, and says why
    lenient = [d for d in differences(report) if d.by_sensitivity]
    assert lenient and all(
        0 < d.abs <= SENSITIVITY_FACTOR * d.keras_self for d in lenient)
    # Where Keras is well conditioned its own difference is rounding-sized, so the
    # fixed tolerance (rtol 1e-9) still rules there: the first conv's output (values ~1).
    assert 0 < report.rows[0].forward.keras_self < 1e-13
    text = str(report)
    assert "(within Keras's own sensitivity)" in text and "~" in text
    assert "verdict: all layers agree" in text
    assert '"keras_self"' in report.to_json() and '"by_sensitivity": true' in report.to_json()


@pytest.mark.parametrize("shift_at", ["early", "head"])
def test_a_wrong_twin_is_still_named_beside_bns_over_two_values(batch, shift_at):
    report = parity.compare(deep_bn(shift_at), *batch, training=True)
    assert not report.ok
    assert (report.first_divergence, report.divergence) == ("shift", "backward"), str(report)
    rows = {row.name: row for row in report.rows}
    assert rows["shift"].forward.ok and rows["shift"].backward.ok  # its own output agrees
    assert "part at 'shift'" in str(report)


def test_the_extra_keras_run_replays_dropout_and_moves_the_statistics_once(batch):
    model = deep_bn(dropout=True)
    initial = [v.numpy() for v in model.non_trainable_variables]
    report = parity.compare(model, *batch, training=True)
    assert report.ok, str(report)
    # The same dropout draws: Keras's own difference at the dropout output is rounding,
    # not the O(1) of other units dropped.
    dropout = next(row for row in report.rows if row.name == "dropout").forward
    largest = dropout.abs / dropout.rel if dropout.rel else 1.0
    assert dropout.keras_self <= 1e-6 * largest, str(report)
    after_compare = [v.numpy() for v in model.non_trainable_variables]

    # One training-mode call from the same state leaves the same moving statistics (and
    # advances the seed generators as far).
    for variable, value in zip(model.non_trainable_variables, initial):
        variable.assign(value)
    model(batch[0], training=True)
    for variable, got in zip(model.non_trainable_variables, after_compare):
        np.testing.assert_array_equal(got, variable.numpy(), err_msg=variable.path)
    moving = [v for v in model.non_trainable_variables if "moving" in v.path]
    assert moving and any(not np.array_equal(v.numpy(), value)
                          for v, value in zip(model.non_trainable_variables, initial)
                          if "moving" in v.path)


@pytest.mark.slow
@pytest.mark.parametrize("application, size", [("ResNet50", 32), ("DenseNet121", 32),
                                               ("InceptionV3", 75)])
def test_keras_applications_at_batch_two_in_training_mode(application, size):
    """The issue's cases: the smallest input, batch 2, training mode, float64."""
    previous = keras.config.floatx()
    keras.config.set_floatx(F64)
    try:
        keras.utils.set_random_seed(0)
        model = getattr(keras.applications, application)(
            weights=None, input_shape=(size, size, 3), classes=5)
    finally:
        keras.config.set_floatx(previous)
    x = np.random.default_rng(0).uniform(0, 1, (2, size, size, 3))
    y = np.array([1, 3])
    fixed = parity.compare(model, x, y, training=True, sensitivity=False)
    assert not fixed.ok
    report = parity.compare(model, x, y, training=True)
    assert report.ok, str(report)
    assert next(r for r in report.rows if r.name == fixed.first_divergence).by_sensitivity
