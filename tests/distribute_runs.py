"""Runs for tests/test_distribute.py that need a fresh process (TF's device list is fixed at
its first op). `python tests/distribute_runs.py RUN OUT_DIR`, with the repository root on
PYTHONPATH; each run writes `OUT_DIR/<RUN>*.npz` for the test to check. Not a test module.
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf

from tfmodels import distribute
from tfmodels.data import make_dataset
from tfmodels.models import Mymodel
from tfmodels.training import Trainer, fit


def learnable_mnist(rng, n):
    """MNIST-shaped uint8 images: each class a fixed random template, 30% pixels noise."""
    templates = np.random.default_rng(123).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    noise = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images = np.where(rng.random((n, 28, 28)) < 0.3, noise, templates[labels])
    return images.astype(np.uint8), labels


def twins(strategy, dtype, optimizer_fn, loss_object=None, **model_kwargs):
    """Trainers for a model under `strategy` and for a plain copy with the same weights."""
    first = np.zeros((1, 28, 28), np.float32)
    with strategy.scope():
        model = Mymodel(hidden_units=(16,), dtype=dtype, **model_kwargs)
        model(first)
        optimizer = optimizer_fn()
    plain = Mymodel(hidden_units=(16,), dtype=dtype, **model_kwargs)
    plain(first)
    plain.set_weights(model.get_weights())
    return (Trainer(model, optimizer, loss_object, strategy=strategy),
            Trainer(plain, optimizer_fn(), loss_object))


def weights_by_name(prefix, model):
    return {f"{prefix}_{i}": w for i, w in enumerate(model.get_weights())}


def evaluate(trainer, dataset):
    """Test loss and accuracy of `trainer`'s model over `dataset`, without a strategy."""
    trainer.reset_metrics()
    for images, labels in dataset:
        trainer.test_step(images, labels)
    return [trainer.test_loss.result().numpy(), trainer.test_accuracy.result().numpy()]


def mirrored_fit(strategy):
    """A 2-epoch fit, and a plain evaluation of its final weights."""
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = learnable_mnist(rng, 256), learnable_mnist(rng, 97)
    train_ds = make_dataset(x_train, y_train, batch_size=32, seed=0)
    test_ds = make_dataset(x_test, y_test, batch_size=32, training=False)  # last batch: 1
    trainer, plain = twins(strategy, "float32",
                           lambda: tf.keras.optimizers.Adam(learning_rate=1e-2))
    history = fit(trainer.model, train_ds, test_ds, epochs=2, trainer=trainer)
    plain.model.set_weights(trainer.model.get_weights())
    return {"history": json.dumps(history), "tracing": json.dumps(trainer.tracing_counts()),
            "counts": [m.count.numpy() for m in trainer.metrics],
            "plain_eval": evaluate(plain, test_ds)}


def mirrored_steps(strategy):
    """Float64 SGD steps on batches of 7 (4 + 3 per replica) and 1 (1 + 0), distributed and
    on one device from the same weights."""
    x, y = learnable_mnist(np.random.default_rng(1), 8)
    dataset = make_dataset(x, y, batch_size=7, training=False)
    trainer, plain = twins(strategy, "float64",
                           lambda: tf.keras.optimizers.SGD(learning_rate=0.1))
    losses = [[trainer.train_step(*batch).numpy(), plain.train_step(*plain_batch).numpy()]
              for batch, plain_batch in zip(strategy.experimental_distribute_dataset(dataset),
                                            dataset)]
    results = {"step_losses": losses,
               "step_metrics": [[t.results()[key] for t in (trainer, plain)]
                                for key in ("train_loss", "train_accuracy")]}
    return {**results, **weights_by_name("step_weights", trainer.model),
            **weights_by_name("plain_weights", plain.model)}


def mirrored_chunks(strategy):
    """Float64 fits from the same weights: one step per call, and 3 steps per call (the
    distributed iterator read in the graph); 20 examples in batches of 8, 8 and 4."""
    x, y = learnable_mnist(np.random.default_rng(3), 20)
    dataset = make_dataset(x, y, batch_size=8, training=False, dtype="float64")
    runs = {}
    for k in (1, 3):
        tf.keras.utils.set_random_seed(0)
        with strategy.scope():
            model = Mymodel(hidden_units=(16,), dtype="float64")
            model(np.zeros((1, 28, 28)))
            trainer = Trainer(model, tf.keras.optimizers.SGD(learning_rate=0.1),
                              strategy=strategy, steps_per_execution=k)
        history = fit(model, dataset, epochs=2, trainer=trainer)
        runs[k] = (history, trainer)
    return {"chunk_histories": json.dumps([runs[1][0], runs[3][0]]),
            "chunk_tracing": json.dumps(runs[3][1].tracing_counts()),
            **weights_by_name("chunk1_weights", runs[1][1].model),
            **weights_by_name("chunk3_weights", runs[3][1].model)}


def mirrored_mixed_precision(strategy):
    """mixed_float16 SGD steps: a normal batch, then one whose second replica's share is inf
    (non-finite gradients there only)."""
    distribute.set_mixed_precision(True)
    try:
        x, y = learnable_mnist(np.random.default_rng(2), 8)
        bad_x = np.where(np.arange(8)[:, None, None] < 4, x / 255, np.inf).astype(np.float32)
        dataset = tf.data.Dataset.from_tensors((x.astype(np.float32) / 255, y)).concatenate(
            tf.data.Dataset.from_tensors((bad_x, y)))
        # Logits, so that the float16 softmax of today's classifier cannot overflow first.
        trainer, _ = twins(strategy, None, lambda: tf.keras.optimizers.SGD(learning_rate=0.1),
                           tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                           output_activation=None)
        optimizer = trainer.optimizer
        weights, scales, losses = [trainer.model.get_weights()], [optimizer.initial_scale], []
        for images, labels in strategy.experimental_distribute_dataset(dataset):
            losses.append(trainer.train_step(images, labels).numpy())
            weights.append(trainer.model.get_weights())
            scales.append(optimizer.dynamic_scale.numpy())
        changed = [any((a != b).any() for a, b in zip(w0, w1))
                   for w0, w1 in zip(weights, weights[1:])]
        return {"mixed_optimizer": type(optimizer).__name__, "mixed_losses": losses,
                "mixed_scales": scales, "mixed_changed": changed,
                "mixed_finite": all(np.isfinite(w).all() for w in weights[-1])}
    finally:
        distribute.set_mixed_precision(False)


def run_mirrored(out_dir):
    """2 CPU replicas: fit, single steps against one device, mixed precision."""
    distribute.set_logical_cpus(2)
    strategy = distribute.make_strategy("mirrored")
    tf.keras.utils.set_random_seed(0)
    np.savez(os.path.join(out_dir, "mirrored.npz"), replicas=strategy.num_replicas_in_sync,
             **mirrored_fit(strategy), **mirrored_steps(strategy),
             **mirrored_chunks(strategy), **mirrored_mixed_precision(strategy))


def run_multi_worker(out_dir):
    """One worker of TF_CONFIG's cluster: 2 epochs of SGD, then the same on one device."""
    strategy = distribute.make_strategy("multi_worker_mirrored")
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    tf.keras.utils.set_random_seed(0)
    x, y = learnable_mnist(np.random.default_rng(0), 72)
    dataset = make_dataset(x, y, batch_size=16, training=False)  # 16 x 4, then 8
    trainer, plain = twins(strategy, "float32",
                           lambda: tf.keras.optimizers.SGD(learning_rate=0.1))
    history = fit(trainer.model, dataset, dataset, epochs=2, trainer=trainer)
    plain_history = fit(plain.model, dataset, dataset, epochs=2, trainer=plain)
    np.savez(os.path.join(out_dir, f"worker{task}.npz"),
             replicas=strategy.num_replicas_in_sync, history=json.dumps(history),
             plain_history=json.dumps(plain_history),
             counts=[m.count.numpy() for m in trainer.metrics],
             **weights_by_name("weights", trainer.model),
             **weights_by_name("plain_weights", plain.model))


def run_devices(out_dir):
    """configure_device / set_logical_cpus / make_strategy on this machine."""
    report = {"gpus": len(tf.config.list_physical_devices("GPU"))}
    try:
        distribute.configure_device("gpu")
    except ValueError as e:
        report["gpu_error"] = str(e)
    distribute.configure_device("cpu")
    distribute.set_logical_cpus(2)
    report["logical_gpus"] = len(tf.config.list_logical_devices("GPU"))
    report["one_device"] = distribute.make_strategy("one_device").extended.worker_devices
    report["mirrored"] = distribute.make_strategy("mirrored").extended.worker_devices
    try:
        distribute.set_logical_cpus(3)
    except RuntimeError as e:
        report["late_error"] = str(e)
    with open(os.path.join(out_dir, "devices.json"), "w") as f:
        json.dump(report, f)


RUNS = {"mirrored": run_mirrored, "multi_worker": run_multi_worker, "devices": run_devices}

if __name__ == "__main__":
    RUNS[sys.argv[1]](sys.argv[2])
