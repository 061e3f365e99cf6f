"""Writing files so that a crash never leaves a half-written one behind."""

import contextlib
import hashlib
import os
import pathlib
import re
import tempfile

# mkstemp's names: the prefix, 8 random characters from [a-z0-9_], the suffix.
_TEMPORARY = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def temporary_target(name):
    """The file name that ``atomic_write``'s temporary file ``name`` stands for, else None."""
    match = _TEMPORARY.match(name)
    return match.group("target") if match else None


def current_umask():
    """The process's umask, read without changing it where Linux's /proc allows.

    ``os.umask`` can only be read by setting it, which would race with other
    threads creating files (TensorFlow's event writer, say).
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Opens a temporary file next to ``path``; renames it onto ``path`` on success.

    The data is flushed to disk before the rename, and the temporary file is
    removed if the block raises, so ``path`` holds either the old or the new
    complete content, never a partial one. The file gets the permissions of
    any newly created file (0666 less the umask), not mkstemp's private 0600.
    """
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def sha256(path):
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
