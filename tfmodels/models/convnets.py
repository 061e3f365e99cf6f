"""The book's convolutional networks as Keras models: SimpleConvNet (ch07) and DeepConvNet (ch08).

Functional models with fixed layer names (so their variable paths are the same in every
process) that take MNIST's (28, 28) images (a channel axis is added) or SVHN's (32, 32, 3).

Shape letters: N batch, H W image, C channels.
"""

import keras

from tfmodels.models.checks import check_args


def _image_input(input_shape, dtype):
    """The model's input, and that input as (N, H, W, C) images."""
    inputs = keras.Input(tuple(input_shape), dtype=dtype, name="images")
    if len(input_shape) == 2:  # (N, H, W) grey images -> (N, H, W, 1)
        return inputs, keras.layers.Reshape((*input_shape, 1), dtype=dtype,
                                            name="add_channel")(inputs)
    if len(input_shape) != 3:
        raise ValueError("A convolutional network takes (H, W) or (H, W, C) images. "
                         f"Received: input_shape={tuple(input_shape)}")
    return inputs, inputs


def functional_model(inputs, outputs, name, dtype):
    """The functional model, with the dtype policy its layers have: `keras.Model` takes no
    `dtype`, and the training loop accumulates its metrics in the model's dtype (float64
    runs would otherwise report float32-rounded losses and accuracies)."""
    model = keras.Model(inputs, outputs, name=name)
    if dtype is not None:
        model.dtype_policy = dtype
    return model


def _classifier(x, num_classes, dtype, initializer="glorot_uniform", dropout=0.0):
    """Dense(num_classes) [-> Dropout] -> softmax, in the policy's variable dtype (float32
    under mixed_float16, so the softmax and the loss never run in float16)."""
    dtype = keras.dtype_policies.get(dtype).variable_dtype
    if not dropout:
        return keras.layers.Dense(num_classes, activation="softmax", dtype=dtype,
                                  kernel_initializer=initializer, name="classifier")(x)
    x = keras.layers.Dense(num_classes, dtype=dtype, kernel_initializer=initializer,
                           name="classifier")(x)
    x = keras.layers.Dropout(dropout, dtype=dtype, name="classifier_dropout")(x)
    return keras.layers.Activation("softmax", dtype=dtype, name="softmax")(x)


def simple_convnet(input_shape, hidden_units=(100,), activation="relu", num_classes=10,
                   filters=30, kernel_size=5, weight_init_std=0.01, dtype=None,
                   name="simple_convnet"):
    """The book's SimpleConvNet: Conv 30 5x5 -> activation -> MaxPool 2x2 (stride 2)
    -> Dense(hidden) -> activation -> Dense(num_classes) -> softmax, its kernels drawn
    from N(0, weight_init_std^2) and its biases zero, as the book's."""
    (hidden,) = hidden_units
    check_args((hidden, filters), activation, num_classes)
    init = keras.initializers.RandomNormal(stddev=weight_init_std)
    inputs, x = _image_input(input_shape, dtype)
    x = keras.layers.Conv2D(filters, kernel_size, activation=activation, kernel_initializer=init,
                            dtype=dtype, name="conv1")(x)  # (N, H-4, W-4, 30)
    x = keras.layers.MaxPooling2D(2, dtype=dtype, name="pool1")(x)  # (N, 12, 12, 30) for MNIST
    x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)
    x = keras.layers.Dense(hidden, activation=activation, kernel_initializer=init, dtype=dtype,
                           name="dense1")(x)
    return functional_model(inputs, _classifier(x, num_classes, dtype, init), name, dtype)


# (filters, padding) of the book's six 3x3 convolutions; a max-pool follows every second one.
DEEP_CONVS = ((16, 1), (16, 1), (32, 1), (32, 2), (64, 1), (64, 1))


def deep_convnet(input_shape, hidden_units=(50,), activation="relu", num_classes=10,
                 dropout=0.5, dtype=None, name="deep_convnet"):
    """The book's DeepConvNet: six 3x3 convolutions of 16/16/32/32/64/64 filters (zero
    padding 1, the fourth 2) with activations and a 2x2 max-pool after every second, then
    Dense(hidden) -> activation -> Dropout(0.5) -> Dense(num_classes) -> Dropout(0.5) ->
    softmax, as the book has it; He-normal initial weights, as the book's."""
    (hidden,) = hidden_units
    check_args((hidden,), activation, num_classes)
    inputs, x = _image_input(input_shape, dtype)
    for i, (filters, pad) in enumerate(DEEP_CONVS, start=1):
        x = keras.layers.ZeroPadding2D(pad, dtype=dtype, name=f"pad{i}")(x)
        x = keras.layers.Conv2D(filters, 3, activation=activation, dtype=dtype,
                                kernel_initializer="he_normal", name=f"conv{i}")(x)
        if i % 2 == 0:
            x = keras.layers.MaxPooling2D(2, dtype=dtype, name=f"pool{i // 2}")(x)
    x = keras.layers.Flatten(dtype=dtype, name="flatten")(x)  # (N, 1024) for MNIST
    x = keras.layers.Dense(hidden, activation=activation, kernel_initializer="he_normal",
                           dtype=dtype, name="dense1")(x)
    x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout1")(x)
    return functional_model(inputs, _classifier(x, num_classes, dtype, "he_normal", dropout),
                            name, dtype)
