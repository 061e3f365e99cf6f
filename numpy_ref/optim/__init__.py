"""Optimizers with Keras 3's formulas (``optimizers``, on ``base``), learning-rate
``schedules``, and ``keras_scalars``: scalar arithmetic rounded as Keras rounds it."""
