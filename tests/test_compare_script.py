"""``scripts/compare.py`` end to end, as a user runs it: one subprocess per run.

The runs start together, two at a time (each spends seconds importing
TensorFlow), on saved models and a tiny MNIST-like data set
(``$TFMODELS_DATA_DIR``): a model that agrees with its twin (float64 and
float32), one whose custom layer has a deliberately wrong twin, one with a custom layer
that has no twin, one with a Lambda layer (refused by safe mode), an output
directory that is a file, and a bad flag.
"""

import concurrent.futures
import json

import keras
import pytest

from procs import ROOT, assert_fails_with, run_python, run_script
from untwinned import Cube
from wrong_twin import Shift

pytestmark = pytest.mark.integration  # every test runs compare.py in a subprocess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Imports the modules that register the wrong twin and the layers without one, then runs
# compare.py as __main__.
WRAPPER = """import runpy, sys
sys.path.insert(0, {tests!r})
import untwinned, wrong_twin
sys.argv[0] = {script!r}
runpy.run_path({script!r}, run_name="__main__")
"""


def save(folder, name, *layers):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), *layers])
    model.compile(loss="sparse_categorical_crossentropy")
    model.save(folder / f"{name}.keras")
    return model


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("compare")


@pytest.fixture(scope="module")
def agreeing(folder):
    return save(folder, "agreeing", keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(10, activation="softmax"))


@pytest.fixture(scope="module")
def runs(folder, agreeing, tiny_data_dir):
    """{run name: Future of its CompletedProcess}, all started when the first test asks."""
    save(folder, "shifted", keras.layers.Dense(16, activation="tanh"), Shift(name="shift"),
         keras.layers.Dense(10, activation="softmax"))
    save(folder, "unsupported", Cube(name="norm"), keras.layers.Dense(10))
    save(folder, "lambda", keras.layers.Lambda(lambda t: 2 * t), keras.layers.Dense(10))
    (folder / "a_file").write_text("not a directory")
    wrapper = folder / "compare_with_wrong_twin.py"
    wrapper.write_text(WRAPPER.format(tests=str(ROOT / "tests"),
                                      script=str(ROOT / "scripts" / "compare.py")))

    def model(name):
        return f"--model_file={folder / name}.keras"

    def out(name):
        return f"--output_dir={folder / name}"

    commands = {
        "float64": ("compare.py", model("agreeing"), out("float64"), "--num_examples=16"),
        "float32": ("compare.py", model("agreeing"), out("float32"), "--dtype=float32"),
        "wrong_twin": (wrapper, model("shifted"), out("wrong_twin"), "--num_examples=8"),
        "unsupported": (wrapper, model("unsupported"), out("unsupported")),
        "lambda": ("compare.py", model("lambda"), out("lambda")),
        "output_file": ("compare.py", model("agreeing"), out("a_file")),
        "bad_flag": ("compare.py", model("agreeing"), "--dtype=float16"),
    }

    def start(program, *args):
        if program == "compare.py":
            return run_script(program, *args, data_dir=tiny_data_dir)
        return run_python(program, *args, data_dir=tiny_data_dir)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(start, *command) for name, command in commands.items()}


def report(folder, name):
    return json.loads((folder / name / "compare.json").read_text())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_model_that_agrees_with_its_twin(runs, folder, agreeing, dtype):
    proc = runs[dtype].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Keras vs NumPy twin ({dtype}" in proc.stdout
    assert "verdict: all layers agree" in proc.stdout
    saved = report(folder, dtype)
    assert saved["ok"] is True and saved["dtype"] == dtype and saved["first_divergence"] is None
    assert [row["name"] for row in saved["layers"]] == [layer.name for layer in agreeing.layers]
    assert all(row["ok"] for row in saved["layers"])
    assert (folder / dtype / "compare.png").read_bytes().startswith(PNG_SIGNATURE)
    # The last line names the files written, by their absolute paths.
    assert proc.stdout.splitlines()[-1] == (f"Files: {folder / dtype / 'compare.json'}, "
                                            f"{folder / dtype / 'compare.png'}")


def test_a_wrong_custom_twin_is_the_named_divergence(runs, folder):
    proc = runs["wrong_twin"].result()
    assert proc.returncode == 6, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "verdict: they part at 'shift' (backward)" in proc.stdout
    saved = report(folder, "wrong_twin")
    assert (saved["ok"], saved["first_divergence"], saved["divergence"]) == (
        False, "shift", "backward")
    assert (folder / "wrong_twin" / "compare.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_layer_without_a_twin_is_one_line(runs, folder):
    assert_fails_with(runs["unsupported"].result(), 3, "unsupported.keras",
                      "'norm' (untwinned.Cube) has no NumPy twin",
                      "register_twin(Cube, builder)")
    assert not (folder / "unsupported").exists()  # nothing written


def test_safe_mode_refuses_a_lambda_layer(runs, folder):
    assert_fails_with(runs["lambda"].result(), 3, "lambda.keras",
                      "refused or unreadable Keras model file", "Lambda", "safe_mode")
    assert not (folder / "lambda").exists()


def test_an_output_dir_that_is_a_file(runs):
    assert_fails_with(runs["output_file"].result(), 4, "--output_dir=", "a_file is a file")


def test_a_bad_flag(runs):
    assert_fails_with(runs["bad_flag"].result(), 2, "--dtype=float16")
