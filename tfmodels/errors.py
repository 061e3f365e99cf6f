"""The error types the scripts turn into one line and an exit code (see ``run/cli.py``).

Each is a ``ValueError`` whose message names the flag, file or directory at fault.
``NonFiniteLossError`` belongs to the training loop (``numpy_ref.training``) and is
re-exported here so that the scripts find every type in one place.
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


__all__ = ["ConfigError", "DatasetError", "NonFiniteLossError", "RunDirError",
           "WeightsFileError"]
