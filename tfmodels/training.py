"""The material's TF2 custom training loop: `train_step` / `test_step` in `tf.function`, and `fit`.

`Trainer` owns the four metrics of the material (`train_loss`, `train_accuracy`, `test_loss`,
`test_accuracy`) and the two compiled step functions; `fit` runs the epoch loop around them.

Each step function is traced once per `Trainer`: it is compiled with an input signature taken
from the first batch it sees, with the batch dimension left open (`None`), so a smaller final
batch or a new epoch reuses the same graph. `Trainer.tracing_counts()` reports the traces.
"""

from absl import logging
import tensorflow as tf

HISTORY_KEYS = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")


def batch_signature(*tensors):
    """`tf.TensorSpec`s shaped like `tensors` but with an open batch dimension: `(None, ...)`."""
    return [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in tensors]


class Trainer:
    """Custom training loop state: a model, its optimizer, loss and metrics.

    Args:
        model: A Keras model mapping images `(N, ...)` to class probabilities `(N, C)`.
        optimizer: A Keras optimizer, e.g. `tf.keras.optimizers.Adam()`.
        loss_object: A Keras loss taking `(labels, predictions)`; defaults to
            `SparseCategoricalCrossentropy()`, i.e. integer labels and probabilities (not
            logits), computed in the dtype of the model's weights.
    """

    def __init__(self, model, optimizer, loss_object=None):
        self.model = model
        self.optimizer = optimizer
        if loss_object is None:
            # Keras losses compute in floatx() (float32) unless told otherwise, which would
            # round a float64 model's probabilities, loss and gradients to float32: follow the
            # model's weights instead (float32 for mixed precision, float64 for parity runs).
            loss_object = tf.keras.losses.SparseCategoricalCrossentropy(
                dtype=model.dtype_policy.variable_dtype)
        self.loss_object = loss_object
        self.train_loss = tf.keras.metrics.Mean(name="train_loss")
        self.train_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="train_accuracy")
        self.test_loss = tf.keras.metrics.Mean(name="test_loss")
        self.test_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name="test_accuracy")
        self._train_fn = None  # tf.functions, created at the first batch (see `_compile`)
        self._test_fn = None

    @property
    def metrics(self):
        return [self.train_loss, self.train_accuracy, self.test_loss, self.test_accuracy]

    def reset_metrics(self):
        for metric in self.metrics:
            metric.reset_state()

    def results(self):
        """The four metrics as Python floats, keyed by `HISTORY_KEYS`."""
        return {metric.name: float(metric.result()) for metric in self.metrics}

    def tracing_counts(self):
        """How many times each step function has been traced (0 before its first call)."""
        return {name: fn.experimental_get_tracing_count() if fn is not None else 0
                for name, fn in (("train_step", self._train_fn), ("test_step", self._test_fn))}

    # -- per-batch math: the bodies a tf.distribute strategy would `strategy.run` per replica.

    def compute_loss(self, labels, predictions):
        """The scalar loss of one batch. Under a distribution strategy this is the one place
        to change: per-example losses averaged over the *global* batch."""
        return self.loss_object(labels, predictions)

    def _train_step(self, images, labels):
        with tf.GradientTape() as tape:
            predictions = self.model(images, training=True)
            loss = self.compute_loss(labels, predictions)
        variables = self.model.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        self.train_loss.update_state(loss)
        self.train_accuracy.update_state(labels, predictions)
        return loss

    def _test_step(self, images, labels):
        predictions = self.model(images, training=False)
        loss = self.compute_loss(labels, predictions)
        self.test_loss.update_state(loss)
        self.test_accuracy.update_state(labels, predictions)
        return loss

    # -- compiled entry points

    def train_step(self, images, labels):
        """One optimizer step on a batch; updates the train metrics and returns the loss."""
        images, labels = tf.convert_to_tensor(images), tf.convert_to_tensor(labels)
        if self._train_fn is None:
            self._build(images)
            self._train_fn = tf.function(self._train_step,
                                         input_signature=batch_signature(images, labels))
        return self._train_fn(images, labels)

    def test_step(self, images, labels):
        """Evaluates a batch (no weight change); updates the test metrics and returns the loss."""
        images, labels = tf.convert_to_tensor(images), tf.convert_to_tensor(labels)
        if self._test_fn is None:
            self._build(images)
            self._test_fn = tf.function(self._test_step,
                                        input_signature=batch_signature(images, labels))
        return self._test_fn(images, labels)

    def _build(self, images):
        # Create the model's and the optimizer's variables eagerly, so that the single trace
        # of each step function only reads and updates variables, never creates them.
        if not self.model.built:
            self.model(images[:1], training=False)
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)


def fit(model, train_ds, test_ds, epochs, optimizer=None, loss_object=None, callback=None,
        trainer=None):
    """Trains `model` for `epochs` epochs with the material's loop and returns the history.

    Each epoch resets the metrics, runs `train_step` over `train_ds` and `test_step` over
    `test_ds` (both yielding `(images, labels)` batches), logs the material's line and calls
    `callback(epoch, logs)` (epoch counted from 1, logs the epoch's four metrics) if given.

    Args:
        model: The Keras model to train.
        train_ds, test_ds: Iterables of `(images, labels)` batches, e.g. `tf.data.Dataset`s.
        epochs: Positive number of passes over `train_ds`.
        optimizer: Defaults to `tf.keras.optimizers.Adam()`. Not allowed with `trainer`.
        loss_object: Defaults to `SparseCategoricalCrossentropy()`. Not allowed with `trainer`.
        callback: Optional `callback(epoch, logs)`.
        trainer: An existing `Trainer` for `model` (to keep its compiled steps and metrics).

    Returns:
        A dict mapping each of `HISTORY_KEYS` to a list of `epochs` Python floats
        (accuracies are fractions in [0, 1]).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"`epochs` must be a positive integer. Received: epochs={epochs!r}")
    if trainer is None:
        optimizer = tf.keras.optimizers.Adam() if optimizer is None else optimizer
        trainer = Trainer(model, optimizer, loss_object)
    elif trainer.model is not model:
        raise ValueError("`trainer` was built for a different model than `model`.")
    elif optimizer is not None or loss_object is not None:
        raise ValueError("Pass `optimizer` and `loss_object` to the `Trainer`, not to `fit`, "
                         "when a `trainer` is given.")

    history = {key: [] for key in HISTORY_KEYS}
    for epoch in range(1, epochs + 1):
        trainer.reset_metrics()
        for images, labels in train_ds:
            trainer.train_step(images, labels)
        for images, labels in test_ds:
            trainer.test_step(images, labels)
        logs = trainer.results()
        for key in HISTORY_KEYS:
            history[key].append(logs[key])
        logging.info("Epoch %d, Loss: %.4f, Accuracy: %.2f, Test Loss: %.4f, Test Accuracy: %.2f",
                     epoch, logs["train_loss"], 100 * logs["train_accuracy"],
                     logs["test_loss"], 100 * logs["test_accuracy"])
        if callback is not None:
            callback(epoch, dict(logs))
    return history


__all__ = ["HISTORY_KEYS", "Trainer", "batch_signature", "fit"]
