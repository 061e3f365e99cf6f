"""What the scripts print: TensorFlow's start-up lines off (``-v 1`` brings them back), our
lines without absl's prefix, ``--help`` exiting 0, a progress bar that ends on the epoch
line's loss, a next-step command that works when pasted anywhere, and curves.png.

The fast tests run in this process, with a stand-in package that writes what TensorFlow's
libraries write while they load; the integration tests start a fresh Python (with that
stand-in as ``tensorflow``) or the scripts themselves (with the real one).
"""

import concurrent.futures
import importlib
import io
import logging as py_logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import warnings

import pytest
from absl import app, flags
from absl import logging as absl_logging

import procs
from fakes import tiny_digits
from tfmodels.run import artifacts, cli, console, experiment
from tfmodels.run.config import RunConfig
from tfmodels.run.progress import ProgressBar

# What TensorFlow writes while it loads (2.21 on this project's machine; the dated line is
# the format of older versions).
BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = ("I0000 00:00:1796677296.771250   29276 port.cc:153] oneDNN custom operations are "
          "on. You may see slightly different numerical results ...")
CPU_GUARD = ("2024-01-11 05:40:05.061907: I tensorflow/core/platform/cpu_feature_guard.cc:182] "
             "This TensorFlow binary is optimized to use available CPU instructions ...")
WARNING = "W0000 00:00:1796677296.8   29276 cuda_executor.cc:1] a warning"
ERROR = "E0000 00:00:1796677296.9   29276 cuda_dnn.cc:8579] Unable to register cuDNN factory"
# A line that absl (C++ or Python) prefixed: "I1207 21:13:14.127523 1405937 experiment.py:92] "
PREFIXED = re.compile(r"[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] |\d{4}-\d\d-\d\d .*\] ")
NOISE = ("absl::InitializeLog", "oneDNN", "XLA", "MLIR", "cpu_feature_guard", "StreamExecutor")
BAR_LOSS = re.compile(r"^epoch 1 \[[=>.]+\] (\d+)/\1 loss (\d+\.\d{4}) ", re.MULTILINE)
EPOCH_LOSS = re.compile(r"^Epoch 1, Loss: (\d+\.\d{4}),", re.MULTILINE)


def noise(text):
    """The lines of ``text`` that TensorFlow or absl wrote, not our code."""
    return [line for line in text.splitlines()
            if PREFIXED.match(line) or any(word in line for word in NOISE)]


# -- the command line read before absl parses it ---------------------------------------

@pytest.mark.parametrize("args, verbosity", [
    ([], None), (["-v", "1"], 1), (["-v=2"], 2), (["--v=1"], 1), (["--verbosity", "1"], 1),
    (["--verbosity=-1"], -1), (["-verbosity=1", "--verbosity=0"], 0),
    (["--epochs=3", "-v"], None), (["-v", "x"], None), (["--", "-v", "1"], None),
    (["--vv=1"], None),
], ids=lambda value: repr(value))
def test_the_verbosity_is_read_before_the_flags_are_parsed(args, verbosity):
    assert console.requested_verbosity(["train.py", *args]) == verbosity
    assert console.is_verbose(verbosity) == (verbosity is not None and verbosity >= 1)


@pytest.mark.parametrize("level, kept", [
    (0, [BANNER, ONEDNN, CPU_GUARD, WARNING, ERROR, "a Python line"]),
    (1, [WARNING, ERROR, "a Python line"]),
    (2, [ERROR, "a Python line"]),
    (3, ["a Python line"]),
])
def test_import_lines_are_kept_at_or_above_the_level(level, kept):
    lines = [BANNER, ONEDNN, CPU_GUARD, WARNING, ERROR, "a Python line"]
    assert [line for line in lines if console.keep_import_line(line, level)] == kept


# -- the import filter and quiet_start in this process -------------------------------------

def test_filtered_stderr_writes_only_the_lines_it_keeps(capfd):
    """What a library writes to descriptor 2. (Under pytest, sys.stderr bypasses it; the
    fresh-Python tests below see Python's writes go through the filter too.)"""
    with console.filtered_stderr(lambda line: "keep" in line):
        os.write(2, b"drop: one\nkeep: two\ndrop: three\nkeep: four\n")
    assert capfd.readouterr().err == "keep: two\nkeep: four\n"


def test_the_import_hook_filters_its_package_once(tmp_path, monkeypatch, capfd):
    package = "stand_in_for_tensorflow"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(FAKE_TENSORFLOW)
    monkeypatch.syspath_prepend(str(tmp_path))
    hook = console.QuietImport(package, lambda line: console.keep_import_line(line, 2))
    monkeypatch.setattr(sys, "meta_path", [hook, *sys.meta_path])
    try:
        module = importlib.import_module(package)
    finally:
        sys.modules.pop(package, None)
    # (Under pytest, the package's sys.stderr line bypasses the filter and comes first.)
    assert sorted(capfd.readouterr().err.splitlines()) == [ERROR, "python stderr while importing"]
    assert hook not in sys.meta_path  # once
    assert type(module.__loader__).__name__ == "SourceFileLoader"  # the package's own


@pytest.fixture
def stop_handlers():
    """SIGINT's and SIGTERM's handlers in this process, restored afterwards (quiet_start
    sets its own until absl calls a main)."""
    handlers = {signum: signal.getsignal(signum) for signum in console.STOP_SIGNALS}
    yield handlers
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_quiet_start_sets_tensorflows_level_unless_the_user_did(monkeypatch, stop_handlers):
    tf_logger = py_logging.getLogger("tensorflow")
    monkeypatch.setattr(tf_logger, "level", tf_logger.level)  # restored afterwards
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    with warnings.catch_warnings():
        assert console.quiet_start(["train.py", "-v", "1"]) is True  # verbose: untouched
        assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
        assert console.quiet_start(["train.py"]) is False
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
        assert tf_logger.level == py_logging.ERROR
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
        console.quiet_start(["train.py"])
        assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"


# -- quiet_start in a fresh Python, with a stand-in tensorflow --------------------------

FAKE_TENSORFLOW = """import os, sys
os.write(2, {lines!r}.encode())
sys.stderr.write("python stderr while importing\\n")
LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
""".format(lines="".join(line + "\n" for line in (BANNER, ONEDNN, ERROR)))


@pytest.fixture(scope="module")
def fake_tensorflow(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake_tf")
    (folder / "tensorflow").mkdir()
    (folder / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    return folder


def start_with(fake_tensorflow, *args, env_level=None):
    """A fresh Python that calls quiet_start(argv) and then imports (the fake) TensorFlow."""
    code = ("import sys; from tfmodels.run import console; "
            "verbose = console.quiet_start(['train.py', *sys.argv[1:]]); "
            "import logging, tensorflow; "
            "print(verbose, tensorflow.LEVEL, tensorflow.__loader__.__class__.__name__, "
            "logging.getLogger('tensorflow').level)")
    env = procs.child_env(PYTHONPATH=os.pathsep.join([str(fake_tensorflow), str(procs.ROOT)]))
    env.pop("TF_CPP_MIN_LOG_LEVEL")
    if env_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = env_level
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=60, check=True)


@pytest.mark.integration  # a fresh Python: a process
def test_quiet_start_drops_tensorflows_start_up_lines_but_its_errors(fake_tensorflow):
    proc = start_with(fake_tensorflow)
    assert proc.stderr.splitlines() == [ERROR, "python stderr while importing"]
    # Not verbose; the C++ level set before the import; the package's own loader kept;
    # TensorFlow's Python logger at ERROR.
    assert proc.stdout.split() == ["False", "2", "SourceFileLoader", str(py_logging.ERROR)]


@pytest.mark.integration  # a fresh Python: a process
@pytest.mark.parametrize("args", [["-v", "1"], ["--verbosity=2"]])
def test_verbosity_one_brings_tensorflows_lines_back(fake_tensorflow, args):
    proc = start_with(fake_tensorflow, *args)
    assert proc.stderr.splitlines() == [BANNER, ONEDNN, ERROR, "python stderr while importing"]
    assert proc.stdout.split() == ["True", "None", "SourceFileLoader", "0"]


@pytest.mark.integration  # a fresh Python: a process
@pytest.mark.parametrize("level, lines", [("0", [BANNER, ONEDNN, ERROR]), ("3", [])])
def test_a_users_own_tf_cpp_min_log_level_wins(fake_tensorflow, level, lines):
    proc = start_with(fake_tensorflow, env_level=level)
    assert proc.stderr.splitlines() == [*lines, "python stderr while importing"]
    assert proc.stdout.split()[:2] == ["False", level]


EARLY_THEN_MAIN = """import os, signal, sys
from tfmodels.run import console
console.quiet_start(["bench.py"])
early = signal.getsignal(signal.SIGINT)
from absl import app

def main(argv):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    try:
        os.kill(os.getpid(), signal.SIGINT)
    except KeyboardInterrupt:
        print("KeyboardInterrupt in main", early is not signal.default_int_handler)

app.run(main)
"""


@pytest.mark.integration  # a fresh Python: a process
def test_the_start_up_handlers_end_where_main_begins():
    """What ``quiet_start`` sets for SIGINT and SIGTERM is absl's no more once it calls
    ``main`` (bench.py has no ``cli.guarded``): Python's own handling is back."""
    proc = subprocess.run([sys.executable, "-c", EARLY_THEN_MAIN], env=procs.child_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "KeyboardInterrupt in main True\n"


@pytest.mark.integration  # a fresh Python: a process
def test_the_modules_that_run_first_import_nothing_heavy():
    assert procs.heavy_modules_after("import tfmodels.run.console, tfmodels.run.cli") == "[]"


# -- our own lines, --help ----------------------------------------------------------------

def record(level, message):
    return py_logging.LogRecord("absl", level, "experiment.py", 92, message, (), None)


def test_our_lines_are_plain_and_warnings_say_so():
    formatter = console.PlainFormatter("train.py")
    assert formatter.format(record(py_logging.INFO, "Epoch 1, Loss: 0.5")) == "Epoch 1, Loss: 0.5"
    assert (formatter.format(record(py_logging.WARNING, "collapsed"))
            == "train.py: warning: collapsed")
    assert formatter.format(record(py_logging.ERROR, "bad")) == "train.py: error: bad"


@pytest.fixture
def absl_formatter():
    """The absl handler; its formatter and the logging levels (which parsing and
    unparsing --verbosity sets) are restored after the test."""
    handler = absl_logging.get_absl_handler().python_handler
    loggers = (py_logging.getLogger(), absl_logging.get_absl_logger())
    before = handler.formatter, [logger.level for logger in loggers]
    yield handler
    handler.setFormatter(before[0])
    for logger, level in zip(loggers, before[1]):
        logger.setLevel(level)


def test_verbosity_one_keeps_absls_prefix(absl_formatter):
    assert console.use_plain_lines("train.py", 0)
    assert isinstance(absl_formatter.formatter, console.PlainFormatter)
    assert not console.use_plain_lines("train.py", 1)
    assert type(absl_formatter.formatter) is absl_logging.PythonFormatter  # pylint: disable=unidiomatic-typecheck
    assert PREFIXED.match(absl_formatter.format(record(py_logging.INFO, "Epoch 1")))


@pytest.mark.parametrize("flag", ["--help", "-?", "--helpshort", "--helpfull"])
def test_help_exits_0(flag, capsys, absl_formatter):
    del absl_formatter  # parse_flags must not reach it, but restore it if it did
    app.define_help_flags()
    try:
        with pytest.raises(SystemExit) as exited:
            cli.parse_flags(["train.py", flag])
    finally:
        flags.FLAGS.unparse_flags()
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip()  # the help, on stdout


# -- the progress bar and the epoch line ----------------------------------------------------

def test_the_bars_loss_is_the_mean_of_the_batch_losses():
    """Batches of 32, 32 and 6 examples: each batch counts once, as in the epoch line."""
    stream = type("Log", (), {"write": lambda self, text: None})()  # not a terminal
    bar = ProgressBar(3, 1, stream=stream)
    shown = []
    bar.line = lambda step, examples, loss: shown.append(round(loss, 6)) or ""
    for step, (examples, loss) in enumerate([(32, 1.0), (64, 2.0), (70, 6.0)], start=1):
        bar.update(step, examples, loss)
    assert shown[-1] == 3.0  # (1 + 2 + 6) / 3; weighted by examples it was 1.8


def test_the_bar_ends_on_the_epoch_lines_loss_with_a_short_last_batch(tmp_path, monkeypatch,
                                                                      caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: the bar logs its line
    data = tiny_digits(250, seed=0), tiny_digits(50, seed=1)  # 7 batches of 32, then 26
    config = RunConfig(backend="numpy", hidden_units=(16,), epochs=1, batch_size=32, seed=3,
                       model_dir=str(tmp_path / "run"))
    with caplog.at_level(py_logging.INFO):
        experiment.run(config, datasets_override=data)
    lines = "\n".join(r.getMessage() for r in caplog.records)
    [(steps, bar_loss)] = BAR_LOSS.findall(lines)
    assert steps == "8" and bar_loss == EPOCH_LOSS.search(lines).group(1)


# -- the next step --------------------------------------------------------------------------

def test_the_next_step_names_this_python_and_absolute_paths(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    config = RunConfig(backend="numpy", model_dir="my run", data_dir="data")
    history = [{"epoch": 1, "test_accuracy": 0.5}]
    with caplog.at_level(py_logging.INFO):
        experiment.log_summary(config, "my run", history, 1.0)
    [line] = [r.getMessage() for r in caplog.records if "Evaluate them with: " in r.getMessage()]
    command = shlex.split(line.split("Evaluate them with: ", 1)[1])
    assert command == [sys.executable, str(procs.ROOT / "scripts" / "evaluate.py"),
                       f"--model_dir={tmp_path / 'my run'}", "--backend=tensorflow",
                       f"--data_dir={tmp_path / 'data'}"]


# -- curves.png -----------------------------------------------------------------------------

def test_curves_show_percent_a_title_and_whole_epochs():
    epochs = [{"epoch": 1, "train_loss": 1.49, "train_accuracy": 0.514, "test_loss": 0.65,
               "test_accuracy": 0.783}]
    title = artifacts.curves_title({"model": "mymodel", "dataset": "mnist",
                                    "backend": "numpy", "model_file": None}, epochs)
    assert title == ("mymodel on mnist, numpy backend: test accuracy 78.30% after epoch 1 "
                     "(best 78.30%, epoch 1)")
    fig = artifacts.curves_figure(epochs, title)
    loss, accuracy = fig.axes
    assert fig._suptitle.get_text() == title  # pylint: disable=protected-access
    assert accuracy.get_ylabel() == "accuracy (%)"
    assert [list(line.get_ydata()) for line in accuracy.lines] == [[51.4], [78.3]]
    assert [line.get_label() for line in accuracy.lines] == ["train (51.40%)", "test (78.30%)"]
    assert loss.get_ylim()[0] == 0
    for ax in fig.axes:  # one epoch: a 0.5-1.5 axis ticked at 1 only
        low, high = ax.get_xlim()
        assert (low, high) == (0.5, 1.5)
        assert [t for t in ax.get_xticks() if low <= t <= high] == [1]
    named = artifacts.curves_title({"model_file": "/somewhere/net.keras", "dataset": "svhn",
                                    "backend": "tensorflow"}, epochs)
    assert named.startswith("net.keras on svhn, tensorflow backend: ")


# -- the scripts as a user runs them ---------------------------------------------------------

def quiet_env(data_dir):
    """A script's environment without the tests' TF_CPP_MIN_LOG_LEVEL: the product's own."""
    env = procs.script_env(data_dir)
    env.pop("TF_CPP_MIN_LOG_LEVEL")
    return env


@pytest.fixture(scope="module")
def user_runs(tmp_path_factory, tiny_data_dir):
    """{name: CompletedProcess}: a one-epoch TensorFlow run with a short last batch in a
    folder with a space, and ``train.py --help``; then, started together, the evaluation
    command that run printed, pasted into a shell in another folder with only PATH and the
    data variable set, and an evaluation of a copy of the run with ``-v 1``."""
    model_dir = tmp_path_factory.mktemp("user") / "my run"
    elsewhere = tmp_path_factory.mktemp("elsewhere")

    def script(*args):
        return procs.run_script(*args, env=quiet_env(tiny_data_dir))

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        train = pool.submit(script, "train.py", "--epochs=1", "--max_train_examples=250",
                            "--hidden_units=8", f"--model_dir={model_dir}")
        helped = pool.submit(script, "train.py", "--help")
        runs = {"train": train.result(), "help": helped.result()}
        assert runs["train"].returncode == 0, runs["train"].stderr[-3000:]
        [command] = re.findall(r"^Evaluate them with: (.*)$", runs["train"].stderr, re.MULTILINE)
        clean = {"PATH": "/usr/bin:/bin", "TFMODELS_DATA_DIR": str(tiny_data_dir)}
        pasted = pool.submit(subprocess.run, ["/bin/sh", "-c", command], cwd=elsewhere,
                             env=clean, capture_output=True, text=True, timeout=300)
        copy = shutil.copytree(model_dir, elsewhere / "copy")  # evaluate locks its run
        verbose = pool.submit(script, "evaluate.py", f"--model_dir={copy}", "-v", "1")
        runs.update(pasted=pasted.result(), verbose=verbose.result())
    return runs


@pytest.mark.integration
def test_a_run_prints_only_our_lines_without_prefix(user_runs):
    stderr = user_runs["train"].stderr
    assert noise(stderr) == []
    assert EPOCH_LOSS.search(stderr) and re.search(r"^Done: test accuracy", stderr, re.MULTILINE)
    [(_, bar_loss)] = BAR_LOSS.findall(stderr)  # 8 steps, the last of 26 examples
    assert bar_loss == EPOCH_LOSS.search(stderr).group(1)


@pytest.mark.integration
def test_the_printed_evaluation_command_works_pasted_elsewhere(user_runs):
    proc = user_runs["pasted"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^\w+ on \d+ test images.*: loss \d", proc.stderr, re.MULTILINE)
    assert noise(proc.stderr) == []  # quiet without the tests' TF_CPP_MIN_LOG_LEVEL too


@pytest.mark.integration
def test_verbosity_one_shows_tensorflows_lines_and_absls_prefix(user_runs):
    proc = user_runs["verbose"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^I\d{4} [\d:.]+ +\d+ evaluation\.py:\d+\] ", proc.stderr, re.MULTILINE)
    assert [line for line in proc.stderr.splitlines()
            if PREFIXED.match(line) and ".py:" not in line.split("]")[0]], proc.stderr[-3000:]


@pytest.mark.integration
def test_train_help_exits_0_and_lists_the_flags(user_runs):
    proc = user_runs["help"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "--epochs" in proc.stdout and "--model_dir" in proc.stdout
    assert noise(proc.stderr) == []


@pytest.mark.integration
def test_a_float64_convnet_run_prints_no_onednn_type_warnings(tmp_path, tiny_data_dir):
    """Grappler's remapper asks oneDNN about every float64 op it could fuse, and each
    answer is a C++ warning ("util.cc:163] Not handling type DT_DOUBLE", about 20 a run):
    below the level quiet_start sets; -v 1 shows them, as it shows all of TensorFlow's."""
    def run(name, *args):
        return procs.run_script("train.py", "--model=simple_convnet", "--dtype=float64",
                                "--epochs=1", f"--model_dir={tmp_path / name}", *args,
                                env=quiet_env(tiny_data_dir))

    quiet, verbose = run("quiet"), run("verbose", "-v", "1")
    assert quiet.returncode == 0 and verbose.returncode == 0, quiet.stderr[-3000:]
    assert "DT_DOUBLE" not in quiet.stderr and noise(quiet.stderr) == []
    if "oneDNN custom operations are on" in verbose.stderr:  # x86 CPUs: the remapper asks
        assert "Not handling type DT_DOUBLE" in verbose.stderr
