"""The scripts' error contract: one line on stderr and a documented exit code.

    0  success
    1  an unexpected error (a bug): the traceback is printed
    2  bad flags or settings (a value, or flags that clash)
    3  a data or weights file is missing, unreadable or refused (names the
       file and what was wrong; pickled objects and Keras files holding code
       are refused)
    4  --model_dir unusable: unwritable, or holding a run with other settings
    5  the training loss became NaN or infinite (names the epoch and step);
       the checkpoints of the completed epochs are kept
    6  (compare.py) the model and its NumPy twin part: the report names where

Expected failures never print a traceback; nothing is written after them.
"""

import sys

from absl import flags

from tfmodels.errors import (ConfigError, DatasetError, NonFiniteLossError, RunDirError,
                             WeightsFileError)

EXIT_USAGE, EXIT_DATA, EXIT_MODEL_DIR, EXIT_NONFINITE, EXIT_DIVERGED = 2, 3, 4, 5, 6


def _exit(program, code, message):
    sys.stderr.write(f"{program}: error: {message}\n")
    sys.exit(code)


def parse_flags(argv):
    """absl flag parsing that fails with one line and exit code 2 (for app.run)."""
    program = argv[0].rsplit("/", 1)[-1]
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        _exit(program, EXIT_USAGE, str(e).replace("\n", " "))


def guarded(main):
    """Wraps a script's ``main(argv)`` so expected failures exit per the table above."""
    def wrapped(argv):
        program = argv[0].rsplit("/", 1)[-1]
        try:
            return main(argv)
        except ConfigError as e:
            _exit(program, EXIT_USAGE, e)
        except (DatasetError, WeightsFileError) as e:
            _exit(program, EXIT_DATA, e)
        except RunDirError as e:
            _exit(program, EXIT_MODEL_DIR, e)
        except NonFiniteLossError as e:
            _exit(program, EXIT_NONFINITE, f"{e}; the last good checkpoint is kept")

    return wrapped
