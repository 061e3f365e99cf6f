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

from tfmodels.run import cli, config  # no TensorFlow: --help prints in a moment

config.define_flags(flags.FLAGS)  # one flag per setting of config.RunConfig
flags.adopt_module_key_flags(config)


def experiment():
    """``tfmodels.run.experiment``, which trains: it imports TensorFlow (seconds)."""
    from tfmodels.run import experiment as module  # pylint: disable=import-outside-toplevel
    return module


@cli.guarded
def main(argv):
    cli.refuse_arguments(argv)
    experiment().run(config.from_flags(flags.FLAGS).validate())


if __name__ == "__main__":
    # A run (and --helpfull) imports TensorFlow before absl parses, as it always has, so
    # that TensorFlow's own absl flags exist; --help lists only ours.
    if not console.asks_for_help(sys.argv):
        experiment()
    app.run(main, flags_parser=cli.parse_flags)
