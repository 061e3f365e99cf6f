"""The scripts' error contract: one line on stderr and a documented exit code.

    0  success (also: a finished run asked for the epochs it has; it trains nothing)
    1  an unexpected error (a bug): the traceback is printed
    2  bad flags or settings (a value, or flags that clash), or an argument
       that is no flag where a script takes flags only
    3  a data or weights file is missing, unreadable or refused (names the
       file and what was wrong; pickled objects and Keras files holding code
       are refused)
    4  --model_dir unusable: unwritable, a path the system refuses (a name too
       long), in use by another process, holding a
       run with other settings (each named, old -> new) or with more epochs
       than --epochs asks for, or files that do not match its manifest, a
       failed write (disk full), or (evaluate) not a finished run
    5  the training loss became NaN or infinite (names the epoch and step);
       the checkpoints of the completed epochs are kept
    6  (compare.py) the model and its NumPy twin part: the report names where
    7  out of memory (a MemoryError, or TensorFlow's ResourceExhaustedError) while
       building or training; a model too big for this machine's memory by
       its parameter count alone is refused before it is built (2)
    130, 143  interrupted by SIGINT (Ctrl-C) or SIGTERM (128 + the signal):
       says the epoch; rerunning the same command resumes. While starting
       (importing TensorFlow, before ``main``): "interrupted while starting;
       nothing was written" (``console.quiet_start``). After ``main`` returned
       (the run is complete, the process is exiting): no failure, the status
       stays main's (exit 0 for a finished run); a line says so while Python
       still runs, and TensorFlow's teardown after that ignores the signal

Expected failures never print a traceback; nothing is written after them.
``--help`` prints the flags and exits 0.
"""

import atexit
import pathlib
import re
import shlex
import signal
import sys

from absl import flags

from tfmodels.errors import (ConfigError, DatasetError, Interrupted, NonFiniteLossError,
                             RunDirError, WeightsFileError)
from tfmodels.run import console

EXIT_USAGE, EXIT_DATA, EXIT_MODEL_DIR, EXIT_NONFINITE, EXIT_DIVERGED = 2, 3, 4, 5, 6
EXIT_OUT_OF_MEMORY = 7
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


def refuse_empty(name, message):
    """Registers a check that the folder flag ``--name`` is not given empty (``--name=``),
    which would otherwise mean the current folder: parsing fails with ``message``, exit 2."""
    flags.register_validator(name, lambda value: value != "", message=message)


def refuse_arguments(argv):
    """ConfigError (exit 2) naming them if ``argv`` (what ``app.run`` hands ``main``: the
    program, then what no flag took) holds arguments: a script that takes flags only would
    otherwise run as if they were not there. (A flag's value after a space, ``--model_dir
    runs/x``, is the flag's; a word after ``--`` is an argument.)"""
    extra = list(argv[1:])
    if extra:
        raise ConfigError(f"unexpected argument{'s' * (len(extra) > 1)} "
                          f"{shlex.join(extra)}: this script takes flags only "
                          "(--name=value; --help lists them)")


def _raise_interrupted(signum, _):
    raise Interrupted(signum)


def out_of_memory(error):
    """Whether ``error`` is running out of memory: a MemoryError, or TensorFlow's
    ResourceExhaustedError (known by its class, so that this module needs no TensorFlow)."""
    return isinstance(error, MemoryError) or any(
        cls.__name__ == "ResourceExhaustedError" and cls.__module__.startswith("tensorflow")
        for cls in type(error).__mro__)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TF_NODE = re.compile(r"^\{\{[^}]*\}\}\s*")  # "{{function_node __wrapped__Mul_device_...}} "


def memory_detail(error):
    """What ran out, in one line: the line of ``error``'s message that names the failed
    allocation (TensorFlow's "OOM when allocating tensor with shape[784,1000000] and type
    float", which Keras wraps in lines of its own), else its first line, else its type."""
    lines = [_TF_NODE.sub("", _ANSI.sub("", line)).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(error).__name__
    line = next((line for line in lines if "allocat" in line.lower()), lines[0])
    return line.split(" on /job:", 1)[0]


def _stop_signals(handler):
    """``handler`` for SIGINT and SIGTERM, except where they are ignored (e.g. nohup)."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def _ignore_stop_signals():
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


_teardown_registered = []


def _after_completion(program):
    """What SIGINT and SIGTERM do once ``main`` has returned: the work is complete and the
    process is exiting, so one line says so and the exit status stays ``main``'s (0 for a
    finished run), not 128 + the signal. Python runs no handler in its own teardown and
    TensorFlow's (about a second), where the default action would kill the process with
    130 or 143: an exit function, run first, makes the signals ignored there."""
    def handler(signum, _):
        _ignore_stop_signals()
        sys.stderr.write(f"{program}: interrupted ({signal.Signals(signum).name}) after it "
                         "had finished: its work is complete, nothing was lost\n")
        sys.stderr.flush()

    _stop_signals(handler)
    if not _teardown_registered:
        atexit.register(_ignore_stop_signals)  # the last registered runs first
        _teardown_registered.append(True)


_guarded_program = []  # the program `guarded` runs, while it runs


def work_complete():
    """Says, from inside a guarded ``main``, that its work is saved and complete (a run's
    last files written): an interrupt from then on is reported as after completion and
    does not change the exit status, as once ``main`` has returned. Elsewhere (no
    ``guarded`` handler installed: a test or a notebook calling the code) it does nothing."""
    if _guarded_program and signal.getsignal(signal.SIGINT) is _raise_interrupted:
        _after_completion(_guarded_program[-1])


def guarded(main):
    """Wraps a script's ``main(argv)`` so expected failures exit per the table above."""
    def wrapped(argv):
        program = argv[0].rsplit("/", 1)[-1]
        _guarded_program.append(program)
        try:
            return _run_guarded(main, argv, program)
        finally:
            _guarded_program.pop()

    return wrapped


def _run_guarded(main, argv, program):
    """``main(argv)`` with the stop signals raising ``Interrupted``, each expected
    failure one line and its exit code."""
    _stop_signals(_raise_interrupted)
    try:
        result = main(argv)
    except Interrupted as e:
        _ignore_stop_signals()  # a second Ctrl-C must not cut the message short
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
    except Exception as e:  # pylint: disable=broad-except
        if not out_of_memory(e):
            raise
        fail(program, EXIT_OUT_OF_MEMORY, f"out of memory ({type(e).__name__}): "
             f"{memory_detail(e)}")
    _after_completion(program)
    return result
