"""Sequence models of images: an LSTM over the rows, and a small Vision Transformer.

Functional models with fixed layer names (so their variable paths are the same in every
process) made of Keras layers only, so that `tfmodels.parity.twin` can follow every step;
they take MNIST's (28, 28) images or SVHN's (32, 32, 3).

    lstm_classifier  each image is a sequence of its rows: (N, H, W*C) -> LSTM(s) -> softmax
    vit_classifier   patches (a strided Conv2D) -> tokens + learned position embeddings ->
                     pre-norm encoder blocks (MultiHeadAttention, MLP) -> mean token -> softmax
    PositionEmbedding  the learned position table the ViT adds to its tokens

Shape letters: N batch, H W image, C channels, T tokens (time steps), D token width,
U LSTM units.
"""

import keras

from tfmodels.models.checks import check_args, check_regularization
from tfmodels.models.convnets import _classifier, _image_input, functional_model


@keras.saving.register_keras_serializable(package="tfmodels")
class PositionEmbedding(keras.layers.Layer):
    """y = x + E: one learned vector per position, added to the tokens.

    `E` (the weight `embeddings`) has the shape of one example, (T, D) for tokens (N, T, D),
    and is drawn from N(0, stddev^2) (ViT's small initial position embeddings). Its NumPy
    twin is `numpy_ref.layers.position.PositionEmbedding`.

    Args:
        stddev: positive float, the standard deviation of the initial table.

    Input shape: `(N, T, D)`. Output shape: `(N, T, D)`.
    """

    def __init__(self, stddev=0.02, **kwargs):
        super().__init__(**kwargs)
        if not stddev > 0:
            raise ValueError(f"`stddev` must be > 0. Received: stddev={stddev!r}")
        self.stddev = float(stddev)
        self.embeddings = None

    def build(self, input_shape):
        if len(input_shape) < 2 or None in input_shape[1:]:
            raise ValueError("PositionEmbedding needs inputs of a fixed shape (N, T, D). "
                             f"Received: input_shape={tuple(input_shape)}")
        self.embeddings = self.add_weight(
            shape=tuple(input_shape[1:]), name="embeddings",
            initializer=keras.initializers.RandomNormal(stddev=self.stddev))

    def call(self, inputs):
        return inputs + self.embeddings  # (N, T, D) + (T, D)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


def _rows(input_shape, dtype):
    """The model's input, and that input as a sequence of rows: (N, H, W) grey images
    stay as they are, (N, H, W, C) colour ones become (N, H, W*C)."""
    inputs = keras.Input(tuple(input_shape), dtype=dtype, name="images")
    if len(input_shape) == 2:
        return inputs, inputs
    if len(input_shape) != 3:
        raise ValueError("The LSTM takes (H, W) or (H, W, C) images. "
                         f"Received: input_shape={tuple(input_shape)}")
    height, width, channels = input_shape
    return inputs, keras.layers.Reshape((height, width * channels), dtype=dtype,
                                        name="rows")(inputs)


def lstm_classifier(input_shape, hidden_units=(128,), activation="tanh", num_classes=10,
                    dtype=None, name="lstm"):
    """Each image read as a sequence of its rows (MNIST: 28 steps of 28 pixels; SVHN: 32
    steps of 96 = 32 pixels x 3 channels) by one LSTM layer per entry of `hidden_units`
    (all but the last return their whole sequence to the next), then Dense(num_classes)
    softmax on the last LSTM's final output: the Keras classic.

    `activation` is the LSTM's cell activation (Keras's `activation`, tanh by default);
    the gates use the sigmoid. Keras's initial weights: Glorot-uniform input kernels,
    orthogonal recurrent kernels, forget-gate biases 1.
    """
    units = tuple(hidden_units)
    check_args(units, activation, num_classes)
    inputs, x = _rows(input_shape, dtype)  # (N, H, W*C)
    for i, size in enumerate(units, start=1):
        x = keras.layers.LSTM(size, activation=activation, return_sequences=i < len(units),
                              dtype=dtype, name=f"lstm{i}")(x)  # (N, H, U) ... (N, U)
    return functional_model(inputs, _classifier(x, num_classes, dtype), name, dtype)


VIT_HEADS = 4  # attention heads per block; the token width must be a multiple
VIT_MLP_RATIO = 2  # the MLP's hidden width, in token widths
VIT_PATCHES_PER_SIDE = 4  # 4 x 4 = 16 patches: 7x7 on MNIST, 8x8 on SVHN
LAYER_NORM_EPSILON = 1e-6  # the ViT paper's


def vit_patch_size(input_shape):
    """The patch side: the image side over `VIT_PATCHES_PER_SIDE` (7 for MNIST, 8 for SVHN)."""
    height, width = input_shape[:2]
    if height != width or height % VIT_PATCHES_PER_SIDE:
        raise ValueError(f"The ViT takes square images whose side is a multiple of "
                         f"{VIT_PATCHES_PER_SIDE}. Received: input_shape={tuple(input_shape)}")
    return height // VIT_PATCHES_PER_SIDE


def check_vit_widths(hidden_units):
    """One entry per encoder block, all the same token width (the residual Adds need it),
    a multiple of the heads."""
    units = tuple(hidden_units)
    if units and (len(set(units)) != 1 or units[0] % VIT_HEADS):
        raise ValueError(f"The ViT's `hidden_units` are its token width once per encoder "
                         f"block: equal, and a multiple of its {VIT_HEADS} heads, e.g. "
                         f"64,64,64. Received: hidden_units={list(units)}")


def _dropped(x, rate, dtype, name):
    """x after a Dropout(rate) named `name`, or x itself when the rate is 0."""
    return keras.layers.Dropout(rate, dtype=dtype, name=name)(x) if rate else x


def vit_classifier(input_shape, hidden_units=(64, 64, 64), activation="gelu", num_classes=10,
                   dtype=None, name="vit", dropout=0.0):
    """A small Vision Transformer: one encoder block per entry of `hidden_units` (each the
    token width D).

    Patches: a Conv2D of D filters, kernel and stride the patch side (`vit_patch_size`), so
    each 7x7 (SVHN: 8x8) patch becomes one token of width D: T = 16 tokens. A learned
    position table is added (`PositionEmbedding`). Each block is pre-norm, as in the ViT
    paper:

        x = x + MultiHeadAttention(LayerNorm(x), LayerNorm(x))   4 heads of width D / 4
        x = x + Dense(D)(activation(Dense(2 D)(LayerNorm(x))))    the MLP, gelu by default

    then a final LayerNorm, the mean over the tokens (GlobalAveragePooling1D, in place of a
    class token), and Dense(num_classes) softmax.

    `dropout` > 0 regularises each block as the ViT paper does: the attention weights
    (MultiHeadAttention's own `dropout`) and a Dropout of that rate after each of the
    MLP's two Dense layers (`block{i}_drop1`, `block{i}_drop2`). 0 adds no layer.
    """
    units = tuple(hidden_units)
    check_args(units, activation, num_classes)
    check_regularization(dropout, 0.0)
    check_vit_widths(units)
    width = units[0]
    patch = vit_patch_size(input_shape)
    inputs, x = _image_input(input_shape, dtype)  # (N, H, W, C)
    x = keras.layers.Conv2D(width, patch, strides=patch, dtype=dtype,
                            name="patches")(x)  # (N, H/p, W/p, D)
    tokens = (input_shape[0] // patch) * (input_shape[1] // patch)
    x = keras.layers.Reshape((tokens, width), dtype=dtype, name="tokens")(x)  # (N, T, D)
    x = PositionEmbedding(dtype=dtype, name="position")(x)
    for i in range(1, len(units) + 1):
        h = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype,
                                            name=f"block{i}_norm1")(x)
        h = keras.layers.MultiHeadAttention(VIT_HEADS, width // VIT_HEADS, dropout=dropout,
                                            dtype=dtype, name=f"block{i}_attention")(h, h)
        x = keras.layers.Add(dtype=dtype, name=f"block{i}_add1")([x, h])
        h = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype,
                                            name=f"block{i}_norm2")(x)
        h = keras.layers.Dense(VIT_MLP_RATIO * width, activation=activation, dtype=dtype,
                               name=f"block{i}_mlp1")(h)  # (N, T, 2D)
        h = _dropped(h, dropout, dtype, f"block{i}_drop1")
        h = keras.layers.Dense(width, dtype=dtype, name=f"block{i}_mlp2")(h)  # (N, T, D)
        h = _dropped(h, dropout, dtype, f"block{i}_drop2")
        x = keras.layers.Add(dtype=dtype, name=f"block{i}_add2")([x, h])
    x = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=dtype,
                                        name="final_norm")(x)
    x = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_token")(x)  # (N, D)
    return functional_model(inputs, _classifier(x, num_classes, dtype), name, dtype)
