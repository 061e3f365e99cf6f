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
``numpy_ref.book`` too.

Pickles: the book keeps weights in pickles of a dict of NumPy arrays (ch03's
``sample_weight.pkl``, the ``params.pkl`` its ``save_params`` writes). While the script
runs, ``pickle.load``, ``pickle.loads`` and ``pickle.Unpickler`` (and ``_pickle``'s) are
``numpy_ref.book.safe_pickle``'s: they unpickle arrays, dtypes, dicts, lists, tuples,
strings and numbers, and refuse a pickle that names any other global (a crafted file
would run it) before anything it names is imported or run.

Figures: each figure the script shows (``plt.show()``) is saved as
``<script>_fig<N>.png`` (N counts the figures shown, from 1) in ``--figures_dir``, by
default the script's own folder, and the path is printed. With a display (Linux's
``$DISPLAY`` or ``$WAYLAND_DISPLAY``, macOS, Windows) matplotlib also opens its usual
window and ``plt.show()`` waits for it, as under ``python script.py``; without one it
draws with Agg and ``plt.show()`` returns at once. ``$MPLBACKEND``, when set, is obeyed.

BLAS threads: as train.py's NumPy backend chooses them (``numpy_ref.fast.threads``):
one, unless ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set.
The book's matrices are small, and OpenBLAS's default of a thread per core loses on
them: the ch06 optimizer comparison (300 steps, 2 cores) took 100-115 s with two
threads against 11-19 s with one.

Flags before the script's path are this runner's; everything after it is the
script's. Exit codes: the script's own, else (tfmodels/run/cli.py) 2 for no such
script, a bad flag or a --figures_dir that cannot be written to, 3 when the MNIST files
or a params file are missing, unreadable or refused (a pickle that is damaged or names
what the book's files do not), 4 when a figure could not be saved (disk full), each
with one line on stderr.
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
from numpy_ref.book.safe_pickle import PickleFileError, standing_in_for_pickle
from numpy_ref.fast import threads
from numpy_ref.network.serialization import NpzFileError
from tfmodels.data import location
from tfmodels.run import cli

DATA_DIR = flags.DEFINE_string("data_dir", None, "The MNIST idx files (or a mnist/ folder of "
                               "them) for dataset.mnist; default $TFMODELS_DATA_DIR.")
FIGURES_DIR = flags.DEFINE_string("figures_dir", None, "Where each figure the script shows is "
                                  "saved, as <script>_fig<N>.png; default: the script's "
                                  "folder.")
flags.FLAGS.set_gnu_getopt(False)  # the first argument that is not a flag is the script
USAGE = "run_book.py [--data_dir=DIR] [--figures_dir=DIR] PATH/TO/script.py [its arguments]"


class FigureSaveError(Exception):
    """A figure could not be written (the message names the file)."""


def has_display(environ, platform):
    """Whether matplotlib can open windows here: always on macOS and Windows, on other
    systems when an X11 or Wayland display is named."""
    if platform == "darwin" or platform.startswith("win"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def figure_backend(environ, platform):
    """The ``MPLBACKEND`` to set: None (matplotlib's own choice: the user's $MPLBACKEND,
    or with a display its interactive default) or "Agg" (no display: files only)."""
    if environ.get("MPLBACKEND") or has_display(environ, platform):
        return None
    return "Agg"


class FigureSaver:
    """Stands in for ``plt.show``: saves each open figure as ``<stem>_fig<N>.png`` in
    ``folder`` and prints where, then calls matplotlib's ``show`` (a window with an
    interactive backend; nothing with Agg).

    N counts figures in the order they are first shown. A blocking ``show`` returns
    once its windows are closed, and the figures with them; with Agg they would stay
    open and be saved again at the next ``show``, so they are closed here too (unless
    ``show(block=False)`` or interactive mode keeps them, as on screen).
    """

    def __init__(self, plt, folder, stem):
        self.plt, self.folder, self.stem, self.show = plt, folder, stem, plt.show
        self.saved = 0

    def __call__(self, *args, **kwargs):
        if not self.plt.get_fignums():
            return self.show(*args, **kwargs)
        active = self.plt.gcf()
        figures = [self.plt.figure(number) for number in self.plt.get_fignums()]
        self.plt.figure(active)  # the script's current figure stays current
        for figure in figures:
            self.saved += 1
            self.save(figure, self.folder / f"{self.stem}_fig{self.saved}.png")
        result = self.show(*args, **kwargs)
        block = kwargs.get("block", args[0] if args else None)
        if block or (block is None and not self.plt.isinteractive()):
            for figure in figures:
                self.plt.close(figure)
        return result

    def save(self, figure, path):
        try:
            figure.savefig(path)
        except OSError as e:
            raise FigureSaveError(f"could not save figure {self.saved} to {path} "
                                  f"({e.strerror or e})") from None
        print(f"Figure {self.saved} saved to {path}", flush=True)


def figures_folder(program, script):
    """--figures_dir (made if need be) or the script's folder; exit 2 if not writable."""
    folder = pathlib.Path(FIGURES_DIR.value).resolve() if FIGURES_DIR.value else script.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        cli.fail(program, cli.EXIT_USAGE, f"--figures_dir={FIGURES_DIR.value}: cannot be "
                                          f"made ({e.strerror or e})")
    if not os.access(folder, os.W_OK | os.X_OK):
        flag = f"--figures_dir={FIGURES_DIR.value}" if FIGURES_DIR.value else f"{folder}"
        cli.fail(program, cli.EXIT_USAGE, f"{flag}: not a folder figures can be written to "
                                          "(give a writable --figures_dir)")
    return folder


def show_to_files(folder, stem):
    """Chooses matplotlib's backend (``figure_backend``) and makes ``plt.show`` a
    ``FigureSaver``; a non-interactive backend's warning that it cannot show is dropped."""
    backend = figure_backend(os.environ, sys.platform)
    if backend is not None:
        os.environ["MPLBACKEND"] = backend
    warnings.filterwarnings("ignore", message=r"FigureCanvas\w* is non-interactive")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    plt.show = FigureSaver(plt, folder, stem)


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
    show_to_files(figures_folder(program, script), script.stem)

    sys.modules.update(stand_in_modules(script.parent))
    sys.argv = [str(script), *argv[2:]]  # as for ``python /path/to/script.py``
    sys.path[0] = str(script.parent)
    os.chdir(script.parent)
    try:
        with threads.blas_threads(), standing_in_for_pickle():  # one BLAS thread unless set
            runpy.run_path(str(script), run_name="__main__")
    except (MnistFileError, NpzFileError, PickleFileError) as e:
        cli.fail(program, cli.EXIT_DATA, e)
    except FigureSaveError as e:
        cli.fail(program, cli.EXIT_MODEL_DIR, e)
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
