"""Runs every section and writes `BENCHMARKS.md` and `benchmarks/latest.json`.

The output folder is made and tried (a file written and removed in it and in its
`benchmarks/`) before anything is measured: `OutputDirError` if it cannot take the
report. MNIST's folder, when one is given, is read as the workers will read it, before
any starts: `tfmodels.errors.DatasetError` (naming the folder or file) if it holds no
readable MNIST. Each report file is written whole or not at all (`tfmodels.files.atomic_write`);
should a write still fail after measuring, the results are printed on stdout as the JSON
of `latest.json` before `ReportWriteError` is raised, so nothing measured is lost.
"""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

from absl import logging

from benchmarking import gradients, machine, peers, pipeline, report, stats
from tfmodels import data, files

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS_DIR = pathlib.Path(__file__).resolve().parents[1]  # holds this package


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run. `FULL` is the committed run, `QUICK` the smoke test.

    `thread_settings`: each throughput run's thread count for TensorFlow (intra- and
    inter-op), OpenBLAS, XLA (JAX) and PyTorch; None keeps the libraries' defaults. The
    first is the one the goals are judged on; the others are reported beside it. A
    1-thread run is also pinned to one CPU, so every variant gets the same single core.
    `steps_per_execution`: the XLA custom loop's steps per call (train.py's default).
    `peer_check_examples`: training images of the peers' accuracy check (None: all).
    """
    batch_sizes: tuple = (32, 128, 1024)
    throughput_examples: int = 20_000
    throughput_repeats: int = 15
    thread_settings: tuple = (1, None)
    steps_per_execution: int = 100
    peer_check_epochs: int = 3
    peer_check_batch: int = 32
    peer_check_examples: int | None = None
    gradient_depths: tuple = (5, 10)
    gradient_batch: int = 100
    gradient_repeats: int = 5
    backprop_steps: int = 100
    svhn_images: int = pipeline.SVHN_TRAIN_IMAGES
    pipeline_batch: int = 32
    pipeline_repeats: int = 9
    pipeline_train_steps: int = 600
    rss_train_steps: int = 500
    convnet_examples: int = 6_000
    convnet_repeats: int = 11
    lstm_examples: int = 4096
    lstm_repeats: int = 9
    worker_timeout_s: int = 900


FULL = BenchConfig()
QUICK = BenchConfig(throughput_examples=2048, throughput_repeats=3, thread_settings=(1,),
                    peer_check_examples=2048,
                    gradient_batch=20, gradient_repeats=2, backprop_steps=20,
                    svhn_images=2000, pipeline_repeats=2, pipeline_train_steps=20,
                    rss_train_steps=20, convnet_examples=500, convnet_repeats=2,
                    lstm_examples=256, lstm_repeats=2,
                    worker_timeout_s=120)
# Set in this environment to force OpenBLAS's Haswell kernels (slower on AVX-512 CPUs);
# the convnet section runs without them, with the kernel OpenBLAS picks for the CPU.
FORCED_BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class OutputDirError(Exception):
    """The output folder cannot take the report (found before measuring); the message
    names the folder or file and why."""


class ReportWriteError(Exception):
    """A report file could not be written after measuring (the results were printed on
    stdout); the message names the file and why."""


def check_mnist_dir(mnist_dir):
    """Reads MNIST from `mnist_dir` (None: nothing to check) as each worker does
    (`tfmodels.data.load_mnist`): a missing folder or file, or a damaged one, raises its
    `DatasetError` here, before a worker fails on it with a traceback."""
    if mnist_dir is not None:
        data.load_mnist(mnist_dir)


def report_files(output_dir):
    """The files `run` writes into `output_dir`, JSON first."""
    output_dir = pathlib.Path(output_dir)
    return output_dir / "benchmarks" / "latest.json", output_dir / "BENCHMARKS.md"


def check_output_dir(output_dir):
    """Makes `output_dir` and its `benchmarks/` (as `run` would) and writes and removes a
    file in each, so that a folder that cannot take the report is found before the
    minutes of measuring; a report file there that is a folder is refused too.

    Raises:
        OutputDirError: naming the folder (or file) and what is wrong.
    """
    json_path, markdown_path = report_files(output_dir)
    for folder in (pathlib.Path(output_dir), json_path.parent):
        existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
        if existing.exists() and not existing.is_dir():
            where = "" if existing == folder else f"{folder}: cannot be made: "
            raise OutputDirError(f"{where}{existing} is a file, not a folder")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".bench-probe-")
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise OutputDirError(f"{folder}: cannot be made or written to "
                                 f"({e.strerror or e})") from None
    for path in (json_path, markdown_path):
        if path.is_dir():
            raise OutputDirError(f"{path} is a folder; the report writes a file there")


def write_report(results, output_dir):
    """Writes `latest.json` and `BENCHMARKS.md` (with `benchmarks/notes.md`, when there)
    into `output_dir`, each file whole or not at all. Should that fail, the results are
    printed on stdout first (`latest.json`'s JSON): a failed write raises
    `ReportWriteError` naming the file, anything else propagates."""
    output_dir = pathlib.Path(output_dir)
    json_path, markdown_path = report_files(output_dir)
    notes_path = output_dir / report.NOTES_FILE
    text = json.dumps(results, indent=1) + "\n"
    doing, done = f"{json_path}: could not be written", ""
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        _write(json_path, text)
        doing, done = f"{notes_path}: could not be read", f"; {json_path} was written"
        notes = notes_path.read_text() if notes_path.is_file() else None
        doing = f"{markdown_path}: could not be written"
        _write(markdown_path, report.render(results, notes))
    except Exception as e:
        print(text, end="", flush=True)  # whatever happened, nothing measured is lost
        if not isinstance(e, OSError):
            raise
        raise ReportWriteError(f"{doing} ({e.strerror or e}){done}; the results are "
                               f"printed above, as {json_path.name} would hold them") from None


def _write(path, text):
    with files.atomic_write(path, "w") as f:
        f.write(text)


def threads_label(threads):
    return "library defaults" if threads is None else f"{threads} thread" + "s" * (threads > 1)


def pinned_cpu():
    """The CPU a 1-thread throughput run is pinned to: the last one this process may use."""
    return max(os.sched_getaffinity(0))


def _worker(spec, threads, tmp_dir, timeout_s, unset=()):
    """Runs `worker.py` on `spec` in a fresh process with `threads` and without the
    environment variables `unset`; returns its result."""
    spec = {**spec, "threads": threads}
    spec_path = pathlib.Path(tmp_dir) / f"{spec['section']}-spec.json"
    out_path = pathlib.Path(tmp_dir) / f"{spec['section']}-out.json"
    spec_path.write_text(json.dumps(spec))
    env = {**{k: v for k, v in os.environ.items() if k not in unset}, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), str(SCRIPTS_DIR),
                                                       os.environ.get("PYTHONPATH")]))}
    if threads is not None:
        env["OPENBLAS_NUM_THREADS"] = str(threads)  # read when NumPy loads OpenBLAS
        xla_flags = peers.xla_flags(threads, os.environ.get("XLA_FLAGS"))
        if xla_flags:
            env["XLA_FLAGS"] = xla_flags  # read when JAX (or TensorFlow's XLA) starts
    done = subprocess.run([sys.executable, "-m", "benchmarking.worker", str(spec_path),
                           str(out_path)], env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {spec['section']} failed "
                           f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out_path.read_text())


def _throughput(config, mnist_dir, tmp_dir):
    runs = {}
    for threads in config.thread_settings:
        logging.info("Throughput, %s ...", threads_label(threads))
        runs[threads_label(threads)] = _worker(
            {"section": "throughput", "examples": config.throughput_examples,
             "batch_sizes": list(config.batch_sizes), "repeats": config.throughput_repeats,
             "steps_per_execution": config.steps_per_execution,
             "pin_cpu": pinned_cpu() if threads == 1 else None,
             "mnist_dir": mnist_dir and str(mnist_dir)},
            threads, tmp_dir, config.worker_timeout_s)
    return runs


def _peer_accuracy(config, mnist_dir, tmp_dir):
    """The peers' correctness check, once per run, in the first thread setting."""
    logging.info("Peers' accuracy check ...")
    return _worker({"section": "peer_accuracy", "examples": config.peer_check_examples,
                    "epochs": config.peer_check_epochs, "batch_size": config.peer_check_batch,
                    "mnist_dir": mnist_dir and str(mnist_dir)},
                   config.thread_settings[0], tmp_dir, config.worker_timeout_s)


def _convnet(config, mnist_dir, tmp_dir):
    """The SimpleConvNet section, 1 thread: with OpenBLAS's own kernel choice, and also
    with the environment's forced one when it forces one."""
    forced = {k: os.environ[k] for k in FORCED_BLAS_ENV if k in os.environ}
    settings = {"OpenBLAS picks its kernel": FORCED_BLAS_ENV}
    if forced:
        settings[", ".join(f"{k}={v}" for k, v in forced.items())] = ()
    runs = {}
    for label, unset in settings.items():
        logging.info("SimpleConvNet, %s ...", label)
        runs[label] = _worker({"section": "convnet", "examples": config.convnet_examples,
                               "repeats": config.convnet_repeats,
                               "mnist_dir": mnist_dir and str(mnist_dir)},
                              1, tmp_dir, config.worker_timeout_s, unset=unset)
    return runs


def _lstm(config, mnist_dir, tmp_dir):
    """The LSTM section: 1 thread, pinned to one CPU like the 1-thread throughput run
    (so that every variant and peer gets the same single core)."""
    logging.info("LSTM ...")
    return _worker({"section": "lstm", "examples": config.lstm_examples,
                    "repeats": config.lstm_repeats,
                    "steps_per_execution": config.steps_per_execution,
                    "pin_cpu": pinned_cpu(), "mnist_dir": mnist_dir and str(mnist_dir)},
                   1, tmp_dir, config.worker_timeout_s)


def _pipeline(config, tmp_dir):
    path = pathlib.Path(tmp_dir) / "train_32x32.mat"
    logging.info("Writing a %d-image SVHN .mat ...", config.svhn_images)
    start = time.perf_counter()
    size = pipeline.write_svhn_mat(path, config.svhn_images)
    write_s = time.perf_counter() - start
    threads = config.thread_settings[0]
    logging.info("Pipeline ...")
    result = _worker({"section": "pipeline", "path": str(path),
                      "batch_size": config.pipeline_batch, "repeats": config.pipeline_repeats,
                      "train_steps": config.pipeline_train_steps},
                     threads, tmp_dir, config.worker_timeout_s)
    logging.info("Peak memory ...")
    rss = _worker({"section": "peak_rss", "path": str(path), "batch_size": config.pipeline_batch,
                   "train_steps": config.rss_train_steps},
                  None, tmp_dir, config.worker_timeout_s)
    result.update(file_mb=size / 1e6, write_s=write_s, threads=threads_label(threads))
    return result, rss


# Library defaults against 1 thread: ">= 1" less this allowance for the two runs' noise.
THREADS_NOISE_ALLOWANCE = 0.05


def _goal(name, value, target, higher_is_better=True):
    """A goal; `value` None (a variant failed or is not installed) holds neither way."""
    holds = None
    if value is not None:
        holds = bool(value >= target if higher_is_better else value < target)
    return {"goal": name, "target": target, "value": value, "holds": holds,
            "comparison": ">=" if higher_is_better else "<"}


def convnet_goal(runs):
    """Issue 22's goal (issue 11's was 0.5), judged on the first SimpleConvNet run
    (OpenBLAS's own kernel)."""
    ratio = next(iter(runs.values()))["ratio"]["ratio"]
    return _goal("numpy_ref / custom loop, SimpleConvNet, batch 100", ratio, 0.9)


def lstm_goal(result):
    """Issue 19's goal: numpy_ref against the faster custom loop, `--model=lstm`, batch 128."""
    ratio = result["ratios"].get("numpy_ref/custom")
    return _goal(f"numpy_ref / custom loop, LSTM (`--model=lstm`), batch {result['batch_size']}",
                 ratio and ratio["ratio"], 0.5)


def _ratio_goals(run, key, name, batches, target=1.0):
    out = []
    for batch in batches:
        if batch in run["ratios"]:
            ratio = run["ratios"][batch].get(key)
            out.append(_goal(f"{name}, batch {batch}", ratio and ratio["ratio"], target))
    return out


def goals(run, pipeline_result, rss):
    """The issues' goals, judged on one throughput run and the pipeline figures. "custom
    loop" is the faster of `custom_loop` and `custom_loop_xla` at each batch size, "fastest
    peer" the fastest of the JAX and PyTorch variants there (issue 22: the peers at their
    best, `jax_scan` and `torch_compile` among them)."""
    out = _ratio_goals(run, "custom/keras_fit", "custom loop / fit", list(run["ratios"]))
    out += _ratio_goals(run, "custom/peer", "custom loop / fastest peer", list(run["ratios"]))
    out += _ratio_goals(run, "numpy_ref/jax_scan", "numpy_ref / JAX scan", ("32", "128"),
                        target=0.9)
    out += _ratio_goals(run, "numpy_ref/numpy_by_hand", "numpy_ref / NumPy by hand (floor)",
                        ("1024",))
    if "1024" in run["ratios"]:
        flops = run["gflops"].get("numpy_ref", {}).get("1024")
        out.append(_goal("numpy_ref, fraction of the large-product ceiling, batch 1024",
                         flops and flops["fraction_of_ceiling"], 0.6))
    out.append(_goal("make_dataset pass / training", pipeline_result["pass_over_train"]["ratio"],
                     5.0))
    out.append(_goal("peak RSS of a short SVHN training run (MB)", rss["peak_rss_mb"], 1500.0,
                     higher_is_better=False))
    return out


def thread_goals(runs):
    """numpy_ref in the library-defaults process (where `numpy_ref.training` picks the BLAS
    threads itself) against numpy_ref told to use 1 BLAS thread, interleaved in that same
    process, per batch (>= 1 less `THREADS_NOISE_ALLOWANCE`). Comparing with the 1-thread
    process instead would mostly measure its pinning to one CPU (the peers and by-hand
    NumPy lose as much there); that ratio is shown beside it, not judged. Empty unless the
    defaults setting ran."""
    one, defaults = runs.get(threads_label(1)), runs.get(threads_label(None))
    if defaults is None:
        return []
    out = []
    for batch, rates in defaults["rates"].get("numpy_ref", {}).items():
        forced = defaults["rates"].get("numpy_ref_1_blas_thread", {}).get(batch)
        ratio = forced and stats.paired_ratio(rates, forced)
        goal = _goal(f"numpy_ref, library defaults / told 1 BLAS thread, batch {batch}",
                     ratio and ratio["ratio"], 1.0 - THREADS_NOISE_ALLOWANCE)
        pinned = one and one["rates"].get("numpy_ref", {}).get(batch)
        if pinned:
            goal["pinned_run_ratio"] = stats.paired_ratio(rates, pinned)["ratio"]
        out.append(goal)
    return out


def run(config, output_dir, mnist_dir=None, quick=False):
    """Measures every section with `config` and writes the report into `output_dir`.

    Args:
        config: a `BenchConfig` (`FULL` or `QUICK`).
        output_dir: receives `BENCHMARKS.md` and `benchmarks/latest.json`.
        mnist_dir: directory with MNIST (see `tfmodels.data.load_mnist`); None uses random
            MNIST-shaped images.
        quick: recorded in the report (a smoke run, not figures to quote).

    Returns:
        The results dict written to `latest.json`.

    Raises:
        OutputDirError: before measuring, `output_dir` cannot take the report.
        DatasetError: before measuring, `mnist_dir` holds no readable MNIST.
        ReportWriteError: after measuring, a report file could not be written (the
            results were printed on stdout first).
    """
    output_dir = pathlib.Path(output_dir)
    check_mnist_dir(mnist_dir)  # first: nothing is made for a run that cannot start
    check_output_dir(output_dir)
    started = time.perf_counter()
    results = {"quick": quick, "machine": machine.describe(),
               "config": dataclasses.asdict(config)}
    tmp_dir = tempfile.mkdtemp(prefix="tfmodels-bench-")
    try:
        runs = _throughput(config, mnist_dir, tmp_dir)
        primary = runs[threads_label(config.thread_settings[0])]
        results["throughput"] = {v: {b: s["median"] for b, s in by_batch.items()}
                                 for v, by_batch in primary["examples_per_s"].items()}
        results["throughput_runs"] = runs
        results["peer_accuracy"] = _peer_accuracy(config, mnist_dir, tmp_dir)
        logging.info("Gradients ...")
        grads = gradients.measure(config.gradient_depths, config.gradient_batch,
                                  config.gradient_repeats, config.backprop_steps)
        results["gradients"] = {
            **{d: {**r, "numerical": r["numerical"]["median"], "backprop": r["backprop"]["median"],
                   "numerical_spread": r["numerical"], "backprop_spread": r["backprop"]}
               for d, r in grads["per_depth"].items()},
            "growth": grads.get("growth"),
            "setup": {k: grads[k] for k in ("batch", "dtype", "activation")}}
        pipe, rss = _pipeline(config, tmp_dir)
        results["convnet"] = _convnet(config, mnist_dir, tmp_dir)
        results["lstm"] = _lstm(config, mnist_dir, tmp_dir)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)  # the .mat is hundreds of MB
    results["pipeline"] = {**pipe, "examples_per_s": pipe["examples_per_s"]["median"],
                           "train_examples_per_s": pipe["train_examples_per_s"]["median"],
                           "examples_per_s_spread": pipe["examples_per_s"],
                           "train_examples_per_s_spread": pipe["train_examples_per_s"]}
    results["peak_rss_mb"] = rss["peak_rss_mb"]
    results["peak_rss"] = rss
    results["goals"] = {label: goals(r, pipe, rss) for label, r in runs.items()}
    results["thread_goals"] = thread_goals(runs)
    results["convnet_goal"] = convnet_goal(results["convnet"])
    results["lstm_goal"] = lstm_goal(results["lstm"])
    results["elapsed_s"] = time.perf_counter() - started
    write_report(results, output_dir)
    logging.info("Wrote %s and %s in %.0f s", *reversed(report_files(output_dir)),
                 results["elapsed_s"])
    return results
