"""Runs scripts/train.py with a fault injected, for tests/test_faults.py.

    python tests/fault_runs.py kill_mid_epoch EPOCH STEP -- <train.py flags>
    python tests/fault_runs.py kill_mid_checkpoint EPOCH -- <train.py flags>

kill_mid_epoch sends SIGKILL to this process at that step of that epoch;
kill_mid_checkpoint writes the first bytes of that epoch's checkpoint and
then sends SIGKILL, as a power cut in the middle of the write would.
"""

import os
import pathlib
import runpy
import signal
import sys

import numpy as np

from tfmodels.run import progress

TRAIN = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "train.py"


def kill_mid_epoch(epoch, step):
    update = progress.ProgressBar.update

    def update_then_die(self, step_, examples, loss):
        if self.epoch == epoch and step_ == step:
            os.kill(os.getpid(), signal.SIGKILL)
        update(self, step_, examples, loss)

    progress.ProgressBar.update = update_then_die


def kill_mid_checkpoint(epoch):
    savez = np.savez

    def savez_then_die(file, *args, **kwargs):
        if "epoch" in kwargs and int(kwargs["epoch"]) == epoch:
            file.write(b"PK\x03\x04 the first bytes of a checkpoint")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return savez(file, *args, **kwargs)

    np.savez = savez_then_die


def main(argv):
    split = argv.index("--")
    fault, args = argv[1], [int(a) for a in argv[2:split]]
    {"kill_mid_epoch": kill_mid_epoch, "kill_mid_checkpoint": kill_mid_checkpoint}[fault](*args)
    sys.argv = [str(TRAIN), *argv[split + 1:]]
    runpy.run_path(str(TRAIN), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv)
