"""What the scripts print, and what they keep TensorFlow from printing.

Each script calls ``quiet_start(sys.argv)`` as its first statement, before it imports
anything that imports TensorFlow: TensorFlow reads its logging settings when it is
loaded, so setting them later (in ``main``) is too late. Unless the command line asks
for absl's ``--verbosity=1`` (``-v 1``) or more, ``quiet_start``

* sets ``TF_CPP_MIN_LOG_LEVEL=2`` (TensorFlow's C++ INFO and WARNING lines off: the XLA,
  MLIR and "Compiled cluster using XLA!" lines), unless the user set it;
* drops the lines TensorFlow's libraries write while they load that this setting does
  not reach (oneDNN's "custom operations are on", absl's "All log messages before
  absl::InitializeLog()"): the first ``import tensorflow`` runs with file descriptor 2
  sent to a temporary file, whose lines go to stderr afterwards, less those below the
  level (``keep_import_line``);
* sets TensorFlow's Python logger to ERROR and ignores the deprecation warnings
  TensorFlow and Keras raise from their own code.

Whatever the verbosity, ``quiet_start`` also makes Ctrl-C (SIGINT) or SIGTERM before the
script's ``main`` begins (seconds of importing TensorFlow, then the flags) end the process
with one line, ``train.py: error: interrupted while starting; nothing was written``, and
exit 130 or 143 (``exit_on_early_signals``), not a KeyboardInterrupt traceback. absl
restores the usual handling just before ``main``; ``cli.guarded`` takes over there.

After absl parsed the flags, ``cli.parse_flags`` calls ``use_plain_lines``: our own log
lines lose absl's ``I1207 13:38:43.55 139863894895488 experiment.py:102]`` prefix; a
warning or an error says so (``train.py: warning: ...``). ``--verbosity=1`` keeps the
prefix, and TensorFlow's lines, as absl and TensorFlow print them.

This module imports the standard library and absl only, so that it is cheap to
import first.
"""

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import warnings

from absl import app
from absl import logging as absl_logging

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"
QUIET_LEVEL = "2"  # TensorFlow's C++ levels: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL
VERBOSE = 1  # absl's --verbosity from which everything is shown (1 is absl's DEBUG)
NOISY_PACKAGES = r"(tensorflow|keras|tf_keras)(\.|$)"
NOISY_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# A line of absl's C++ logging ("I0000 00:00:1796677296.771 29276 port.cc:153] ...") or
# of TensorFlow's older format ("2024-01-11 05:40:05.061907: I tensorflow/...cc:182] ...").
_CPP_LINE = re.compile(r"([IWEF])\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] "
                       r"|\d{4}-\d\d-\d\d \d\d:\d\d:[\d.]+: ([IWEF]) \S+:\d+\] ")
_PRE_INIT_BANNER = "WARNING: All log messages before absl::InitializeLog() is called"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_console_fd = 2  # where stderr really goes: the saved descriptor while filtered_stderr runs


def requested_verbosity(argv):
    """The value of absl's ``-v``/``--verbosity`` on a command line (the last one given),
    or None when it is absent or not an integer (absl then rejects it itself).

    absl parses the flags only after the script's imports, so this reads them early."""
    value = None
    args = list(argv[1:])
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            break
        name, has_value, rest = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name in ("v", "verbosity"):
            if has_value:
                value = rest
            elif index + 1 < len(args):
                value = args[index + 1]
                index += 1
        index += 1
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def asks_for_help(argv):
    """Whether absl will print the script's own flags and exit: the first help flag on the
    command line is ``--help``, ``--helpshort`` or ``-?``. A script then need not import
    TensorFlow before parsing (seconds); it does for ``--helpfull`` and ``--helpxml``,
    which list TensorFlow's absl flags too, and for every run."""
    for arg in argv[1:]:
        if arg == "--":
            break
        name, has_value, value = arg.lstrip("-").partition("=")
        if not arg.startswith("-") or name not in ("help", "helpshort", "?", "helpfull",
                                                   "helpxml"):
            continue
        if has_value and value.lower() not in ("true", "t", "1"):
            continue  # --help=false prints nothing
        return name in ("help", "helpshort", "?")
    return False


def is_verbose(verbosity):
    """Whether absl's verbosity asks for everything (TensorFlow's lines, absl's prefix)."""
    return verbosity is not None and verbosity >= VERBOSE


def cpp_level():
    """TensorFlow's C++ log level as the environment sets it (0 when unset or not a number)."""
    try:
        return int(os.environ.get(LEVEL_VARIABLE, "0"))
    except ValueError:
        return 0


def keep_import_line(line, level):
    """Whether a line written to stderr while TensorFlow loads is shown at C++ log ``level``:
    every line but a C++ log line of a lower severity, and absl's banner (itself a
    warning) about the lines logged before its initialisation."""
    if level >= 1 and line.startswith(_PRE_INIT_BANNER):
        return False
    match = _CPP_LINE.match(line)
    return match is None or _SEVERITY[match.group(1) or match.group(2)] >= level


@contextlib.contextmanager
def filtered_stderr(keep):
    """Sends file descriptor 2 (C++ and Python alike) to a temporary file for the block,
    then writes the lines ``keep(line)`` accepts to stderr.

    A file, not a pipe: a library that writes while the import holds the GIL must never
    wait for a reader. (So a crash inside the block loses its lines: ``-v 1`` shows them.)
    Without a usable descriptor 2, the block runs as it is."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield
        return
    global _console_fd  # pylint: disable=global-statement
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        _console_fd = saved
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            _console_fd = 2
            os.close(saved)
            sink.seek(0)
            lines = sink.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if keep(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _FilteredLoader(importlib.abc.Loader):
    """Runs a package's loader inside ``filtered_stderr``; the module keeps the original
    loader as its ``__loader__``."""

    def __init__(self, loader, keep):
        self.loader, self.keep = loader, keep

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        with filtered_stderr(self.keep):
            self.loader.exec_module(module)


class QuietImport(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` entry that finds the top-level ``package`` once, as the finders
    after it would, but with a loader that runs it inside ``filtered_stderr(keep)``;
    then leaves ``sys.meta_path``."""

    def __init__(self, package, keep):
        self.package, self.keep = package, keep

    def find_spec(self, name, path=None, target=None):
        del path, target  # a top-level package is searched on sys.path
        if name != self.package:
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader, self.keep)
        return spec


def exit_on_early_signals(program):
    """Until absl is about to call ``main``: SIGINT or SIGTERM writes ``<program>: error:
    interrupted while starting; nothing was written`` (to the console even while
    ``filtered_stderr`` holds descriptor 2) and ends the process at once with 128 + the
    signal, wherever the import was. Signals that are ignored (nohup) stay ignored; the
    handlers absl finds are restored by ``app.call_after_init``. Only in the main thread
    (the only one that may set handlers). Returns the handler, or None."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, _):
        line = f"{program}: error: interrupted while starting; nothing was written\n"
        with contextlib.suppress(OSError):
            os.write(_console_fd, line.encode())
        os._exit(128 + signum)  # pylint: disable=protected-access

    previous = {}
    for signum in STOP_SIGNALS:
        current = signal.getsignal(signum)
        if current not in (signal.SIG_IGN, None):  # None: set outside Python, left alone
            previous[signum] = current
            signal.signal(signum, handler)

    def restore():
        for signum, old in previous.items():
            if signal.getsignal(signum) is handler:  # nobody else took it over
                signal.signal(signum, old)

    app.call_after_init(restore)
    return handler


def quiet_start(argv):
    """Keeps TensorFlow's start-up lines off the console, unless ``argv`` asks for
    ``--verbosity=1`` or more, and an interrupt before ``main`` to one line
    (``exit_on_early_signals``); see the module docstring. Call it before anything
    imports TensorFlow. Returns whether the run is verbose."""
    exit_on_early_signals(os.path.basename(argv[0]) if argv else "python")
    if is_verbose(requested_verbosity(argv)):
        return True
    os.environ.setdefault(LEVEL_VARIABLE, QUIET_LEVEL)  # a user's own setting wins
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    for category in NOISY_WARNINGS:
        warnings.filterwarnings("ignore", category=category, module=NOISY_PACKAGES)
    level = cpp_level()
    if level >= 1 and "tensorflow" not in sys.modules and not any(
            isinstance(finder, QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, QuietImport("tensorflow",
                                            lambda line: keep_import_line(line, level)))
    return False


class PlainFormatter(logging.Formatter):
    """A log record as its message alone; a warning or worse marked as one, after the
    program's name, as ``cli.fail`` writes errors (``train.py: warning: ...``)."""

    def __init__(self, program):
        super().__init__("%(message)s")
        self.program = program

    def format(self, record):
        text = super().format(record)
        if record.levelno < logging.WARNING:
            return text
        return f"{self.program}: {record.levelname.lower()}: {text}"


def use_plain_lines(program, verbosity):
    """Our log lines through absl's handler without its prefix, unless ``verbosity``
    (absl's flag, once parsed) asks for everything: then absl's own format. Returns
    whether they are plain."""
    if is_verbose(verbosity):
        absl_logging.get_absl_handler().setFormatter(absl_logging.PythonFormatter())
        return False
    absl_logging.get_absl_handler().setFormatter(PlainFormatter(program))
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return True
