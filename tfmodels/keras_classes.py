"""Makes ``import tfmodels`` enough for ``keras.models.load_model`` to read the project's
Keras files, without importing Keras (and TensorFlow) before they are needed.

Keras finds the class of a saved custom layer or model (``tfmodels>PositionEmbedding``,
``tfmodels>Mymodel``) only if the module defining it was imported: its
``@keras.saving.register_keras_serializable`` decorator runs at that import. Importing
``tfmodels.models`` registers every such class, but it imports Keras, which costs
seconds; ``tfmodels.data`` must stay light. So ``register_when_keras_loads()`` (run by
``tfmodels/__init__``) imports ``tfmodels.models`` at once if Keras is loaded already,
and otherwise sets a one-time import hook that does it the moment ``keras`` has
finished loading (about 45 ms then), whoever imports it.

The run's model.keras needs this only for the ViT (its ``PositionEmbedding``): the
other models are saved in Keras's own layers (``tfmodels.run.keras_model.portable``).
"""

import importlib.util
import sys
import warnings

_KERAS = "keras"
_REGISTERING_MODULE = "tfmodels.models"  # importing it registers the classes


def _register():
    """Imports ``tfmodels.models`` unless it is in ``sys.modules`` (being imported: it
    then registers its classes itself); a failure is a warning, never a failed Keras
    import."""
    if _REGISTERING_MODULE in sys.modules:
        return
    try:
        import tfmodels.models  # noqa: F401  pylint: disable=import-outside-toplevel
    except Exception as e:  # pylint: disable=broad-except
        warnings.warn(f"tfmodels could not register its Keras classes ({e!r}); import "
                      f"{_REGISTERING_MODULE} before loading a model that uses them",
                      stacklevel=2)


class _RegisterAfterLoading:
    """Runs the loader of ``keras``, then ``_register()``; the module keeps Keras's own
    loader as its ``__loader__``, and the hook leaves ``sys.meta_path``."""

    def __init__(self, loader, finder):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.finder.remove()
        _register()

    def __getattr__(self, name):  # whatever else a caller asks Keras's loader
        return getattr(self.loader, name)


class _KerasFinder:
    """A ``sys.meta_path`` finder that answers only for ``keras``: with the spec the
    other finders give, its loader wrapped in ``_RegisterAfterLoading``."""

    def __init__(self):
        self.searching = False

    def find_spec(self, name, path=None, target=None):
        del path, target  # a top-level package: found on sys.path as usual
        if name != _KERAS or self.searching:
            return None
        self.searching = True  # the search below asks the meta path, this finder included
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.searching = False
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisterAfterLoading(spec.loader, self)
        return spec

    def remove(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def register_when_keras_loads():
    """Registers the project's Keras classes now if Keras is loaded, else when it is."""
    keras = sys.modules.get(_KERAS)
    if keras is not None:
        if not getattr(getattr(keras, "__spec__", None), "_initializing", False):
            _register()
        return  # (Keras still loading: it imported tfmodels itself, which it never does)
    if not any(isinstance(finder, _KerasFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasFinder())
