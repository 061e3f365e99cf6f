"""Each script of scripts/ imported and run in this process, on tiny data (the fast tier).

test_scripts.py, test_compare_script.py and test_run_book.py run them as a user does, in
subprocesses (the integration tier); these keep every script in the fast loop.
"""

import importlib
import json
import signal
import sys
import types

import keras
import numpy as np
import pytest
from absl import flags

FLAGS = flags.FLAGS


@pytest.fixture
def script():
    """Imports scripts/<name>.py as a module (scripts/ is on pytest's path).

    A script defines its absl flags when imported and its ``main`` sets the stop-signal
    handlers: both are undone afterwards, so that the next script can define its own.
    """
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    flags_before, imported = set(FLAGS), []

    def load(name):
        imported.append(name)
        return importlib.import_module(name)

    yield load
    for name in set(FLAGS) - flags_before:
        delattr(FLAGS, name)
    FLAGS.unparse_flags()
    FLAGS.set_gnu_getopt(True)  # run_book.py turns it off
    for name in imported:
        sys.modules.pop(name, None)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def run_main(module, program, *args):
    """``main`` after absl parsed ``args``, as ``app.run`` calls it."""
    return module.main(FLAGS([program, *map(str, args)]))  # what no flag took


def test_train_writes_a_run(script, tmp_path, tiny_data_dir):
    model_dir = tmp_path / "run"
    run_main(script("train"), "train.py", "--backend=numpy", "--epochs=1", "--hidden_units=8",
             f"--model_dir={model_dir}", f"--data_dir={tiny_data_dir}")
    assert (model_dir / "weights.npz").is_file()


def test_evaluate_writes_its_report(script, run_copy, tiny_data_dir):
    run_main(script("evaluate"), "evaluate.py", f"--model_dir={run_copy}", "--backend=numpy",
             f"--data_dir={tiny_data_dir}")
    assert json.loads((run_copy / "evaluation_numpy.json").read_text())


@pytest.mark.parametrize("name, args, code, fragment", [
    ("train", ["--model=two_layer_net", "--hidden_units=5,5"], 2, "exactly 1 hidden layer"),
    ("train", ["--data_dir={tmp}/nowhere"], 3, "nowhere"),
    ("evaluate", [], 4, "not a training run"),
], ids=["train-settings", "train-data", "evaluate-no-run"])
def test_an_expected_failure_is_one_line_and_its_exit_code(script, tmp_path, capsys, name, args,
                                                           code, fragment):
    with pytest.raises(SystemExit) as exited:
        run_main(script(name), f"{name}.py", f"--model_dir={tmp_path}",
                 *(arg.format(tmp=tmp_path) for arg in args))
    assert exited.value.code == code
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"{name}.py: error: ") and fragment in last, last


def test_compare_passes_a_model_that_agrees_with_its_twin(script, tmp_path, tiny_data_dir,
                                                          capsys):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(4, activation="relu"), keras.layers.Dense(10)])
    model.save(tmp_path / "small.keras")
    code = run_main(script("compare"), "compare.py", f"--model_file={tmp_path / 'small.keras'}",
                    f"--output_dir={tmp_path / 'out'}", "--num_examples=4",
                    f"--data_dir={tiny_data_dir}")
    assert code == 0
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["ok"] is True
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"Files: {tmp_path / 'out' / 'compare.json'}, {tmp_path / 'out' / 'compare.png'}")


@pytest.mark.parametrize("quick", [False, True])
def test_bench_runs_the_chosen_configuration(script, monkeypatch, tmp_path, quick):
    bench = script("bench")
    calls = []
    monkeypatch.setattr(bench.runner, "run", lambda *args, **kwargs: calls.append((args, kwargs)))
    run_main(bench, "bench.py", f"--output_dir={tmp_path}", "--data_dir=/data",
             *(["--quick"] if quick else []))
    [(args, kwargs)] = calls
    assert args == (bench.runner.QUICK if quick else bench.runner.FULL, tmp_path)
    assert kwargs == dict(mnist_dir="/data", quick=quick)


def test_run_book_stands_numpy_ref_in_for_the_books_packages(script, tmp_path):
    run_book = script("run_book")
    (tmp_path / "simple_convnet.py").write_text("")  # a chapter file of the folder wins
    modules = run_book.stand_in_modules(tmp_path)
    assert modules["common.layers"].__name__ == "numpy_ref.book.layers"
    assert modules["dataset.mnist"].__name__ == "numpy_ref.book.dataset.mnist"
    assert "simple_convnet" not in modules and "deep_convnet" in modules


def test_fingerprints_hash_values_dtypes_and_shapes(script):
    digest = script("fingerprints").digest
    x = np.arange(6.0)
    assert digest(x, {"b": 1, "a": [2]}) == digest(x.copy(), {"a": [2], "b": 1})
    assert len({digest(x), digest(x.astype(np.float32)), digest(x.reshape(2, 3))}) == 3


def test_measure_twin_layers_measures_one_configuration(script):
    measure = script("measure_twin_layers").measure
    ok, worst = measure("Dropout", dict(rate=0.5, seed=1), (12,), training=True)
    assert ok and worst < 1e-12


def test_measure_twin_properties_prints_the_models_each_property_compared(script, monkeypatch,
                                                                          capsys):
    measure = script("measure_twin_properties")  # imports test_twin_properties from tests/
    tally = types.SimpleNamespace(models=0)

    def comparing(name, n):
        def test():
            tally.models += n
        test.__name__ = name
        return test

    names = ["test_random_sequential_models", "test_random_functional_models",
             "test_random_subclassed_models",
             "test_random_models_with_batch_normalization_or_dropout"]
    sequence_tally = types.SimpleNamespace(models=0)

    def sequence_models():  # each model compared twice: inference and training mode
        sequence_tally.models += 2 * 5

    sequence_models.__name__ = "test_random_sequence_models"
    monkeypatch.setattr(measure, "properties", types.SimpleNamespace(
        TALLY=tally, SEQUENCE_TALLY=sequence_tally,
        test_random_sequence_models=sequence_models,
        **{name: comparing(name, n) for n, name in enumerate(names, 1)}))
    measure.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [f"{name}: {n} models" for n, name in enumerate(names, 1)]
    assert ("test_random_sequence_models: 5 models, each compared in inference and in "
            "training mode") in lines
