"""Helpers for tests that start Python processes (scripts, distributed workers)."""

import os
import pathlib
import socket
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAULT_RUNS = ROOT / "tests" / "fault_runs.py"


def child_env(**extra):
    """The environment for a child Python: the repo importable, TF's C++ logs quiet."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def free_ports(n):
    """n currently free TCP ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def wait_all(processes, timeout_s, name="process"):
    """Outputs of `processes` (started with stdout=PIPE); kills them all on a timeout.

    Asserts that every one exited 0, showing the tail of the output of any that did not.
    """
    deadline = time.monotonic() + timeout_s
    outputs = []
    try:
        for process in processes:
            remaining = max(deadline - time.monotonic(), 0.1)
            outputs.append(process.communicate(timeout=remaining)[0])
    except subprocess.TimeoutExpired:
        for process in processes:
            process.kill()
            process.communicate()
        pytest.fail(f"{name} did not finish within {timeout_s} s")
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
    return outputs


def heavy_modules_after(import_statement):
    """Which of tensorflow, scipy and keras a fresh Python has loaded after the statement."""
    code = (f"import sys; {import_statement}; "
            "print(sorted(m for m in ('tensorflow', 'scipy', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=child_env(),
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def script_env(data_dir=None, **extra):
    """child_env for a script: $TFMODELS_DATA_DIR is ``data_dir`` or unset."""
    env = child_env(**extra)
    env.pop("TFMODELS_DATA_DIR", None)
    if data_dir is not None:
        env["TFMODELS_DATA_DIR"] = str(data_dir)
    return env


def run_python(path, *args, data_dir=None, timeout=300, cwd=ROOT, env=None):
    """The Python file ``path`` run to completion, output captured."""
    return subprocess.run([sys.executable, str(path), *args], env=env or script_env(data_dir),
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_script(name, *args, **kwargs):
    """scripts/<name> run to completion, output captured (``run_python``'s options)."""
    return run_python(ROOT / "scripts" / name, *args, **kwargs)


def run_with_fault(fault, fault_args, name, *args, data_dir=None, timeout=300):
    """scripts/<name> run under tests/fault_runs.py with that fault injected."""
    return subprocess.run([sys.executable, str(FAULT_RUNS), fault, *map(str, fault_args), "--",
                           name, *args], env=script_env(data_dir), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def assert_fails_with(proc, code, *fragments):
    """Exit code `code`, and one `<script>: error: ...` line holding every fragment."""
    assert proc.returncode == code, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
