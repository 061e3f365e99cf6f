"""Devices, distribution strategies and mixed precision for the TF training loop, and what
a training step does differently under a strategy.

TensorFlow fixes its device list when it first runs an op, so a script calls these in order,
before it builds any model or dataset:

    configure_device(device)            # 'auto' | 'cpu' | 'gpu'
    set_logical_cpus(2)                 # optional: try 'mirrored' on a CPU-only machine
    set_mixed_precision(enabled)        # before the model is built
    strategy = make_strategy(name, device)
    with strategy.scope():              # if strategy is not None
        model, optimizer = ...          # then Trainer(model, optimizer, strategy=strategy)

Under a strategy, `tfmodels.training.Trainer` runs its per-batch step on every replica
(`distributed_function`) over batches of a distributed dataset (`distribute_dataset`): each
replica averages its per-example losses over the *global* batch (`replica_loss`), so the
summed gradients and losses equal those of one device on the whole batch.
"""

import contextlib
import json
import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfmodels.catalog import DEVICES, STRATEGIES  # the names, for the flags without TensorFlow

_NO_GPU = ("--device=gpu but TensorFlow sees no GPU "
           "(install tensorflow[and-cuda] and check nvidia-smi)")
_TOO_LATE = ("must be called before TensorFlow runs its first op (it fixes the device list "
             "then); call it at the start of the program")
_SUM = tf.distribute.ReduceOp.SUM
_TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:port", "host1:port"]}, '
                      '"task": {"type": "worker", "index": 0}}')


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


def configure_device(device):
    """Chooses where TensorFlow runs: 'auto' (GPU if any, the default), 'cpu' or 'gpu'.

    'cpu' hides every GPU; 'gpu' raises a ValueError if TensorFlow sees none. Must be called
    before TensorFlow runs any op (else 'cpu' raises a RuntimeError).
    """
    _check_choice("device", device, DEVICES)
    gpus = tf.config.list_physical_devices("GPU")  # does not initialise the runtime
    if device == "gpu" and not gpus:
        raise ValueError(_NO_GPU)
    if device == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError as e:
            raise RuntimeError(f"configure_device('cpu') {_TOO_LATE}.") from e
    logging.info("Device %s: TensorFlow sees %d GPU(s), uses %s.", device, len(gpus),
                 "the CPU" if device == "cpu" or not gpus else "the GPU(s)")


def set_logical_cpus(n):
    """Splits the CPU into `n` logical devices, so that `mirrored` has `n` CPU replicas.

    For tests and for trying data parallelism on a CPU-only machine (the replicas share the
    same cores). Must be called before TensorFlow runs any op.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"`n` must be a positive integer. Received: n={n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:
        raise RuntimeError(f"set_logical_cpus({n}) {_TOO_LATE}.") from e


def set_mixed_precision(enabled):
    """Sets the Keras global dtype policy to 'mixed_float16' (float16 compute, float32
    variables) or back to 'float32'. Affects layers built afterwards."""
    keras.mixed_precision.set_global_policy("mixed_float16" if enabled else "float32")


def maybe_wrap_for_mixed_precision(optimizer, policy=None):
    """`optimizer` wrapped in a `LossScaleOptimizer` if `policy` (default: the global dtype
    policy) computes in float16, so that small float16 gradients do not underflow; else
    `optimizer` itself. Under a strategy, call it inside `strategy.scope()`."""
    policy = tf.keras.dtype_policies.get(policy)
    if (policy.compute_dtype == "float16"
            and not isinstance(optimizer, tf.keras.optimizers.LossScaleOptimizer)):
        return tf.keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _logical_devices(device):
    """Names of the logical devices `device` selects: the GPUs if 'gpu', or 'auto' and some
    are visible; else the (logical) CPUs."""
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if device == "gpu" and not gpus:
        raise ValueError(_NO_GPU)
    if gpus and device != "cpu":
        return gpus
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _check_tf_config():
    """Raises a ValueError unless TF_CONFIG describes a cluster and this process's task."""
    raw = os.environ.get("TF_CONFIG")
    try:
        config = json.loads(raw) if raw else None
        ok = (isinstance(config["cluster"], dict) and config["cluster"]
              and isinstance(config["task"]["type"], str)
              and isinstance(config["task"]["index"], int))
    except (ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise ValueError("multi_worker_mirrored needs the TF_CONFIG environment variable set "
                         f"to JSON like {_TF_CONFIG_EXAMPLE}. Received: TF_CONFIG={raw!r}")


def make_strategy(name, device="auto"):
    """A `tf.distribute.Strategy` for `name`, or None for 'off' (plain TensorFlow placement).

    - 'one_device': `OneDeviceStrategy` on the first GPU, or on the CPU when no GPU is
      visible or `device='cpu'`.
    - 'mirrored': `MirroredStrategy`, one replica per GPU; with no GPU (or `device='cpu'`)
      one replica per logical CPU device, so call `set_logical_cpus(n)` first for n > 1.
    - 'multi_worker_mirrored': `MultiWorkerMirroredStrategy` over the cluster in the TF_CONFIG
      environment variable, using every device this worker sees (`configure_device('cpu')`
      hides its GPUs). TensorFlow requires it before the first op, like `configure_device`.

    Call after `configure_device` / `set_logical_cpus`: making a strategy initialises
    TensorFlow's devices.
    """
    _check_choice("name", name, STRATEGIES)
    _check_choice("device", device, DEVICES)
    if name == "off":
        return None
    if name == "multi_worker_mirrored":
        _check_tf_config()
        if device == "gpu" and not tf.config.list_physical_devices("GPU"):
            raise ValueError(_NO_GPU)
        # Before anything initialises the runtime: it sets up collective ops at startup.
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions())
    elif name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy(_logical_devices(device)[0])
    else:
        strategy = tf.distribute.MirroredStrategy(devices=_logical_devices(device))
    logging.info("Strategy %s: %d replica(s) in sync.", name, strategy.num_replicas_in_sync)
    return strategy


# -- a training step under a strategy (see `tfmodels.training.Trainer`)


def scope(strategy):
    """`strategy.scope()`, or no scope without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def check_created_in_scope(strategy, model, optimizer):
    """Variables made outside `strategy.scope()` would live on one device, unsynchronised."""
    created_in_scope = strategy.extended.variable_created_in_scope
    if not created_in_scope(optimizer.iterations.value):
        raise ValueError("With a `strategy`, create the optimizer inside `strategy.scope()`. "
                         f"Received: optimizer={optimizer.name!r} created outside it")
    if model.built and not all(created_in_scope(w.value) for w in model.weights):
        raise ValueError("With a `strategy`, create and build the model inside "
                         f"`strategy.scope()`. Received: model={model.name!r} built outside it")


def distribute_dataset(strategy, dataset):
    """`dataset` split over the replicas, unless it already is."""
    if isinstance(dataset, tf.distribute.DistributedDataset):
        return dataset
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError("With a `strategy`, `fit` takes `tf.data.Dataset`s. "
                         f"Received: a {type(dataset).__name__}")
    return strategy.experimental_distribute_dataset(dataset)


def distributed_batch_signature(*values):
    """Like `tfmodels.training.batch_signature` (the batch dimension left open), for elements
    of a distributed dataset: a plain tensor with one local replica, else a `PerReplica`
    value whose spec is rebuilt with every replica's batch dimension open."""
    signature = []
    for value in values:
        spec = tf.type_spec_from_value(value)
        components = [tf.TensorSpec((None, *s.shape[1:]), s.dtype)
                      for s in tf.nest.flatten(spec, expand_composites=True)]
        signature.append(components[0] if isinstance(spec, tf.TensorSpec)
                         else type(spec)(*components))  # PerReplicaSpec(*per_replica_specs)
    return signature


def distributed_function(strategy, step, images, labels):
    """`step(images, labels) -> loss` run on every replica (`strategy.run`) with the replicas'
    losses summed, as a `tf.function` traced once for batches like `images, labels`."""
    def distributed_step(images, labels):
        per_replica_loss = strategy.run(step, args=(images, labels))
        return strategy.reduce(_SUM, per_replica_loss, axis=None)

    return tf.function(distributed_step,
                       input_signature=distributed_batch_signature(images, labels))


def per_example_loss(loss_object):
    """The same Keras loss with `reduction="none"`: per-example losses `(N,)`."""
    # `get_config` leaves out the dtype: without it a float64 loss would compute in float32.
    config = {**loss_object.get_config(), "reduction": "none", "dtype": loss_object.dtype}
    return type(loss_object).from_config(config)


def replica_loss(per_example):
    """This replica's share of the global batch mean: its per-example losses `(n,)` summed
    and divided by the *global* batch size (every replica's examples, counted from the actual
    batch, so a smaller, unevenly split final batch is right too). Summing over replicas
    then gives the global batch mean, and the summed gradients its gradient."""
    # Counted as a float: all-reduce implementations (NCCL, collectives) are made for
    # floating-point gradients.
    count = tf.cast(tf.shape(per_example)[0], per_example.dtype)
    global_count = tf.distribute.get_replica_context().all_reduce(_SUM, count)
    return tf.nn.compute_average_loss(per_example,
                                      global_batch_size=tf.cast(global_count, tf.int64))


def add_batch_loss(metric, loss):
    """Adds the global batch loss to a `Mean` once per step, from the replicas' shares."""
    # The Mean's total and count are summed over replicas when read: every replica adds
    # the all-reduced batch loss, but only the first with weight 1 (the others 0).
    context = tf.distribute.get_replica_context()
    batch_loss = context.all_reduce(_SUM, loss)
    first = tf.cast(tf.equal(context.replica_id_in_sync_group, 0), batch_loss.dtype)
    metric.update_state(batch_loss, sample_weight=first)


def non_finite_on_every_replica(gradients):
    """This replica's gradients, or NaNs if any replica's gradients are not finite.

    `LossScaleOptimizer` decides whether to skip a step (and halve the loss scale) from the
    first replica's local gradients only; without this, a non-finite gradient on another
    replica would pass into the all-reduced update and the weights.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g))
                            for g in gradients if g is not None])
    replicas_not_finite = tf.distribute.get_replica_context().all_reduce(
        _SUM, 1.0 - tf.cast(finite, tf.float32))
    return [g if g is None else tf.where(replicas_not_finite > 0, tf.constant(np.nan, g.dtype), g)
            for g in gradients]


__all__ = ["DEVICES", "STRATEGIES", "add_batch_loss", "check_created_in_scope",
           "configure_device", "distribute_dataset", "distributed_batch_signature",
           "distributed_function", "make_strategy", "maybe_wrap_for_mixed_precision",
           "non_finite_on_every_replica", "per_example_loss", "replica_loss", "scope",
           "set_logical_cpus", "set_mixed_precision"]
