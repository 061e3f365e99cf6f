"""The speed path beside the learner's: the same numbers, bit for bit, in fewer NumPy calls.

``step.TrainStep(network, optimizer)`` is ``training.train_step`` made fast (what
``training.Stepper``, and so ``fit``, uses), from ``graph`` (the network's fast
twin: ``kernels`` and ``conv``'s kernels in its nodes, weights and gradients packed),
``optimizer`` (``FlatUpdate``: an optimizer's ``update_step`` once over all weights),
``flat`` (arrays laid end to end in one buffer) and ``threads`` (BLAS's thread count).
"""

from numpy_ref.fast.step import TrainStep

__all__ = ["TrainStep"]
