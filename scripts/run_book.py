"""Runs a script of the book's repository on numpy_ref, as ``python script.py`` would.

    python scripts/run_book.py PATH/TO/deep-learning-from-scratch/ch05/train_neuralnet.py
    python scripts/run_book.py --data_dir=/path/to/data ch07/train_convnet.py [its args]

The script runs as ``__main__`` from its own folder (the working directory and
``sys.path[0]``), ``sys.argv`` its absolute path and its arguments, and ``numpy_ref.book``
stands in for the book's packages: ``common`` (and each ``common.<module>``)
and ``dataset`` (``dataset.mnist``, which reads the MNIST idx files of
``--data_dir``, default ``$TFMODELS_DATA_DIR``), so the book's
``sys.path.append(os.pardir); from common.layers import *`` resolves to numpy_ref.
A chapter network the script's folder lacks (``simple_convnet``) comes from
``numpy_ref.book`` too. Matplotlib draws to files only (Agg): ``plt.show()``
returns at once.

Flags before the script's path are this runner's; everything after it is the
script's. Exit codes: the script's own, else (tfmodels/run/cli.py) 2 for no such
script or a bad flag, 3 when the MNIST files or a params file are missing,
unreadable or refused (a pickle), each with one line on stderr.
"""

import importlib
import os
import pathlib
import runpy
import sys
import traceback
import warnings

from absl import app, flags

import numpy_ref.book
from numpy_ref.book.dataset import mnist as book_mnist
from numpy_ref.book.dataset.idx import MnistFileError
from numpy_ref.network.serialization import NpzFileError
from tfmodels.data import location
from tfmodels.run import cli

DATA_DIR = flags.DEFINE_string("data_dir", None, "The MNIST idx files (or a mnist/ folder of "
                               "them) for dataset.mnist; default $TFMODELS_DATA_DIR.")
flags.FLAGS.set_gnu_getopt(False)  # the first argument that is not a flag is the script
USAGE = "run_book.py [--data_dir=DIR] PATH/TO/script.py [its arguments]"


def stand_in_modules(script_dir):
    """{module name the book imports: numpy_ref module} for a script in ``script_dir``."""
    def module(name):
        return importlib.import_module(f"numpy_ref.book{name}")

    modules = {"common": module(""), "dataset": module(".dataset"),
               "dataset.mnist": module(".dataset.mnist")}
    modules.update({f"common.{name}": module(f".{name}")
                    for name in numpy_ref.book.COMMON_MODULES})
    modules.update({name: module(f".{name}") for name in numpy_ref.book.CHAPTER_MODULES
                    if not (script_dir / f"{name}.py").exists()})  # the folder's own wins
    return modules


def main(argv):
    program = os.path.basename(argv[0])
    if len(argv) < 2:
        cli.fail(program, cli.EXIT_USAGE, f"no script given; usage: {USAGE}")
    script = pathlib.Path(argv[1]).resolve()
    if not script.is_file():
        cli.fail(program, cli.EXIT_USAGE, f"no such script: {argv[1]}")
    data_dir = DATA_DIR.value or location.data_dir_from_env()
    book_mnist.dataset_dir = None if data_dir is None else str(data_dir)
    os.environ["MPLBACKEND"] = "Agg"
    warnings.filterwarnings("ignore", message="FigureCanvasAgg is non-interactive")

    sys.modules.update(stand_in_modules(script.parent))
    sys.argv = [str(script), *argv[2:]]  # as for ``python /path/to/script.py``
    sys.path[0] = str(script.parent)
    os.chdir(script.parent)
    try:
        runpy.run_path(str(script), run_name="__main__")
    except (MnistFileError, NpzFileError) as e:
        cli.fail(program, cli.EXIT_DATA, e)
    except Exception as e:  # pylint: disable=broad-except
        print_script_traceback(e, script)
        sys.exit(1)


def print_script_traceback(error, script):
    """The traceback ``python script.py`` prints: from the script's first frame on."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != str(script):
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
