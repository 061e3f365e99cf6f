"""Trains a model on MNIST or SVHN, with Keras or with its numpy_ref twin.

    python scripts/train.py                       # Mymodel, MNIST, 10 epochs, Adam, batch 32
    python scripts/train.py --backend=numpy       # the same recipe in NumPy
    python scripts/train.py --help                # every flag
    python scripts/train.py -v 1                  # TensorFlow's own log lines too

Everything is written to --model_dir (see tfmodels/run/rundir.py); rerunning
with the same directory resumes after the last completed epoch. Exit codes:
tfmodels/run/cli.py.
"""

import sys

from tfmodels.run import console

if __name__ == "__main__":  # first: TensorFlow reads its log settings when imported
    console.quiet_start(sys.argv)

from absl import app, flags  # pylint: disable=wrong-import-position

from tfmodels.run import cli, config, experiment

config.define_flags(flags.FLAGS)  # one flag per setting of config.RunConfig
flags.adopt_module_key_flags(config)


@cli.guarded
def main(argv):
    del argv  # unused
    experiment.run(config.from_flags(flags.FLAGS).validate())


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
