"""The project's import graph (scripts/check_imports.py): no cycle, numpy_ref stays NumPy.

Also imports every module once, so that the fast tier loads each of them.
"""

import importlib
import textwrap

import pytest

import check_imports as C

GRAPH = C.build()
NUMPY_REF = sorted(m for m in GRAPH.files if m.split(".")[0] == "numpy_ref")


def write_package(root, files):
    """Writes {relative path: source} under root (a tmp folder standing for sys.path)."""
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def test_the_project_has_no_import_cycle():
    found = C.cycles(GRAPH.edges())
    assert not found, "\n".join(C.cycle_lines(GRAPH.edges()))


def test_numpy_ref_imports_no_tensorflow_keras_or_scipy_even_inside_functions():
    for module in NUMPY_REF:
        heavy = C.reachable_external(GRAPH, module, local=True) & {"tensorflow", "keras", "scipy"}
        assert not heavy, f"{module} imports {sorted(heavy)}"
        others = {t for t in GRAPH.edges()[module] if not t.startswith("numpy_ref")}
        assert not others, f"{module} imports {sorted(others)} outside numpy_ref"


def test_a_function_local_import_of_the_package_defers_a_heavy_import():
    """Allowed only where the importer must not load TensorFlow (or SciPy...) at import."""
    needless = [f"{GRAPH.files[source].name}:{line} {function}(): {', '.join(targets)}"
                for (source, line, function), targets in C.local_statements(GRAPH).items()
                if source.split(".")[0] in ("numpy_ref", "tfmodels")
                and not C.deferred(GRAPH, source, targets)]
    assert not needless, "\n".join(needless)


def test_a_cycle_closed_by_a_function_local_import_is_found(tmp_path):
    root = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": """
            def f():
                from . import a  # closes the loop a -> b -> a
                return a
            """,
        "pkg/c.py": "import pkg.b\n",
    })
    graph = C.build([(root, "pkg")])
    assert C.cycles(graph.edges()) == [["pkg.a", "pkg.b"]]
    assert C.cycles(graph.edges(local=False)) == []
    text, has_cycle = C.report(graph)
    assert has_cycle
    assert "pkg.a -> pkg.b -> pkg.a" in text
    assert "b.py:3 f(): pkg.a" in text


def test_a_cycle_through_a_package_init_is_found(tmp_path):
    """``from pkg.sub import x`` runs ``pkg/sub/__init__.py``, which may import the importer."""
    root = write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.sub.c import VALUE\n",
        "pkg/sub/__init__.py": "from ..a import *\n",
        "pkg/sub/c.py": "VALUE = 1\n",
    })
    graph = C.build([(root, "pkg")])
    assert graph.edges()["pkg.a"] == {"pkg.sub", "pkg.sub.c"}
    assert C.cycles(graph.edges()) == [["pkg.a", "pkg.sub"]]


def test_a_module_importing_its_own_package_is_no_cycle(tmp_path):
    """Python starts every ancestor package before the module itself."""
    root = write_package(tmp_path, {
        "pkg/__init__.py": "from pkg import a\n",
        "pkg/a.py": "import pkg\nfrom pkg import b\nimport numpy\n",
        "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
    })
    graph = C.build([(root, "pkg")])
    assert graph.edges() == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": set()}
    assert graph.external["pkg.a"] == {"numpy"}
    assert C.cycles(graph.edges()) == []
    assert C.layers(graph.edges()) == [["pkg.b"], ["pkg.a"], ["pkg"]]


def test_the_script_prints_the_graph_for_graphviz(capsys):
    C.main(["--dot"])
    out = capsys.readouterr().out
    assert out.startswith("digraph imports {")
    assert '"numpy_ref.network.graph" -> "numpy_ref.layers"' in out


@pytest.mark.parametrize("module", sorted(GRAPH.files))
def test_every_module_imports(module):
    importlib.import_module(module)
