"""From-scratch NumPy twins of the project's networks (no TensorFlow here).

Modules, bottom-up: ``functions`` (pure math), ``gradient`` (numerical
differentiation), ``perceptron``, ``layers`` (forward/backward pairs),
``dropout``, ``normalization``, ``regularizers`` (weight decay, penalties),
``networks``, ``optimizers``, ``training``, ``mnist`` (idx reader); ``book``:
the book's ``common`` and ``dataset`` packages on these modules.
"""
