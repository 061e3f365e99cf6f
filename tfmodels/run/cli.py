"""The scripts' error contract: one line on stderr and a documented exit code.

    0  success (also: a finished run asked for the epochs it has; it trains nothing)
    1  an unexpected error (a bug): the traceback is printed
    2  bad flags or settings (a value, or flags that clash)
    3  a data or weights file is missing, unreadable or refused (names the
       file and what was wrong; pickled objects and Keras files holding code
       are refused)
    4  --model_dir unusable: unwritable, in use by another process, holding a
       run with other settings (each named, old -> new) or with more epochs
       than --epochs asks for, or files that do not match its manifest, a
       failed write (disk full), or (evaluate) not a finished run
    5  the training loss became NaN or infinite (names the epoch and step);
       the checkpoints of the completed epochs are kept
    6  (compare.py) the model and its NumPy twin part: the report names where
    130, 143  interrupted by SIGINT (Ctrl-C) or SIGTERM (128 + the signal):
       says the epoch; rerunning the same command resumes

Expected failures never print a traceback; nothing is written after them.
``--help`` prints the flags and exits 0.
"""

import pathlib
import shlex
import signal
import sys

from absl import flags

from tfmodels.errors import (ConfigError, DatasetError, Interrupted, NonFiniteLossError,
                             RunDirError, WeightsFileError)
from tfmodels.run import console

EXIT_USAGE, EXIT_DATA, EXIT_MODEL_DIR, EXIT_NONFINITE, EXIT_DIVERGED = 2, 3, 4, 5, 6
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SCRIPTS = pathlib.Path(__file__).resolve().parents[2] / "scripts"


def fail(program, code, message):
    """Writes ``<program>: error: <message>`` on stderr and exits with ``code``."""
    sys.stderr.write(f"{program}: error: {message}\n")
    sys.exit(code)


def command_line(script, *args):
    """The shell command that runs ``scripts/<script>`` with ``args``, as a next step to
    print: this Python (``sys.executable``, so no virtual environment needs activating)
    and the script's absolute path (so any folder will do), each word quoted for the
    shell. Paths in ``args`` should be absolute too."""
    return shlex.join([sys.executable, str(SCRIPTS / script), *map(str, args)])


def parse_flags(argv):
    """absl flag parsing for app.run: a bad flag fails with one line and exit code 2;
    --help (and absl's --helpfull, --helpshort, --helpxml, -?) exits 0 once printed
    (absl exits 1); then our log lines go plain unless --verbosity asks for more
    (``console.use_plain_lines``)."""
    program = argv[0].rsplit("/", 1)[-1]
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as e:
        fail(program, EXIT_USAGE, str(e).replace("\n", " "))
    except SystemExit as e:  # parsing exits only for the help flags: a success
        sys.exit(0 if e.code == 1 else e.code)
    console.use_plain_lines(program, flags.FLAGS["verbosity"].value)
    return remaining


def _raise_interrupted(signum, _):
    raise Interrupted(signum)


def guarded(main):
    """Wraps a script's ``main(argv)`` so expected failures exit per the table above."""
    def wrapped(argv):
        program = argv[0].rsplit("/", 1)[-1]
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:  # e.g. nohup: stay ignored
                signal.signal(signum, _raise_interrupted)
        try:
            return main(argv)
        except Interrupted as e:
            for signum in STOP_SIGNALS:  # a second Ctrl-C must not cut the message short
                signal.signal(signum, signal.SIG_IGN)
            fail(program, 128 + e.signum, e.message)
        except ConfigError as e:
            fail(program, EXIT_USAGE, e)
        except (DatasetError, WeightsFileError) as e:
            fail(program, EXIT_DATA, e)
        except RunDirError as e:
            fail(program, EXIT_MODEL_DIR, e)
        except NonFiniteLossError as e:
            kept = (f"the checkpoint of epoch {e.epoch - 1} is kept" if e.epoch > 1
                    else "no epoch was completed, so no checkpoint was saved")
            fail(program, EXIT_NONFINITE, f"{e}; {kept}")

    return wrapped
