"""Keras/TensorFlow models, data loaders and the bridge to ``numpy_ref``.

Importing the package does not import TensorFlow: ``tfmodels.data``'s file
readers work with NumPy and SciPy alone. ``models``, ``training`` and
``parity`` import TensorFlow when they are imported.
"""
