"""The twins of the project's own Keras layers (``tfmodels.models``): ``{keras class: builder}``.

``PositionEmbedding`` (the ViT's learned position table) -> ``numpy_ref.layers.position``.
"""

from numpy_ref.layers import position
from tfmodels.models.sequence import PositionEmbedding
from tfmodels.parity import registry


def _position_embedding(layer):
    return position.PositionEmbedding(registry.weights(layer.embeddings), layer.compute_dtype)


BUILDERS = {
    PositionEmbedding: _position_embedding,
}
