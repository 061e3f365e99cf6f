"""A child process that runs one TensorFlow section: `python -m benchmarking.worker SPEC OUT`
(with scripts/ on PYTHONPATH).

SPEC is a JSON file `{"section": ..., "threads": n or null, ...section arguments}`; the
result is written as JSON to OUT. A fresh process per section gives each its own thread
settings (TensorFlow fixes them at start-up; OpenBLAS reads OPENBLAS_NUM_THREADS, which
the parent sets) and its own peak memory.
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


def run(spec):
    """Runs the section `spec` names and returns its result dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    if spec.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"])
    # pylint: disable-next=import-outside-toplevel
    from benchmarking import convnet, pipeline, throughput
    section = spec["section"]
    if section == "throughput":
        x, y, source = _mnist_like(spec)
        return {"data": source, **throughput.measure(x, y, spec["batch_sizes"], spec["repeats"])}
    if section == "convnet":
        x, y, source = _mnist_like(spec)
        return {"data": source, **convnet.measure(x, y, spec["repeats"])}
    if section == "pipeline":
        return pipeline.measure(spec["path"], spec["batch_size"], spec["repeats"],
                                spec["train_steps"])
    if section == "peak_rss":
        return pipeline.peak_rss(spec["path"], spec["batch_size"], spec["train_steps"])
    raise ValueError(f"unknown section {section!r}")


def main(argv):
    spec_path, out_path = argv[1:3]
    result = run(json.loads(pathlib.Path(spec_path).read_text()))
    pathlib.Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
