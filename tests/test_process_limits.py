"""What a process cannot have: more memory than the machine, or a quiet exit when stopped.

A model too big for this machine's memory is refused before it is built (exit 2, naming
--hidden_units, the parameter count and the memory); running out of memory anyway is one
line and exit 7. Ctrl-C or SIGTERM while a script starts (importing TensorFlow) is one
line and exit 130 or 143; once the run has finished, exit 0.
"""

import io
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import procs
from tfmodels import catalog, models, optimizers
from tfmodels.errors import ConfigError
from tfmodels.run import backends, cli, experiment, memory
from tfmodels.run.config import RunConfig

HUGE = (100_000_000,)

# -- the estimate ---------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "svhn"])
@pytest.mark.parametrize("model, units, options", [
    ("mymodel", (7, 5), {}), ("mymodel", (6, 4), {"batchnorm": True}),
    ("two_layer_net", (9,), {}), ("simple_convnet", (11,), {}),
    ("deep_convnet", (13,), {}), ("lstm", (6, 5), {}), ("vit", (8, 8), {}),
])
def test_parameter_counts_are_keras_own(model, units, options, dataset):
    config = RunConfig(model=model, hidden_units=units, dataset=dataset, **options)
    built = models.build_model(model, units, num_classes=config.num_classes,
                               input_shape=config.input_shape, **options)
    trainable = sum(int(np.prod(w.shape)) for w in built.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in built.non_trainable_weights)
    assert memory.parameter_counts(config) == (trainable, frozen)


@pytest.mark.parametrize("name", catalog.OPTIMIZER_NAMES)
def test_optimizer_slots_are_keras_own(name):
    weight = keras.Variable(np.zeros((3, 5), "float32"))
    optimizer = optimizers.make_optimizer(name)
    optimizer.build([weight])
    per_weight = [v for v in optimizer.variables if tuple(v.shape) == (3, 5)]
    assert len(per_weight) == memory.OPTIMIZER_SLOTS[name]


def test_a_model_beyond_the_machines_memory_is_refused_naming_the_flag():
    config = RunConfig(hidden_units=HUGE, dtype="float64", optimizer="adam")
    trainable, frozen = memory.parameter_counts(config)
    assert trainable == 784 * 10 ** 8 + 10 ** 8 + 10 ** 9 + 10 and frozen == 0
    with pytest.raises(ConfigError) as refused:
        memory.check_fits(config, available=16 * memory.GIB)
    message = str(refused.value)
    assert message.startswith("--hidden_units=100000000: --model=mymodel would have "
                              "79,500,000,010 parameters")
    needed = 79_500_000_010 * 3 * 8 / memory.GIB  # weights and Adam's two slots, 8 bytes
    assert f"at least {needed:,.1f} GiB" in message and "has 16.0 GiB" in message
    memory.check_fits(RunConfig(), available=16 * memory.GIB)  # the default fits
    memory.check_fits(RunConfig(hidden_units=HUGE, optimizer="sgd"),
                      available=10 ** 15)  # 318 GB of SGD weights fit in a petabyte


def test_the_estimate_is_the_machines_physical_memory():
    assert memory.physical_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert memory.bytes_needed(RunConfig(hidden_units=HUGE)) > memory.physical_memory()
    assert memory.bytes_needed(RunConfig(model_file="/no/such.keras")) is None


@pytest.mark.parametrize("backend", ["tensorflow", "numpy"])
def test_training_refuses_it_before_building_or_writing(tmp_path, tiny_data_dir, backend,
                                                         monkeypatch):
    def no_backend(*args, **kwargs):
        raise AssertionError("the backend was created")

    monkeypatch.setattr(backends.BACKENDS[backend], "create", no_backend)
    config = RunConfig(backend=backend, hidden_units=HUGE, epochs=1,
                       data_dir=str(tiny_data_dir), model_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"^--hidden_units=100000000: .* GiB of memory"):
        experiment.run(config)
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_train_py_refuses_a_model_beyond_memory_in_one_line(tmp_path, tiny_data_dir):
    proc = procs.run_script("train.py", "--hidden_units=100000000", "--epochs=1",
                            f"--model_dir={tmp_path / 'run'}", data_dir=tiny_data_dir)
    procs.assert_fails_with(proc, 2, "--hidden_units=100000000", "parameters", "GiB")
    assert len(proc.stderr.splitlines()) <= 2, proc.stderr  # the device line, the error
    assert not (tmp_path / "run").exists()


# -- running out of memory anyway: exit 7 -------------------------------------------------


class ResourceExhaustedError(Exception):
    """A stand-in with the name and module of TensorFlow's."""


ResourceExhaustedError.__module__ = "tensorflow.python.framework.errors_impl"


@pytest.mark.parametrize("error, detail", [
    (MemoryError(), "out of memory (MemoryError): MemoryError"),
    (MemoryError("Unable to allocate 291. GiB for an array"),
     "out of memory (MemoryError): Unable to allocate 291. GiB for an array"),
    # What Keras 3 raises when TensorFlow cannot allocate a Dense kernel:
    (ResourceExhaustedError(
        "Exception encountered when calling Dense.call().\n\n\x1b[1m{{function_node "
        "__wrapped__Mul_device_/job:localhost/replica:0/task:0/device:CPU:0}} OOM when "
        "allocating tensor with shape[784,1000000] and type float on /job:localhost/replica:"
        "0/task:0/device:CPU:0 by allocator mklcpu [Op:Mul] name: \x1b[0m\n\nArguments "
        "received by Dense.call():\n  • inputs=tf.Tensor(shape=(1, 784), dtype=float32)"),
     "out of memory (ResourceExhaustedError): OOM when allocating tensor with "
     "shape[784,1000000] and type float"),
])
def test_running_out_of_memory_is_one_line_and_exit_7(error, detail, monkeypatch):
    def main(argv):
        raise error

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    handlers = {signum: signal.getsignal(signum) for signum in cli.STOP_SIGNALS}
    try:
        with pytest.raises(SystemExit) as exited:
            cli.guarded(main)(["train.py"])
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert exited.value.code == cli.EXIT_OUT_OF_MEMORY == 7
    assert stderr.getvalue() == f"train.py: error: {detail}\n"



@pytest.mark.integration
def test_train_py_out_of_memory_is_one_line_and_exit_7(tmp_path, tiny_data_dir):
    """Within the machine's memory by the estimate (1.5 GiB of weights, 4.4 GiB with
    Adam's slots) but not within a 3 GB address-space limit: TensorFlow's allocation of
    the first kernel fails."""
    def limit_memory():
        import resource  # pylint: disable=import-outside-toplevel
        resource.setrlimit(resource.RLIMIT_AS, (3 * 10 ** 9, 3 * 10 ** 9))

    env = procs.script_env(tiny_data_dir, CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, str(procs.ROOT / "scripts" / "train.py"), "--hidden_units=500000",
         "--epochs=1", f"--model_dir={tmp_path / 'run'}"], env=env, capture_output=True,
        text=True, timeout=300, cwd=procs.ROOT, preexec_fn=limit_memory)
    procs.assert_fails_with(proc, 7, "out of memory (ResourceExhaustedError): OOM when "
                            "allocating tensor with shape[784,500000]")
    assert not (tmp_path / "run").exists()

def test_other_errors_are_not_called_out_of_memory():
    class Other(Exception):
        pass

    assert not cli.out_of_memory(Other("OOM"))
    assert not cli.out_of_memory(ValueError("ResourceExhaustedError"))
    assert cli.out_of_memory(MemoryError())
    assert cli.out_of_memory(type("Sub", (ResourceExhaustedError,), {})())


def test_the_exit_codes_are_documented():
    table = cli.__doc__
    assert "\n    7  out of memory" in table and "exit 0 for a finished run" in table


# -- Ctrl-C or SIGTERM while a script starts -------------------------------------------

SLOW_TENSORFLOW = """import os, sys, time
sys.stdout.write("importing tensorflow\\n"); sys.stdout.flush()
os.write(2, b"I0000 00:00:1796677296.771250   29276 port.cc:153] a start-up line\\n")
time.sleep(120)
"""


@pytest.fixture(scope="module")
def slow_tensorflow(tmp_path_factory):
    """A stand-in ``tensorflow`` package whose import says so on stdout, then takes two
    minutes (as the real one takes seconds)."""
    folder = tmp_path_factory.mktemp("slow_tf")
    (folder / "tensorflow").mkdir()
    (folder / "tensorflow" / "__init__.py").write_text(SLOW_TENSORFLOW)
    return folder


def stopped_while_importing(slow_tensorflow, signum, *args):
    """train.py started with the slow stand-in, sent ``signum`` once the import began."""
    env = procs.script_env(PYTHONPATH=os.pathsep.join([str(slow_tensorflow), str(procs.ROOT)]))
    env.pop("TF_CPP_MIN_LOG_LEVEL")
    proc = subprocess.Popen([sys.executable, str(procs.ROOT / "scripts" / "train.py"), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=procs.ROOT)
    try:
        assert proc.stdout.readline() == "importing tensorflow\n"
        time.sleep(0.2)  # inside time.sleep: Python runs the handler at once
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, stdout, stderr


@pytest.mark.integration
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("args", [[], ["-v", "1"]])
def test_an_interrupt_while_starting_is_one_line(slow_tensorflow, signum, code, args):
    returncode, _, stderr = stopped_while_importing(slow_tensorflow, signum, *args)
    assert returncode == code, stderr
    lines = stderr.splitlines()
    assert lines[-1] == "train.py: error: interrupted while starting; nothing was written"
    assert "Traceback" not in stderr
    # Quiet: the only line; -v 1 shows what TensorFlow wrote first.
    assert len(lines) == (2 if args else 1), stderr


# -- Ctrl-C or SIGTERM once main has returned ---------------------------------------------

@pytest.mark.parametrize("signum", cli.STOP_SIGNALS)
def test_an_interrupt_after_main_returned_says_so_and_changes_no_exit_status(signum,
                                                                            monkeypatch):
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    handlers = {s: signal.getsignal(s) for s in cli.STOP_SIGNALS}
    try:
        assert cli.guarded(lambda argv: None)(["train.py"]) is None
        os.kill(os.getpid(), signum)  # the handler runs before the next line
        line = stderr.getvalue()
        # ignored from then on, as the exit function makes them in Python's teardown
        ignored = [signal.getsignal(s) for s in cli.STOP_SIGNALS]
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert line == (f"train.py: interrupted ({signal.Signals(signum).name}) after it had "
                    "finished: its work is complete, nothing was lost\n")
    assert ignored == [signal.SIG_IGN, signal.SIG_IGN]


def test_an_interrupt_once_the_work_is_saved_says_so_and_changes_no_exit_status(monkeypatch):
    """A Ctrl-C after train.py saved its last files but before main returned (the summary
    lines) said "interrupted; rerun the same command", exit 130, of a complete run."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    handlers = {s: signal.getsignal(s) for s in cli.STOP_SIGNALS}

    def main(argv):
        del argv
        cli.work_complete()  # what experiment.run calls once save_final has written
        os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
        return 0

    try:
        assert cli.guarded(main)(["train.py"]) == 0
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    assert stderr.getvalue() == ("train.py: interrupted (SIGINT) after it had finished: its "
                                 "work is complete, nothing was lost\n")


def test_work_complete_outside_a_guarded_main_changes_no_handler():
    before = {s: signal.getsignal(s) for s in cli.STOP_SIGNALS}
    cli.work_complete()
    assert {s: signal.getsignal(s) for s in cli.STOP_SIGNALS} == before


def test_a_run_is_complete_for_an_interrupt_right_after_its_last_files(monkeypatch, tmp_path):
    """experiment.run says the work is complete just after save_final, not later."""
    from tfmodels.run import experiment, rundir  # pylint: disable=import-outside-toplevel
    from tfmodels.run.config import RunConfig  # pylint: disable=import-outside-toplevel
    events = []
    save_final = rundir.RunDir.save_final
    monkeypatch.setattr(rundir.RunDir, "save_final",
                        lambda self, backend: (save_final(self, backend),
                                               events.append("save_final")))
    monkeypatch.setattr(cli, "work_complete", lambda: events.append("work_complete"))
    monkeypatch.setattr(experiment, "log_summary", lambda *a: events.append("log_summary"))
    config = RunConfig(epochs=1, max_train_examples=64, model_dir=str(tmp_path / "run"),
                       backend="numpy", hidden_units=(8,))
    experiment.run(config.validate())
    assert events == ["save_final", "work_complete", "log_summary"]
