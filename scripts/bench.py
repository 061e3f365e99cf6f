"""Benchmarks both implementations side by side; writes BENCHMARKS.md and benchmarks/latest.json.

    .venv/bin/python scripts/bench.py            # the full run (minutes on 2 cores)
    .venv/bin/python scripts/bench.py --quick --output_dir=/tmp/bench   # about 2 minutes

Sections: training throughput (Keras fit, the custom loops, numpy_ref, and the JAX and
PyTorch peers when installed: pip install -e '.[peers]'), backprop against numerical
gradients on the study notes' DNN, the input pipeline on a full-size SVHN file, the
book's SimpleConvNet (numpy_ref against the custom loop, one thread), and the LSTM of
`--model=lstm` (numpy_ref against the custom loops and the peers, one thread, batch 128).

--output_dir is made and tried before anything is measured: one that cannot take the
report (or an empty one) fails at once with one line and exit 2, as does an argument
that is no flag. MNIST is read from
--data_dir (or $TFMODELS_DATA_DIR) before anything is measured too: a folder without a
readable MNIST fails at once with one line and exit 3, an empty --data_dir with exit 2.
Should a report file still fail to be written after measuring (a full disk), the results
are printed on stdout as the JSON of latest.json, then one line names the file, exit 4
(tfmodels/run/cli.py).
"""

import os
import pathlib
import sys

from tfmodels.run import cli, console

if __name__ == "__main__":  # first: TensorFlow, if this process loads it, stays quiet
    console.quiet_start(sys.argv)

from absl import app  # pylint: disable=wrong-import-position
from absl import flags
from absl import logging

from benchmarking import runner

QUICK = flags.DEFINE_bool("quick", False, "Small sizes: checks that every section runs, in "
                          "about two minutes. Its figures are not for quoting.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", str(runner.REPO_ROOT),
                                 "Where BENCHMARKS.md and benchmarks/latest.json go.")
DATA_DIR = flags.DEFINE_string("data_dir", None, "Directory with MNIST (as for "
                               "scripts/train.py); default $TFMODELS_DATA_DIR. Without one, "
                               "the throughput runs on random MNIST-shaped images.")
cli.refuse_empty("output_dir", f"--output_dir is empty: give a folder (by default "
                 f"{runner.REPO_ROOT})")
cli.refuse_empty("data_dir", "--data_dir is empty: give the folder holding MNIST (by default "
                 "$TFMODELS_DATA_DIR; without one, random MNIST-shaped images)")


@cli.guarded
def main(argv):
    cli.refuse_arguments(argv)
    logging.set_verbosity(logging.INFO)
    data_dir = DATA_DIR.value or os.environ.get("TFMODELS_DATA_DIR") or None
    config = runner.QUICK if QUICK.value else runner.FULL
    try:
        runner.run(config, pathlib.Path(OUTPUT_DIR.value), mnist_dir=data_dir,
                   quick=QUICK.value)
    except runner.OutputDirError as e:
        cli.fail("bench.py", cli.EXIT_USAGE, f"{e} (give a writable --output_dir)")
    except runner.ReportWriteError as e:
        cli.fail("bench.py", cli.EXIT_MODEL_DIR, e)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
