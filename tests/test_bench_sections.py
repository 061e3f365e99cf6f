"""Each benchmark section measured once on tiny inputs, in this process (the fast tier).

test_bench.py's quick run measures them at their own sizes through scripts/bench.py and
its worker processes (the integration tier).
"""

import json

import numpy as np

from benchmarking import convnet, gradients, lstm, machine, peers, pipeline, report, runner, worker


def mnist_like(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)


def test_the_gradients_section_agrees_with_backprop_and_compares_depths():
    result = gradients.measure(depths=(1, 2), batch=4, repeats=1, backprop_steps=2)
    assert set(result["per_depth"]) == {"1", "2"}
    for depth in result["per_depth"].values():
        assert depth["max_abs_difference"] < 1e-6  # central differences in float64
    assert result["growth"]["parameters"] > 1


def test_the_convnet_section_profiles_each_layer_of_the_twin():
    x, y = mnist_like(convnet.BATCH_SIZE)
    result = convnet.measure(x, y, repeats=1)
    assert set(result["examples_per_s"]) == {"custom_loop", "numpy_ref"}
    assert result["profile"]["layers"][0]["class"] == "Conv2D"
    assert result["profile"]["step_ms"] > 0
    deep = result["deep_convnet"]  # issue 22: DeepConvNet measured beside it
    assert set(deep["examples_per_s"]) == {"custom_loop", "numpy_ref"}
    assert deep["ratio"]["ratio"] > 0 and deep["batch_size"] == convnet.BATCH_SIZE
    text = report._convnet({"OpenBLAS picks its kernel": {  # pylint: disable=protected-access
        **result, "data": "random MNIST-shaped", "blas": {"kernel": "SkylakeX"}}})
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:3]] == ["| SimpleConvNet", "| DeepConvNet"]
    assert f"{deep['ratio']['ratio']:.2f}" in rows[2]


def test_the_pipeline_section_loads_and_trains_on_an_svhn_file(tmp_path):
    path = tmp_path / "train_32x32.mat"
    pipeline.write_svhn_mat(path, 64)
    result = pipeline.measure(path, batch_size=32, repeats=1, train_steps=2)
    assert result["images"] == 64 and result["image_shape"] == [32, 32, 3]
    assert pipeline.peak_rss(path, batch_size=32, train_steps=1)["peak_rss_mb"] > 0


def test_the_machine_is_described_for_the_report():
    described = machine.describe()
    assert described["versions"]["numpy"] == np.__version__
    assert machine.gemm_gflops(lambda: None, n=8, repeats=1) > 0


def test_the_worker_writes_a_sections_result(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"section": "peer_accuracy", "examples": 200, "epochs": 1,
                                "batch_size": 100}))
    worker.main(["worker", str(spec), str(tmp_path / "out.json")])
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["data"] == "random MNIST-shaped" and result["train_examples"] == 200


def test_the_lstm_section_compares_numpy_ref_with_the_custom_loops():
    x, y = mnist_like(2 * lstm.BATCH_SIZE)
    result = lstm.measure(x, y, repeats=1, steps_per_execution=2)
    for variant in ("custom_loop", "custom_loop_train_py", "numpy_ref"):
        assert result["variants"][variant]["status"] == "ok", result["variants"][variant]
        assert result["examples_per_s"][variant]["median"] > 0, variant
    for peer in lstm.PEERS:  # measured where installed
        assert result["variants"][peer]["status"] == (peers.missing(peer) or "ok"), peer
    assert result["best_custom_loop"] in lstm.CUSTOM_LOOPS
    assert result["ratios"]["numpy_ref/custom"]["ratio"] > 0
    assert result["jit_compile"] is False  # what --jit_compile=auto gives an LSTM
    assert result["profile"]["steps"] == 2 and result["profile"]["functions"]
    goal = runner.lstm_goal(result)
    assert goal["target"] == 0.5 and isinstance(goal["holds"], bool)
    # pylint: disable-next=protected-access
    text = report._lstm({**result, "data": "random MNIST-shaped"})
    assert "numpy_ref / custom loop" in text and "Where a numpy_ref step goes" in text
