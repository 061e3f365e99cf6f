"""The ``--backend=numpy`` side of a run: the same recipe trained by numpy_ref.

Images stay uint8 in memory and are scaled to float32 [0, 1] one batch at a
time, exactly as ``tfmodels.data.make_dataset`` does for TensorFlow.
"""

import math

import numpy as np

from numpy_ref import networks, optimizers
from numpy_ref import training as np_training

EVAL_BATCH = 1000


def scale_batch(images):
    """uint8 pixels -> float32 in [0, 1] (the same division as make_dataset)."""
    return images.astype(np.float32) / np.float32(255)


def build_network(config):
    """The numpy_ref twin of the configured Keras model, with Keras's initialisers."""
    input_size = math.prod(config.input_shape)
    if config.model == "two_layer_net":
        return networks.TwoLayerNet(input_size, config.hidden_units[0], 10,
                                    activation=config.activation, seed=config.seed,
                                    loss_variant="logits")
    return networks.MultiLayerNet(input_size, list(config.hidden_units), 10,
                                  activation=config.activation, weight_init="glorot_uniform",
                                  seed=config.seed, loss_variant="logits")


class NumpyBackend:
    """Owns a numpy_ref network and optimizer; one method per phase of an epoch."""

    name = "numpy"

    def __init__(self, config):
        self.config = config
        self.net = build_network(config)
        self.optimizer = optimizers.get(config.optimizer, learning_rate=config.learning_rate)

    def train_epoch(self, epoch, x, y, on_step):
        """One epoch; ``on_step(step, examples_seen, loss)`` after each batch."""
        batch = self.config.batch_size

        def step_callback(_, step, loss):
            on_step(step, min(step * batch, len(x)), loss)

        history = np_training.fit(self.net, self.optimizer, (x, y), epochs=epoch,
                                  initial_epoch=epoch - 1, batch_size=batch,
                                  seed=self.config.seed, preprocess=scale_batch,
                                  step_callback=step_callback)
        return {"train_loss": history["train_loss"][-1],
                "train_accuracy": history["train_accuracy"][-1]}

    def evaluate(self, x, y):
        loss, accuracy = np_training.evaluate(self.net, x, y, batch_size=EVAL_BATCH,
                                              preprocess=scale_batch)
        return {"test_loss": loss, "test_accuracy": accuracy}

    def predict_proba(self, x):
        return np.concatenate([self.net.predict_proba(scale_batch(x[i:i + EVAL_BATCH]))
                               for i in range(0, len(x), EVAL_BATCH)])

    def state_arrays(self):
        """Weights and optimizer state, for a checkpoint."""
        state = {f"param/{k}": np.array(v) for k, v in self.net.params.items()}
        state.update({f"optimizer/{k}": v for k, v in self.optimizer.get_state().items()})
        return state

    def restore(self, arrays):
        for key in self.net.params:
            self.net.params[key] = arrays[f"param/{key}"]
        prefix = "optimizer/"
        self.optimizer.set_state({k[len(prefix):]: v for k, v in arrays.items()
                                  if k.startswith(prefix)})

    def numpy_net(self):
        return self.net

    def load_net(self, net):
        """Takes over the weights of a numpy_ref network (e.g. from weights.npz)."""
        for key in self.net.params:
            self.net.params[key] = net.params[key]
