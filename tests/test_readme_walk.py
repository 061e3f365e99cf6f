"""A newcomer's walk through README.md, top to bottom, in a fresh clone.

The test clones the repository (tests/procs.fresh_clone: HEAD plus what `git add -A`
would commit; ignored files such as .venv/ and runs/ stay behind) and runs
README.md's fenced ```bash commands and ```python blocks in the order they appear, from
the clone's root, with $TFMODELS_DATA_DIR set to the real data folder (skipped without
it). The rules:

- Environment. The clone has no venv of its own: its `.venv` is a symlink to the
  checkout's, and PYTHONPATH=<clone> makes the clone's code the code that runs. Before
  `make` runs, the clone's requirements.txt and pyproject.toml get mtimes older than the
  venv's `.venv/.installed-cpu` stamp, and `make -q setup` must report the stamp up to
  date, so that `make` never reinstalls into the shared venv. The environment is the
  test's less PYTHONPATH, VIRTUAL_ENV, DISPLAY, MPLBACKEND and TF_CPP_MIN_LOG_LEVEL, as
  in a fresh shell (so TensorFlow's start-up lines would show if they were not silenced).
- Replaced or skipped. `make test` (and any `make test-*`) is skipped: it is this suite.
  `pip install -e '.[...]'` never runs here, as it would install into the shared venv:
  tests/test_install.py installs it into a fresh venv. `git clone` of the book's
  repository is replaced by a copy of tests/book_scripts/ (book-style scripts at the
  book's relative paths) to the folder the command names.
- User inputs. The files the README takes from the user are made first: `my_model.keras`
  (a small compiled Keras CNN) and `digit.png` (MNIST's first test image, a 7, as a PNG).
- Shortened. Every training command (`scripts/train.py`, and `make train` through ARGS)
  gets `--epochs=1` appended so that the walk takes a few minutes. Only that:
  `--max_train_examples` defines the run, so it would rename the run directories the
  README's later commands name, and one full MNIST epoch of each recipe costs seconds.
  Every other command runs exactly as written; a command the walk does not know fails
  the test (teach the walk what it should check).
- Checked. Each command must exit 0 and do what the README says: a training run prints
  the README's lines (the ```text block after a command shows its output), no
  TensorFlow start-up lines, and the files it names exist; every run directory the
  README names without a setting token is made by the walk; evaluate.py prints the
  accuracy training reported (the other backend, the same weights) and the per-class
  table; predict.py prints the image's class, the 7; run_book.py saves the figures the
  book's script shows beside it, named; the book's gradient check agrees to 1e-3.
- Python blocks run in order, each in a fresh interpreter from the clone's root, with
  "/path/to/data" replaced by the data folder; a block that trains gets one line
  appended that prints the final test accuracy, which must be the README's.
"""

import os
import pathlib
import re
import shlex
import shutil
import subprocess

import numpy as np
import pytest

import procs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRAIN_ARGS = ("--epochs=1",)
BOOK_REPOSITORY = "https://github.com/oreilly-japan/deep-learning-from-scratch"
STAND_IN = pathlib.Path("tests") / "book_scripts"  # in the clone
TIMEOUT_S = 600
TENSORFLOW_NOISE = ("oneDNN", "cpu_feature_guard", "absl::InitializeLog", "XLA service",
                    "Compiled cluster using XLA")
UNSET = ("PYTHONPATH", "VIRTUAL_ENV", "DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND",
         "TF_CPP_MIN_LOG_LEVEL", "TFMODELS_DATA_DIR")


def fenced_blocks(text):
    """(language, body) of each fenced block of a Markdown text, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def commands(body):
    """The command lines of a ```bash block: (line as written, its words), comments off."""
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            yield line.strip(), words


def shape(line):
    """A printed line's fixed part: what precedes its first digit or path."""
    return re.split(r"[\d/]", line, maxsplit=1)[0].strip()


class Walk:
    """The clone, its environment, and what the commands so far have made."""

    def __init__(self, clone, data_dir, label):
        self.clone, self.data_dir, self.label = clone, data_dir, label
        self.readme = (clone / "README.md").read_text(encoding="utf-8")
        self.env = {k: v for k, v in os.environ.items() if k not in UNSET}
        self.env.update(PYTHONPATH=str(clone), TFMODELS_DATA_DIR=str(data_dir))
        self.accuracy = {}  # run directory (as printed, relative) -> test accuracy (%)
        self.last_output = None  # the output of the last command run
        self.done, self.skipped = [], []

    def run(self, words, **kwargs):
        result = subprocess.run(words, cwd=self.clone, env=self.env, capture_output=True,
                                text=True, timeout=TIMEOUT_S, check=False, **kwargs)
        assert result.returncode == 0, (
            f"{shlex.join(words)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        self.last_output = result.stdout + result.stderr
        return result

    # The commands --------------------------------------------------------------------

    def command(self, line, words):
        if words[0] == "make":
            return self.make(line, words)
        if words[:2] == ["pip", "install"]:
            self.skipped.append(f"{line}  (tests/test_install.py: a fresh venv)")
            return None
        if words[:2] == ["git", "clone"] and words[2] == BOOK_REPOSITORY:
            shutil.copytree(self.clone / STAND_IN, self.clone / words[3])
            self.done.append(f"{line}  (a copy of {STAND_IN}/)")
            return None
        if words[0] == ".venv/bin/python" and words[1].startswith("scripts/"):
            script = pathlib.Path(words[1]).stem
            check = getattr(self, f"check_{script}", None)
            assert check, f"the walk has no check for scripts/{script}.py: add check_{script}"
            extra = TRAIN_ARGS if script == "train" else ()
            result = self.run([*words, *extra])
            self.done.append(shlex.join([*words, *extra]))
            return check(words, result.stdout + result.stderr)
        pytest.fail(f"the README walk does not know how to run {line!r}: teach "
                    "tests/test_readme_walk.py what to run and check")

    def make(self, line, words):
        target = words[1] if len(words) > 1 else ""
        if target.startswith("test"):
            self.skipped.append(f"{line}  (the test suite itself)")
            return None
        uptodate = subprocess.run(["make", "-q", "setup"], cwd=self.clone, env=self.env,
                                  check=False, capture_output=True)
        assert uptodate.returncode == 0, "make would reinstall into the shared venv"
        extra = [f"ARGS={shlex.join(TRAIN_ARGS)}"] if target == "train" else []
        planned = self.run(["make", "-n", *words[1:], *extra]).stdout
        assert "pip" not in planned, planned
        result = self.run([*words, *extra])
        self.done.append(shlex.join([*words, *extra]))
        if target == "train":
            self.check_train(words, result.stdout + result.stderr)

    # What each script must have done -------------------------------------------------

    def check_train(self, _words, output):
        for noise in TENSORFLOW_NOISE:
            assert noise not in output, f"TensorFlow's line {noise!r} shows:\n{output}"
        files = re.search(r"^Files: (\S+) \((.*)\)$", output, flags=re.M)
        assert files, output
        folder = pathlib.Path(files.group(1))
        assert folder.is_relative_to(self.clone / "runs"), folder
        for name in files.group(2).split(", "):
            assert (folder / name).is_file(), f"{folder / name} is missing"
        relative = folder.relative_to(self.clone).as_posix()
        assert re.search(rf"^(New run|Resuming) .*\b{re.escape(relative)}$", output,
                         flags=re.M), output
        done = re.search(r"^Done: test accuracy ([\d.]+)%", output, flags=re.M)
        assert done, output
        self.accuracy[relative] = float(done.group(1))

    def check_evaluate(self, words, output):
        model_dir = next(w.split("=", 1)[1] for w in words if w.startswith("--model_dir="))
        found = re.search(r"test images, the weights of epoch \d+: loss [\d.]+, accuracy ([\d.]+)%",
                          output)
        assert found, output
        assert "Per-class accuracy" in output, output
        # The other backend from the same weights: equal but for an argmax on a tie.
        assert float(found.group(1)) == pytest.approx(self.accuracy[model_dir], abs=0.02)

    def check_predict(self, words, output):
        images = [w for w in words[2:] if not w.startswith("-")]
        for image in images:
            found = re.search(rf"^{re.escape(image)}: (\d) \(p=([\d.]+)\)", output, flags=re.M)
            assert found, output
            assert int(found.group(1)) == self.label, output

    def check_run_book(self, words, output):
        script = (self.clone / words[2]).resolve()
        saved = re.findall(r"^Figure \d+ saved to (.+)$", output, flags=re.M)
        if "plt.show()" in script.read_text(encoding="utf-8"):
            assert saved, f"{script.name} shows a figure but none was saved:\n{output}"
        for path in map(pathlib.Path, saved):
            assert path.is_file() and path.resolve().parent == script.parent, path
            assert path.name.startswith(script.stem + "_fig"), path
        if script.stem == "gradient_check":  # backprop vs numerical, per parameter
            differences = re.findall(r"^\w+:([-\d.e]+)$", output, flags=re.M)
            assert differences and all(float(d) < 1e-3 for d in differences), output

    def check_output_shown(self, text):
        """A ```text block shows the last command's output: its lines' fixed parts appear
        in the output, in order (the numbers and paths vary). A kind of line shown more
        than once (the first and the last epoch's, around "...") need appear once: the
        walk trains one epoch."""
        wanted = []
        for line in text.splitlines():
            if line.strip() and line.strip() != "..." and shape(line) not in wanted:
                wanted.append(shape(line))
        printed = iter(shape(line) for line in self.last_output.splitlines())
        missing = [part for part in wanted if part not in printed]  # in order: `in` consumes
        assert not missing, f"not printed as the README shows: {missing}\n{self.last_output}"
        for line in text.splitlines():  # the run directory the README names, exactly
            if line.startswith(("New run in ", "Resuming ")):
                assert line in self.last_output.splitlines(), self.last_output

    # Python blocks -------------------------------------------------------------------

    def python(self, index, code, tmp_path):
        code = code.replace('"/path/to/data"', repr(str(self.data_dir)))
        stated = None
        if "training.fit(" in code:
            stated = re.search(r"it reached \*\*([\d.]+)%\*\* test\s+accuracy", self.readme)
            code += '\nprint("final test accuracy", history["test_accuracy"][-1])\n'
        path = tmp_path / f"readme_block_{index}.py"
        path.write_text(code, encoding="utf-8")
        output = self.run([str(self.clone / ".venv" / "bin" / "python"), str(path)]).stdout
        self.done.append(f"python block {index}")
        if "parity.compare(" in code:
            assert "verdict: all layers agree" in output, output
        if stated:
            final = float(re.search(r"final test accuracy ([\d.]+)", output).group(1))
            assert final == pytest.approx(float(stated.group(1)) / 100, abs=5e-5), output


def make_user_inputs(clone, mnist_dir):
    """The files the README's commands take from the user; returns digit.png's label."""
    import keras  # pylint: disable=import-outside-toplevel
    from PIL import Image  # pylint: disable=import-outside-toplevel
    from numpy_ref.book.dataset import idx  # pylint: disable=import-outside-toplevel

    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dropout(0.25),
        keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(clone / "my_model.keras")
    _, (x_test, t_test) = idx.read_mnist(mnist_dir)
    Image.fromarray(np.asarray(x_test[0], np.uint8).reshape(28, 28)).save(clone / "digit.png")
    return int(t_test[0])


def prepare_clone(tmp_path):
    """A fresh clone whose .venv is the checkout's, its make stamp up to date."""
    stamp = procs.ROOT / ".venv" / ".installed-cpu"
    if not stamp.exists():
        pytest.skip(f"{stamp} is missing: set up the checkout's venv with `make setup` first")
    clone = procs.fresh_clone(tmp_path / "tfmodels")
    (clone / ".venv").symlink_to(procs.ROOT / ".venv", target_is_directory=True)
    older = stamp.stat().st_mtime - 60
    for name in ("requirements.txt", "pyproject.toml"):
        os.utime(clone / name, (older, older))
    return clone


def test_the_readme_walked_top_to_bottom_in_a_fresh_clone(tmp_path, data_dir, mnist_dir):
    clone = prepare_clone(tmp_path)
    stamp = (clone / ".venv" / ".installed-cpu").stat().st_mtime
    walk = Walk(clone, data_dir, make_user_inputs(clone, mnist_dir))
    where = subprocess.run([str(clone / ".venv/bin/python"), "-c",
                            "import tfmodels, numpy_ref; print(tfmodels.__file__); "
                            "print(numpy_ref.__file__)"], cwd=tmp_path, env=walk.env,
                           capture_output=True, text=True, check=True).stdout.split()
    assert all(pathlib.Path(p).is_relative_to(clone) for p in where), where

    python_blocks = 0
    for language, body in fenced_blocks(walk.readme):
        if language == "bash":
            for line, words in commands(body):
                walk.command(line, words)
        elif language == "python":
            python_blocks += 1
            walk.python(python_blocks, body, tmp_path)
        elif language == "text" and walk.last_output is not None:
            walk.check_output_shown(body)

    named = set(re.findall(r"\bruns/[\w.,=-]+", walk.readme))
    plain = {name.rstrip(".,") for name in named if "=" not in name}
    assert plain <= set(walk.accuracy), (plain, walk.accuracy)
    assert python_blocks >= 2 and len(walk.accuracy) >= 4, (walk.done, walk.accuracy)
    assert (clone / ".venv" / ".installed-cpu").stat().st_mtime == stamp, "make reinstalled"
    print("ran:", *walk.done, "skipped:", *walk.skipped, sep="\n  ")
