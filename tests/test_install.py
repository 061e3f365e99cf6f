"""README.md's `pip install -e '.[tf]'`, in a fresh venv, and what its extras install.

The README's "in an environment of your own" line is run as written, from the root of a
fresh clone (tests/procs.fresh_clone), by the pip of a venv made for this module with
`python3.11 -m venv` (never the checkout's shared .venv). The packages come from pip's
configured indexes, wheel folders and cache; when pip cannot reach a distribution there
(no network, no cache), the tests skip with pip's last error line. The install takes
30-70 s here (local wheel folders and indexes), the venv (about 1.8 GB) is removed
afterwards.

In that venv `tfmodels` and `numpy_ref` import from the clone and a one-epoch
scripts/train.py run works from another folder. The '.[gpu]' and '.[peers]' extras
are not installed (CUDA wheels are gigabytes): their metadata, and pip's `--dry-run`
resolution, must say what the README says they add.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from packaging.requirements import Requirement

import procs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# pip's words when a distribution cannot be had here (rather than a broken project).
UNREACHABLE = ("No matching distribution found", "Could not find a version",
               "NewConnectionError", "Failed to establish a new connection",
               "Temporary failure in name resolution", "Network is unreachable",
               "ProxyError", "Read timed out")
PIP_TIMEOUT_S = 600


def readme_pip_line():
    """The README's `pip install -e '.[...]'` command, as words, and the extras it names."""
    text = (procs.ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"^pip install -e '\.\[tf\]'.*$", text, flags=re.M)
    assert line, "README.md no longer shows `pip install -e '.[tf]'`"
    return line.group(0), re.findall(r"'\.\[(\w+)\]'", line.group(0))


def clean_env(**extra):
    """The environment of a fresh shell: no PYTHONPATH or venv of the test's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "TFMODELS_DATA_DIR", "PYTHONHOME")}
    return {**env, **extra}


def pip(python, *args, cwd):
    """`python -m pip ARGS` from ``cwd``; a skip naming pip's last line when a
    distribution cannot be reached, a failure on any other error."""
    result = subprocess.run([str(python), "-m", "pip", *args], cwd=cwd, env=clean_env(),
                            capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines()
                  if line.strip() and "is ignored" not in line]
        last = errors[-1] if errors else f"exit {result.returncode}"
        if any(phrase in result.stderr for phrase in UNREACHABLE):
            pytest.skip(f"pip cannot get the packages here: {last}")
        pytest.fail(f"pip {' '.join(args)} failed: {result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv python, clone) after the README's pip line ran in a fresh venv from the clone."""
    folder = tmp_path_factory.mktemp("install")
    clone = procs.fresh_clone(folder / "tfmodels")
    venv = folder / "venv"
    base = shutil.which("python3.11") or sys.executable
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    assert python.parent.parent.resolve() != (procs.ROOT / ".venv").resolve()
    readme_pip_line()  # the line run below must still be the README's
    # The README's line; --no-compile (no .pyc files written ahead) only halves the files
    # to write and remove.
    pip(python, "install", "--quiet", "--no-compile", "-e", ".[tf]", cwd=clone)
    yield python, clone
    shutil.rmtree(venv, ignore_errors=True)


def requires_by_extra(python):
    """{extra or "": [Requirement, ...]} from the installed tfmodels' metadata."""
    code = "import importlib.metadata as m, json; print(json.dumps(m.requires('tfmodels')))"
    printed = subprocess.run([str(python), "-c", code], env=clean_env(), check=True,
                             capture_output=True, text=True, timeout=120).stdout
    grouped = {}
    for text in json.loads(printed):
        requirement = Requirement(text)
        extra = re.search(r"extra == \"(\w+)\"", str(requirement.marker or ""))
        requirement.marker = None
        grouped.setdefault(extra.group(1) if extra else "", []).append(requirement)
    return grouped


def test_the_tf_extra_installs_a_working_library(installed, tmp_path, mnist_dir):
    python, clone = installed
    where = subprocess.run(
        [str(python), "-c", "import tfmodels, numpy_ref; print(tfmodels.__file__); "
                            "print(numpy_ref.__file__)"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr[-3000:]
    assert all(pathlib.Path(p).resolve().is_relative_to(clone.resolve())
               for p in where.stdout.split()), where.stdout
    run_dir = tmp_path / "run"
    trained = subprocess.run(
        [str(python), str(clone / "scripts" / "train.py"), "--max_train_examples=500",
         "--epochs=1", f"--model_dir={run_dir}"],
        cwd=tmp_path, env=clean_env(TFMODELS_DATA_DIR=str(mnist_dir)), capture_output=True,
        text=True, timeout=600)
    output = trained.stdout + trained.stderr
    assert trained.returncode == 0, output[-4000:]
    assert re.search(r"^Done: test accuracy [\d.]+%", output, flags=re.M), output
    for name in ("weights.npz", "model.keras", "history.json", "curves.png"):
        assert (run_dir / name).is_file(), name


def test_the_extras_hold_what_the_readme_says(installed):
    """tf: TensorFlow for the CPU; gpu: the same but TensorFlow with CUDA (the Makefile's
    GPU=1 pin); peers: JAX and PyTorch. Every extra the README's line names exists."""
    python, clone = installed
    _, named = readme_pip_line()
    grouped = requires_by_extra(python)
    assert set(named) <= set(grouped), (named, sorted(grouped))
    by_name = {extra: {r.name: r for r in reqs} for extra, reqs in grouped.items()}
    tf, gpu, peers = by_name["tf"], by_name["gpu"], by_name["peers"]
    assert "tensorflow-cpu" in tf and "tensorflow" not in tf
    assert "tensorflow" in gpu and "and-cuda" in gpu["tensorflow"].extras
    assert "tensorflow-cpu" not in gpu
    assert gpu["tensorflow"].specifier == tf["tensorflow-cpu"].specifier
    assert {str(r) for n, r in gpu.items() if n != "tensorflow"} == {
        str(r) for n, r in tf.items() if n != "tensorflow-cpu"}
    assert {"jax", "torch"} <= set(peers)
    makefile = (clone / "Makefile").read_text(encoding="utf-8")
    pin = re.search(r'^TF_GPU := "(.+)"$', makefile, flags=re.M).group(1)
    assert Requirement(pin) == gpu["tensorflow"], (pin, gpu["tensorflow"])


@pytest.mark.parametrize("extra,wanted", [
    ("gpu", ("tensorflow", "nvidia-")),  # TensorFlow with the CUDA libraries' wheels
    ("peers", ("jax", "torch", "optax")),
])
def test_pip_resolves_each_extra_to_what_the_readme_says(installed, tmp_path, extra,
                                                         wanted):
    python, clone = installed
    report = tmp_path / "report.json"
    pip(python, "install", "--dry-run", "--quiet", "--report", str(report), "-e",
        f".[{extra}]", cwd=clone)
    names = [item["metadata"]["name"].lower()
             for item in json.loads(report.read_text())["install"]]
    for name in wanted:
        assert any(n == name or (name.endswith("-") and n.startswith(name))
                   for n in names), (name, names)
    if extra == "gpu":
        assert "tensorflow-cpu" not in names
