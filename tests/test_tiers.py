"""The test tiers stay honest: a test that starts a process is marked `integration`, and
every test the fast tier samples (conftest.FIRST_CASE_ONLY, FLOAT64_ONLY) exists.

Read from the test files' source, so a new test that runs a script cannot slip into the
fast tier unmarked.
"""

import ast
import pathlib

import pytest

import conftest

TESTS = pathlib.Path(__file__).resolve().parent
# What starts a Python process: the subprocess module and the helpers of tests/procs.py.
STARTS_A_PROCESS = {"subprocess", "run_script", "run_python", "run_with_fault", "wait_all",
                    "heavy_modules_after"}


def names_in(node):
    """Every name and attribute a function's body and arguments mention."""
    found = {arg.arg for arg in node.args.args}
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def starts_a_process(name, functions, seen=None):
    """Whether the function (or a fixture or helper of the same file it uses) does."""
    seen = set() if seen is None else seen
    if name in seen or name not in functions:
        return False
    seen.add(name)
    used = names_in(functions[name])
    return bool(used & STARTS_A_PROCESS) or any(
        starts_a_process(other, functions, seen) for other in used)


def marks(nodes):
    """The `pytest.mark.<name>` names in decorators or in a `pytestmark = ...` value."""
    return {child.attr for node in nodes for child in ast.walk(node)
            if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Attribute)
            and child.value.attr == "mark"}


def read(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    module_marks = marks(n.value for n in tree.body if isinstance(n, ast.Assign)
                         and any(getattr(t, "id", None) == "pytestmark" for t in n.targets))
    return functions, module_marks


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_a_test_that_starts_a_process_is_marked_integration(path):
    functions, module_marks = read(path)
    unmarked = [name for name, node in functions.items()
                if name.startswith("test_") and starts_a_process(name, functions)
                and "integration" not in module_marks | marks(node.decorator_list)]
    assert not unmarked, f"{path.name}: mark these @pytest.mark.integration: {unmarked}"


@pytest.mark.parametrize("table", ["FIRST_CASE_ONLY", "FLOAT64_ONLY"])
def test_every_test_the_fast_tier_samples_exists(table):
    for file_name, tests in getattr(conftest, table).items():
        functions, _ = read(TESTS / file_name)
        for name in tests:
            assert name in functions, f"{file_name} has no {name}"
            if table == "FLOAT64_ONLY":
                assert "dtype" in {arg.arg for arg in functions[name].args.args}, name
