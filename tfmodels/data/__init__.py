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


MNIST_CLASS_NAMES = tuple(str(digit) for digit in range(10))  # class k is the digit k


@dataclasses.dataclass(frozen=True)
class DatasetKind:
    """What `--dataset=<name>` loads: `load(data_dir)`, the images' shape, and the name of
    each class index (what a person calls it: SVHN's class 9 is the digit "0")."""

    load: object
    input_shape: tuple
    class_names: tuple

    @property
    def num_classes(self):
        return len(self.class_names)


DATASETS = {
    "mnist": DatasetKind(load_mnist, (28, 28), MNIST_CLASS_NAMES),
    "svhn": DatasetKind(load_svhn, SVHN_IMAGE_SHAPE, SVHN_CLASS_NAMES),
}

__all__ = ["BatchCursor", "DATASETS", "DATA_DIR_ENV", "DatasetError", "DatasetKind",
           "ImageBatches", "buffered_order", "scale_images", "OrderedBatches",
           "MNIST_CLASS_NAMES", "MNIST_NPZ_SHA256", "MNIST_NPZ_URL", "SVHN_CLASS_NAMES",
           "SVHN_IMAGE_SHAPE", "load_mnist", "load_mnist_npz", "load_svhn", "load_svhn_mat",
           "make_dataset", "resolve_data_dir"]
