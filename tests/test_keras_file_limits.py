"""A Keras model file is read within bounds before Keras sees it (``run/keras_file.py``):
config size (as the zip declares it), inflation, JSON nesting and Python code are each
refused with one line naming the file and the limit; real models pass with room to spare;
a legacy ``.h5`` model file loads, in safe mode, whatever its name.
"""

import json
import tracemalloc
import zipfile

import h5py
import keras
import numpy as np
import pytest

from tfmodels.errors import WeightsFileError
from tfmodels.run import keras_file
from tfmodels.run.keras_model import load_keras_model, load_model_file


def small_model(name="small"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")], name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def refusal(path):
    """The one line ``load_keras_model`` refuses ``path`` with."""
    with pytest.raises(WeightsFileError) as error:
        load_keras_model(path)
    return str(error.value)


def _saved_small_model(tmp_path_factory, name):
    """(a small model, the path ``model.save`` wrote it to as ``name``: .keras or .h5)."""
    model = small_model()
    path = tmp_path_factory.mktemp("saved") / name
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(model, path of its .keras file)."""
    return _saved_small_model(tmp_path_factory, "small.keras")


def rewritten(source, target, compression=zipfile.ZIP_STORED, **replace):
    """A copy of the .keras archive ``source`` at ``target``, its members named in
    ``replace`` (with "." as "_") holding the bytes given instead, written with
    ``compression``."""
    replace = {name.replace("_", "."): data for name, data in replace.items()}
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for name in old.namelist():
            new.writestr(name, replace.get(name, old.read(name)))
    return target


def config_of(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


@pytest.fixture
def keras_must_not_read(monkeypatch):
    """Keras's loader fails the test if called: the refusal must come first."""
    def fail(*args, **kwargs):
        raise AssertionError("Keras was handed the file")
    monkeypatch.setattr(keras.models, "load_model", fail)


def test_a_deeply_nested_config_is_one_line_not_a_recursion_error(saved, tmp_path,
                                                                 keras_must_not_read):
    """Python's json (and Keras's deserialization) recurse per level: 5,000 levels were
    a RecursionError traceback in train.py and compare.py."""
    config = config_of(saved[1])
    config["config"]["deep"] = "@"
    text = json.dumps(config).replace('"@"', "[" * 5000 + "]" * 5000)
    path = rewritten(saved[1], tmp_path / "deep.keras", config_json=text)
    with pytest.raises(WeightsFileError) as error:
        load_model_file(str(path))
    assert str(error.value) == (
        f"{path}: config.json nests 5002 levels deep; a Keras model's config may nest at "
        f"most {keras_file.MAX_NESTING} (keras.applications' nest 11, a model inside a "
        "model about 17)")


def test_a_config_of_spaces_is_refused_by_its_declared_size_before_anything_is_read(
        saved, tmp_path, keras_must_not_read):
    """The probe's 1 GiB of spaces zips to 1 MB and cost Keras +2 GB; here 17 MiB of
    spaces (just past the limit) zip to ~17 KB, and the refusal reads none of them."""
    config = json.dumps(config_of(saved[1])) + " " * (keras_file.MAX_CONFIG_BYTES + 2**20)
    path = rewritten(saved[1], tmp_path / "spaces.keras", zipfile.ZIP_DEFLATED,
                     config_json=config)
    assert path.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(WeightsFileError) as error:
            load_keras_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == (f"{path}: its config.json declares 17.0 MiB; a .keras "
                                "model's config.json may hold at most 16.0 MiB (a large "
                                "real model's config holds about 1 MB)")
    assert peak < 2**20  # the declared size decided it: nothing was inflated


def test_metadata_is_bounded_as_the_config_is(saved, tmp_path, keras_must_not_read):
    metadata = "{" + " " * (keras_file.MAX_CONFIG_BYTES + 1) + "}"
    path = rewritten(saved[1], tmp_path / "metadata.keras", zipfile.ZIP_DEFLATED,
                     metadata_json=metadata)
    with pytest.raises(WeightsFileError, match="its metadata.json declares 16.0 MiB; "):
        load_keras_model(path)


def test_a_weights_member_inflating_a_hundredfold_is_refused(saved, tmp_path,
                                                            keras_must_not_read):
    """The real weights and 20 MiB of zeros after them (an HDF5 file may carry trailing
    bytes) deflate ~1000:1; Keras itself would read them (its own guard starts at 4 GiB)."""
    with zipfile.ZipFile(saved[1]) as archive:
        weights = archive.read("model.weights.h5")
    path = rewritten(saved[1], tmp_path / "bomb.keras", zipfile.ZIP_DEFLATED,
                     model_weights_h5=weights + bytes(20 * 2**20))
    line = refusal(path)
    assert line.startswith(f"{path}: its model.weights.h5 inflates from ")
    assert "to 20.0 MiB, more than 100 times: a decompression bomb" in line


def test_a_recompressed_archive_of_a_real_model_still_loads(saved, tmp_path):
    """Deflating every member (a zip tool's doing) is no bomb: small members are exempt."""
    model, source = saved
    path = rewritten(source, tmp_path / "deflated.keras", zipfile.ZIP_DEFLATED)
    loaded = load_keras_model(path)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_nesting_recursion_error_inside_keras_is_one_line(saved, monkeypatch):
    """The backstop: a RecursionError Keras raises for what the bound lets through."""
    def recurse(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(keras.models, "load_model", recurse)
    with pytest.raises(WeightsFileError, match="nested too deeply for Keras to load"):
        load_keras_model(saved[1])


def test_nesting_depth_counts_brackets_outside_strings_only():
    assert keras_file.nesting_depth('{"a": [1, {"b": "]]]\\"[[[[[{"}], "c": "\\\\"}') == 3
    assert keras_file.nesting_depth("[]" * 1000) == 1
    assert keras_file.nesting_depth('"[[[["') == 0
    assert keras_file.nesting_depth("[" * 300 + "]" * 300) == 300


def test_real_models_configs_pass_with_room_to_spare():
    """ResNet50's config (170 KB, 11 deep; NASNetLarge's, the largest of
    keras.applications, is ~1 MB) and a model inside a model inside a model."""
    text = json.dumps(keras.saving.serialize_keras_object(keras.applications.ResNet50(
        weights=None)))
    assert 100_000 < len(text) < keras_file.MAX_CONFIG_BYTES / 16
    assert keras_file.nesting_depth(text) == 11 < keras_file.MAX_NESTING / 5
    assert keras_file.parse(text, "resnet50")["class_name"] == "Functional"
    inner = small_model("inner")
    middle = keras.Sequential([keras.Input((6,)), inner], name="middle")
    outer = keras.Sequential([keras.Input((6,)), middle], name="outer")
    depth = keras_file.nesting_depth(json.dumps(keras.saving.serialize_keras_object(outer)))
    assert depth < keras_file.MAX_NESTING / 4


def test_a_model_inside_a_model_saved_and_loaded(tmp_path):
    inner = small_model("inner")
    outer = keras.Sequential([keras.Input((6,)), keras.Sequential([keras.Input((6,)), inner],
                                                                  name="middle")])
    outer.save(tmp_path / "nested.keras")
    x = np.random.default_rng(0).random((3, 6)).astype(np.float32)
    np.testing.assert_array_equal(load_keras_model(tmp_path / "nested.keras")(x), outer(x))


# --- Python code: named, with the way out ---------------------------------------------------


def test_a_lambda_layer_is_named_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "ran"
    where = str(marker)  # the lambda's closure, saved with its bytecode
    inputs = keras.Input((6,))
    doubled = keras.layers.Lambda(lambda t: (open(where, "w").close(), 2 * t)[1],
                                  name="twice")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(doubled))
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran it; loading must not
    with pytest.raises(WeightsFileError) as error:
        load_model_file(str(tmp_path / "lambda.keras"))
    assert str(error.value) == (
        f"{tmp_path / 'lambda.keras'}: refused: the Lambda layer 'twice' holds Python code (a "
        "lambda, saved as bytecode), and safe mode loads no code from a model file: "
        "replace the Lambda by built-in Keras layers, or by a custom layer registered "
        "with @keras.saving.register_keras_serializable (imported where the model is "
        "loaded), and save the model again")
    assert not marker.exists()
    keras.models.load_model(tmp_path / "lambda.keras", safe_mode=False)  # the control:
    assert marker.exists()  # loading it unsafely does run it


def test_a_lambda_activation_is_named(tmp_path):
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(3, activation=lambda t: t, name="linear")])
    with pytest.warns(UserWarning, match="lambda"):  # Keras warns as it saves it
        model.save(tmp_path / "activation.keras")
    assert refusal(tmp_path / "activation.keras").startswith(
        f"{tmp_path / 'activation.keras'}: refused: 'linear' (Dense)'s 'activation' holds "
        "Python "
        "code (a lambda, saved as bytecode), and safe mode loads no code from a model file: "
        "replace it by a built-in Keras function or layer")


def halve(t):
    return t / 2


def test_a_function_keras_cannot_find_is_named(tmp_path):
    """A named function is saved by its name; Keras's own error named neither it nor
    the layer ("... could not be deserialized properly")."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Lambda(halve, name="half"),
                              keras.layers.Dense(3)])
    model.save(tmp_path / "function.keras")
    assert refusal(tmp_path / "function.keras").startswith(
        f"{tmp_path / 'function.keras'}: names Python function Keras cannot find: 'halve' "
        "in 'half' (Lambda)'s 'function'; a model file holds a function's name, not its "
        "code")


# --- legacy HDF5 (.h5) model files ------------------------------------------------------


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory):
    """(model, path of it saved by model.save("small.h5"))."""
    return _saved_small_model(tmp_path_factory, "small.h5")


@pytest.mark.parametrize("name", ["small.h5", "renamed.keras", "no_extension"])
def test_a_legacy_h5_model_file_loads_whatever_its_name(h5_file, tmp_path, name):
    """It was called "not a complete .keras archive ... truncated or damaged"."""
    model, source = h5_file
    path = tmp_path / name
    path.write_bytes(source.read_bytes())
    loaded = load_model_file(str(path))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = np.random.default_rng(0).random((5, 6)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), model(x))
    assert type(loaded.optimizer).__name__ == "Adam"


def test_an_h5_lambda_is_refused_as_a_keras_one(tmp_path):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Lambda(lambda t: t + 1,
                                                                     name="plus_one")])
    model.save(tmp_path / "lambda.h5")
    with pytest.raises(WeightsFileError, match="the Lambda layer 'plus_one' holds Python "
                                               "code"):
        load_keras_model(tmp_path / "lambda.h5")


def test_an_hdf5_file_after_a_user_block_and_one_without_a_model(tmp_path):
    """The signature may sit at 512, 1024, ... (a user block); weights alone are no model."""
    path = tmp_path / "weights_only.h5"
    with h5py.File(path, "w", userblock_size=1024) as f:
        f["kernel"] = np.zeros((2, 2))
    assert path.read_bytes()[:8] != keras_file.HDF5_SIGNATURE
    assert keras_file.kind(path) == "hdf5"
    with pytest.raises(WeightsFileError) as error:
        load_keras_model(path)
    assert str(error.value) == (f"{path}: an HDF5 file without a model_config attribute: "
                                "weights alone (as save_weights writes them), not a Keras "
                                "model file")


def test_an_h5_config_is_bounded_as_a_keras_one(h5_file, tmp_path, keras_must_not_read):
    path = tmp_path / "deep.h5"
    path.write_bytes(h5_file[1].read_bytes())
    with h5py.File(path, "a") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["deep"] = "@"
        f.attrs["model_config"] = json.dumps(config).replace('"@"', "[" * 200 + "]" * 200)
    with pytest.raises(WeightsFileError, match=f"^{path}: model_config nests 202 levels "):
        load_keras_model(path)


def test_neither_zip_nor_hdf5_is_named_as_such(tmp_path):
    path = tmp_path / "notes.keras"
    path.write_text("not a model")
    with pytest.raises(WeightsFileError) as error:
        load_keras_model(path)
    assert str(error.value) == (f"{path}: not a complete .keras archive (no zip directory "
                                "at its end) nor an HDF5 (.h5) Keras file: truncated or "
                                "damaged, or not a Keras model file")


def test_a_folder_is_named_not_a_traceback(tmp_path):
    (tmp_path / "saved_model").mkdir()
    with pytest.raises(WeightsFileError, match="saved_model: cannot be read"):
        load_keras_model(tmp_path / "saved_model")


def test_a_keras_archive_under_another_name_is_told_to_be_renamed(saved, tmp_path):
    path = tmp_path / "small.zip"
    path.write_bytes(saved[1].read_bytes())
    with pytest.raises(WeightsFileError) as error:
        load_keras_model(path)
    assert str(error.value) == (f"{path}: a zip archive, as a .keras file is, but Keras "
                                "reads one only under a name ending in .keras: rename it")


def test_compare_takes_all_of_a_test_set_smaller_than_its_default(monkeypatch):
    """--num_examples not given: 64 images, or all a smaller test set has (a set of 10
    must not be refused for the default); asked for more than it has: one line."""
    from tfmodels import data  # pylint: disable=import-outside-toplevel
    from tfmodels.errors import ConfigError  # pylint: disable=import-outside-toplevel
    from tfmodels.run import comparison  # pylint: disable=import-outside-toplevel
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), np.arange(10)
    kind = data.DATASETS["mnist"]
    monkeypatch.setitem(data.DATASETS, "mnist", data.DatasetKind(
        lambda _: ((x, y), (x, y)), kind.input_shape, kind.class_names))
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    images, labels = comparison.example_batch(model, "mnist", None, None, "float64")
    assert images.shape == (10, 28, 28) and list(labels) == list(range(10))
    assert len(comparison.example_batch(model, "mnist", None, 3, "float64")[0]) == 3
    with pytest.raises(ConfigError, match=r"--num_examples=11 is more than the 10 test "
                                          r"images of --dataset=mnist"):
        comparison.example_batch(model, "mnist", None, 11, "float64")
