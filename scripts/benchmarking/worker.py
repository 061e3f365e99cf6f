"""A child process that runs one TensorFlow section: `python -m benchmarking.worker SPEC OUT`
(with scripts/ on PYTHONPATH).

SPEC is a JSON file `{"section": ..., "threads": n or null, "pin_cpu": cpu or null,
...section arguments}`; the result is written as JSON to OUT. A fresh process per section
gives each its own thread settings (TensorFlow fixes them at start-up; OpenBLAS reads
OPENBLAS_NUM_THREADS and XLA (JAX) XLA_FLAGS, which the parent sets) and its own peak
memory. With `pin_cpu`, every thread of the process runs on that one CPU: hence the
imports inside the functions, which load NumPy, TensorFlow and the peers (and start
their thread pools) only after `main` has pinned the process.
"""

import json
import os
import pathlib
import sys


def _mnist_like(spec):
    """The first `examples` MNIST training images, or random uint8 ones of that shape."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    from tfmodels import data  # pylint: disable=import-outside-toplevel
    n = spec["examples"]
    if spec.get("mnist_dir"):
        (x, y), _ = data.load_mnist(spec["mnist_dir"])
        return x[:n], y[:n], "MNIST"
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n).astype(np.int64), "random MNIST-shaped")


def _peer_accuracy(spec, peers):
    """The peers' correctness check: the MNIST training set (or its first `examples`)
    and the test set, or random MNIST-shaped images without a data directory."""
    from tfmodels import data  # pylint: disable=import-outside-toplevel
    if spec.get("mnist_dir"):
        (x, y), test = data.load_mnist(spec["mnist_dir"])
        source = "MNIST"
    else:
        x, y, source = _mnist_like({"examples": spec["examples"] or 60_000})
        test = (x[:1000], y[:1000])
    x, y = x[:spec["examples"]], y[:spec["examples"]]
    return {"data": source, "train_examples": len(x), "test_examples": len(test[0]),
            "full_training_set": source == "MNIST" and spec["examples"] is None,
            "epochs": spec["epochs"], "batch_size": spec["batch_size"],
            "peers": peers.check_accuracy((x, y), test, spec["epochs"], spec["batch_size"])}


def run(spec):
    """Runs the section `spec` names and returns its result dict."""
    from benchmarking import peers  # pylint: disable=import-outside-toplevel
    section = spec["section"]
    if spec.get("threads") and section in ("throughput", "peer_accuracy", "lstm"):
        peers.set_torch_threads(spec["threads"])
    if section == "peer_accuracy":  # needs no TensorFlow
        return _peer_accuracy(spec, peers)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if spec.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    # pylint: disable-next=import-outside-toplevel
    from benchmarking import convnet, lstm, pipeline, throughput
    if section == "throughput":
        x, y, source = _mnist_like(spec)
        return {"data": source, "pinned_cpu": spec.get("pin_cpu"),
                **throughput.measure(x, y, spec["batch_sizes"], spec["repeats"],
                                     steps_per_execution=spec["steps_per_execution"])}
    if section == "convnet":
        x, y, source = _mnist_like(spec)
        return {"data": source, **convnet.measure(x, y, spec["repeats"])}
    if section == "lstm":
        x, y, source = _mnist_like(spec)
        return {"data": source, "pinned_cpu": spec.get("pin_cpu"),
                **lstm.measure(x, y, spec["repeats"],
                               steps_per_execution=spec["steps_per_execution"])}
    if section == "pipeline":
        return pipeline.measure(spec["path"], spec["batch_size"], spec["repeats"],
                                spec["train_steps"])
    if section == "peak_rss":
        return pipeline.peak_rss(spec["path"], spec["batch_size"], spec["train_steps"])
    raise ValueError(f"unknown section {section!r}")


def main(argv):
    spec_path, out_path = argv[1:3]
    spec = json.loads(pathlib.Path(spec_path).read_text())
    if spec.get("pin_cpu") is not None:  # before any library starts a thread
        os.sched_setaffinity(0, {spec["pin_cpu"]})
    result = run(spec)
    pathlib.Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
