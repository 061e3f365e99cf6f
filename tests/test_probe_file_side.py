"""What the adversarial probe of issue 21 crafted on the file side, each refused with one
line naming the file: pictures and .npy headers that claim more than they hold, model
files naming classes from outside Keras or members outside the archive, a model whose
outputs do not fit the data set, and compare.py on weights holding inf."""

import json
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import keras
import numpy as np
import pytest
from PIL import Image as PILImage

from tfmodels.errors import ConfigError, DatasetError, WeightsFileError
from tfmodels.run import comparison, keras_file, predict
from tfmodels.run.keras_model import load_keras_model
from test_keras_file_limits import refusal

# --- predict.py's images ----------------------------------------------------------------


def png_header_only(path, width, height):
    """A PNG whose header claims ``width`` x ``height`` greyscale pixels, with a few
    hundred bytes of image data: what a decompression bomb's header looks like."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [(100_000, 100_000), (9_460, 9_460)])
def test_a_picture_claiming_too_many_pixels_is_refused_before_decoding(tmp_path, width,
                                                                      height):
    """100000x100000 was Pillow's DecompressionBombError traceback (exit 1); 9460x9460,
    just past the limit, a DecompressionBombWarning and then a decoding attempt."""
    path = png_header_only(tmp_path / "bomb.png", width, height)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even Pillow's DecompressionBombWarning
        with pytest.raises(DatasetError) as error:
            predict.read_images([path], "mnist")
    assert width * height > predict.MAX_PICTURE_PIXELS
    assert str(error.value) == (
        f"{path}: a picture of {width}x{height} = {width * height:,} pixels; at most "
        f"{predict.MAX_PICTURE_PIXELS:,} are read (a digit needs a few thousand), and it "
        "was not decoded")
    assert PILImage.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3  # Pillow's, restored


def test_the_picture_limit_is_pillows_default_and_a_normal_picture_still_reads(tmp_path):
    assert predict.MAX_PICTURE_PIXELS == PILImage.MAX_IMAGE_PIXELS
    PILImage.fromarray(np.full((300, 200), 9, np.uint8)).save(tmp_path / "photo.png")
    image, = predict.read_images([tmp_path / "photo.png"], "mnist", invert="no")
    assert image.pixels.shape == (28, 28) and (image.pixels == 9).all()


def test_an_empty_npy_stack_is_refused_naming_the_file(tmp_path):
    """np.stack of no images: "need at least one array to stack", a traceback."""
    path = tmp_path / "none.npy"
    np.save(path, np.zeros((0, 28, 28), np.uint8))
    with pytest.raises(DatasetError) as error:
        predict.read_images([path], "mnist")
    assert str(error.value) == (f"{path}: a stack of no images (shape (0, 28, 28)); "
                                "expected at least one")


def npy_claiming(path, shape, data=b"", version=(1, 0)):
    """A .npy file whose header declares a uint8 array of ``shape``, holding ``data``."""
    header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (118 - len(header)) + "\n"
    length = struct.pack("<H" if version == (1, 0) else "<I", len(header))
    path.write_bytes(b"\x93NUMPY" + bytes(version) + length + header.encode("latin1") + data)
    return path


def test_an_npy_header_claiming_more_than_the_file_holds_is_refused_not_allocated(tmp_path):
    """A 912-byte file claiming (10**9, 28, 28) was "out of memory (MemoryError): Unable to
    allocate 730. GiB", exit 7: it blamed the memory, not the file."""
    path = npy_claiming(tmp_path / "huge.npy", (10**9, 28, 28), bytes(784))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as error:
            predict.read_images([path], "mnist")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(error.value) == (
        f"{path}: its header declares an array of shape (1000000000, 28, 28) uint8 "
        "(784,000,000,000 bytes), but the file holds 784 bytes of data: truncated or "
        "damaged")
    assert peak < 2**20
    two = npy_claiming(tmp_path / "two.npy", (2, 28, 28), bytes(784), version=(2, 0))
    with pytest.raises(DatasetError, match=r"declares .* \(1,568 bytes\), but the file "
                                           r"holds 784 bytes"):
        predict.read_images([two], "mnist")
    whole = npy_claiming(tmp_path / "whole.npy", (2, 28, 28), bytes(2 * 784), version=(2, 0))
    assert len(predict.read_images([whole], "mnist")) == 2


# --- Keras model files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A small MNIST classifier saved as a .keras file: (model, path)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(16, activation="relu", name="hid"),
                              keras.layers.Dense(10, name="out")], name="net")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path_factory.mktemp("net") / "net.keras"
    model.save(path)
    return model, path


def members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def archive(path, contents):
    with zipfile.ZipFile(path, "w") as new:
        for name, data in contents.items():
            new.writestr(name, data)
    return path


def with_layers(net, path, edit):
    """A copy of ``net``'s file at ``path`` whose config's layers ``edit`` changed."""
    contents = members(net[1])
    config = json.loads(contents["config.json"])
    edit(config["config"]["layers"])
    return archive(path, {**contents, "config.json": json.dumps(config)})


@pytest.fixture
def keras_must_not_read(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("Keras was handed the file")
    monkeypatch.setattr(keras.models, "load_model", fail)


SAFE_MODE = ("safe mode loads only Keras's own classes and those registered "
             "(@keras.saving.register_keras_serializable) where the model is loaded")


@pytest.mark.parametrize("module, class_name", [
    ("os", "system"), ("subprocess", "Popen"), ("builtins", "__import__")])
def test_a_layer_of_a_module_outside_keras_is_named_with_its_module_and_class(
        net, tmp_path, keras_must_not_read, module, class_name):
    """Keras's refusal named neither: "<class Sequential> could not be deserialized
    properly. Please ensure that components ... from_config()"."""
    for config, place in (({"name": "hid", "command": "touch x"}, "the layer 'hid'"),
                          ({"command": "touch x"}, "a layer of 'net' (Sequential)")):
        path = with_layers(net, tmp_path / "foreign.keras", lambda layers: layers.__setitem__(
            2, {"module": module, "class_name": class_name, "registered_name": None,
                "config": config}))
        assert refusal(path) == (
            f"{path}: refused: {place} is {module}.{class_name}, neither a Keras class nor "
            f"a registered one; {SAFE_MODE}")


def test_an_object_without_a_name_is_placed_by_its_owner(net, tmp_path, keras_must_not_read):
    def initializer(layers):
        layers[2]["config"]["kernel_initializer"] = {
            "module": "numpy", "class_name": "load", "registered_name": None,
            "config": {"file": "evil.npy", "allow_pickle": True}}

    path = with_layers(net, tmp_path / "initializer.keras", initializer)
    assert refusal(path) == (
        f"{path}: refused: 'hid' (Dense)'s 'kernel_initializer' is numpy.load, neither a "
        f"Keras class nor a registered one; {SAFE_MODE}")


def test_python_attribute_keys_in_a_config_are_named(net, tmp_path, keras_must_not_read):
    def dunder(layers):
        layers[2]["config"].update({"__class__": {"module": "os", "class_name": "system"},
                                    "__reduce__": "os.system"})

    path = with_layers(net, tmp_path / "dunder.keras", dunder)
    assert refusal(path) == (
        f"{path}: refused: 'hid' (Dense)'s config holds the key '__class__' (and "
        "'__reduce__'): a Python attribute's name, which no Keras config holds")


def test_a_registered_name_on_a_keras_class_is_one_short_line(net, tmp_path,
                                                              keras_must_not_read):
    """Keras's own refusal dumped the layer's whole config (2 KB) into the line."""
    path = with_layers(net, tmp_path / "game.keras",
                       lambda layers: layers[2].__setitem__("registered_name", "os>system"))
    assert refusal(path) == (
        f"{path}: refused: the layer 'hid' is keras.layers.Dense but carries "
        "registered_name 'os>system', which names no registered class (a Keras class has "
        f"no registered name); {SAFE_MODE}")


class Twice(keras.layers.Layer):
    """A user's custom layer (registered below, under a package of the test's own)."""

    def call(self, x):
        return 2 * x


def test_a_users_registered_layer_loads_and_unregistered_is_named(tmp_path):
    """The refusal of classes outside Keras lets registered ones through: a user's layer
    loads while its registration is imported; without it, the line names the layer and
    its registered name (Keras said "<class Sequential> could not be deserialized
    properly ... from_config()")."""
    registered = keras.saving.register_keras_serializable(package="ProbeTests")(Twice)
    try:
        model = keras.Sequential([keras.Input((3,)), registered(name="twice")])
        model.save(tmp_path / "custom.keras")
        config = keras_file.checked_config(tmp_path / "custom.keras")
        layer = config["config"]["layers"][1]
        assert (layer["module"], layer["registered_name"]) == (__name__,
                                                               "ProbeTests>Twice")
        loaded = load_keras_model(tmp_path / "custom.keras")
        np.testing.assert_array_equal(loaded(np.ones((1, 3))), [[2, 2, 2]])
    finally:
        del keras.saving.get_custom_objects()["ProbeTests>Twice"]
    assert refusal(tmp_path / "custom.keras") == (
        f"{tmp_path / 'custom.keras'}: refused: the layer 'twice' is the custom class "
        f"'ProbeTests>Twice' ({__name__}.Twice), which is not registered where the model "
        f"is loaded; {SAFE_MODE}")


def test_a_registered_name_of_a_class_saved_from_a_script_is_looked_up_only(
        net, tmp_path, keras_must_not_read):
    """module None (a class of __main__) and registered_name 'builtins>exec': Keras looks
    the name up among registered classes and imports nothing; unregistered, it is named."""
    def game(layers):
        layers[2].update({"module": None, "class_name": "exec",
                          "registered_name": "builtins>exec"})

    path = with_layers(net, tmp_path / "exec.keras", game)
    assert refusal(path) == (
        f"{path}: refused: the layer 'hid' is the custom class 'builtins>exec' (class "
        f"exec, no module), which is not registered where the model is loaded; {SAFE_MODE}")


def test_keras_own_line_drops_the_config_it_appends():
    error = TypeError("Could not locate class 'Twice'. Make sure custom classes are "
                      "decorated. Full object config: {'module': None, 'config': {}}")
    assert keras_file.explain("m.keras", {}, error) == (
        "m.keras: refused or unreadable Keras model file: Could not locate class 'Twice'. "
        "Make sure custom classes are decorated.")


@pytest.mark.parametrize("member", ["../../escaped", "/tmp/absolute",
                                    "assets/../../../../tmp/dotdot", "..\\windows"])
def test_an_archive_member_named_outside_the_archive_is_refused(net, tmp_path, member,
                                                                 keras_must_not_read):
    """Keras skipped them, but zipfile printed 6 lines of "UserWarning: Skipping invalid
    path" with source lines, and the archive was accepted and copied."""
    path = archive(tmp_path / "traversal.keras", {**members(net[1]), member: b"x"})
    assert refusal(path) == (
        f"{path}: refused: its member {member!r} is named outside the archive (an "
        "absolute or parent-relative path), which no saved Keras model has")


def test_the_projects_own_models_pass_the_module_check(tmp_path):
    """tfmodels' registered PositionEmbedding (module tfmodels.models.sequence) and Keras's
    own modules (keras.src.models.functional) are let through."""
    from tfmodels import models  # pylint: disable=import-outside-toplevel
    model = models.build_model("vit", (8,), "relu", 10, input_shape=(28, 28))
    model.save(tmp_path / "vit.keras")
    config = keras_file.checked_config(tmp_path / "vit.keras")
    assert "tfmodels>PositionEmbedding" in json.dumps(config)
    assert load_keras_model(tmp_path / "vit.keras").count_params() == model.count_params()


# --- compare.py -------------------------------------------------------------------------


def test_compare_refuses_a_model_whose_outputs_are_not_the_data_sets_classes(
        tmp_path, tiny_data_dir):
    """It ran the model and failed in TensorFlow's InvalidArgumentError (labels outside
    [0, 3)); train.py refused the same file: the check is now theirs in common."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.compile(loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "three.keras")
    with pytest.raises(ConfigError) as error:
        comparison.compare_model_file(tmp_path / "three.keras", "mnist", 8,
                                      output_dir=tmp_path / "out", data_dir=tiny_data_dir)
    assert str(error.value) == (f"--model_file={tmp_path / 'three.keras'} has 3 outputs; "
                                "--dataset=mnist has 10 classes")
    assert not (tmp_path / "out").exists()


def test_compare_on_inf_weights_warns_in_its_report_not_through_numpy(tmp_path,
                                                                      tiny_data_dir):
    """NumPy's "RuntimeWarning: invalid value encountered in matmul" came with its source
    line besides the report's own warning lines."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(16, activation="relu", name="hid"),
                              keras.layers.Dense(10, name="out")])
    kernel = model.get_layer("hid").kernel.numpy()
    kernel[:, :2] = np.inf  # inf * 0 (a black pixel) is NaN: invalid values in the matmul
    model.get_layer("hid").kernel.assign(kernel)
    model.compile(loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "inf.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report, _ = comparison.compare_model_file(tmp_path / "inf.keras", "mnist", 8,
                                                  output_dir=tmp_path / "out",
                                                  data_dir=tiny_data_dir)
    assert any(note.startswith("hid: both compute") for note in report.nonfinite_notes())
