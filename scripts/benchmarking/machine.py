"""What the benchmarks ran on: CPU, memory, library versions, BLAS, and a GEMM ceiling."""

import ctypes
import datetime
import glob
import importlib.metadata
import os
import pathlib
import platform
import time

import numpy as np

# Variables that change how the libraries use the CPU; reported, never changed here.
_THREAD_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
               "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")
# package -> the distributions that install it (TensorFlow comes as tensorflow-cpu by default)
_PACKAGES = {"numpy": ("numpy",), "scipy": ("scipy",),
             "tensorflow": ("tensorflow", "tensorflow-cpu"), "keras": ("keras",)}


def _cpuinfo():
    fields = {}
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())  # the first CPU's entry
    return fields


def _memory_gib():
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _openblas_library():
    """NumPy's bundled OpenBLAS (scipy-openblas wheels) as a ctypes library, or None."""
    libs = pathlib.Path(np.__file__).parent.parent / "numpy.libs"
    for path in sorted(glob.glob(str(libs / "libscipy_openblas*.so*"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _openblas_call(lib, names, restype):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = restype
            return fn()
    return None


def blas_info():
    """The BLAS NumPy uses: name and version from its build, and at run time (for
    OpenBLAS) the kernel chosen for this CPU and the thread count."""
    info = {}
    try:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info.update(name=build.get("name"), version=build.get("version"))
    except Exception:  # pylint: disable=broad-except  # the layout varies across NumPy builds
        pass
    lib = _openblas_library()
    if lib is not None:
        core = _openblas_call(lib, ("scipy_openblas_get_corename64_",
                                    "scipy_openblas_get_corename"), ctypes.c_char_p)
        threads = _openblas_call(lib, ("scipy_openblas_get_num_threads64_",
                                       "scipy_openblas_get_num_threads"), ctypes.c_int)
        info.update(kernel=core.decode() if core else None, threads=threads)
    return info


def _version(distribution):
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe():
    """A dict naming the machine and the software, for the report."""
    cpu = _cpuinfo()
    flags = cpu.get("flags", "").split()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags]
    versions = {}
    for package, distributions in _PACKAGES.items():
        versions[package] = next(filter(None, map(_version, distributions)), None)
    versions["python"] = platform.python_version()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_family_model": f"family {cpu.get('cpu family', '?')}, model {cpu.get('model', '?')}",
        "simd": simd,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "os": platform.platform(),
        "versions": versions,
        "blas": blas_info(),
        "environment": {k: os.environ[k] for k in _THREAD_ENV if k in os.environ},
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def gemm_gflops(matmul, n, repeats):
    """Median GFLOP/s (2 n^3 flops per product) of `matmul()` on n x n operands."""
    matmul()  # warm-up: allocation, thread start
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul()
        seconds.append(time.perf_counter() - start)
    return 2 * n**3 / sorted(seconds)[len(seconds) // 2] / 1e9


def numpy_gemm_gflops(n=2048, repeats=5):
    """The float32 rate of one large NumPy (BLAS) matrix product."""
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    return gemm_gflops(lambda: a @ b, n, repeats)
