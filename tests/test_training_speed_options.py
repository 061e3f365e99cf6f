"""The custom loop's speed options: `steps_per_execution` (several steps per tf.function call,
reading the batches in the graph) and `jit_compile` (XLA), and the flags that set them."""

import math

import numpy as np
import pytest
import tensorflow as tf

from numpy_ref.training import NonFiniteLossError, run_epochs
from procs import assert_fails_with, run_script
from tfmodels import data, distribute, models
from tfmodels.errors import ConfigError
from tfmodels.models import Mymodel
from tfmodels.run.config import RunConfig
from tfmodels.training import Trainer, fit
from tfmodels.xla import resolve_jit_compile

N, BATCH = 22, 6  # 4 batches an epoch: 6, 6, 6 and a ragged 4


def _data(seed=0, n=N, dtype="float32"):
    rng = np.random.default_rng(seed)
    return rng.random((n, 5, 5)).astype(dtype), rng.integers(0, 10, n).astype("int64")


def _dataset(x, y, batch_size=BATCH):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def _trainer(dtype="float32", optimizer=None, **options):
    """A small Mymodel with the same initial weights every time, and its Trainer."""
    tf.keras.utils.set_random_seed(7)
    model = Mymodel(hidden_units=(8, 4), dtype=dtype)  # None: the global dtype policy
    model(np.zeros((1, 5, 5), dtype or "float32"))
    return Trainer(model, optimizer or tf.keras.optimizers.Adam(1e-2), **options)


def _train(trainer, x, y, epochs=2, **kwargs):
    """run_epochs over `x, y` in order; returns (history, [(epoch, step, loss)...])."""
    seen = []
    history = run_epochs(trainer, lambda epoch: _dataset(x, y), lambda: _dataset(x, y), epochs,
                         on_step=lambda *args: seen.append(args), **kwargs)
    return history, seen


def _weights(trainer):
    return [w.numpy() for w in trainer.model.weights]


# -- steps_per_execution


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [1, 3, 1000], ids=["k1", "k3", "k_past_the_epoch"])
def test_chunks_train_exactly_as_one_step_per_call(dtype, k):
    x, y = _data(dtype=dtype)
    want_history, want_steps = _train(_trainer(dtype), x, y)
    trainer = _trainer(dtype, steps_per_execution=k)
    history, steps = _train(trainer, x, y)
    # The loop calls the same one-step graph per batch, so the result is bitwise the same.
    assert history == want_history
    assert steps == want_steps  # every step's loss, in order, to on_step
    assert [s[:2] for s in steps] == [(e, s) for e in (1, 2) for s in (1, 2, 3, 4)]
    for w, want in zip(_weights(trainer), _weights(_trainer(dtype))):
        assert not np.array_equal(w, want)  # it trained ...
    want_trainer = _trainer(dtype)
    _train(want_trainer, x, y)
    for w, want in zip(_weights(trainer), _weights(want_trainer)):
        np.testing.assert_array_equal(w, want)  # ... exactly as one step per call
    assert int(trainer.optimizer.iterations) == 8


def test_chunks_are_one_trace_across_epochs_ragged_batches_and_chunk_sizes():
    x, y = _data()
    trainer = _trainer(steps_per_execution=3)
    assert trainer.tracing_counts() == {"train_step": 0, "test_step": 0, "train_steps": 0}
    fit(trainer.model, _dataset(x, y), _dataset(x, y), epochs=3, trainer=trainer)
    # Chunks of 3 and then 1 step, the last batch smaller, a new iterator each epoch.
    assert trainer.tracing_counts() == {"train_step": 1, "test_step": 1, "train_steps": 1}
    assert trainer.train_accuracy.count.numpy() == N


@pytest.mark.parametrize("k", [3, 5])
def test_max_steps_is_exact_across_chunks_and_epochs(k):
    x, y = _data()
    trainer = _trainer(steps_per_execution=k)
    history, steps = _train(trainer, x, y, epochs=5, max_steps=7)
    assert [s[:2] for s in steps] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3)]
    assert int(trainer.optimizer.iterations) == 7  # no chunk ran past max_steps
    want = _trainer()
    want_history, want_steps = _train(want, x, y, epochs=5, max_steps=7)
    assert (history, steps) == (want_history, want_steps)
    for w, w_want in zip(_weights(trainer), _weights(want)):
        np.testing.assert_array_equal(w, w_want)


class _ChunkedFake:
    """A pure-Python stepper with the optional chunk protocol: records what it is asked."""

    def __init__(self, k, losses):
        self.k, self.losses, self.requests, self.done = k, list(losses), [], 0

    def reset_metrics(self):
        pass

    def results(self):
        return {}

    def steps_iterator(self, batches):
        return iter(batches)

    def train_steps(self, iterator, max_count):
        self.requests.append(max_count)
        out = []
        for _ in iterator:
            out.append(self.losses[self.done])
            self.done += 1
            if len(out) == min(self.k, max_count or self.k) or not math.isfinite(out[-1]):
                break
        return out


def test_run_epochs_asks_each_chunk_for_no_more_than_the_steps_left():
    stepper = _ChunkedFake(4, [1.0] * 100)
    seen = []
    run_epochs(stepper, lambda epoch: range(6), None, epochs=3, max_steps=14,
               on_step=lambda *args: seen.append(args[:2]))
    # Epoch 1: 6 batches in chunks of 4 + 2, then an empty chunk ends it; epoch 2 the same;
    # epoch 3 has 2 steps left.
    assert stepper.requests == [14, 10, 8, 8, 4, 2, 2]
    assert seen == [(e, s) for e in (1, 2) for s in range(1, 7)] + [(3, 1), (3, 2)]


def test_run_epochs_stops_at_a_non_finite_loss_inside_a_chunk():
    stepper = _ChunkedFake(4, [1.0, 2.0, 3.0, 4.0, 5.0, float("nan"), 7.0, 8.0])
    seen = []
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 2") as error:
        run_epochs(stepper, lambda epoch: range(4), None, epochs=3,
                   on_step=lambda *args: seen.append(args))
    assert seen == [(1, 1, 1.0), (1, 2, 2.0), (1, 3, 3.0), (1, 4, 4.0), (2, 1, 5.0)]
    assert (error.value.epoch, error.value.step) == (2, 2)


class _NanOnNegativeLabels(tf.keras.losses.Loss):
    """Cross-entropy, NaN for a batch holding a label -1: a NaN loss, gradients and update
    on demand. (NaN pixels would not do: the fused float32 kernels' ReLU turns NaN to 0.)"""

    def call(self, y_true, y_pred):
        loss = tf.keras.losses.sparse_categorical_crossentropy(tf.maximum(y_true, 0), y_pred)
        return loss * tf.where(tf.reduce_any(y_true < 0), np.nan, 1.0)


@pytest.mark.parametrize("k", [3, 100])
def test_a_nan_mid_chunk_stops_at_that_step_with_its_update_done(k):
    x, y = _data()
    y_bad = y.copy()
    y_bad[BATCH + 1] = -1  # epoch 2, step 2: inside the chunk of steps 1-3 or 1-4

    def nan_run(trainer):
        batches = lambda epoch: _dataset(x, y if epoch == 1 else y_bad)  # noqa: E731
        seen = []
        with pytest.raises(NonFiniteLossError, match="epoch 2, step 2") as error:
            run_epochs(trainer, batches, None, 3, on_step=lambda *args: seen.append(args))
        return error.value, seen

    trainer = _trainer(steps_per_execution=k, loss_object=_NanOnNegativeLabels(name="nan_on_negative_labels"))
    error, seen = nan_run(trainer)
    assert (error.epoch, error.step) == (2, 2) and math.isnan(error.loss)
    assert [s[:2] for s in seen] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1)]
    # Exactly 6 updates (4 + 2): the NaN step's and no later one's ...
    assert int(trainer.optimizer.iterations) == 6
    want = _trainer(loss_object=_NanOnNegativeLabels(name="nan_on_negative_labels"))
    nan_run(want)
    # ... so the same weights as one step per call stopped there (NaN where it has NaN).
    for w, w_want in zip(_weights(trainer), _weights(want)):
        np.testing.assert_array_equal(w, w_want)
    assert any(np.isnan(w).any() for w in _weights(trainer))  # the NaN step's update is in


def test_plain_python_batches_keep_one_call_per_step():
    x, y = _data()
    trainer = _trainer(steps_per_execution=3)
    batches = [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, N, BATCH)]
    history = run_epochs(trainer, lambda epoch: batches, None, 2)
    want = _trainer()
    assert history == run_epochs(want, lambda epoch: batches, None, 2)
    assert trainer.tracing_counts() == {"train_step": 1, "test_step": 0, "train_steps": 0}


def test_chunks_under_a_one_device_strategy_match_one_step_per_call():
    x, y = _data(dtype="float64")
    strategy = distribute.make_strategy("one_device", device="cpu")
    results = []
    for k in (1, 3):
        with strategy.scope():
            tf.keras.utils.set_random_seed(7)
            model = Mymodel(hidden_units=(8, 4), dtype="float64")
            model(np.zeros((1, 5, 5)))
            trainer = Trainer(model, tf.keras.optimizers.Adam(1e-2), strategy=strategy,
                              steps_per_execution=k)
        history = fit(model, _dataset(x, y), _dataset(x, y), epochs=2, trainer=trainer)
        results.append((history, _weights(trainer)))
    assert results[0][0] == results[1][0]
    for w, want in zip(results[1][1], results[0][1]):
        np.testing.assert_array_equal(w, want)


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_steps_per_execution_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match=f"steps_per_execution={value!r}"):
        _trainer(steps_per_execution=value)


# -- jit_compile


# Measured after 8 SGD steps on the same batches (XLA fuses the ops and sums the products
# and the softmax in another order): losses and metrics part by <= 1.1e-7 relative in
# float32 and 2.2e-16 in float64 (~1 ulp), weights by <= 8.8e-8 (float32) and 3.3e-16
# (float64) of the largest weight. Weights near 0 part by more relative to themselves
# (4e-6 in float32), hence the atol scaled by the largest weight. SGD, not Adam: Adam
# divides by sqrt(v), so a gradient component near 0 would turn a rounding difference into
# a full learning-rate step.
JIT_RTOL = {"float32": 1e-6, "float64": 1e-14}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [1, 3])
def test_xla_trains_like_the_graph_to_rounding(dtype, k):
    x, y = _data(dtype=dtype)
    runs = []
    for jit in (False, True):
        trainer = _trainer(dtype, tf.keras.optimizers.SGD(0.5), jit_compile=jit,
                           steps_per_execution=k)
        runs.append((*_train(trainer, x, y), _weights(trainer), trainer))
    (history, steps, weights, _), (xla_history, xla_steps, xla_weights, xla) = runs
    assert xla.jit_compile and xla.tracing_counts()["train_step"] == 1
    rtol = JIT_RTOL[dtype]
    np.testing.assert_allclose([s[2] for s in xla_steps], [s[2] for s in steps], rtol=rtol)
    for key in history:
        np.testing.assert_allclose(xla_history[key], history[key], rtol=rtol, err_msg=key)
    scale = max(np.abs(w).max() for w in weights)
    for w, want in zip(xla_weights, weights):
        np.testing.assert_allclose(w, want, rtol=rtol, atol=rtol * scale)
    assert any(not np.array_equal(w, want) for w, want in zip(weights, _weights(_trainer())))


def test_xla_trains_under_mixed_precision():
    distribute.set_mixed_precision(True)
    try:
        trainer = _trainer(None, jit_compile=True, steps_per_execution=2)
        history, steps = _train(trainer, *_data())
    finally:
        distribute.set_mixed_precision(False)
    assert type(trainer.optimizer).__name__ == "LossScaleOptimizer"
    assert len(steps) == 8 and all(np.isfinite(s[2]) for s in steps)
    assert history["train_loss"][1] < history["train_loss"][0]


def test_auto_is_xla_for_float32_only_without_a_strategy():
    strategy = distribute.make_strategy("one_device", device="cpu")
    assert resolve_jit_compile("auto", _trainer().model) is True
    assert resolve_jit_compile("auto", _trainer("float64").model) is False
    assert resolve_jit_compile("auto", _trainer().model, strategy) is False
    distribute.set_mixed_precision(True)
    try:
        assert resolve_jit_compile("auto", Mymodel(hidden_units=(4,))) is False
    finally:
        distribute.set_mixed_precision(False)
    assert resolve_jit_compile(False, _trainer().model) is False
    # Only a stack of Dense layers: XLA was measured several times slower on the others.
    for options in ({"dropout": 0.2}, {"batchnorm": True}):
        mlp = models.build_model("mymodel", (4,), input_shape=(5, 5), **options)
        assert resolve_jit_compile("auto", mlp) is False
    convnet = models.build_model("simple_convnet", None, input_shape=(28, 28))
    assert resolve_jit_compile("auto", convnet) is False
    assert resolve_jit_compile(True, convnet) is True  # asked for: given
    # Large batches: the products dominate and XLA was measured slower.
    assert resolve_jit_compile("auto", _trainer().model, batch_size=128) is True
    assert resolve_jit_compile("auto", _trainer().model, batch_size=1024) is False
    assert resolve_jit_compile(True, _trainer().model, batch_size=1024) is True
    with pytest.raises(ValueError, match="jit_compile='yes'"):
        resolve_jit_compile("yes", _trainer().model)


def test_xla_with_a_strategy_is_refused():
    strategy = distribute.make_strategy("one_device", device="cpu")
    with strategy.scope():
        model = Mymodel(hidden_units=(4,))
        optimizer = tf.keras.optimizers.SGD()
    with pytest.raises(ValueError, match="jit_compile=True does not go with a `strategy`"):
        Trainer(model, optimizer, strategy=strategy, jit_compile=True)
    assert Trainer(model, optimizer, strategy=strategy, jit_compile="auto").jit_compile is False


# -- the flags


def test_run_config_defaults_and_checks():
    config = RunConfig()
    assert (config.jit_compile, config.steps_per_execution) == ("auto", 100)
    assert RunConfig(jit_compile="on").trainer_jit_compile is True
    assert RunConfig(jit_compile="off").trainer_jit_compile is False
    assert config.trainer_jit_compile == "auto"
    for settings, message in [
            (dict(steps_per_execution=0), "--steps_per_execution must be >= 1; got 0"),
            (dict(jit_compile="yes"), "--jit_compile must be one of auto, on, off"),
            (dict(jit_compile="on", distribution_strategy="one_device"),
             "--jit_compile=on does not go with --distribution_strategy=one_device")]:
        with pytest.raises(ConfigError, match=message):
            RunConfig(**settings).validate()


def test_the_backend_builds_its_trainer_from_the_settings():
    from tfmodels.run.backend_tf import TensorflowBackend  # pylint: disable=import-outside-toplevel
    backend = TensorflowBackend(RunConfig(hidden_units=(4,), jit_compile="off",
                                          steps_per_execution=7))
    assert (backend.stepper.jit_compile, backend.stepper.steps_per_execution) == (False, 7)
    assert TensorflowBackend(RunConfig(hidden_units=(4,))).stepper.jit_compile is True
    big_batches = TensorflowBackend(RunConfig(hidden_units=(4,), batch_size=1024))
    assert big_batches.stepper.jit_compile is False


@pytest.mark.parametrize("args, fragments", [
    (["--steps_per_execution=0"], ["--steps_per_execution=0", "not a positive integer"]),
    (["--jit_compile=yes"], ["--jit_compile=yes", "auto|on|off"]),
], ids=["steps_per_execution", "jit_compile"])
@pytest.mark.integration
def test_train_refuses_bad_speed_flags_with_one_line(tmp_path, args, fragments):
    proc = run_script("train.py", *args, f"--model_dir={tmp_path / 'run'}")
    assert_fails_with(proc, 2, *fragments)
    assert not (tmp_path / "run").exists()


# -- OrderedBatches: the batches gathered by index inside the compiled loop


def _images(dtype="float32", seed=0, n=N):
    rng = np.random.default_rng(seed)
    return data.ImageBatches(rng.integers(0, 256, (n, 5, 5), dtype=np.uint8),
                             rng.integers(0, 10, n), dtype)


def _orders(epoch):
    return np.random.default_rng(epoch).permutation(N)


def _train_ordered(trainer, images, ordered=True, epochs=2, labels=None, **kwargs):
    """run_epochs over `images` in each epoch's order, as `OrderedBatches` or as the tf.data
    pipeline of the same order (one step per batch)."""
    seen = []

    def batches(epoch):
        source = images if labels is None else labels(epoch)
        return (source.ordered(BATCH, _orders(epoch)) if ordered
                else source.dataset(BATCH, _orders(epoch)))

    history = run_epochs(trainer, batches, lambda: images.dataset(BATCH), epochs,
                         on_step=lambda *args: seen.append(args), **kwargs)
    return history, seen


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("k", [1, 3, 1000], ids=["k1", "k3", "k_past_the_epoch"])
def test_ordered_batches_in_the_graph_train_exactly_as_one_step_per_call(dtype, k):
    images = _images(dtype)
    want = _trainer(dtype)
    want_history, want_steps = _train_ordered(want, images, ordered=False)
    trainer = _trainer(dtype, steps_per_execution=k)
    history, steps = _train_ordered(trainer, images)
    # The same batches (gathered by index in the graph), the same one-step function: bitwise.
    assert (history, steps) == (want_history, want_steps)
    assert [s[:2] for s in steps] == [(e, s) for e in (1, 2) for s in (1, 2, 3, 4)]
    for w, w_want in zip(_weights(trainer), _weights(want)):
        np.testing.assert_array_equal(w, w_want)
    assert int(trainer.optimizer.iterations) == 8
    if k > 1:  # one trace of the loop for full chunks, short chunks and epochs alike
        assert trainer.tracing_counts() == {"train_step": 1, "test_step": 1, "train_steps": 1}


def test_ordered_batches_respect_max_steps_and_stop_at_a_nan_step():
    images = _images()
    trainer = _trainer(steps_per_execution=3)
    _, steps = _train_ordered(trainer, images, epochs=5, max_steps=7)
    assert [s[:2] for s in steps] == [(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3)]
    assert int(trainer.optimizer.iterations) == 7

    bad_labels = images.labels.numpy().copy()
    bad_labels[_orders(2)[BATCH + 1]] = -1  # epoch 2, step 2: inside the chunk of steps 1-3
    bad = data.ImageBatches(images.images.numpy(), np.zeros(N, np.int64))
    bad.labels = tf.constant(bad_labels)

    def nan_run(trainer):
        with pytest.raises(NonFiniteLossError, match="epoch 2, step 2"):
            _train_ordered(trainer, images, ordered=trainer.steps_per_execution > 1, epochs=3,
                           labels=lambda epoch: images if epoch == 1 else bad)
        return trainer

    loss = _NanOnNegativeLabels(name="nan_on_negative_labels")
    trainer = nan_run(_trainer(steps_per_execution=3, loss_object=loss))
    assert int(trainer.optimizer.iterations) == 6  # the NaN step's update, no later one
    want = nan_run(_trainer(loss_object=_NanOnNegativeLabels(name="nan_on_negative_labels")))
    for w, w_want in zip(_weights(trainer), _weights(want)):
        np.testing.assert_array_equal(w, w_want)


def test_batches_gathered_in_a_graph_are_scaled_as_numpy_scales_them():
    # Inside a tf.function Grappler rewrote "/ 255" (a constant) into "* (1/255)", which
    # rounds differently; the divisor is an input of the graph now, so never folded.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 5, 5), dtype=np.uint8)
    for dtype in ("float32", "float64"):
        images = data.ImageBatches(x, np.zeros(64, np.int64), dtype)
        in_graph = tf.function(lambda idx, images=images: images.gather(idx)[0])
        got = in_graph(tf.range(64, dtype=tf.int64)).numpy()
        np.testing.assert_array_equal(got, data.scale_images(x, np.dtype(dtype)))
