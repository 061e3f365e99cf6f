"""Tests for `numpy_ref.training`: `fit`'s history, seeding, stopping, callbacks,
error reporting and preprocessing; `evaluate`; and real learning on tiny data
(plus one slow run of the book's MNIST recipe).
"""

import numpy as np
import pytest

from numpy_ref.book.dataset.mnist import load_mnist
from numpy_ref.network import networks as N
from numpy_ref.optim import optimizers as O
from numpy_ref import training as T

HISTORY_KEYS = ["train_loss", "train_accuracy", "test_loss", "test_accuracy"]


def _blobs(rng, n, std=0.5):
    """Three well separated 2-D Gaussian blobs: (n, 2) float64 and labels 0..2."""
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    t = rng.integers(0, 3, n)
    return centers[t] + std * rng.standard_normal((n, 2)), t


def _small_net(seed=0, **kwargs):
    return N.TwoLayerNet(2, 8, 3, weight_init_std=0.5, dtype=np.float64, seed=seed, **kwargs)


def _fit_blobs(fit_seed, net_seed=0, epochs=2):
    rng = np.random.default_rng(0)
    train, test = _blobs(rng, 60), _blobs(rng, 30)
    net = _small_net(net_seed)
    history = T.fit(net, O.SGD(0.1), train, test, epochs=epochs, batch_size=8, seed=fit_seed)
    return net, history


# --- history, seeding, stopping and callbacks -------------------------------------


def test_history_has_one_entry_per_epoch():
    _, history = _fit_blobs(fit_seed=0, epochs=3)
    assert list(history) == HISTORY_KEYS
    assert all(len(history[key]) == 3 for key in HISTORY_KEYS)
    assert all(0 <= acc <= 1 for acc in history["train_accuracy"] + history["test_accuracy"])


def test_history_without_test_data_has_empty_test_entries():
    rng = np.random.default_rng(1)
    history = T.fit(_small_net(), O.SGD(0.1), _blobs(rng, 20), epochs=2, batch_size=5, seed=0)
    assert len(history["train_loss"]) == 2 and len(history["train_accuracy"]) == 2
    assert history["test_loss"] == [] and history["test_accuracy"] == []


def test_same_seed_gives_identical_histories_and_weights():
    net_a, history_a = _fit_blobs(fit_seed=3)
    net_b, history_b = _fit_blobs(fit_seed=3)
    assert history_a == history_b
    for name in net_a.params:
        np.testing.assert_array_equal(net_a.params[name], net_b.params[name])


def test_different_seed_gives_different_weights():
    net_a, history_a = _fit_blobs(fit_seed=3)
    net_b, history_b = _fit_blobs(fit_seed=4)
    assert history_a["train_loss"] != history_b["train_loss"]
    assert not np.array_equal(net_a.params["W1"], net_b.params["W1"])


def test_each_epoch_visits_every_sample_once_in_a_shuffled_order():
    n, batch_size = 30, 7  # the last batch of each epoch is short (2 samples)
    x = np.stack([np.arange(n, dtype=np.float64), np.zeros(n)], axis=1)  # column 0: sample id
    t = np.zeros(n, dtype=np.int64)
    seen = []

    def record(xb):
        seen.append(xb[:, 0].astype(int))
        return xb

    T.fit(_small_net(), O.SGD(1e-6), (x, t), epochs=2, batch_size=batch_size, seed=0,
          preprocess=record)
    assert [len(b) for b in seen] == [7, 7, 7, 7, 2] * 2
    epoch_1, epoch_2 = np.concatenate(seen[:5]), np.concatenate(seen[5:])
    for order in (epoch_1, epoch_2):
        np.testing.assert_array_equal(np.sort(order), np.arange(n))
        assert not np.array_equal(order, np.arange(n))
    assert not np.array_equal(epoch_1, epoch_2)


def test_max_steps_stops_exactly():
    rng = np.random.default_rng(2)
    steps, epochs_seen = [], []
    history = T.fit(_small_net(), O.SGD(0.1), _blobs(rng, 100), epochs=5, batch_size=10,
                    seed=0, max_steps=23,
                    step_callback=lambda epoch, step, loss: steps.append((epoch, step)),
                    callback=lambda epoch, logs: epochs_seen.append(epoch))
    # 10 steps per epoch: 10 + 10 + 3.
    assert len(steps) == 23
    assert steps[0] == (1, 1) and steps[9] == (1, 10) and steps[10] == (2, 1)
    assert steps[-1] == (3, 3)
    assert epochs_seen == [1, 2, 3]
    assert len(history["train_loss"]) == 3


def test_callback_gets_epochs_one_to_e_with_the_logs():
    rng = np.random.default_rng(3)
    calls = []
    history = T.fit(_small_net(), O.SGD(0.1), _blobs(rng, 20), _blobs(rng, 10), epochs=4,
                    batch_size=5, seed=0, callback=lambda epoch, logs: calls.append((epoch, logs)))
    assert [epoch for epoch, _ in calls] == [1, 2, 3, 4]
    for i, (_, logs) in enumerate(calls):
        assert set(logs) == set(HISTORY_KEYS)
        assert all(logs[key] == history[key][i] for key in HISTORY_KEYS)


def test_step_callback_receives_the_batch_loss():
    rng = np.random.default_rng(4)
    losses = []
    history = T.fit(_small_net(), O.SGD(0.1), _blobs(rng, 20), epochs=1, batch_size=5,
                    seed=0, step_callback=lambda epoch, step, loss: losses.append(loss))
    assert len(losses) == 4 and all(np.isfinite(losses))
    # Equal batch sizes: the epoch's running loss is the plain mean of the batch losses.
    assert history["train_loss"][0] == pytest.approx(np.mean(losses), rel=1e-12)


# --- errors ---------------------------------------------------------------------


def test_nan_input_raises_naming_the_epoch_and_step():
    rng = np.random.default_rng(5)
    calls = []

    def poison_seventh_batch(xb):
        calls.append(1)
        return np.full_like(xb, np.nan) if len(calls) == 7 else xb

    # 40 samples in batches of 10: the 7th batch is epoch 2, step 3.
    with pytest.raises(FloatingPointError, match=r"epoch 2, step 3"):
        T.fit(_small_net(), O.SGD(0.1), _blobs(rng, 40), epochs=3, batch_size=10, seed=0,
              preprocess=poison_seventh_batch)


def test_huge_learning_rate_raises_floating_point_error():
    rng = np.random.default_rng(6)
    net = N.TwoLayerNet(2, 8, 3, weight_init_std=0.5, dtype=np.float32, seed=0)  # overflows fast
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError,
                                                  match=r"non-finite .* epoch \d+, step \d+"):
        T.fit(net, O.SGD(1e30), _blobs(rng, 40), epochs=5, batch_size=10, seed=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_size=0), "batch_size"),
    (dict(epochs=0), "epochs"),
], ids=["batch-size-0", "epochs-0"])
def test_bad_arguments_raise(kwargs, match):
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match=match):
        T.fit(_small_net(), O.SGD(0.1), _blobs(rng, 10), **kwargs)


def test_inputs_and_labels_of_different_length_raise():
    x, t = _blobs(np.random.default_rng(8), 10)
    with pytest.raises(ValueError, match="differ in length"):
        T.fit(_small_net(), O.SGD(0.1), (x, t[:9]))


# --- preprocess and evaluate -------------------------------------------------------


def test_preprocess_is_applied_to_train_and_test_batches():
    rng = np.random.default_rng(9)
    x = rng.integers(0, 256, (30, 2)).astype(np.uint8)
    t = rng.integers(0, 3, 30)
    x_scaled = x.astype(np.float64) / 255
    scale = lambda b: b.astype(np.float64) / 255  # noqa: E731

    net_raw, net_scaled = _small_net(1), _small_net(1)
    history_raw = T.fit(net_raw, O.SGD(0.5), (x, t), (x, t), epochs=2, batch_size=4, seed=0,
                        preprocess=scale)
    history_scaled = T.fit(net_scaled, O.SGD(0.5), (x_scaled, t), (x_scaled, t), epochs=2,
                           batch_size=4, seed=0)
    assert history_raw == history_scaled
    for name in net_raw.params:
        np.testing.assert_array_equal(net_raw.params[name], net_scaled.params[name])
    assert T.evaluate(net_raw, x, t, preprocess=scale) == T.evaluate(net_raw, x_scaled, t)


@pytest.mark.parametrize("batch_size", [1000, 10, 7], ids=["one-batch", "even", "ragged"])
@pytest.mark.parametrize("one_hot", [False, True], ids=["int", "one-hot"])
def test_evaluate_equals_the_whole_set_loss_and_accuracy(batch_size, one_hot):
    rng = np.random.default_rng(10)
    net = N.TwoLayerNet(4, 6, 3, weight_init_std=1.0, dtype=np.float64, seed=10)
    x, t = rng.normal(size=(53, 4)), rng.integers(0, 3, 53)
    labels = np.eye(3)[t] if one_hot else t
    loss, accuracy = T.evaluate(net, x, labels, batch_size=batch_size)
    # A size-weighted mean of batch means: equal to the whole-set mean up to rounding.
    assert loss == pytest.approx(float(net.loss(x, t)), rel=1e-12)
    assert accuracy == np.mean(net.predict(x).argmax(axis=1) == t)
    assert 0 < accuracy < 1


# --- it learns ------------------------------------------------------------------------


def test_tiny_separable_problem_is_learned():
    rng = np.random.default_rng(11)
    train, test = _blobs(rng, 300), _blobs(rng, 300)
    net = _small_net(11)
    history = T.fit(net, O.SGD(0.1), train, test, epochs=10, batch_size=20, seed=0)
    assert history["test_accuracy"][-1] > 0.95
    assert net.accuracy(*test) > 0.95
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]


def test_dnn_fits_regression_targets():
    rng = np.random.default_rng(12)
    x = rng.uniform(-1, 1, (200, 2))
    y = 1 / (1 + np.exp(-(3 * x[:, :1] - 2 * x[:, 1:])))  # (200, 1) in (0, 1): a sigmoid can fit it
    net = N.DNN(hidden_depth=2, num_neuron=8, num_input=2, num_output=1, seed=12)
    initial = float(net.loss(x, y))
    history = T.fit(net, O.Adam(0.02), (x, y), epochs=30, batch_size=20, seed=0)
    assert history["train_loss"][-1] < 0.1 * history["train_loss"][0]
    assert float(net.loss(x, y)) < 0.05 * initial


# --- the book's recipe on real MNIST ---------------------------------------------------


@pytest.mark.slow
def test_two_layer_net_book_recipe_on_mnist(mnist_dir):
    (x_train, t_train), (x_test, t_test) = load_mnist(data_dir=mnist_dir, normalize=True,
                                                      flatten=True)
    assert x_train.dtype == np.float32 and x_train.shape == (60_000, 784)
    net = N.TwoLayerNet(784, 50, 10, seed=0)  # float64 (the book's), weight_init_std 0.01
    steps = []
    history = T.fit(net, O.SGD(0.1), (x_train, t_train), (x_test, t_test), epochs=17,
                    batch_size=100, seed=0, max_steps=10_000,
                    step_callback=lambda epoch, step, loss: steps.append(epoch))
    assert len(steps) == 10_000  # 16 full epochs of 600 steps, then 400
    assert len(history["test_accuracy"]) == 17
    # The book reports ~0.97 after these 10,000 iterations.
    assert history["test_accuracy"][-1] >= 0.965
    # The history's accuracy is accumulated in the network's dtype, as a Keras metric
    # accumulates in its own.
    assert history["test_accuracy"][-1] == np.float64(net.accuracy(x_test, t_test))
