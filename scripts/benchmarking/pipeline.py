"""The input pipeline on a full-size SVHN training file written here.

`write_svhn_mat` writes Stanford's layout (`X` (32, 32, 3, N) uint8, `y` (N, 1) uint8
labels 1..10, MATLAB 5 with zlib compression, as `train_32x32.mat` is). `measure` times
`data.load_svhn_mat`, then one pass of `data.make_dataset` with no training, interleaved
with the custom loop training on the same pipeline. `peak_rss` (run in a fresh process)
is the peak resident memory of loading the file and a short training run on it.
Imports TensorFlow: runs in a worker process.
"""

import os
import pathlib
import resource
import time

import numpy as np

from benchmarking import stats

SVHN_TRAIN_IMAGES = 73_257


def write_svhn_mat(path, num_images, seed=0, chunk=8192):
    """Writes a compressed `.mat` in SVHN's layout; returns its size in bytes.

    The pixels are a per-image colour ramp plus a little noise, so that zlib compresses
    them about as much as the real file (182 MB for 225 MB of pixels; random bytes
    would not compress at all).
    """
    from scipy import io as sio  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(seed)
    x = np.empty((32, 32, 3, num_images), np.uint8, order="F")  # MATLAB's column order
    ramp = np.linspace(0, 1, 32)[:, None, None, None]  # (32, 1, 1, 1): along the rows
    for start in range(0, num_images, chunk):
        n = min(chunk, num_images - start)
        base = rng.uniform(40, 200, (1, 1, 3, n))
        slope = rng.uniform(-40, 40, (1, 1, 3, n))
        noise = rng.normal(0, 3, (32, 32, 3, n))
        x[..., start:start + n] = np.clip(base + slope * ramp + noise, 0, 255)
    y = rng.integers(1, 11, (num_images, 1), dtype=np.uint8)
    sio.savemat(path, {"X": x, "y": y}, do_compression=True, format="5")
    return os.path.getsize(path)


def _dataset_pass(ds):
    count = 0
    for images, _ in ds:
        count += int(images.shape[0])
    return count


def measure(path, batch_size, repeats, train_steps, seed=0):
    """Load time, examples/s of a pass of `make_dataset`, and of training on it.

    Returns:
        {"images": n, "load_s": summary, "examples_per_s": summary,
         "train_examples_per_s": summary, "pass_over_train": ratio}
    """
    import keras  # pylint: disable=import-outside-toplevel
    from tfmodels import data, models, training  # pylint: disable=import-outside-toplevel

    load_seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        x, y = data.load_svhn_mat(path)
        load_seconds.append(time.perf_counter() - start)
    keras.utils.set_random_seed(seed)
    trainer = training.Trainer(models.Mymodel(), keras.optimizers.Adam())

    def make(i):
        return data.make_dataset(x, y, batch_size=batch_size, seed=seed + i)

    def train(i):
        for images, labels in make(i).take(train_steps):
            trainer.train_step(images, labels)
        float(trainer.train_loss.result())

    seconds = stats.interleaved({"pass": lambda i: _dataset_pass(make(i)), "train": train},
                                repeats)
    passes = [len(x) / s for s in seconds["pass"]]
    trains = [train_steps * batch_size / s for s in seconds["train"]]
    return {"images": len(x), "image_shape": list(x.shape[1:]), "batch_size": batch_size,
            "load_s": stats.summary(load_seconds),
            "examples_per_s": stats.summary(passes),
            "train_examples_per_s": stats.summary(trains),
            "pass_over_train": stats.paired_ratio(passes, trains)}


def _peak_kib():
    """This process's peak resident memory so far, in KiB (Linux's VmHWM)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def peak_rss(path, batch_size, train_steps, seed=0):
    """Peak resident memory (MB) of: load the `.mat`, build the pipeline and the custom
    loop, train `train_steps` steps. Call in a fresh process; also reports the peak at
    each stage (VmHWM, the kernel's high-water mark of this process)."""
    import keras  # pylint: disable=import-outside-toplevel
    from tfmodels import data, models, training  # pylint: disable=import-outside-toplevel

    stages = {"imports": _peak_kib()}
    x, y = data.load_svhn_mat(path)
    stages["loaded"] = _peak_kib()
    keras.utils.set_random_seed(seed)
    trainer = training.Trainer(models.Mymodel(), keras.optimizers.Adam())
    for images, labels in data.make_dataset(x, y, batch_size, seed=seed).take(train_steps):
        trainer.train_step(images, labels)
    float(trainer.train_loss.result())
    stages["trained"] = _peak_kib()
    mb = {k: v * 1024 / 1e6 for k, v in stages.items() if v is not None}  # MB = 10^6 bytes
    return {"peak_rss_mb": mb.get("trained"), "stages_mb": mb, "steps": train_steps,
            "dataset_mb": (x.nbytes + y.nbytes) / 1e6}
