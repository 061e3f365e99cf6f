"""A per-epoch progress bar with throughput, for terminals and for log files.

On a terminal it redraws one line (``\\r``) at most a few times a second; when
stderr is not a terminal (CI, a log file) it logs a line through absl at most
every ``log_every_s`` seconds instead, so logs stay short.
"""

import sys
import time

from absl import logging


class ProgressBar:
    """``update(step, examples, loss)`` after each batch; ``close()`` at the end.

    The loss shown is the mean of the epoch's batch losses so far, each batch counting
    once, as the epoch line's ``Loss:`` (the Keras TF2 tutorial's ``Mean`` metric): the
    bar's last value is that line's, a short last batch included. (Weighting the batches
    by their examples, as ``model.fit``'s bar does, would make the two differ.)
    """

    def __init__(self, total_steps, epoch, stream=None, width=30, log_every_s=30.0):
        self.total_steps, self.epoch, self.width = total_steps, epoch, width
        self.stream = stream or sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.interactive else log_every_s
        self.start = self.last_draw = time.perf_counter()
        self.drawn = False
        self.loss_sum, self.batches = 0.0, 0

    def line(self, step, examples, loss):
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        done = int(self.width * step / max(self.total_steps, 1))
        bar = "=" * done + ">" * (done < self.width) + "." * (self.width - done - 1)
        return (f"epoch {self.epoch} [{bar[:self.width]}] {step}/{self.total_steps} "
                f"loss {loss:.4f} {examples / elapsed:,.0f} examples/s")

    def update(self, step, examples, loss):
        self.loss_sum += loss
        self.batches += 1
        loss = self.loss_sum / self.batches
        now = time.perf_counter()
        if now - self.last_draw < self.interval and step < self.total_steps:
            return
        self.last_draw = now
        if self.interactive:
            self.stream.write("\r" + self.line(step, examples, loss))
            self.stream.flush()
            self.drawn = True
        else:
            logging.info(self.line(step, examples, loss))

    def close(self):
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
