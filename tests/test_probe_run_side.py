"""The probe's findings on the training side of issue 21's follow-up, each refused in one line.

- A learning rate (weight decay, decay) that the computation would hold as 0 or infinity,
  such as ``--learning_rate=1e-320``, is refused naming it (exit 2), not Keras's traceback.
- ``--hidden_units=²``: a digit int() cannot read is refused as the flag's value.
- A --model_dir the system refuses (a name too long) is one line (exit 4), in train.py,
  evaluate.py and TensorFlow's TensorBoard writer.
- A run directory's JSON nested 100,000 deep (history, manifest, the lock's holder) is
  called edited or damaged, not a RecursionError.
- ``--max_train_examples`` above the training set's size is refused, before any write.
- An argument that is no flag (``train.py stray``) is refused, not ignored.
- An empty ``--data_dir=`` is refused, not taken for the current folder; the "No MNIST
  data in ..." message reads as a sentence for any path.
"""

import json
import os
import re

from absl import flags
import numpy as np
import pytest

import runs
from fakes import tiny_digits
from procs import assert_fails_with, run_script
from tfmodels import data
from tfmodels.errors import ConfigError, DatasetError, RunDirError
from tfmodels.run import cli, evaluation, experiment, lock, manifest, names, rundir
from tfmodels.run import config as run_config
from tfmodels.run.config import RunConfig

FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # float32's smallest normal number
NESTED = "[" * 100_000 + "]" * 100_000  # Python's JSON reader recurses once per level
TINY_DATA = (tiny_digits(64, 0), tiny_digits(32, 1))


def parse(*args):
    """The RunConfig train.py makes of ``args`` (absl's flag validators included)."""
    flag_values = flags.FlagValues()
    run_config.define_flags(flag_values)
    flag_values(["train.py", *args])
    return run_config.from_flags(flag_values)


# 1. Float settings the computation would hold as 0 or infinity.

@pytest.mark.parametrize("settings", [
    dict(learning_rate=1e-320),  # 0 as float32: the NumPy backend's ValueError
    dict(learning_rate=1e-320, dtype="float64"),  # a learning rate is float32 regardless
    dict(learning_rate=1e-40, dtype="float64"),  # subnormal: TensorFlow computes 0
    dict(learning_rate=1e300),  # infinite as float32
], ids=["zero", "zero-float64", "subnormal-float64", "infinite"])
def test_a_learning_rate_float32_cannot_hold_is_refused(settings):
    with pytest.raises(ConfigError, match=re.escape(
            "--learning_rate must be a normal float32 number (a learning rate is float32 "
            "whatever --dtype), of magnitude 1.1754944e-38 to 3.4028235e+38; got "
            f"{settings['learning_rate']}")):
        RunConfig(**settings).validate()


@pytest.mark.parametrize("settings, fragment", [
    (dict(weight_decay=1e-320), "--weight_decay must be 0 or a normal float32 number "
                                "(--dtype=float32)"),
    (dict(weight_decay=1e300), "--weight_decay must be 0 or a normal float32 number"),
    (dict(weight_decay=1e-320, dtype="float64"), "--weight_decay must be 0 or a normal "
                                                 "float64 number (--dtype=float64)"),
    (dict(learning_rate_decay=1e-320), "--learning_rate_decay must be a normal float32 number"),
])
def test_other_float_settings_the_run_computes_with_are_checked_in_its_dtype(settings,
                                                                             fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        RunConfig(**settings).validate()


def test_what_the_dtype_holds_still_passes():
    for settings in (dict(learning_rate=FLOAT32_TINY), dict(learning_rate=3e38),
                     dict(weight_decay=0.0), dict(weight_decay=1e-300, dtype="float64"),
                     dict(dropout=1e-320)):  # a rate stays a Python float: 1 - rate
        RunConfig(**settings).validate()


def test_the_smallest_learning_rate_accepted_trains_on_the_numpy_backend(tmp_path):
    """The NumPy backend refuses a learning rate that is 0 as float32 (Keras's cast): the
    smallest one validate accepts is one it trains with."""
    config = RunConfig(backend="numpy", epochs=1, hidden_units=(8,),
                       learning_rate=FLOAT32_TINY, model_dir=str(tmp_path / "run"))
    result = experiment.run(config.validate(), datasets_override=TINY_DATA)
    assert [e["epoch"] for e in result["epochs"]] == [1]


# 2. --hidden_units: a check that agrees with int().

def test_a_digit_int_cannot_read_is_refused_as_the_flags_value():
    assert "²".isdigit()  # what the old check accepted, and int() refuses
    with pytest.raises(flags.IllegalFlagValueError, match="--hidden_units must be positive "
                                                          "integers"):
        parse("--hidden_units=²")
    with pytest.raises(ConfigError, match=re.escape("--hidden_units must be positive "
                                                    "integers; got [8, '²']")):
        RunConfig(hidden_units=("8", "²")).validate()


def test_full_width_digits_still_read_as_int_reads_them():
    assert parse("--hidden_units=１２,8").hidden_units == (12, 8)


# 3. --model_dir paths the system refuses.

def test_a_model_dir_name_too_long_is_one_line_naming_it(tmp_path):
    long_name = tmp_path / ("x" * 300)
    long_path = tmp_path.joinpath(*["y" * 200] * 25)  # 5,000 characters
    for model_dir in (long_name, long_path):
        for check in (rundir.check_writable, rundir.check_path):
            with pytest.raises(RunDirError, match=re.escape(
                    f"--model_dir={model_dir} cannot be used (File name too long)")):
                check(model_dir)
    assert list(tmp_path.iterdir()) == []


def test_a_model_dir_path_that_does_not_exist_yet_passes(tmp_path):
    rundir.check_path(tmp_path / "new" / "run")
    rundir.check_writable(tmp_path / "new" / "run")


def test_a_name_too_long_in_the_tensorboard_writer_is_one_line(tmp_path, monkeypatch):
    """TensorFlow's writer reports "<path>; File name too long" where the path of its event
    file is longer than the system takes, after the epoch was saved."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    model_dir = tmp_path / "run"

    def too_long(*_, **__):
        events = model_dir / names.TENSORBOARD / "events.out.tfevents.1.host.2.0.v2"
        raise tf.errors.InvalidArgumentError(
            None, None, f"{events}; File name too long\n\tCreating writable file {events}\n\t"
                        "Could not initialize events writer.")

    monkeypatch.setattr(tf.summary, "create_file_writer", too_long)
    with pytest.raises(RunDirError) as refused:
        experiment.run(RunConfig(epochs=1, hidden_units=(8,), model_dir=str(model_dir)),
                       datasets_override=TINY_DATA)
    message = str(refused.value)
    assert "\n" not in message, message
    assert f"--model_dir={model_dir} (File name too long)" in message
    assert "the checkpoint of epoch 1 is kept" in message


# 4. Run-directory JSON nested deeper than the run writes.

def test_a_history_nested_100000_deep_is_called_edited(run_copy):
    (run_copy / names.HISTORY_JSON).write_text(NESTED)
    saved = manifest.read(run_copy)
    for read in (lambda: rundir.checked_history(run_copy, saved),
                 lambda: evaluation.load_finished_run(run_copy)):
        with pytest.raises(RunDirError, match=re.escape(
                f"{run_copy / names.HISTORY_JSON} does not match what the run wrote: it nests "
                "deeper than Python's JSON reader can follow")) as refused:
            read()
        assert "edited or damaged since the run wrote it?" in str(refused.value)
        assert "--noresume" in str(refused.value)


def test_a_manifest_nested_100000_deep_is_called_edited(run_copy):
    (run_copy / names.MANIFEST).write_text(NESTED)
    with pytest.raises(RunDirError, match=re.escape(
            f"{run_copy / names.MANIFEST} does not match what the run wrote")):
        manifest.read(run_copy)


def test_json_deeper_than_the_runs_own_is_refused_though_readable(run_copy):
    """Nesting Python can read, but deeper than any file the run writes, in a key the
    reader would otherwise pass over."""
    path = run_copy / names.HISTORY_JSON
    history = json.loads(path.read_text())
    history["note"] = json.loads("[" * 50 + "]" * 50)
    path.write_text(json.dumps(history))
    with pytest.raises(RunDirError, match=re.escape(
            f"{path} does not match what the run wrote: it nests 17 or more levels deep, "
            "the run's files at most 16")):
        rundir.checked_history(run_copy, manifest.read(run_copy))


@pytest.mark.parametrize("content", [NESTED, '"text"', "[1, 2]", "x" * 100_000, ""],
                         ids=["nested", "string", "list", "long", "empty"])
def test_a_lock_file_of_any_content_names_no_one_and_fails_nothing(tmp_path, content):
    with lock.held(tmp_path) as path:
        path.write_text(content)
        with pytest.raises(RunDirError, match=re.escape(
                f"--model_dir={tmp_path} is in use by another process (")):
            with lock.held(tmp_path):
                pass


# 5. --max_train_examples above the training set's size.

def test_more_train_examples_than_the_data_set_has_are_refused_before_any_write(tmp_path):
    model_dir = tmp_path / "run"
    config = RunConfig(backend="numpy", epochs=1, hidden_units=(8,),
                       max_train_examples=10 ** 9, model_dir=str(model_dir))
    with pytest.raises(ConfigError, match=re.escape(
            "--max_train_examples=1000000000 is more than the 64 examples of the mnist "
            "training set; pass at most 64")):
        experiment.run(config, datasets_override=TINY_DATA)
    assert not model_dir.exists()
    config = RunConfig(backend="numpy", epochs=1, hidden_units=(8,), max_train_examples=64,
                       model_dir=str(model_dir))
    assert experiment.run(config, datasets_override=TINY_DATA)["epochs"]  # all of them: fine


# 6. Arguments that are no flag.

def test_an_argument_that_is_no_flag_is_refused():
    with pytest.raises(ConfigError, match=re.escape(
            "unexpected argument stray: this script takes flags only")):
        cli.refuse_arguments(["train.py", "stray"])
    with pytest.raises(ConfigError, match=re.escape("unexpected arguments a 'b c'")):
        cli.refuse_arguments(["evaluate.py", "a", "b c"])
    cli.refuse_arguments(["train.py"])  # flags only: nothing to refuse


# 7. An empty --data_dir.

def test_an_empty_data_dir_is_refused():
    with pytest.raises(flags.IllegalFlagValueError, match="--data_dir must name a folder"):
        parse("--data_dir=")
    with pytest.raises(ConfigError, match="^--data_dir must name a folder .*; got ''$"):
        RunConfig(data_dir="").validate()
    for load in (data.resolve_data_dir, data.load_mnist, data.load_svhn):
        with pytest.raises(DatasetError, match=re.escape("The data directory is empty ('')")):
            load("")


@pytest.mark.parametrize("given", [".", "./", "data."])
def test_no_mnist_data_reads_as_a_sentence_for_any_path(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)
    os.makedirs(given, exist_ok=True)
    with pytest.raises(DatasetError) as refused:
        data.load_mnist(given)
    message = str(refused.value)
    shown = str(data.resolve_data_dir(given))
    assert message.startswith(f"No MNIST data in {shown}: Missing MNIST idx file(s) "), message
    assert ".. " not in message and ".;" not in message, message  # was "in .. Missing"
    assert message.endswith("; no mnist.npz there either. Nothing is downloaded when a "
                            "directory is given."), message


# Through the scripts: one line, the exit code, nothing written.

@pytest.mark.integration
@pytest.mark.parametrize("args, code, fragment", [
    (["--learning_rate=1e-320"], 2, "--learning_rate must be a normal float32 number"),
    (["--hidden_units=²"], 2, "--hidden_units must be positive integers"),
    (["--data_dir="], 2, "--data_dir must name a folder"),
    (["--max_train_examples=1000000000"], 2,
     "--max_train_examples=1000000000 is more than the 256 examples"),
    (["stray"], 2, "unexpected argument stray: this script takes flags only"),
    ([f"--model_dir={'x' * 300}"], 4, "cannot be used (File name too long)"),
], ids=["lr", "superscript", "data_dir", "max_train", "stray", "long_name"])
def test_train_refuses_in_one_line_writing_nothing(tmp_path, tiny_data_dir, args, code,
                                                   fragment):
    proc = run_script("train.py", "--backend=numpy", "--epochs=1", "--hidden_units=8",
                      "--model_dir=run", *args, data_dir=tiny_data_dir, cwd=tmp_path)
    assert_fails_with(proc, code, fragment)
    assert not list(tmp_path.iterdir())


@pytest.mark.integration
@pytest.mark.parametrize("args, code, fragment", [
    (["stray"], 2, "unexpected argument stray"),
    (["--data_dir="], 2, "--data_dir must name a folder, not be empty"),
    ([f"--model_dir={'x' * 300}"], 4, "cannot be used (File name too long)"),
    (["history"], 4, "history.json does not match what the run wrote"),
], ids=["stray", "data_dir", "long_name", "nested_history"])
def test_evaluate_refuses_in_one_line_writing_nothing(run_copy, tiny_data_dir, args, code,
                                                      fragment):
    if args == ["history"]:
        (run_copy / names.HISTORY_JSON).write_text(NESTED)
        args = []
    before = sorted(p.name for p in run_copy.iterdir())
    proc = run_script("evaluate.py", f"--model_dir={run_copy}", "--backend=numpy", *args,
                      data_dir=tiny_data_dir, cwd=run_copy.parent)
    assert_fails_with(proc, code, fragment)
    assert sorted(p.name for p in run_copy.iterdir()) == before
    assert sorted(p.name for p in run_copy.parent.iterdir()) == ["run"]


@pytest.mark.integration
def test_train_resuming_a_nested_history_is_one_line(run_copy, tiny_data_dir):
    (run_copy / names.HISTORY_JSON).write_text(NESTED)
    proc = run_script("train.py", *runs.flags(run_copy), data_dir=tiny_data_dir)
    assert_fails_with(proc, 4, f"{run_copy / names.HISTORY_JSON} does not match what the run "
                               "wrote", "edited or damaged")


def test_evaluate_run_names_a_model_dir_the_system_refuses(tmp_path):
    """evaluation.evaluate_run (the library call under evaluate.py) raised OSError for a
    name too long before it looked for the manifest."""
    from tfmodels.errors import RunDirError  # pylint: disable=import-outside-toplevel
    from tfmodels.run import evaluation  # pylint: disable=import-outside-toplevel
    too_long = tmp_path / ("r" * 300)
    with pytest.raises(RunDirError, match="cannot be used .File name too long"):
        evaluation.evaluate_run(too_long)
