"""The error types the scripts turn into one line and an exit code (see ``run/cli.py``).

The four ``ValueError`` subclasses name the flag, file or directory at fault.
``NonFiniteLossError`` (a ``FloatingPointError`` naming the epoch and step) belongs to the
training loop (``numpy_ref.training``) and is re-exported here so that the scripts find
every type in one place; ``Interrupted`` is a ``BaseException``, as ``KeyboardInterrupt`` is.
"""

from numpy_ref.training import NonFiniteLossError


class ConfigError(ValueError):
    """A setting (flag) has a bad value or clashes with another setting."""


class DatasetError(ValueError):
    """A data file or directory is missing or malformed; the message names it."""


class WeightsFileError(ValueError):
    """A weights, model or checkpoint file is missing, unreadable or refused."""


class RunDirError(ValueError):
    """--model_dir cannot be used: unwritable, another run's, or unreadable files."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived (raised by the handler ``run/cli.py`` installs).

    A BaseException, like KeyboardInterrupt, so that no ``except Exception``
    swallows it. ``message`` says where the work stopped.
    """

    def __init__(self, signum, message="interrupted; rerun the same command"):
        super().__init__(message)
        self.signum, self.message = signum, message


__all__ = ["ConfigError", "DatasetError", "Interrupted", "NonFiniteLossError", "RunDirError",
           "WeightsFileError"]
