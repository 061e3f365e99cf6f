"""How many threads BLAS may use while numpy_ref trains: one, unless the user chose.

numpy_ref's matrix products are small (a batch of 32 through a 784-32-64-128-256-10
network is a few dozen microseconds each), and OpenBLAS's default of one thread
per core loses on them: its threads spin waiting for one another, and when
another process keeps a core busy they wait for that core. Measured on 2 cores
(Mymodel, batch 32): 40 times slower with OpenBLAS's two threads beside another
job than with one thread; on a quiet machine one thread is as fast or faster for
this network. So training runs BLAS on one thread (``threadpoolctl``), unless
OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS is set: then the user's
count stands. Two threads do pay for wide layers on a quiet machine (512-512:
6 s against 8 s an epoch of 12,000 images); they also sum in another order, so
float32 results differ in their last bits.

Without ``threadpoolctl`` installed, the libraries keep their own defaults.
"""

import contextlib
import os

try:
    import threadpoolctl
except ImportError:  # an optional dependency of numpy_ref
    threadpoolctl = None

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def chosen_by_environment():
    """{variable: value} of the thread variables the environment sets."""
    return {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}


def blas_threads(threads="auto"):
    """A context in which BLAS uses ``threads`` threads.

    Args:
        threads: "auto": one thread, unless the environment sets a thread variable;
            an int: that many; None: the libraries' own setting, untouched.
    """
    if threads is None or threadpoolctl is None:
        return contextlib.nullcontext()
    if threads == "auto":
        if chosen_by_environment():
            return contextlib.nullcontext()
        threads = 1
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be 'auto', None or a positive int. "
                         f"Received: threads={threads!r}")
    return _controller().limit(limits=threads, user_api="blas")


_CONTROLLER = []


def _controller():
    """One ``ThreadpoolController`` for the process: making one scans every loaded library
    (2 ms with TensorFlow loaded, paid per ``fit`` call otherwise); its ``limit`` is cheap.
    NumPy's BLAS is loaded with NumPy, before this is first called."""
    if not _CONTROLLER:
        _CONTROLLER.append(threadpoolctl.ThreadpoolController())
    return _CONTROLLER[0]
