"""Runs a script (train.py unless named) with a fault injected, for the fault tests.

    python tests/fault_runs.py kill_mid_epoch EPOCH STEP -- [SCRIPT] <flags>
    python tests/fault_runs.py kill_mid_checkpoint EPOCH -- [SCRIPT] <flags>
    python tests/fault_runs.py signal_mid_epoch EPOCH STEP SIGNAL -- [SCRIPT] <flags>
    python tests/fault_runs.py pause_mid_epoch EPOCH STEP FLAGFILE -- [SCRIPT] <flags>
    python tests/fault_runs.py fail_writes ERRNO NAME -- [SCRIPT] <flags>

kill_mid_epoch sends SIGKILL to this process at that step of that epoch;
kill_mid_checkpoint writes the first bytes of that epoch's checkpoint and
then sends SIGKILL, as a power cut in the middle of the write would.
signal_mid_epoch sends SIGINT or SIGTERM there instead, as Ctrl-C or a job
scheduler would. pause_mid_epoch creates FLAGFILE.paused there and waits
until FLAGFILE.go exists, so that a test can act while the run holds its
directory. fail_writes makes every atomic write of a file called NAME (or
starting with NAME) fail with that errno (ENOSPC: a full disk, EROFS: a
read-only file system). SCRIPT is train.py or evaluate.py in scripts/.
"""

import errno
import os
import pathlib
import runpy
import signal
import sys
import tempfile
import time

import numpy as np

from tfmodels.run import progress

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "scripts"


def at_step(epoch, step, action):
    """Calls ``action()`` when the progress bar reaches that step of that epoch."""
    update = progress.ProgressBar.update

    def update_with_action(self, step_, examples, loss):
        if self.epoch == int(epoch) and step_ == int(step):
            action()
        update(self, step_, examples, loss)

    progress.ProgressBar.update = update_with_action


def kill_mid_epoch(epoch, step):
    at_step(epoch, step, lambda: os.kill(os.getpid(), signal.SIGKILL))


def signal_mid_epoch(epoch, step, name):
    signum = getattr(signal, name)
    # As a terminal's Ctrl-C reaches a process that has not chosen to ignore it: a test
    # runner started in the background (no job control) ignores SIGINT and passes that on,
    # and train.py rightly keeps a signal its caller ignores (nohup).
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT
                  else signal.SIG_DFL)
    at_step(epoch, step, lambda: os.kill(os.getpid(), signum))


def pause_mid_epoch(epoch, step, flag_file):
    def pause():
        pathlib.Path(f"{flag_file}.paused").touch()
        deadline = time.monotonic() + 120
        while not pathlib.Path(f"{flag_file}.go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    at_step(epoch, step, pause)


def kill_mid_checkpoint(epoch):
    savez = np.savez

    def savez_then_die(file, *args, **kwargs):
        if "epoch" in kwargs and int(kwargs["epoch"]) == int(epoch):
            file.write(b"PK\x03\x04 the first bytes of a checkpoint")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return savez(file, *args, **kwargs)

    np.savez = savez_then_die


def fail_writes(errno_name, name):
    mkstemp = tempfile.mkstemp
    code = getattr(errno, errno_name)

    def mkstemp_or_fail(*args, **kwargs):
        # tfmodels.files.atomic_write names its temporary ".<name>.<random>.tmp".
        if kwargs.get("prefix", "").startswith(f".{name}"):
            raise OSError(code, os.strerror(code))
        return mkstemp(*args, **kwargs)

    tempfile.mkstemp = mkstemp_or_fail


FAULTS = {"kill_mid_epoch": kill_mid_epoch, "kill_mid_checkpoint": kill_mid_checkpoint,
          "signal_mid_epoch": signal_mid_epoch, "pause_mid_epoch": pause_mid_epoch,
          "fail_writes": fail_writes}


def main(argv):
    split = argv.index("--")
    FAULTS[argv[1]](*argv[2:split])
    args = argv[split + 1:]
    script = SCRIPTS / (args.pop(0) if args and args[0].endswith(".py") else "train.py")
    sys.argv = [str(script), *args]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
