"""The scripts' ``--help`` prints without importing TensorFlow or Keras (in a moment, not
seconds), and the light tables it reads (``tfmodels.catalog``) say what the registries
that implement each vocabulary do.
"""

import inspect
import subprocess
import sys

import pytest

import procs
from tfmodels import catalog, distribute, models, optimizers
from tfmodels.models import checks
from tfmodels.run import backends, console, predict

SCRIPTS = ("train.py", "evaluate.py", "predict.py", "compare.py")
# Runs a script as `python scripts/<name> ARGS` would, then prints its exit code and the
# heavy packages it imported.
PROBE = """import runpy, sys
sys.argv = [{script!r}, *{args!r}]
try:
    runpy.run_path({script!r}, run_name="__main__")
except SystemExit as e:
    code = e.code
print("PROBE", code, sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
"""


def probe(script, *args):
    """(stdout without the probe's line, the probe's line) of scripts/<script> ARGS."""
    code = PROBE.format(script=str(procs.ROOT / "scripts" / script), args=list(args))
    result = subprocess.run([sys.executable, "-c", code], cwd=procs.ROOT,
                            env=procs.script_env(), capture_output=True, text=True, timeout=300)
    *printed, last = result.stdout.splitlines() or [""]
    return "\n".join(printed), last


def test_the_catalogs_activations_are_those_a_twin_can_follow():
    assert catalog.HIDDEN_ACTIVATIONS == checks.twinnable_activations()
    assert checks.HIDDEN_ACTIVATIONS == catalog.HIDDEN_ACTIVATIONS


@pytest.mark.parametrize("name", catalog.OPTIMIZER_NAMES)
def test_the_catalogs_optimizer_is_the_keras_class_with_its_default_learning_rate(name):
    info, entry = catalog.OPTIMIZER_INFO[name], optimizers.OPTIMIZERS[name]
    assert entry.keras.__name__ == info.keras_class
    assert entry.options == info.options
    keras_default = inspect.signature(entry.keras).parameters["learning_rate"].default
    assert info.learning_rate == keras_default == optimizers.default_learning_rate(name)
    assert optimizers.describe(name) == info.describe()


def test_the_optimizer_registry_has_the_catalogs_names_and_twins_every_class():
    assert optimizers.OPTIMIZER_NAMES == catalog.OPTIMIZER_NAMES
    assert optimizers.DEFAULT == catalog.DEFAULT_OPTIMIZER in catalog.OPTIMIZER_NAMES
    assert set(optimizers.TWINS) == {entry.keras for entry in optimizers.OPTIMIZERS.values()}
    assert catalog.OPTIMIZER_INFO["nesterov"].describe() == "SGD(momentum=0.9, nesterov=True)"


def test_every_model_kind_of_the_catalog_is_built_with_its_settings():
    assert models.MODEL_NAMES == catalog.MODEL_NAMES
    assert set(models._BUILDERS) == set(catalog.MODEL_INFO)  # pylint: disable=protected-access
    for name, info in catalog.MODEL_INFO.items():
        kind = models.MODELS[name]
        assert (kind.hidden_units, kind.fixed_depth, kind.options, kind.description,
                kind.activation) == (info.hidden_units, info.fixed_depth, info.options,
                                     info.description, info.activation)
    assert models.MODELS["vit"].check_units is not None


def test_the_catalogs_backends_devices_strategies_and_inversions_are_the_implementations():
    assert tuple(backends.BACKENDS) == catalog.BACKEND_NAMES
    assert (distribute.DEVICES, distribute.STRATEGIES) == (catalog.DEVICES, catalog.STRATEGIES)
    assert predict.INVERT_CHOICES == catalog.INVERT_CHOICES


@pytest.mark.parametrize("args, short", [
    (["--help"], True), (["-help"], True), (["--helpshort"], True), (["-?"], True),
    (["--help=true"], True), (["--epochs=3", "--help", "--helpfull"], True),
    (["--helpfull"], False), (["--helpxml"], False), (["--helpfull", "--help"], False),
    (["--help=false"], False), (["--nohelp"], False), ([], False), (["--epochs=3"], False),
    (["--", "--help"], False), (["help"], False),
])
def test_asks_for_help_is_the_first_help_flag_being_the_short_one(args, short):
    assert console.asks_for_help(["train.py", *args]) is short


@pytest.mark.integration
def test_the_run_settings_import_neither_tensorflow_nor_keras():
    assert procs.heavy_modules_after("import tfmodels.run.config, tfmodels.catalog") == "[]"


@pytest.mark.integration
@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_without_importing_tensorflow(script):
    printed, last = probe(script, "--help")
    assert last == "PROBE 0 []", (printed[-2000:], last)
    assert "--model_dir" in printed or "--model_file" in printed


@pytest.mark.integration
def test_helpfull_still_lists_the_flags_tensorflow_defines():
    printed, last = probe("train.py", "--helpfull")
    assert last == "PROBE 0 ['keras', 'tensorflow']", (printed[-2000:], last)
    assert "tensorflow.python" in printed and "tfmodels.run.config:" in printed
