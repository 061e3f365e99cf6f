"""One process at a time in a run directory: an exclusive ``fcntl.flock``.

The lock is taken on the file ``.tfmodels.lock`` inside the directory and
held for as long as the process works there. The kernel releases a flock
when its process ends, however it ends (SIGKILL, power cut of the process),
so a crashed run never leaves a stale lock behind. The holder writes who it
is (pid, host, command, start time) into the file, so that a refused second
process can name it.
"""

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import shlex
import socket
import sys

from tfmodels.errors import RunDirError
from tfmodels.run import names


# The most of the lock file read to name its holder: a holder writes a line of a few
# hundred bytes; anything longer is not its record, and is not read whole.
HOLDER_BYTES = 4096


def _describe_holder(path):
    """Who holds the lock, in words, from what the holder wrote into the file (read up to
    HOLDER_BYTES); whatever else the file holds names no one, and fails nothing."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HOLDER_BYTES)
    except OSError:
        raw = b""
    if not raw.strip():
        return "another process (it has not written its details yet)"
    try:
        holder = json.loads(raw.decode())
        return (f"pid {holder['pid']} on {holder['host']} ({holder['command']}, "
                f"started {holder['started']})")
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return (f"another process ({path} does not hold the details a holder writes, so "
                "it is not named)")


def _holder_record():
    argv = [os.path.basename(sys.argv[0]), *sys.argv[1:]] if sys.argv else ["python"]
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "command": shlex.join(argv),
                       "started": datetime.datetime.now().astimezone().isoformat(
                           timespec="seconds")}) + "\n"


def _open_locked(path, folder):
    """An fd of ``path`` holding the exclusive lock; RunDirError if another has it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise RunDirError(f"--model_dir={folder} cannot be locked: {path} cannot be "
                              f"opened for writing ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(f"--model_dir={folder} is in use by {_describe_holder(path)}; "
                              "wait for it to finish or pass another --model_dir") from None
        # Locked; but if the file was replaced between open and flock, the lock
        # guards a file nobody else will open: try again on the current one.
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        os.close(fd)


@contextlib.contextmanager
def held(folder, keep_file=None):
    """Holds ``folder``'s lock for the duration of the block (the folder must exist).

    ``keep_file()``, asked at the end, says whether the lock file stays; it
    is removed while still locked, and ``_open_locked`` retries when that
    happens under a process waiting for it, so removing it is safe.
    """
    folder = pathlib.Path(folder)
    path = folder / names.LOCK
    fd = _open_locked(path, folder)
    try:
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder_record().encode(), 0)
        except OSError as e:
            raise RunDirError(f"could not write {path} ({e.strerror or e})") from None
        yield path
    finally:
        with contextlib.suppress(OSError):
            if keep_file is None or keep_file():
                # Emptied before release: a later reader never names a finished process.
                os.ftruncate(fd, 0)
            else:
                path.unlink()
        os.close(fd)
