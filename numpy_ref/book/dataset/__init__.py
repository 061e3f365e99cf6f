"""The book's ``dataset`` package: ``dataset.mnist`` (``load_mnist``) on ``idx``, the reader of
the four MNIST idx files."""
