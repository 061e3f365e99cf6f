"""Keras/TensorFlow models, data loaders and the bridge to ``numpy_ref``.

Importing the package does not import TensorFlow: ``tfmodels.data``'s file
readers work with NumPy and SciPy alone. ``models``, ``training`` and
``parity`` import TensorFlow when they are imported.

``import tfmodels`` is enough for ``keras.models.load_model`` to read a file holding
the project's own Keras classes (the ViT's ``PositionEmbedding``): they are registered
as soon as Keras is loaded (``keras_classes``).
"""

from tfmodels import keras_classes as _keras_classes

_keras_classes.register_when_keras_loads()
