"""Where the data files are: a directory from a flag or ``$TFMODELS_DATA_DIR``."""

import os
import pathlib

from tfmodels.errors import DatasetError

DATA_DIR_ENV = "TFMODELS_DATA_DIR"


def data_dir_from_env():
    """``$TFMODELS_DATA_DIR`` as a Path, or None when it is unset or empty."""
    value = os.environ.get(DATA_DIR_ENV)
    return pathlib.Path(value) if value else None


def resolve_data_dir(data_dir=None):
    """Returns `data_dir`, or `$TFMODELS_DATA_DIR` when None, as a Path. An empty
    `data_dir` is refused: it would be the current folder, not the default."""
    if data_dir is not None and str(data_dir) == "":
        raise DatasetError(
            f"The data directory is empty (''): name a folder, or pass none (None, no "
            f"--data_dir) for ${DATA_DIR_ENV}.")
    if data_dir is None:
        data_dir = data_dir_from_env()
    if data_dir is None:
        raise DatasetError(
            f"No data directory: pass data_dir (--data_dir) or set {DATA_DIR_ENV} to a "
            "directory holding the data files.")
    return pathlib.Path(data_dir)


def first_file(directories, name):
    return next((d / name for d in directories if (d / name).is_file()), None)
