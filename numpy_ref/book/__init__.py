"""The book's ``common`` and ``dataset`` packages, on numpy_ref.

*Deep Learning from Scratch* (Koki Saitoh) imports ``common.functions``,
``common.gradient``, ``common.layers``, ``common.optimizer``,
``common.multi_layer_net``, ``common.multi_layer_net_extend``,
``common.trainer``, ``common.util`` and
``dataset.mnist``; the modules of this package carry the same names, with the
book's classes, functions, signatures, defaults (float64) and semantics (a
layer computes with the arrays it is given; an optimizer updates whatever
``params`` holds, arrays in place and plain floats). ``simple_convnet`` and
``deep_convnet`` are the book's ch07 and ch08 networks. Most names are numpy_ref's
own, re-exported (``MultiLayerNet`` is ``numpy_ref.network.networks.MultiLayerNet``
with the book's arguments and layer names); what numpy_ref lacks (the book's
optimizers, ``Trainer``, ``smooth_curve``, ...) is written here.

``scripts/run_book.py`` runs a script of the book's repository with these
modules standing in for ``common`` and ``dataset``.

The optimizers here are the book's formulas; ``numpy_ref.optim.optimizers`` holds
Keras's, for parity with the Keras twins.
"""

# The modules that stand in for common.<name>, and the book's chapter networks
# (used by a script whose folder has no file of that name).
COMMON_MODULES = ("functions", "gradient", "layers", "optimizer", "multi_layer_net",
                  "multi_layer_net_extend", "trainer", "util")
CHAPTER_MODULES = ("simple_convnet", "deep_convnet")
