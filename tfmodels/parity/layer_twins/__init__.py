"""The built-in twins, one module per family of Keras layers; each module's ``BUILDERS``
maps a Keras layer class to the builder of its ``numpy_ref`` twin, and importing this
package registers them all (``tfmodels.parity`` does)."""

from tfmodels.parity import registry
from tfmodels.parity.layer_twins import (applications, attention, convolution, core, misc,
                                        noise, normalization, ops, preprocessing, project,
                                        recurrent, spatial)

for _module in (core, convolution, normalization, noise, preprocessing, spatial, applications,
                ops, misc, project, recurrent, attention):
    registry.register_all(_module.BUILDERS)
