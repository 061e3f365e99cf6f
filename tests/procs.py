"""Helpers for tests that start Python processes (scripts, distributed workers)."""

import os
import pathlib
import shutil
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


def fresh_clone(dest):
    """A `git clone` of this checkout at ``dest``, plus the working tree's uncommitted
    changes to tracked files and its untracked files that git does not ignore: what
    `git add -A` would commit (on a clean checkout, exactly a clone of HEAD; ignored
    things such as .venv/ and runs/ stay out). Skips when the repository root is not a
    git checkout."""
    def git(*args, **kwargs):
        return subprocess.run(["git", *args], capture_output=True, check=False, **kwargs)

    top = git("-C", str(ROOT), "rev-parse", "--show-toplevel", text=True) if shutil.which(
        "git") else None
    if top is None or top.returncode != 0 or pathlib.Path(top.stdout.strip()) != ROOT:
        pytest.skip(f"{ROOT} is not the root of a git checkout (or git is missing): "
                    "nothing to clone")
    cloned = git("clone", "--quiet", str(ROOT), str(dest), text=True)
    assert cloned.returncode == 0, cloned.stderr
    changes = git("-C", str(ROOT), "diff", "HEAD", "--binary").stdout
    if changes:
        applied = git("-C", str(dest), "apply", "--whitespace=nowarn", input=changes)
        assert applied.returncode == 0, applied.stderr.decode(errors="replace")
    untracked = git("-C", str(ROOT), "ls-files", "--others", "--exclude-standard", "-z",
                    text=True).stdout
    for name in filter(None, untracked.split("\0")):
        target = pathlib.Path(dest) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return pathlib.Path(dest)
