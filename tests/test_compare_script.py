"""``scripts/compare.py`` end to end, as a user runs it: one subprocess per run.

The runs start together, two at a time (each spends seconds importing
TensorFlow), on saved models and a tiny MNIST-like data set
(``$TFMODELS_DATA_DIR``): a model that agrees with its twin (float64 and
float32), one whose custom layer has a deliberately wrong twin, one with a custom layer
that has no twin, one with a Lambda layer (refused by safe mode), an output
directory that is a file, and a bad flag; a legacy .h5 file, a config nested 5,000
deep, a model whose weights hold NaN (on both sides alike) or inf, a missing SVHN file,
more examples than the test set holds, a model with 3 outputs for MNIST's 10 classes, and
empty folder flags.
"""

import concurrent.futures
import json
import zipfile

import keras
import numpy as np
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
    save(folder, "lambda", keras.layers.Lambda(lambda t: 2 * t, name="doubler"),
         keras.layers.Dense(10))
    agreeing.save(folder / "agreeing.h5")
    nested_config(folder / "agreeing.keras", folder / "deep.keras")
    with_nan = save(folder, "nan", keras.layers.Dense(16, activation="relu", name="dense_16"),
                    keras.layers.Dense(10, activation="softmax"))
    kernel = with_nan.get_layer("dense_16").kernel.numpy()
    kernel[0, :3] = np.nan  # NaN in 3 of its 16 outputs for every image (NaN * 0 is NaN)
    with_nan.get_layer("dense_16").kernel.assign(kernel)
    with_nan.save(folder / "nan.keras")
    kernel[0, :3] = np.inf  # inf * 0 (a black pixel) is NaN: "invalid value" in a matmul
    with_nan.get_layer("dense_16").kernel.assign(kernel)
    with_nan.save(folder / "inf.keras")
    save(folder, "three", keras.layers.Dense(3))
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
        "h5": ("compare.py", f"--model_file={folder / 'agreeing.h5'}", out("h5"),
               "--num_examples=8"),
        "deep": ("compare.py", model("deep"), out("deep")),
        "nan": ("compare.py", model("nan"), out("nan"), "--num_examples=8"),
        "no_svhn": ("compare.py", model("agreeing"), out("no_svhn"), "--dataset=svhn"),
        "too_many": ("compare.py", model("agreeing"), out("too_many"),
                     "--num_examples=100000000"),
        "inf": ("compare.py", model("inf"), out("inf"), "--num_examples=8"),
        "three": ("compare.py", model("three"), out("three")),
        "empty_output_dir": ("compare.py", model("agreeing"), "--output_dir="),
        "empty_data_dir": ("compare.py", model("agreeing"), out("empty_data_dir"),
                           "--data_dir="),
        "stray": ("compare.py", model("agreeing"), out("stray"), "stray"),
    }

    def start(program, *args):
        if program == "compare.py":
            return run_script(program, *args, data_dir=tiny_data_dir)
        return run_python(program, *args, data_dir=tiny_data_dir)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        yield {name: pool.submit(start, *command) for name, command in commands.items()}


def nested_config(source, target, depth=5000):
    """A copy of the .keras archive ``source`` whose config holds a value nested ``depth``
    lists deep."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = old.read(name)
            if name == "config.json":
                config = json.loads(data)
                config["config"]["deep"] = "@"
                data = json.dumps(config).replace('"@"', "[" * depth + "]" * depth)
            new.writestr(name, data)


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
                      "lambda.keras: refused: the Lambda layer 'doubler' holds Python code "
                      "(a lambda, saved as bytecode), and safe mode loads no code from a "
                      "model file: replace the Lambda by built-in Keras layers")
    assert not (folder / "lambda").exists()


def test_a_legacy_h5_model_file_is_compared(runs, folder):
    proc = runs["h5"].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verdict: all layers agree" in proc.stdout
    assert report(folder, "h5")["ok"] is True


def test_a_deeply_nested_config_is_one_line(runs, folder):
    assert_fails_with(runs["deep"].result(), 3, f"{folder / 'deep.keras'}: config.json "
                      "nests 5002 levels deep; a Keras model's config may nest at most 100")
    assert not (folder / "deep").exists()


def test_nan_weights_computed_alike_on_both_sides_agree_with_a_warning(runs, folder):
    """It said they "part at dense_16" although both compute the same NaNs."""
    proc = runs["nan"].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("warning: dense_16: both compute NaN in 24 of 128 output values (its weights "
            "hold 3 NaN values)") in proc.stdout
    assert "verdict: all layers agree, NaN and inf included" in proc.stdout
    saved = report(folder, "nan")
    assert saved["ok"] is True and saved["nonfinite"][0].startswith("dense_16: both compute")
    row, = (row for row in saved["layers"] if row["name"] == "dense_16")
    assert row["forward"]["nonfinite"] == 24
    assert list(row["nonfinite_weights"].values()) == [{"nan": 3, "inf": 0}]


def test_inf_weights_warn_in_the_report_alone_not_through_numpy(runs, folder):
    """NumPy's "RuntimeWarning: invalid value encountered in matmul" and its source line
    came besides the report's own warning lines."""
    proc = runs["inf"].result()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warning: dense_16: both compute" in proc.stdout
    assert "RuntimeWarning" not in proc.stderr and "encountered" not in proc.stderr, (
        proc.stderr[-3000:])


def test_a_model_whose_outputs_are_not_the_data_sets_classes_is_refused(runs, folder):
    """It was TensorFlow's InvalidArgumentError traceback (labels outside [0, 3)), where
    train.py refused the same file with this line."""
    assert_fails_with(runs["three"].result(), 2, f"--model_file={folder / 'three.keras'} "
                      "has 3 outputs; --dataset=mnist has 10 classes")
    assert not (folder / "three").exists()


def test_empty_folder_flags_are_refused(runs, folder):
    """--output_dir= wrote into ./compare-agreeing, the default, without a word."""
    assert_fails_with(runs["empty_output_dir"].result(), 2, "--output_dir is empty")
    assert_fails_with(runs["empty_data_dir"].result(), 2, "--data_dir is empty")
    assert not (folder / "empty_data_dir").exists()


def test_a_stray_argument_is_refused(runs, folder):
    """compare.py takes flags only; a word without "--" was dropped without a word."""
    assert_fails_with(runs["stray"].result(), 2, "unexpected argument stray")
    assert not (folder / "stray").exists()


def test_a_missing_data_file_is_its_own_line_not_the_models(runs, folder):
    """The DatasetError was prefixed with the model file's path."""
    line = assert_fails_with(runs["no_svhn"].result(), 3, "SVHN")
    assert "agreeing.keras" not in line
    assert not (folder / "no_svhn").exists()


def test_more_examples_than_the_test_set_is_refused(runs, folder):
    """--num_examples=100000000 used the 64 test images silently."""
    assert_fails_with(runs["too_many"].result(), 2, "--num_examples=100000000 is more than "
                      "the 64 test images of --dataset=mnist")
    assert not (folder / "too_many").exists()


def test_an_output_dir_that_is_a_file(runs):
    assert_fails_with(runs["output_file"].result(), 4, "--output_dir=", "a_file is a file")


def test_a_bad_flag(runs):
    assert_fails_with(runs["bad_flag"].result(), 2, "--dtype=float16")
