"""The README's Python examples run as printed (those that need no data files)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_custom_layer_example_runs_and_its_twin_agrees():
    [example] = [block for block in BLOCKS if "register_twin(Scale" in block]
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)  # pylint: disable=exec-used
    report = namespace["report"]
    assert report.ok and report.first_divergence is None
    assert any(path.endswith("/scale/scale") for path in namespace["grads"])


@pytest.mark.slow
def test_the_numpy_ref_example_reaches_the_accuracy_the_readme_states(mnist_dir):
    [example] = [block for block in BLOCKS if "load_mnist(" in block]
    namespace = {}
    code = example.replace('"/path/to/data"', repr(str(mnist_dir)))
    exec(compile(code, "README.md", "exec"), namespace)  # pylint: disable=exec-used
    stated = re.search(r"it reached \*\*([\d.]+)%\*\* test\s+accuracy", README.read_text())
    assert namespace["history"]["test_accuracy"][-1] == pytest.approx(
        float(stated.group(1)) / 100, abs=5e-5)  # the README rounds to 0.01%
