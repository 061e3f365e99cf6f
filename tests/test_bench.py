"""The benchmark: `scripts/bench.py --quick` runs every section and writes a complete report.

Nothing here asserts a speed: performance goals are judged in BENCHMARKS.md, from a full run.
"""

import json
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.io

import procs
from numpy_ref import gradient as G
from numpy_ref.network import networks as N
from tfmodels import data
from benchmarking import peers, pipeline, report, runner, stats, throughput

VARIANTS = ("keras_fit", "custom_loop", "custom_loop_xla", "numpy_ref")  # never skipped
BATCH_SIZES = ("32", "128", "1024")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`scripts/bench.py --quick` in a subprocess, writing into a temporary directory."""
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, str(procs.ROOT / "scripts" / "bench.py"), "--quick",
                           f"--output_dir={out}"], env=procs.child_env(), capture_output=True,
                          text=True, timeout=300, cwd=procs.ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.integration
def test_quick_run_writes_every_figure_to_the_json(quick_run):
    results = json.loads((quick_run / "benchmarks" / "latest.json").read_text())
    assert results["quick"] is True
    run = next(iter(results["throughput_runs"].values()))
    for variant in VARIANTS:
        assert run["variants"][variant]["status"] == "ok", variant
    for peer in peers.RUNNERS:  # measured where installed
        status = run["variants"][peer]["status"]
        assert status == ("ok" if peers.missing(peer) is None else peers.INSTALL_HINT), peer
        check = results["peer_accuracy"]["peers"][peer]
        assert check.get("status") == peers.missing(peer), peer
        if status == "ok":
            assert 0.1 < check["test_accuracy"] <= 1, peer
    for variant, status in run["variants"].items():
        for batch in BATCH_SIZES if status["status"] == "ok" else ():
            assert results["throughput"][variant][batch] > 0, (variant, batch)
            assert run["cores_used"][variant][batch]["median"] > 0, (variant, batch)
    assert run["pinned_cpu"] is not None  # the quick run is the 1-thread one
    assert results["pipeline"]["examples_per_s"] > 0
    assert results["pipeline"]["train_examples_per_s"] > 0
    assert results["pipeline"]["load_s"]["median"] > 0
    assert results["peak_rss_mb"] > 0
    for depth in ("5", "10"):
        assert results["gradients"][depth]["numerical"] > results["gradients"][depth]["backprop"] > 0
        assert results["gradients"][depth]["max_abs_difference"] < 1e-6  # same gradient
    assert results["gradients"]["growth"]["measured"] > 1
    machine = results["machine"]
    assert machine["cpu"] and machine["logical_cpus"] >= 1
    assert machine["versions"]["numpy"] and machine["versions"]["tensorflow"]
    assert "blas" in machine
    assert run["gemm_gflops"]["numpy"] > 0 and run["gemm_gflops"]["tensorflow"] > 0
    for batch in BATCH_SIZES:
        assert 0 < run["gflops"]["numpy_ref"][batch]["fraction_of_ceiling"]
    for goal in next(iter(results["goals"].values())):
        assert goal["holds"] in (True, False, None), goal
        assert (goal["holds"] is None) == (goal["value"] is None), goal
    convnet_run = results["convnet"]["OpenBLAS picks its kernel"]
    for variant in ("custom_loop", "numpy_ref"):
        assert convnet_run["examples_per_s"][variant]["median"] > 0, variant
    assert convnet_run["ratio"]["ratio"] > 0 and convnet_run["blas"]
    assert [row["class"] for row in convnet_run["profile"]["layers"]] == [
        "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense", "Softmax"]
    assert results["convnet_goal"]["target"] == 0.9  # issue 22 (issue 11: 0.5)
    assert isinstance(results["convnet_goal"]["holds"], bool)


@pytest.mark.integration
def test_quick_run_writes_every_section_to_the_markdown(quick_run):
    text = (quick_run / "BENCHMARKS.md").read_text()
    for section in report.SECTIONS:
        assert section in text, section
    assert "Quick mode" in text
    for fragment in ("custom loop / Keras `fit`", "numpy_ref / custom loop", "cores used",
                     "% of ceiling", "The peers learn", "parameters",
                     "load_svhn_mat", "peak RSS", "kernel", "SimpleConvNet, batch 100",
                     "Where a numpy_ref step goes"):
        assert fragment in text, fragment


def _never_measure(*args, **kwargs):
    raise AssertionError("measured before the output folder was checked")


@pytest.mark.parametrize("where, message", [
    ("file/x", "cannot be made: {tmp}/file is a file, not a folder"),
    ("file", "{tmp}/file is a file, not a folder"),
    ("taken", "{tmp}/taken/BENCHMARKS.md is a folder"),
])
def test_an_output_dir_that_cannot_take_the_report_fails_before_measuring(
        where, message, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "taken" / "BENCHMARKS.md").mkdir(parents=True)
    monkeypatch.setattr(runner, "_throughput", _never_measure)
    monkeypatch.setattr(runner.machine, "describe", _never_measure)
    with pytest.raises(runner.OutputDirError) as refused:
        runner.run(runner.QUICK, tmp_path / where)
    assert message.format(tmp=tmp_path) in str(refused.value)


def test_a_data_dir_without_mnist_fails_before_any_worker_or_folder(tmp_path, monkeypatch):
    """A worker failed on it after ~4 s, its DatasetError a traceback (exit 1)."""
    monkeypatch.setattr(runner, "_worker", _never_measure)
    monkeypatch.setattr(runner.machine, "describe", _never_measure)
    with pytest.raises(data.DatasetError, match=f"{tmp_path / 'nope'}"):
        runner.run(runner.QUICK, tmp_path / "out", mnist_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetError, match=f"{tmp_path / 'empty'}"):
        runner.run(runner.QUICK, tmp_path / "out", mnist_dir=tmp_path / "empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no output folder


def test_a_usable_output_dir_is_made_and_left_clean(tmp_path):
    runner.check_output_dir(tmp_path / "new" / "out")
    assert [p.relative_to(tmp_path) for p in sorted(tmp_path.rglob("*"))] == [
        pathlib.Path("new"), pathlib.Path("new/out"), pathlib.Path("new/out/benchmarks")]


RESULTS = {"quick": True, "throughput": {"numpy_ref": {"32": 1234.5}}}


def test_a_failed_report_write_prints_the_results_first(tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(runner.ReportWriteError) as failed:
        runner.write_report(RESULTS, tmp_path / "file" / "out")
    assert json.loads(capsys.readouterr().out) == RESULTS
    assert f"{tmp_path}/file/out/benchmarks/latest.json: could not be written" in str(
        failed.value)
    assert "printed above" in str(failed.value)


def test_a_failed_markdown_write_keeps_the_json_and_prints_the_results(tmp_path, capsys,
                                                                        monkeypatch):
    monkeypatch.setattr(report, "render", lambda results, notes: "# Benchmarks\n")
    (tmp_path / "BENCHMARKS.md").mkdir()  # appeared after the check: the rename fails
    with pytest.raises(runner.ReportWriteError, match=r"BENCHMARKS.md: could not be written "
                                                      r".*latest.json was written"):
        runner.write_report(RESULTS, tmp_path)
    assert json.loads(capsys.readouterr().out) == RESULTS
    assert json.loads((tmp_path / "benchmarks" / "latest.json").read_text()) == RESULTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md", "benchmarks"]
    assert not any((tmp_path / "BENCHMARKS.md").iterdir())  # no temporary file left

    def broken(results, notes):
        raise KeyError("a bug in the report")

    monkeypatch.setattr(report, "render", broken)
    with pytest.raises(KeyError):
        runner.write_report(RESULTS, tmp_path / "fresh")
    assert json.loads(capsys.readouterr().out) == RESULTS  # a bug loses nothing either


@pytest.mark.integration
def test_bench_refuses_an_unusable_output_dir_at_once(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for flag, fragments in ((f"--output_dir={tmp_path}/file/x", (
            f"{tmp_path}/file is a file, not a folder", "--output_dir")),
                            ("--output_dir=", ("--output_dir is empty",)),
                            ("--repeats=3", ("Unknown command line flag 'repeats'",)),
                            ("--data_dir=", ("--data_dir is empty",)),
                            ("stray", ("unexpected argument stray",))):
        proc = procs.run_script("bench.py", "--quick", flag, cwd=tmp_path, timeout=60)
        procs.assert_fails_with(proc, 2, *fragments)
        assert proc.stdout == ""
    # A --data_dir without MNIST: exit 3 at once (it was a worker's traceback after ~4 s).
    proc = procs.run_script("bench.py", "--quick", f"--data_dir={tmp_path}/nope",
                            f"--output_dir={tmp_path}/out", cwd=tmp_path, timeout=60)
    procs.assert_fails_with(proc, 3, f"{tmp_path}/nope")
    assert proc.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing written


def test_training_multiply_adds_of_mymodel():
    # forward 70,656 + kernel gradients 70,656 + input gradients of layers 2..5 45,568
    assert throughput.training_macs_per_example(784) == 186_880


def test_the_convnet_section_runs_without_the_forced_blas_kernel(monkeypatch):
    """The SimpleConvNet worker drops OPENBLAS_CORETYPE/L2_SIZE (and runs once more with
    them when the environment sets them); the other sections keep the environment."""
    calls = []
    monkeypatch.setattr(runner, "_worker", lambda spec, threads, tmp, timeout, unset=():
                        calls.append((spec["section"], threads, unset)) or {"ratio": {"ratio": 0.7}})
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv("OPENBLAS_L2_SIZE", raising=False)
    runs = runner._convnet(runner.QUICK, None, "/tmp")  # pylint: disable=protected-access
    assert list(runs) == ["OpenBLAS picks its kernel", "OPENBLAS_CORETYPE=Haswell"]
    assert calls == [("convnet", 1, runner.FORCED_BLAS_ENV), ("convnet", 1, ())]
    assert runner.convnet_goal(runs)["value"] == 0.7
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    calls.clear()
    assert list(runner._convnet(runner.QUICK, None, "/tmp")) == ["OpenBLAS picks its kernel"]


def test_interleaved_rotates_the_order_and_warms_up_first():
    calls = []
    seconds = stats.interleaved({"a": lambda i: calls.append(("a", i)),
                                 "b": lambda i: calls.append(("b", i))}, repeats=3, warmup=1)
    assert calls == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("b", 2), ("a", 2),
                     ("a", 3), ("b", 3)]
    assert [len(s) for s in seconds.values()] == [3, 3]


def test_paired_ratio_is_the_ratio_of_medians_with_the_per_repeat_range():
    ratio = stats.paired_ratio([2.0, 4.0, 6.0], [1.0, 1.0, 4.0])
    assert ratio == {"ratio": 4.0, "min": 1.5, "max": 4.0}


def test_the_benchmark_svhn_file_loads_in_the_stanford_layout(tmp_path):
    path = tmp_path / "train_32x32.mat"
    pipeline.write_svhn_mat(path, 300, chunk=128)  # chunks: the last one partial
    raw = scipy.io.loadmat(path)
    assert raw["X"].shape == (32, 32, 3, 300) and raw["X"].dtype == np.uint8
    assert raw["y"].shape == (300, 1) and set(np.unique(raw["y"])) <= set(range(1, 11))
    x, y = data.load_svhn_mat(path)  # reorders the images in place, in chunks
    np.testing.assert_array_equal(x, np.moveaxis(raw["X"], 3, 0))
    assert x.flags.c_contiguous
    np.testing.assert_array_equal(y, raw["y"].ravel().astype(np.int64) - 1)


@pytest.mark.parametrize("make_net", [
    lambda: N.DNN(3, 6, 4, 2, seed=0),
    lambda: N.TwoLayerNet(5, 4, 3, dtype=np.float64, seed=1),
], ids=["dnn", "two_layer_net"])
def test_numerical_gradient_equals_rerunning_the_whole_network(make_net):
    """Re-running only the layers after a weight gives the same bits as the book's way."""
    rng = np.random.default_rng(0)
    net = make_net()
    x = rng.normal(size=(7, net.params["W1"].shape[0]))
    t = (rng.random((7, 2)) if isinstance(net, N.DNN) else rng.integers(0, 3, 7))
    whole = {k: G.numerical_gradient(lambda _: net.loss(x, t), p) for k, p in net.params.items()}
    fast = net.numerical_gradient(x, t)
    assert list(fast) == list(whole)
    for key in whole:
        np.testing.assert_array_equal(fast[key], whole[key], err_msg=key)


def test_images_first_reorders_in_chunks_like_moveaxis():
    x = np.asfortranarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3, 20), np.uint8))
    expected = np.ascontiguousarray(np.moveaxis(x, 3, 0))
    np.testing.assert_array_equal(data.svhn._images_first(x, chunk=7), expected)  # 7 + 7 + 6


@pytest.mark.integration
def test_ctrl_c_while_measuring_is_one_line(tmp_path):
    """bench.py's main ran unguarded: a Ctrl-C while measuring printed a traceback."""
    proc = subprocess.Popen(
        [sys.executable, str(procs.ROOT / "scripts" / "bench.py"), "--quick",
         f"--output_dir={tmp_path}/out"], env=procs.script_env(), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stderr:  # its log lines; the first section starts a worker
        lines.append(line)
        if "Throughput" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    stderr = "".join(lines) + rest
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
    assert stderr.rstrip().splitlines()[-1] == "bench.py: error: interrupted; rerun the same command"
