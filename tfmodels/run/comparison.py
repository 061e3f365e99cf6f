"""What ``scripts/compare.py`` runs: a user's saved Keras model against its NumPy twin.

``compare_model_file`` loads the model (Keras safe mode), checks that it takes the
data set's images and outputs its classes (as train.py does), makes a copy in the
requested dtype, twins it, runs both on the first test images of a data set
and writes ``compare.json`` and ``compare.png`` (per-layer differences, log
scale) into the output directory; it returns the report and those files' paths.
NumPy's floating-point warnings are silenced while the two run: the report says where
NaN and inf arise.
"""

import math
import pathlib
from typing import NamedTuple

import numpy as np

from tfmodels import data, parity
from tfmodels.errors import ConfigError, DatasetError, RunDirError, WeightsFileError
from tfmodels.files import atomic_write
from tfmodels.parity import cast, losses, twins
from tfmodels.run import artifacts
from tfmodels.run.keras_model import check_fits_dataset, load_model_file

OUTPUT_FILES = ("compare.json", "compare.png")


DEFAULT_EXAMPLES = 64  # test images compared when --num_examples is not given


def example_batch(model, dataset, data_dir, num_examples, dtype, test_set=None):
    """The first ``num_examples`` test images of ``dataset`` (None: ``DEFAULT_EXAMPLES``, or
    all of a smaller test set; more than it has is refused), scaled to [0, 1] in ``dtype``
    and shaped like the model's input; and their integer labels. ``test_set``: the
    data set's (images, labels), if loaded already."""
    x, y = test_set if test_set is not None else data.DATASETS[dataset].load(data_dir)[1]
    if num_examples is None:  # not asked for: DEFAULT_EXAMPLES, or all a smaller set has
        num_examples = min(DEFAULT_EXAMPLES, len(x))
    if num_examples > len(x):
        raise ConfigError(f"--num_examples={num_examples} is more than the {len(x)} test "
                          f"images of --dataset={dataset}")
    x, y = data.scale_images(x[:num_examples], np.dtype(dtype)), y[:num_examples]
    specs = twins.input_specs(model)
    if len(specs) != 1:
        raise ConfigError(f"the model takes {len(specs)} inputs; compare.py feeds one image batch")
    shape = tuple(specs[0].shape[1:])
    if None in shape or math.prod(shape) != math.prod(x.shape[1:]):
        raise ConfigError(f"the model's input shape {shape} does not hold a {dataset} image "
                          f"{x.shape[1:]}; pick the --dataset it was made for")
    return x.reshape(len(x), *shape), y


def targets(keras_loss, labels, outputs):
    """Labels as the loss wants them: integers for a sparse loss, else one-hot."""
    if keras_loss is None or losses.is_sparse(keras_loss):
        return labels
    if outputs <= int(labels.max()):
        raise ConfigError(f"the model has {outputs} outputs, too few for one-hot labels "
                          f"0..{int(labels.max())}")
    return np.eye(outputs, dtype=np.float64)[labels]


def plot(report, path):
    """Per-layer forward and backward differences, log scale, as a PNG."""
    fig, ax = artifacts.new_figure(figsize=(max(6, 0.5 * len(report.rows) + 3), 4))
    names = [row.name for row in report.rows]
    floor = 1e-20  # an exact 0 still gets a point on the log axis
    for label, values in (("forward (output)", [r.forward.abs for r in report.rows]),
                          ("backward (dL/d output)",
                           [np.nan if r.backward is None else r.backward.abs
                            for r in report.rows])):
        ax.plot(range(len(names)), [max(v, floor) for v in values], marker="o", label=label)
    ax.axhline(report.tolerance[1], color="grey", linestyle=":", label="atol")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("max |Keras - NumPy|")
    verdict = "agree" if report.ok else f"part at {report.first_divergence}"
    ax.set_title(f"{report.model_name} ({report.dtype}): {verdict}")
    ax.grid(alpha=0.3)
    ax.legend()
    artifacts.save_figure(fig, path)


class Comparison(NamedTuple):
    """What ``compare_model_file`` found (a ``parity.compare`` report) and the absolute
    paths of the files it wrote."""

    report: object
    files: tuple


def compare_model_file(model_file, dataset="mnist", num_examples=None, dtype="float64",
                       output_dir=None, data_dir=None, training=False):
    """Compares the saved model with its twin; writes the JSON and PNG; returns a
    ``Comparison``."""
    model = load_model_file(pathlib.Path(model_file).expanduser())
    _, test_set = data.DATASETS[dataset].load(data_dir)  # a missing file: its own line
    check_fits_dataset(model, model_file, dataset)  # as train.py checks it
    output_dir = pathlib.Path(output_dir or f"compare-{pathlib.Path(model_file).stem}")
    output_dir = output_dir.expanduser()
    if output_dir.exists() and not output_dir.is_dir():
        raise RunDirError(f"--output_dir={output_dir} is a file")
    try:
        copy = cast.cast_model(model, dtype)
        keras_loss = losses.resolve(model)
        keras_loss = None if keras_loss is None else losses.with_dtype(keras_loss, dtype)
        x, labels = example_batch(copy, dataset, data_dir, num_examples, dtype, test_set)
        outputs = twins.symbolic_tensors(copy, "outputs")
        classes = outputs[0].shape[-1] if outputs else None
        y = targets(keras_loss, labels, classes or int(labels.max()) + 1)
        with np.errstate(all="ignore"):  # the report names the layers computing NaN, inf
            report = parity.compare(copy, x, y, loss=keras_loss, training=training)
    except ValueError as e:  # no twin for a layer, an op outside layers, a bad loss ...
        if isinstance(e, (ConfigError, DatasetError, RunDirError, WeightsFileError)):
            raise  # says what is wrong on its own
        raise WeightsFileError(f"{model_file}: {str(e).splitlines()[0]}") from None
    json_path, png_path = (output_dir.absolute() / name for name in OUTPUT_FILES)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(json_path, "w") as f:
            f.write(report.to_json() + "\n")
        plot(report, png_path)
    except OSError as e:
        raise RunDirError(f"--output_dir={output_dir}: cannot write ({e.strerror or e})") from None
    return Comparison(report, (json_path, png_path))
