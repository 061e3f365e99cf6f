"""Trains a model on MNIST or SVHN, with Keras or with its numpy_ref twin.

    python scripts/train.py                       # Mymodel, MNIST, 10 epochs, Adam, batch 32
    python scripts/train.py --backend=numpy       # the same recipe in NumPy
    python scripts/train.py --help                # every flag

Everything is written to --model_dir (see tfmodels/run/rundir.py); rerunning
with the same directory resumes after the last completed epoch. Exit codes:
tfmodels/run/cli.py.
"""

import os

from absl import app, flags

from tfmodels import models, optimizers
from tfmodels.run import cli, config as cfg, experiment

DATASET = flags.DEFINE_enum("dataset", "mnist", cfg.DATASETS, "Data set to train on.")
MODEL = flags.DEFINE_enum("model", "mymodel", cfg.MODELS, "; ".join(
    f"{name}: {kind.description}" for name, kind in models.MODELS.items()) + ".")
HIDDEN_UNITS = flags.DEFINE_list("hidden_units", None,
                                 "Hidden layer sizes, e.g. 512,512; default: the model's own.")
ACTIVATION = flags.DEFINE_enum("activation", "relu", cfg.ACTIVATIONS, "Hidden activation.")
DROPOUT = flags.DEFINE_float("dropout", 0.0, "mymodel, two_layer_net: a Dropout of this rate "
                             "after every hidden layer.")
BATCHNORM = flags.DEFINE_bool("batchnorm", False, "mymodel, two_layer_net: "
                              "BatchNormalization between each hidden Dense and its activation.")
WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 0.0, "mymodel, two_layer_net: Keras's L2 "
                                  "penalty, this factor times the sum of every squared kernel "
                                  "weight (the book's weight_decay_lambda is twice it).")
MODEL_FILE = flags.DEFINE_string("model_file", None,
                                 "A saved Keras model (.keras, loaded in safe mode) to train "
                                 "instead of --model, with its compiled loss and optimizer if "
                                 "it has them (--optimizer/--learning_rate override the latter).")
BACKEND = flags.DEFINE_enum("backend", "tensorflow", cfg.BACKENDS,
                            "tensorflow: Keras custom loop; numpy: the model's numpy_ref twin, "
                            "from the same initial weights, on the same batches.")
EPOCHS = flags.DEFINE_integer("epochs", 10, "Epochs to train (in total, when resuming).",
                              lower_bound=1)
BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Global mini-batch size.", lower_bound=1)
SHUFFLE_BUFFER = flags.DEFINE_integer("shuffle_buffer", 1024, "Shuffle buffer (examples).",
                                      lower_bound=1)
OPTIMIZER = flags.DEFINE_enum("optimizer", "adam", cfg.OPTIMIZERS, "Optimizer: " + ", ".join(
    f"{name}: {optimizers.describe(name)}" for name in cfg.OPTIMIZERS) + ". With "
    "--model_file, default: the file's compiled optimizer.")
LEARNING_RATE = flags.DEFINE_float("learning_rate", None,
                                   "Learning rate; default: the optimizer's Keras default.")
SEED = flags.DEFINE_integer("seed", 0, "Seeds the initial weights and the shuffling.")
DATA_DIR = flags.DEFINE_string("data_dir", None,
                               "Data directory; default $TFMODELS_DATA_DIR.")
MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                "Output directory; default runs/<model>-<dataset>-<backend>.")
DEVICE = flags.DEFINE_enum("device", "auto", cfg.DEVICES,
                           "gpu fails when no GPU is visible; cpu hides GPUs.")
DTYPE = flags.DEFINE_enum("dtype", "float32", cfg.DTYPES,
                          "Weights, losses and metrics in this dtype, on either backend; "
                          "float64 makes the two backends agree to rounding.")
MIXED_PRECISION = flags.DEFINE_bool("mixed_precision", False,
                                    "mixed_float16 compute with float32 softmax and loss scaling.")
STRATEGY = flags.DEFINE_enum("distribution_strategy", "off", cfg.STRATEGIES,
                             "tf.distribute strategy for the custom loop.")
JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile", "auto", tuple(cfg.JIT_COMPILE),
    "--backend=tensorflow: compile the train and test steps with XLA. auto: on for a float32 "
    "stack of Dense layers at --batch_size below 512 without --mixed_precision or "
    "--distribution_strategy, where it was measured faster (1.4x at batch 32 on one core); "
    "off at larger batches (0.95x at 1024), for convolutions, dropout and batch "
    "normalization (measured several times slower) and for float64 parity runs (their "
    "op-for-op graph); on is refused with a strategy.")
STEPS_PER_EXECUTION = flags.DEFINE_integer(
    "steps_per_execution", 100,
    "--backend=tensorflow: training steps per call of one tf.function that reads the batches "
    "in the graph (as Keras's steps_per_execution); every step's loss is still checked and "
    "shown. 1: one call per step. Larger saves Python dispatch; Ctrl-C and the progress bar "
    "wait for the running call.", lower_bound=1)
MAX_TRAIN_EXAMPLES = flags.DEFINE_integer("max_train_examples", None,
                                          "Train on the first N examples only.", lower_bound=1)
RESUME = flags.DEFINE_bool("resume", True, "Continue a run found in --model_dir; "
                           "--noresume starts anew.")

# An empty --hidden_units= is an error, not the default model.
flags.register_validator("hidden_units",
                         lambda v: v is None or (len(v) > 0
                                                 and all(s.isdigit() and int(s) > 0 for s in v)),
                         message="--hidden_units must be positive integers, e.g. 512,512")
flags.register_validator("learning_rate", lambda v: v is None or v > 0,
                         message="--learning_rate must be > 0")
# What --model_file replaces: given together, one of them would be silently ignored.
ARCHITECTURE_FLAGS = (MODEL, HIDDEN_UNITS, ACTIVATION, DROPOUT, BATCHNORM, WEIGHT_DECAY)


def config_from_flags():
    if MODEL_FILE.value is not None:
        given = [f"--{f.name}" for f in ARCHITECTURE_FLAGS if flags.FLAGS[f.name].present]
        if given:
            raise cfg.ConfigError(f"--model_file brings its own architecture; drop "
                                  f"{', '.join(given)}")
    units = HIDDEN_UNITS.value
    optimizer = (OPTIMIZER.value if MODEL_FILE.value is None or flags.FLAGS["optimizer"].present
                 else None)  # None: the model file's own
    return cfg.RunConfig(
        dataset=DATASET.value, model=MODEL.value,
        hidden_units=tuple(int(u) for u in units) if units is not None else None,
        activation=ACTIVATION.value, dropout=DROPOUT.value, batchnorm=BATCHNORM.value,
        weight_decay=WEIGHT_DECAY.value, model_file=MODEL_FILE.value, backend=BACKEND.value,
        epochs=EPOCHS.value, batch_size=BATCH_SIZE.value, shuffle_buffer=SHUFFLE_BUFFER.value,
        optimizer=optimizer, learning_rate=LEARNING_RATE.value, seed=SEED.value,
        data_dir=DATA_DIR.value, model_dir=MODEL_DIR.value, device=DEVICE.value,
        dtype=DTYPE.value,
        mixed_precision=MIXED_PRECISION.value, distribution_strategy=STRATEGY.value,
        jit_compile=JIT_COMPILE.value, steps_per_execution=STEPS_PER_EXECUTION.value,
        max_train_examples=MAX_TRAIN_EXAMPLES.value, resume=RESUME.value)


@cli.guarded
def main(argv):
    del argv  # unused
    experiment.run(config_from_flags().validate())


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ banner quiet
    app.run(main, flags_parser=cli.parse_flags)
