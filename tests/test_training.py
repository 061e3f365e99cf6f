"""Tests for `tfmodels.training`: the custom loop's steps, metrics, tracing and `fit`."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from tfmodels.models import Mymodel
from tfmodels.training import HISTORY_KEYS, Trainer, fit


def _arrays(rng, n, shape=(6, 6), num_classes=10, dtype="float32"):
    images = rng.random((n, *shape)).astype(dtype)
    labels = rng.integers(0, num_classes, n).astype("int32")
    return images, labels


def _dataset(images, labels, batch_size):
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)


def _small_model(**kwargs):
    return Mymodel(hidden_units=(16, 8), **kwargs)


def test_train_step_reduces_loss_on_a_fixed_batch():
    images, labels = _arrays(np.random.default_rng(0), 16)
    trainer = Trainer(_small_model(), tf.keras.optimizers.Adam(learning_rate=1e-2))
    losses = [float(trainer.train_step(images, labels)) for _ in range(20)]
    assert losses[-1] < 0.8 * losses[0]
    assert trainer.train_loss.count.numpy() == 20  # one Mean update per step
    assert trainer.train_accuracy.count.numpy() == 20 * 16


def test_test_step_changes_no_weights_and_only_test_metrics():
    images, labels = _arrays(np.random.default_rng(1), 12)
    trainer = Trainer(_small_model(), tf.keras.optimizers.SGD(learning_rate=0.5))
    trainer.test_step(images, labels)  # builds the model
    before = [w.numpy().copy() for w in trainer.model.weights]
    loss = trainer.test_step(images, labels)
    for old, new in zip(before, trainer.model.weights):
        np.testing.assert_array_equal(new.numpy(), old)
    expected = trainer.loss_object(labels, trainer.model(images)).numpy()
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
    assert trainer.test_accuracy.count.numpy() == 2 * 12
    assert trainer.train_loss.count.numpy() == 0 and trainer.train_accuracy.count.numpy() == 0


def test_train_step_matches_hand_written_tape_and_sgd_float64():
    rng = np.random.default_rng(2)
    images, labels = _arrays(rng, 8, dtype="float64")
    model, twin = _small_model(dtype="float64"), _small_model(dtype="float64")
    model(images), twin(images)
    twin.set_weights(model.get_weights())
    learning_rate = 0.1
    trainer = Trainer(model, tf.keras.optimizers.SGD(learning_rate=learning_rate))
    loss = trainer.train_step(images, labels)

    loss_object = tf.keras.losses.SparseCategoricalCrossentropy(dtype="float64")
    with tf.GradientTape() as tape:
        expected_loss = loss_object(labels, twin(images, training=True))
    gradients = tape.gradient(expected_loss, twin.trainable_variables)
    # Keras keeps the learning rate in a float32 variable and casts it to the weights'
    # dtype, so a float64 step uses 0.1 rounded to float32 (see SPEC's parity notes).
    lr = float(np.float32(learning_rate))
    expected = [w.numpy() - lr * g.numpy() for w, g in zip(twin.trainable_variables, gradients)]

    np.testing.assert_allclose(loss.numpy(), expected_loss.numpy(), rtol=0, atol=1e-12)
    assert loss.dtype == tf.float64
    for w, want, old in zip(model.trainable_variables, expected, twin.trainable_variables):
        assert w.dtype == "float64"
        assert not np.array_equal(want, old.numpy())  # the step moved every weight
        np.testing.assert_allclose(w.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_default_loss_computes_in_the_model_dtype(dtype):
    # A default Keras loss would cast float64 probabilities to float32.
    images, labels = _arrays(np.random.default_rng(8), 4, dtype=dtype)
    trainer = Trainer(_small_model(dtype=dtype), tf.keras.optimizers.SGD())
    assert trainer.train_step(images, labels).dtype == dtype
    assert trainer.test_step(images, labels).dtype == dtype


def test_metrics_reset_each_epoch():
    rng = np.random.default_rng(3)
    train, test = _arrays(rng, 40), _arrays(rng, 24)
    trainer = Trainer(_small_model(), tf.keras.optimizers.Adam(learning_rate=1e-2))
    history = fit(trainer.model, _dataset(*train, 16), _dataset(*test, 8), epochs=2,
                  trainer=trainer)
    # After epoch 2 the metrics hold that epoch's samples only, not both epochs'.
    assert trainer.train_accuracy.count.numpy() == 40
    assert trainer.train_loss.count.numpy() == 3  # batches of 16, 16, 8
    # The test pass of epoch 2 ran on the final weights: recompute it by hand.
    batch_losses, correct = [], 0
    for images, labels in _dataset(*test, 8):
        probabilities = trainer.model(images, training=False)
        batch_losses.append(float(trainer.loss_object(labels, probabilities)))
        correct += int(np.sum(np.argmax(probabilities, axis=1) == labels.numpy()))
    np.testing.assert_allclose(history["test_loss"][1], np.mean(batch_losses), rtol=1e-6)
    assert history["test_accuracy"][1] == pytest.approx(correct / 24)
    assert trainer.results() == {key: history[key][1] for key in HISTORY_KEYS}


def test_step_functions_are_traced_once_across_epochs_and_ragged_batches():
    rng = np.random.default_rng(4)
    # 50 = 16 + 16 + 16 + 2 and 20 = 8 + 8 + 4: both final batches are smaller.
    train, test = _dataset(*_arrays(rng, 50), 16), _dataset(*_arrays(rng, 20), 8)
    trainer = Trainer(_small_model(), tf.keras.optimizers.Adam())
    assert trainer.tracing_counts() == {"train_step": 0, "test_step": 0}
    fit(trainer.model, train, test, epochs=3, trainer=trainer)
    assert trainer.tracing_counts() == {"train_step": 1, "test_step": 1}
    assert trainer.train_accuracy.count.numpy() == 50  # the ragged batch was used


def test_fit_returns_history_and_calls_callback_each_epoch(caplog):
    rng = np.random.default_rng(5)
    calls = []
    with caplog.at_level(logging.INFO, logger="absl"):
        history = fit(_small_model(), _dataset(*_arrays(rng, 20), 8),
                      _dataset(*_arrays(rng, 10), 8), epochs=3,
                      callback=lambda epoch, logs: calls.append((epoch, logs)))
    assert set(history) == set(HISTORY_KEYS)
    for key in HISTORY_KEYS:
        assert len(history[key]) == 3
        assert all(type(value) is float and np.isfinite(value) for value in history[key])
    assert all(0.0 <= a <= 1.0 for a in history["train_accuracy"] + history["test_accuracy"])
    assert [epoch for epoch, _ in calls] == [1, 2, 3]
    for epoch, logs in calls:
        assert logs == {key: history[key][epoch - 1] for key in HISTORY_KEYS}
    assert "Epoch 3, Loss: " in caplog.text and "Test Accuracy: " in caplog.text


def test_fit_learns_a_separable_problem():
    rng = np.random.default_rng(6)
    centers = 3.0 * np.eye(3, 8)  # three well-separated class means in 8-D

    def blobs(n):
        labels = rng.integers(0, 3, n).astype("int32")
        images = (centers[labels] + 0.3 * rng.standard_normal((n, 8))).astype("float32")
        return images, labels

    model = Mymodel(hidden_units=(16,), num_classes=3)
    history = fit(model, _dataset(*blobs(192), 32), _dataset(*blobs(96), 32), epochs=8,
                  optimizer=tf.keras.optimizers.Adam(learning_rate=1e-2))
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["train_accuracy"][-1] >= 0.95
    assert history["test_accuracy"][-1] >= 0.95


@pytest.mark.parametrize("make_kwargs, match", [
    (lambda model: dict(epochs=0), "Received: epochs=0"),
    (lambda model: dict(epochs=1, trainer=Trainer(_small_model(), tf.keras.optimizers.SGD())),
     "different model"),
    (lambda model: dict(epochs=1, trainer=Trainer(model, tf.keras.optimizers.SGD()),
                        optimizer=tf.keras.optimizers.Adam()),
     "not to `fit`"),
], ids=["zero_epochs", "foreign_trainer", "optimizer_and_trainer"])
def test_fit_rejects_bad_arguments(make_kwargs, match):
    model = _small_model()
    dataset = _dataset(*_arrays(np.random.default_rng(7), 4), 4)
    with pytest.raises(ValueError, match=match):
        fit(model, dataset, dataset, **make_kwargs(model))


def test_trainer_keeps_a_float32_optimizer_and_has_no_strategy_by_default():
    optimizer = tf.keras.optimizers.SGD()
    trainer = Trainer(_small_model(), optimizer)
    assert trainer.optimizer is optimizer  # wrapped only under a float16 policy
    assert trainer.strategy is None
