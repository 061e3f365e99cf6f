"""The README's and docs/twin.md's Python examples run as printed.

Executed in this process (no data files needed, except the numpy_ref example's MNIST,
which is slow); tests/test_readme_walk.py walks the whole README in a fresh clone.
"""

import pathlib
import re

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TWIN_DOC = ROOT / "docs" / "twin.md"


def python_blocks(path):
    """The ```python blocks of a Markdown file, in order."""
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def the_block(path, marker):
    """The one ```python block of `path` that holds `marker`."""
    found = [block for block in python_blocks(path) if marker in block]
    assert len(found) == 1, f"{path.name}: {len(found)} python blocks hold {marker!r}"
    return found[0]


def run_example(code, source_name):
    """The namespace an example leaves after running as a script would."""
    namespace = {"__name__": "__main__"}
    exec(compile(code, source_name, "exec"), namespace)  # pylint: disable=exec-used
    return namespace


def test_the_readme_twin_example_prints_that_the_layers_agree(capsys):
    """"Your Keras model's twin": builds its model and batch, prints compare's table
    (which must end in the all-agree verdict), and takes one Adam step on the twin."""
    example = the_block(README, "parity.twin_optimizer(")
    namespace = run_example(example, "README.md")
    printed = capsys.readouterr().out
    assert "verdict: all layers agree" in printed, printed
    rows = re.findall(r"^(\w+?)(?:_\d+)?\s+(Flatten|Dense)\s", printed, flags=re.M)
    # Keras numbers layer names per process (dense_8 when others ran first): the classes.
    assert [cls for _, cls in rows] == ["Flatten", "Dense", "Dense"], printed
    net, model = namespace["net"], namespace["model"]
    assert np.isfinite(namespace["loss"])
    keras_weights = {v.path: np.asarray(v) for v in model.trainable_variables}  # unstepped
    assert set(net.params) == set(keras_weights)
    assert all(not np.allclose(value, keras_weights[name])
               for name, value in net.params.items()), "the twin's Adam step missed a weight"


def test_the_custom_layer_example_runs_and_its_twin_agrees():
    example = the_block(TWIN_DOC, "register_twin(Scale")
    namespace = run_example(example, "docs/twin.md")
    report = namespace["report"]
    assert report.ok and report.first_divergence is None
    assert any(path.endswith("/scale/scale") for path in namespace["grads"])


@pytest.mark.slow
def test_the_numpy_ref_example_reaches_the_accuracy_the_readme_states(mnist_dir):
    example = the_block(README, "load_mnist(")
    code = example.replace('"/path/to/data"', repr(str(mnist_dir)))
    namespace = run_example(code, "README.md")
    stated = re.search(r"it reached \*\*([\d.]+)%\*\* test\s+accuracy", README.read_text())
    assert namespace["history"]["test_accuracy"][-1] == pytest.approx(
        float(stated.group(1)) / 100, abs=5e-5)  # the README rounds to 0.01%
