"""Writing files so that a crash never leaves a half-written one behind."""

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Opens a temporary file next to ``path``; renames it onto ``path`` on success.

    The data is flushed to disk before the rename, and the temporary file is
    removed if the block raises, so ``path`` holds either the old or the new
    complete content, never a partial one.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
