"""scripts/predict.py and tfmodels/run/predict.py: image files made into the run's pixels,
the class probabilities on either backend, the classes scripts/evaluate.py computes."""

import re
import shutil

import numpy as np
import pytest
from PIL import Image as PILImage

import procs
from fakes import tiny_digits
from procs import assert_fails_with
from tfmodels.errors import DatasetError
from tfmodels.run import evaluation, experiment, predict
from tfmodels.run.config import RunConfig

BACKENDS = ("tensorflow", "numpy")


def digit(seed=0):
    """A (28, 28) uint8 MNIST-like image: light strokes on a black border."""
    x = np.zeros((28, 28), np.uint8)
    x[4:24, 12:16] = 200 + seed
    x[6:8, 8:20] = np.random.default_rng(seed).integers(100, 256, (2, 12), dtype=np.uint8)
    return x


def names_and_pixels(images):
    return [image.name for image in images], np.stack([image.pixels for image in images])


# --- reading images (the fast tier) ----------------------------------------------------------


def test_an_mnist_png_is_read_as_it_is(tmp_path):
    PILImage.fromarray(digit()).save(tmp_path / "seven.png")
    image, = predict.read_images([tmp_path / "seven.png"], "mnist")
    np.testing.assert_array_equal(image.pixels, digit())
    assert not image.inverted and image.name == str(tmp_path / "seven.png")


def test_dark_ink_on_white_is_inverted_resized_and_greyed(tmp_path):
    """An RGB photo-sized JPEG of a dark digit on white, as a user would draw it."""
    big = np.repeat(np.repeat(255 - digit(), 4, axis=0), 4, axis=1)  # (112, 112)
    PILImage.fromarray(np.stack([big] * 3, axis=-1)).save(tmp_path / "drawn.jpg", quality=95)
    image, = predict.read_images([tmp_path / "drawn.jpg"], "mnist")
    assert image.inverted and image.pixels.shape == (28, 28) and image.pixels.dtype == np.uint8
    assert np.abs(image.pixels.astype(int) - digit()).mean() < 8  # back to light on dark
    kept, = predict.read_images([tmp_path / "drawn.jpg"], "mnist", invert="no")
    assert not kept.inverted and kept.pixels[0, 0] > 240


def test_transparent_pixels_count_as_white(tmp_path):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = digit()  # black ink where the strokes are, transparent around them
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")
    image, = predict.read_images([tmp_path / "ink.png"], "mnist")
    assert image.inverted  # over white: dark ink on white paper, made light on dark
    assert np.abs(image.pixels.astype(int) - digit()).max() <= 1


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    PILImage.fromarray(digit().astype(np.uint16) * 257).save(tmp_path / "deep.png")
    image, = predict.read_images([tmp_path / "deep.png"], "mnist")
    np.testing.assert_array_equal(image.pixels, digit())


def test_npy_arrays_one_image_or_a_stack_any_mnist_layout(tmp_path):
    x = np.stack([digit(k) for k in range(3)])
    np.save(tmp_path / "one.npy", x[0])
    np.save(tmp_path / "flat.npy", x[1].reshape(784))
    np.save(tmp_path / "channel.npy", x[2][..., None].astype(np.int64))
    np.save(tmp_path / "stack.npy", x)
    np.save(tmp_path / "scaled.npy", x[:2].astype(np.float32) / 255)
    paths = [tmp_path / f"{n}.npy" for n in ("one", "flat", "channel", "stack", "scaled")]
    names, pixels = names_and_pixels(predict.read_images(paths, "mnist"))
    stack, scaled = str(tmp_path / "stack.npy"), str(tmp_path / "scaled.npy")
    assert names == [*map(str, paths[:3]), f"{stack}[0]", f"{stack}[1]", f"{stack}[2]",
                     f"{scaled}[0]", f"{scaled}[1]"]
    np.testing.assert_array_equal(pixels, np.concatenate([x, x, x[:2]]))
    _, inverted = names_and_pixels(predict.read_images(paths[:1], "mnist", invert="yes"))
    np.testing.assert_array_equal(inverted[0], 255 - x[0])


def test_svhn_pictures_are_rgb_32x32_never_inverted_by_auto(tmp_path):
    rgb = np.random.default_rng(0).integers(150, 256, (32, 32, 3), dtype=np.uint8)
    PILImage.fromarray(rgb).save(tmp_path / "house.png")
    PILImage.fromarray(digit()).resize((64, 64)).save(tmp_path / "grey.png")
    colour, grey = predict.read_images([tmp_path / "house.png", tmp_path / "grey.png"], "svhn")
    np.testing.assert_array_equal(colour.pixels, rgb)
    assert grey.pixels.shape == (32, 32, 3) and not colour.inverted and not grey.inverted
    assert (grey.pixels[..., 0] == grey.pixels[..., 2]).all()


@pytest.mark.parametrize("name, content, expected", [
    ("missing.png", None, "no such file"),
    ("notes.png", b"not a picture", "not an image that can be read"),
    ("weights.npz", b"PK\x03\x04", "expected .png, .jpg, .jpeg or .npy"),
    ("wide.npy", np.zeros((28, 30), np.uint8), "shape (28, 30)"),
    ("bright.npy", np.full((28, 28), 2.0), "not pixels"),
    ("negative.npy", np.full((28, 28), -1), "not pixels"),
    ("objects.npy", np.array([{"a": 1}], dtype=object), "pickled objects are refused"),
])
def test_a_bad_file_is_one_error_naming_it(tmp_path, name, content, expected):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content, allow_pickle=True)
    with pytest.raises(DatasetError) as error:
        predict.read_images([path], "mnist")
    message = str(error.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message


def test_outputs_that_are_not_probabilities_are_softmaxed():
    probabilities = np.array([[0.1, 0.9], [0.5, 0.5]])
    same, softmaxed = predict.as_probabilities(probabilities)
    np.testing.assert_array_equal(same, probabilities)
    assert not softmaxed
    logits, softmaxed = predict.as_probabilities(np.array([[0.0, np.log(3.0)]]))
    np.testing.assert_allclose(logits, [[0.25, 0.75]])
    assert softmaxed


def test_svhn_prints_digits_and_a_line_has_every_probability():
    labels = predict.class_names("svhn", 10)
    assert labels[9] == "0" and labels[0] == "1"
    line = predict.format_prediction(predict.Image("a.png", None, True),
                                     np.array([0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9]),
                                     labels)
    assert line.startswith("a.png (inverted): 0 (p=0.9000) | 1:0.1000 2:0.0000")
    assert line.endswith("0:0.9000")


# --- predictions of a run, in this process ----------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_predictions_are_the_classes_evaluate_computes(run_copy, backend):
    """On the finished tiny run (a NumPy run): the TensorFlow side reads model.keras, the
    NumPy side weights.npz; evaluate.py, given those classes as labels, finds every one."""
    x = tiny_digits(40, 7)[0]
    images = [predict.Image(f"image {i}", pixels) for i, pixels in enumerate(x)]
    outputs, source = predict.predict(run_copy, images, backend)
    assert source == {"tensorflow": "model.keras", "numpy": "weights.npz"}[backend]
    assert outputs.shape == (40, 10)
    np.testing.assert_allclose(outputs.sum(axis=1), 1, rtol=1e-5)
    classes = np.argmax(outputs, axis=1)
    assert len(set(classes)) > 1  # not one class for all: the equality below can fail
    result = evaluation.evaluate_run(run_copy, backend, test_data=(x, classes))
    assert result["test_accuracy"] == 1.0


def test_both_backends_agree_and_without_model_keras_the_weights_serve(run_copy):
    x = tiny_digits(16, 8)[0]
    images = [predict.Image(str(i), pixels) for i, pixels in enumerate(x)]
    keras_side, _ = predict.predict(run_copy, images, "tensorflow")
    numpy_side, _ = predict.predict(run_copy, images, "numpy")
    np.testing.assert_allclose(keras_side, numpy_side, rtol=1e-5, atol=1e-6)
    (run_copy / "model.keras").unlink()
    fallback, source = predict.predict(run_copy, images, "tensorflow")
    assert source == "weights.npz"
    np.testing.assert_allclose(fallback, keras_side, rtol=1e-5, atol=1e-6)


# --- scripts/predict.py on real MNIST test images -----------------------------------------

LINE = re.compile(r"(?P<name>.+?)(?P<inverted> \(inverted\))?: (?P<label>\d) \(p=(?P<p>[\d.]+)\)"
                  r" \| (?P<all>(\d:[\d.]+ ?){10})$")


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, mnist_dir):
    """A NumPy run of one epoch on 3,000 MNIST images (~85% on the test set), and the first
    20 test images as PNG files, as one .npy stack, and the first as dark ink on white."""
    root = tmp_path_factory.mktemp("predict")
    experiment.run(RunConfig(backend="numpy", epochs=1, hidden_units=(32,),
                             max_train_examples=3000, seed=0, data_dir=str(mnist_dir),
                             model_dir=str(root / "run")))
    (_, _), (x, y) = experiment.load_datasets(RunConfig(data_dir=str(mnist_dir)))
    x, y = x[:20], y[:20]
    pictures = []
    for i, pixels in enumerate(x):
        pictures.append(root / f"test{i:02d}.png")
        PILImage.fromarray(pixels).save(pictures[-1])
    np.save(root / "test.npy", x)
    big = PILImage.fromarray(255 - x[0]).resize((84, 84), PILImage.Resampling.NEAREST)
    big.convert("RGB").save(root / "paper.png")
    return root, pictures, x, y


def predicted(proc):
    """{name: (class, probabilities, inverted)} of predict.py's lines, after its header."""
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[1].startswith("Preprocessing (mnist): pictures greyscale, resized to 28x28")
    found = {}
    for line in lines[2:]:
        match = LINE.fullmatch(line)
        assert match, line
        probabilities = [float(item.split(":")[1]) for item in match["all"].split()]
        found[match["name"]] = (int(match["label"]), probabilities, bool(match["inverted"]))
    return found


@pytest.mark.integration
@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_script_on_mnist_pngs_and_npy_matches_evaluate(mnist_run, backend, tmp_path):
    root, pictures, x, y = mnist_run
    proc = procs.run_script("predict.py", f"--model_dir={root / 'run'}", f"--backend={backend}",
                            *pictures, root / "test.npy", root / "paper.png", cwd=tmp_path)
    found = predicted(proc)
    source = {"tensorflow": "model.keras", "numpy": "weights.npz"}[backend]
    assert proc.stdout.splitlines()[0].endswith(f"{backend} backend ({source})")
    from_png = [found[str(path)][0] for path in pictures]
    from_npy = [found[f"{root / 'test.npy'}[{i}]"][0] for i in range(20)]
    assert from_png == from_npy
    assert np.mean(np.array(from_png) == y) > 0.6  # a model that learnt: measured 0.85
    for label, probabilities, inverted in found.values():
        assert sum(probabilities) == pytest.approx(1, abs=1e-3)
        assert probabilities[label] == max(probabilities)
    assert found[str(root / "paper.png")][2] and not found[str(pictures[0])][2]
    assert found[str(root / "paper.png")][0] == from_png[0]  # the 7, drawn dark on light
    run_copy = shutil.copytree(root / "run", tmp_path / "run")
    result = evaluation.evaluate_run(run_copy, backend, test_data=(x, np.array(from_png)))
    assert result["test_accuracy"] == 1.0  # evaluate computes the very same classes


@pytest.mark.integration
def test_predict_script_errors_are_one_line(run_copy, tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    proc = procs.run_script("predict.py", f"--model_dir={run_copy}", tmp_path / "notes.png")
    assert_fails_with(proc, 3, "notes.png", "not an image")
    proc = procs.run_script("predict.py", f"--model_dir={tmp_path}", tmp_path / "notes.png")
    assert_fails_with(proc, 4, "not a training run")


@pytest.mark.integration
def test_predict_script_refuses_what_a_file_claims_and_empty_folder_flags(run_copy,
                                                                          tmp_path):
    """A PNG header claiming 100000x100000 was Pillow's DecompressionBombError traceback
    (exit 1); the folder flags: an empty --model_dir would be this folder, and predict.py
    takes no --data_dir (the run's images are the user's files)."""
    from test_probe_file_side import png_header_only  # pylint: disable=import-outside-toplevel
    bomb = png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    proc = procs.run_script("predict.py", f"--model_dir={run_copy}", bomb, cwd=tmp_path)
    assert_fails_with(proc, 3, f"{bomb}: a picture of 100000x100000 = 10,000,000,000 pixels")
    for flags, message in (
            (["--model_dir="], "--model_dir must name a training run's folder"),
            ([f"--model_dir={run_copy}", "--data_dir="], "Unknown command line flag 'data_dir'")):
        proc = procs.run_script("predict.py", *flags, bomb, cwd=tmp_path)
        assert_fails_with(proc, 2, message)
