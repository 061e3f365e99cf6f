"""Devices, distribution strategies and mixed precision for the TF training loop.

TensorFlow fixes its device list when it first runs an op, so a script calls these in order,
before it builds any model or dataset:

    configure_device(device)            # 'auto' | 'cpu' | 'gpu'
    set_logical_cpus(2)                 # optional: try 'mirrored' on a CPU-only machine
    set_mixed_precision(enabled)        # before the model is built
    strategy = make_strategy(name, device)
    with strategy.scope():              # if strategy is not None
        model, optimizer = ...          # then Trainer(model, optimizer, strategy=strategy)
"""

import json
import os

from absl import logging
import keras
import tensorflow as tf

DEVICES = ("auto", "cpu", "gpu")
STRATEGIES = ("off", "one_device", "mirrored", "multi_worker_mirrored")

_NO_GPU = ("--device=gpu but TensorFlow sees no GPU "
           "(install tensorflow[and-cuda] and check nvidia-smi)")
_TOO_LATE = ("must be called before TensorFlow runs its first op (it fixes the device list "
             "then); call it at the start of the program")
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


__all__ = ["DEVICES", "STRATEGIES", "configure_device", "make_strategy", "set_logical_cpus",
           "set_mixed_precision"]
