"""The book's ``dataset/mnist.py``: ``load_mnist`` on the local MNIST idx files.

Where the book downloads the files next to its module and pickles them, this
reads the four idx files (gzipped or not) from ``dataset_dir``, a module
setting: ``scripts/run_book.py`` sets it from ``--data_dir`` or
``$TFMODELS_DATA_DIR``; in your own code, set it before loading::

    from numpy_ref.book.dataset import mnist
    mnist.dataset_dir = "/path/to/data"   # the files, or a mnist/ folder of them

Nothing is downloaded or pickled. The arrays have the book's types: images
float32 in [0, 1] (``normalize``) or uint8, labels uint8, or float64 one-hot.
"""

import numpy as np

from numpy_ref.book.dataset import idx as idx

dataset_dir = None  # the directory with the idx files (or a mnist/ folder of them)

train_num, test_num = 60000, 10000
img_dim, img_size = (1, 28, 28), 784


def load_mnist(normalize=True, flatten=True, one_hot_label=False):
    """((x_train, t_train), (x_test, t_test)) read from ``dataset_dir``.

    Args:
        normalize: images as float32 in [0, 1]; else uint8 0..255.
        flatten: images as (N, 784); else (N, 1, 28, 28).
        one_hot_label: labels as float64 (N, 10) one-hot; else uint8 (N,).

    Raises:
        numpy_ref.book.dataset.idx.MnistFileError: ``dataset_dir`` is unset, or the files are
            missing or malformed (the message names them).
    """
    if dataset_dir is None:
        raise idx.MnistFileError(
            "No MNIST directory: set numpy_ref.book.dataset.mnist.dataset_dir "
            "(scripts/run_book.py sets it from --data_dir or $TFMODELS_DATA_DIR)")
    splits = idx.load_mnist(dataset_dir, normalize=normalize, flatten=flatten,
                            one_hot_label=False, dtype=np.float32)
    return tuple((x, np.eye(10)[t] if one_hot_label else t.astype(np.uint8))
                 for x, t in splits)
