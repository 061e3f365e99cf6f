"""MNIST and SVHN as NumPy arrays, and a tf.data pipeline over them.

Importing this package imports neither TensorFlow nor SciPy: MNIST needs NumPy
only, SVHN imports `scipy.io` and `make_dataset` TensorFlow when called.

Loaders return uint8 images and int64 class labels; `make_dataset` scales the
pixels to [0, 1] per batch.

    location.py   the data directory: a flag or $TFMODELS_DATA_DIR
    mnist.py      idx files, a Keras mnist.npz, or Keras's download
    svhn.py       Stanford "cropped digits" .mat files
    matfile.py    a guard against .mat files that would crash scipy
    pipeline.py   make_dataset, ImageBatches (tf.data), OrderedBatches and their cursor
    order.py      the per-epoch example order both backends share
"""

import dataclasses

from tfmodels.data.location import DATA_DIR_ENV, resolve_data_dir
from tfmodels.data.mnist import MNIST_NPZ_SHA256, MNIST_NPZ_URL, load_mnist, load_mnist_npz
from tfmodels.data.order import buffered_order
from tfmodels.data.pipeline import (BatchCursor, ImageBatches, OrderedBatches, make_dataset,
                                    scale_images)
from tfmodels.data.svhn import SVHN_CLASS_NAMES, SVHN_IMAGE_SHAPE, load_svhn, load_svhn_mat
from tfmodels.errors import DatasetError


@dataclasses.dataclass(frozen=True)
class DatasetKind:
    """What `--dataset=<name>` loads: `load(data_dir)` and the images' shape."""

    load: object
    input_shape: tuple
    num_classes: int = 10


DATASETS = {
    "mnist": DatasetKind(load_mnist, (28, 28)),
    "svhn": DatasetKind(load_svhn, SVHN_IMAGE_SHAPE),
}

__all__ = ["BatchCursor", "DATASETS", "DATA_DIR_ENV", "DatasetError", "DatasetKind", "ImageBatches",
           "buffered_order", "scale_images", "OrderedBatches", "MNIST_NPZ_SHA256", "MNIST_NPZ_URL",
           "SVHN_CLASS_NAMES", "SVHN_IMAGE_SHAPE", "load_mnist", "load_mnist_npz",
           "load_svhn", "load_svhn_mat", "make_dataset", "resolve_data_dir"]
