"""The book's ``dataset/mnist.py``: ``load_mnist`` on the local MNIST idx files.

Where the book downloads the files next to its module and pickles them, this
reads the four idx files (gzipped or not, ``numpy_ref.book.dataset.idx``) from
a directory: the ``data_dir`` argument, or else the module setting
``dataset_dir``, which ``scripts/run_book.py`` sets from ``--data_dir`` or
``$TFMODELS_DATA_DIR``::

    from numpy_ref.book.dataset.mnist import load_mnist
    (x_train, t_train), (x_test, t_test) = load_mnist(data_dir="/path/to/data")

Nothing is downloaded or pickled. The arrays have the book's types: images
float32 in [0, 1] (``normalize``; another float ``dtype`` on request) or uint8,
labels uint8, or float64 one-hot.
"""

import numpy as np

from numpy_ref.book.dataset import idx

dataset_dir = None  # the directory with the idx files (or a mnist/ folder of them)

train_num, test_num = 60000, 10000
img_dim, img_size = (1, 28, 28), 784


def load_mnist(normalize=True, flatten=True, one_hot_label=False, data_dir=None,
               dtype=np.float32):
    """((x_train, t_train), (x_test, t_test)) read from ``data_dir``.

    Args:
        normalize: images as ``dtype`` in [0, 1]; else uint8 0..255.
        flatten: images as (N, 784); else (N, 1, 28, 28).
        one_hot_label: labels as float64 (N, 10) one-hot; else uint8 (N,).
        data_dir: the directory with the four idx files (or a ``mnist/`` folder of
            them); None: the module's ``dataset_dir``.
        dtype: a floating dtype for normalized images (the book's float32 by default).

    Raises:
        numpy_ref.book.dataset.idx.MnistFileError: no directory is set, or the files are
            missing or malformed (the message names them).
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating dtype. Received: dtype={dtype}")
    directory = data_dir if data_dir is not None else dataset_dir
    if directory is None:
        raise idx.MnistFileError(
            "No MNIST directory: pass data_dir= or set "
            "numpy_ref.book.dataset.mnist.dataset_dir "
            "(scripts/run_book.py sets it from --data_dir or $TFMODELS_DATA_DIR)")
    return tuple((_images(x, normalize, flatten, dtype),
                  np.eye(10)[t] if one_hot_label else t)
                 for x, t in idx.read_mnist(directory))


def _images(x, normalize, flatten, dtype):
    if normalize:
        x = x.astype(dtype)
        x /= 255.0  # in place: no second full-size float temporary
    if flatten:
        return x.reshape(len(x), -1)  # (N, 784)
    return x.reshape(len(x), *img_dim)  # (N, 1, 28, 28), the book's NCHW
