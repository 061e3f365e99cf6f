"""The classes a finished run predicts for image files: what scripts/predict.py prints.

Images are made into what the run trained on, uint8 pixels of the data set's shape,
then go through the run's own scaling (``/ 255`` in the run's dtype):

    MNIST  greyscale (ITU-R 601 luma; transparent pixels count as white), resized to
           28x28 (bilinear, antialiased when shrinking; the aspect ratio is not kept),
           inverted when light on dark is wanted (``invert``: "auto" inverts a picture
           whose 1-pixel border averages lighter than mid-grey, as dark ink on white
           paper does, since MNIST's digits are white on black)
    SVHN   RGB (transparent pixels white), resized to 32x32; never inverted by "auto"

A ``.npy`` file holds one image or a stack of them, in the data set's shape (or
flattened, or MNIST's with a trailing channel of 1), taken as it is: no resizing, no
automatic inversion. uint8 (or integer 0..255) values are pixels; floats in [0, 1] are
taken as scaled pixels and rounded to the 256 levels training saw.

What a file claims is checked before it is decoded, each refusal one ``DatasetError``
naming the file: a picture of more than ``MAX_PICTURE_PIXELS`` (Pillow's own default
limit: a digit never needs a fraction of it; a header may claim 10^10 pixels), a
``.npy`` header declaring more bytes than the file holds (a 1 KB file may claim 730
GiB), a stack of no images.

``predict`` computes the class probabilities with either backend: TensorFlow loads the
run's model.keras (safe mode; weights.npz into the run's model when there is no
model.keras), NumPy the twin holding weights.npz, exactly as scripts/evaluate.py does.
"""

import contextlib
import dataclasses
import math
import os
import pathlib

import numpy as np
from PIL import Image as PILImage, UnidentifiedImageError

from numpy_ref.fast import threads
from tfmodels import catalog, data
from tfmodels.errors import DatasetError, RunDirError
from tfmodels.parity import twins
from tfmodels.run import backends, evaluation, experiment, lock, manifest, names, rundir
from tfmodels.run.evaluation import class_names  # what scripts/predict.py prints
from tfmodels.run.keras_model import load_keras_model

INVERT_CHOICES = catalog.INVERT_CHOICES  # --invert's values (the flag reads them there)
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg")
# The most pixels a picture may have: Pillow's default MAX_IMAGE_PIXELS (past it Pillow
# warns, past twice it refuses), 89.5 megapixels: a photo of a digit is a few, MNIST's
# 784 and SVHN's 1,024. Checked on the size the file's header declares, before decoding.
MAX_PICTURE_PIXELS = 1024 * 1024 * 1024 // 4 // 3
# .npy format versions read: 1.0 and 2.0 (a longer header); NumPy writes 3.0 only for
# structured arrays with non-Latin-1 field names, which are no pixels.
NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}


@dataclasses.dataclass(frozen=True)
class Image:
    """One image to classify: its name (the file, ``file[i]`` in a stack), uint8 pixels in
    the data set's shape, and whether they were inverted."""

    name: str
    pixels: np.ndarray
    inverted: bool = False


def describe(dataset, invert):
    """The preprocessing of ``read_images`` for ``dataset``, in one line."""
    shape = data.DATASETS[dataset].input_shape
    size = "x".join(map(str, shape[:2]))
    colour = "greyscale" if len(shape) == 2 else "RGB"
    inversion = {"yes": "every image inverted",
                 "no": "no inversion",
                 "auto": ("pictures with a light border inverted (MNIST's digits are light "
                          "on dark)" if len(shape) == 2 else "no inversion")}[invert]
    return (f"Preprocessing ({dataset}): pictures {colour}, resized to {size}; {inversion}; "
            ".npy arrays as they are; pixels / 255 as in training")


def read_images(paths, dataset, invert="auto"):
    """``Image``s of the files ``paths`` for a run on ``dataset``; a DatasetError names
    the first file that is missing, unreadable or not an image of the data set."""
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {INVERT_CHOICES}. Received: {invert!r}")
    shape = data.DATASETS[dataset].input_shape
    images = []
    for path in map(pathlib.Path, paths):
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
        if path.suffix.lower() == ".npy":
            images.extend(_inverted(image, invert == "yes") for image in read_array(path, shape))
        else:
            pixels = read_picture(path, shape)
            flip = invert == "yes" or (invert == "auto" and len(shape) == 2
                                       and has_light_border(pixels))
            images.append(_inverted(Image(str(path), pixels), flip))
    return images


def _inverted(image, flip):
    return Image(image.name, 255 - image.pixels, True) if flip else image


def has_light_border(pixels):
    """Whether the outermost ring of a greyscale image averages above mid-grey."""
    ring = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return float(ring.mean()) > 127.5


def read_picture(path, shape):
    """The picture file at ``path`` as uint8 pixels of ``shape`` ((H, W) grey or (H, W, 3)
    RGB), read by Pillow (matplotlib's own image reader); one of more than
    ``MAX_PICTURE_PIXELS`` is refused before it is decoded."""
    with _unreadable_picture(path):
        picture = _open_picture(path)  # the header only
    width, height = picture.size
    if width * height > MAX_PICTURE_PIXELS:
        picture.close()
        raise DatasetError(f"{path}: a picture of {width}x{height} = {width * height:,} "
                           f"pixels; at most {MAX_PICTURE_PIXELS:,} are read (a digit "
                           "needs a few thousand), and it was not decoded")
    with _unreadable_picture(path), picture:
        picture.load()
        picture = _eight_bit(picture)
        if "A" in picture.getbands() or "transparency" in picture.info:
            white = PILImage.new("RGBA", picture.size, (255, 255, 255, 255))
            picture = PILImage.alpha_composite(white, picture.convert("RGBA"))
        picture = picture.convert("L" if len(shape) == 2 else "RGB")
        if picture.size != (shape[1], shape[0]):
            picture = picture.resize((shape[1], shape[0]), PILImage.Resampling.BILINEAR)
        return np.asarray(picture, np.uint8).copy()


def _open_picture(path):
    """``PILImage.open(path)``: the header read, nothing decoded. Pillow's own size check,
    made while opening, is off for it (it raises its DecompressionBombError naming no
    file): ``read_picture`` checks the size."""
    limit = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None
    try:
        return PILImage.open(path)
    finally:
        PILImage.MAX_IMAGE_PIXELS = limit


@contextlib.contextmanager
def _unreadable_picture(path):
    """Pillow's errors (a frame larger than its header says included), as one
    ``DatasetError`` naming the file."""
    try:
        yield
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            PILImage.DecompressionBombError) as e:
        what = ("" if path.suffix.lower() in PICTURE_SUFFIXES
                else f" (expected {', '.join(PICTURE_SUFFIXES)} or .npy)")
        raise DatasetError(f"{path}: not an image that can be read{what}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def _eight_bit(picture):
    """16-bit and 32-bit greyscale (PNG's "I;16", "I", "F" modes) scaled to 8 bits; Pillow
    would clip them."""
    if picture.mode not in ("I", "F") and not picture.mode.startswith("I;16"):
        return picture
    values = np.asarray(picture, np.float64)
    top = 255.0 if values.max(initial=0) <= 255 else 65535.0
    return PILImage.fromarray(np.rint(np.clip(values / top, 0, 1) * 255).astype(np.uint8))


def read_array(path, shape):
    """The ``Image``s of a ``.npy`` file: one image of ``shape`` (or flattened, or grey
    with a trailing 1) or a stack of them (at least one)."""
    _check_npy_size(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable .npy array (pickled objects are refused): "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    one = {tuple(shape), (int(np.prod(shape)),)} | ({(*shape, 1)} if len(shape) == 2 else set())
    if array.shape in one:
        stack, names_ = array.reshape(1, *shape), [str(path)]
    elif array.ndim > 1 and array.shape[1:] in one:
        if not len(array):
            raise DatasetError(f"{path}: a stack of no images (shape {array.shape}); "
                               "expected at least one")
        stack = array.reshape(len(array), *shape)
        names_ = [f"{path}[{i}]" for i in range(len(array))]
    else:
        raise DatasetError(f"{path}: an array of shape {array.shape}; expected one image of "
                           f"shape {' or '.join(map(str, sorted(one)))}, or a stack of them")
    return [Image(name, pixels) for name, pixels in zip(names_, _pixels(path, stack))]


def _check_npy_size(path):
    """A ``DatasetError`` if the ``.npy`` header of ``path`` declares more data than the
    file holds (NumPy allocates the declared size first: a 1 KB file may claim 730 GiB).
    A header it cannot read is left to ``np.load``, which says what is wrong."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = NPY_HEADER_READERS.get(version)
            if read_header is not None:
                shape, _, dtype = read_header(f)
                held = os.fstat(f.fileno()).st_size - f.tell()
    except (ValueError, OSError, EOFError):
        return
    if read_header is None:
        readable = " and ".join(".".join(map(str, v)) for v in NPY_HEADER_READERS)
        raise DatasetError(f"{path}: a .npy file of format version "
                           f"{'.'.join(map(str, version))}; pixels are read from versions "
                           f"{readable}")
    declared = math.prod(shape) * dtype.itemsize
    if not dtype.hasobject and declared > held:
        raise DatasetError(f"{path}: its header declares an array of shape {shape} "
                           f"{dtype} ({declared:,} bytes), but the file holds {held:,} "
                           "bytes of data: truncated or damaged")


def _pixels(path, array):
    """uint8 pixels of an integer (0..255) or float ([0, 1]: scaled) array."""
    if array.dtype == np.uint8:
        return array
    kind = array.dtype.kind
    if kind in "iu" and array.size and array.min() >= 0 and array.max() <= 255:
        return array.astype(np.uint8)
    if kind == "f" and np.isfinite(array).all() and array.min(initial=0) >= 0 and (
            array.max(initial=0) <= 1):
        return np.rint(array * 255).astype(np.uint8)
    raise DatasetError(f"{path}: {array.dtype} values that are not pixels; expected uint8 "
                       "(or integers 0..255) or floats in [0, 1]")


def finished_run(model_dir):
    """(manifest, RunConfig) of the finished run at ``model_dir``; RunDirError if the
    folder holds no run or an unfinished one."""
    model_dir = pathlib.Path(model_dir)
    saved = manifest.read(model_dir)
    if saved is None:
        raise RunDirError(f"--model_dir={model_dir} has no {names.MANIFEST}: not a "
                          "training run")
    if not saved["finished"]:
        raise RunDirError(f"--model_dir={model_dir}: the run is not finished; rerun "
                          "train.py with its flags (without --noresume) to finish it")
    return saved, rundir.config_of(saved, model_dir)


def predict(model_dir, images, backend="tensorflow"):
    """(class probabilities (N, C) as the model outputs them, the file they come from) of
    the finished run at ``model_dir`` for ``images`` (``Image``s, at least one), with
    ``backend``. Holds the run's lock when the folder is writable, so a run train.py is
    changing is never read."""
    model_dir = pathlib.Path(model_dir)
    finished_run(model_dir)
    held = (lock.held(model_dir) if os.access(model_dir, os.W_OK | os.X_OK)
            else contextlib.nullcontext())
    with held:
        x = np.stack([image.pixels for image in images])
        keras_file = model_dir / names.KERAS_MODEL
        if backend == "tensorflow" and keras_file.is_file():
            return _keras_file_outputs(model_dir, keras_file, x), keras_file.name
        config, net = evaluation.load_run(model_dir)
        runner = backends.for_evaluation(config, backend)
        runner.load_net(net)
        with threads.blas_threads():  # as training chose, without its log line
            outputs = runner.predict_proba(x, experiment.EVAL_BATCH)
        return outputs, (names.WEIGHTS if (model_dir / names.WEIGHTS).is_file()
                         else names.KERAS_MODEL)


def _keras_file_outputs(model_dir, keras_file, x):
    """What model.keras (checked against the manifest's record) outputs for uint8 ``x``,
    scaled as the run's batches were."""
    saved, config = finished_run(model_dir)
    manifest.check_sha256(keras_file, saved["final"]["files"][names.KERAS_MODEL], "file")
    model = load_keras_model(keras_file)
    spec, = twins.input_specs(model)
    batch = data.scale_images(x, config.dtype).reshape(len(x), *spec.shape[1:])
    step = experiment.EVAL_BATCH
    return np.concatenate([np.asarray(model(batch[i:i + step], training=False))
                           for i in range(0, len(batch), step)])


def as_probabilities(outputs):
    """(probabilities, whether a softmax was applied): a model's outputs as they are when
    they already are probabilities, else their softmax (a model file's logits)."""
    outputs = np.asarray(outputs, np.float64)
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=1), 1, atol=1e-3):
        return outputs, False
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True), True


def format_prediction(image, probabilities, labels):
    """``name: <class> (p=...) | <class>:<p> ...`` for one image."""
    best = int(np.argmax(probabilities))
    listed = " ".join(f"{label}:{p:.4f}" for label, p in zip(labels, probabilities))
    note = " (inverted)" if image.inverted else ""
    return f"{image.name}{note}: {labels[best]} (p={probabilities[best]:.4f}) | {listed}"
