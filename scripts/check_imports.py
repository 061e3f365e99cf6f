"""Draws the import graph of the project's packages and fails on an import cycle.

    python scripts/check_imports.py            # module -> imports, in layers; local imports
    python scripts/check_imports.py --dot      # the same graph for Graphviz
    python scripts/check_imports.py --quiet    # only the cycles and local imports

An AST walk, so nothing is imported. Every ``import`` statement counts: at module level
and inside functions (a function-local import still runs, and one that closes a loop
only hides it). ``import a.b.c`` and ``from a.b import c`` (``c`` a submodule) give an edge
to ``a.b.c`` and one to each package on the way (``a.b``: its ``__init__`` runs), except the
importer's own ancestors, which Python has always started before the importer. Imports
under ``if TYPE_CHECKING:`` never run and are left out; so are ``importlib`` calls.

Exit status: 1 when there is a cycle (each one is named), 0 otherwise. Function-local
imports of a project module are listed with what they defer: the heavy third-party
packages (TensorFlow, SciPy, ...) the target loads that the importer does not.
"""

import argparse
import ast
import dataclasses
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# (folder that is on sys.path, package in it): benchmarking is imported as `benchmarking`
# because pytest and scripts/bench.py put scripts/ on the path.
PACKAGES = ((ROOT, "numpy_ref"), (ROOT, "tfmodels"), (ROOT / "scripts", "benchmarking"))
# Third-party packages whose import a function-local import may defer.
HEAVY = ("tensorflow", "keras", "scipy", "matplotlib", "tensorboard", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class Import:
    """One import statement's edge from ``source`` to the project module ``target``."""
    source: str
    target: str
    line: int
    function: str | None  # the enclosing function of a local import, else None


@dataclasses.dataclass
class Graph:
    """The project's modules, the imports between them and their third-party imports."""
    files: dict[str, pathlib.Path]          # module name -> file
    imports: list[Import]                    # project -> project, local ones included
    external: dict[str, set[str]]            # module -> top-level third-party packages
    external_local: dict[str, set[str]]      # the subset imported inside functions only

    def edges(self, local=True):
        """module -> the set of project modules it imports (module level only if not local)."""
        out = {name: set() for name in self.files}
        for imp in self.imports:
            if local or imp.function is None:
                out[imp.source].add(imp.target)
        return out

    def local_imports(self):
        return [imp for imp in self.imports if imp.function is not None]


def module_files(packages=PACKAGES):
    """Dotted module name -> file, for every .py file of each package."""
    files = {}
    for base, package in packages:
        for path in sorted((base / package).rglob("*.py")):
            parts = path.relative_to(base).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def _is_package(files, name):
    return name in files and files[name].name == "__init__.py"


def _ancestors(name):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _absolute(files, module, node):
    """The absolute module name an ImportFrom starts from (resolving ``from ..x``)."""
    if not node.level:
        return node.module
    package = module if _is_package(files, module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(files, module, node):
    """(project modules, third-party top-level names) one import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _absolute(files, module, node)
        names = [base] + [f"{base}.{alias.name}" for alias in node.names
                          if f"{base}.{alias.name}" in files]
    project, external = set(), set()
    ours = {m.partition(".")[0] for m in files}
    for name in names:
        chain = _ancestors(name) | {name}
        found = {m for m in chain if m in files}
        if found:
            project |= found
        elif name.split(".")[0] not in ours:
            external.add(name.split(".")[0])
    return project - _ancestors(module) - {module}, external


class _Visitor(ast.NodeVisitor):
    """Collects the import statements of one module with the function that holds each."""

    def __init__(self):
        self.found = []  # (node, "Class.method" / "function", or None at import time)
        self._scope = []  # (name, is a function) of the enclosing classes and functions

    def _enter(self, node, is_function):
        self._scope.append((node.name, is_function))
        self.generic_visit(node)
        self._scope.pop()

    def visit_FunctionDef(self, node):
        self._enter(node, True)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._enter(node, False)  # a class body runs at import time

    def visit_If(self, node):
        test = node.test
        name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", None)
        if name == "TYPE_CHECKING":  # never runs: only the else branch counts
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def _import(self, node):
        local = any(is_function for _, is_function in self._scope)
        self.found.append((node, ".".join(name for name, _ in self._scope) if local else None))

    visit_Import = visit_ImportFrom = _import


def build(packages=PACKAGES):
    """The import Graph of `packages` (a sequence of (folder on sys.path, package name))."""
    files = module_files(packages)
    graph = Graph(files, [], {m: set() for m in files}, {m: set() for m in files})
    for module, path in files.items():
        visitor = _Visitor()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        module_level = set()
        for node, function in visitor.found:
            project, external = _targets(files, module, node)
            graph.imports += [Import(module, t, node.lineno, function) for t in sorted(project)]
            graph.external[module] |= external
            if function is None:
                module_level |= external
        graph.external_local[module] = graph.external[module] - module_level
    return graph


def cycles(edges):
    """The strongly connected components with a cycle, each as a sorted list (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in edges.get(node, ()):
                found.append(sorted(component))

    for node in sorted(edges):  # recursion as deep as the longest import chain
        if node not in index:
            visit(node)
    return sorted(found)


def loop_through(edges, component):
    """One concrete loop a -> b -> ... -> a inside a strongly connected component."""
    members = set(component)
    start = component[0]
    paths, seen = {start: [start]}, {start}
    queue = [start]
    while queue:  # breadth first: the shortest way back to start
        node = queue.pop(0)
        for succ in sorted(edges[node] & members):
            if succ == start:
                return paths[node] + [start]
            if succ not in seen:
                seen.add(succ)
                paths[succ] = paths[node] + [succ]
                queue.append(succ)
    raise AssertionError(f"no loop through {component}")


def layers(edges):
    """Modules in layers: layer 0 imports no project module, layer n only lower layers.

    The modules of a cycle have no layer and are left out.
    """
    placed, out = {}, []
    while True:
        layer = sorted(m for m in edges if m not in placed
                       and all(t in placed for t in edges[m]))
        if not layer:
            return out
        for module in layer:
            placed[module] = len(out)
        out.append(layer)


def reachable_external(graph, module, local=False):
    """Third-party top-level packages that importing `module` loads (following the project)."""
    edges = graph.edges(local)
    seen, todo, found = {module}, [module], set()
    while todo:
        current = todo.pop()
        found |= graph.external[current] if local else (
            graph.external[current] - graph.external_local[current])
        for succ in edges[current] - seen:
            seen.add(succ)
            todo.append(succ)
    return found


def local_statements(graph):
    """(module, line, function) -> the modules one function-local import statement names.

    A package is left out where a module inside it is named too (``from a import b``
    names ``a.b``; the edge to ``a`` is implied).
    """
    statements = {}
    for imp in graph.local_imports():
        statements.setdefault((imp.source, imp.line, imp.function), []).append(imp.target)
    return {key: [t for t in targets if not any(o.startswith(t + ".") for o in targets)]
            for key, targets in statements.items()}


def deferred(graph, source, targets):
    """The heavy packages that importing `targets` loads and importing `source` does not."""
    def heavy(module):
        return {name for name in reachable_external(graph, module) if name in HEAVY}
    return sorted(set().union(*map(heavy, targets)) - heavy(source))


def dot_lines(graph):
    """The graph in Graphviz DOT; function-local imports dashed."""
    edges, local = graph.edges(), {(i.source, i.target) for i in graph.local_imports()}
    lines = ["digraph imports {"]
    for source in sorted(edges):
        lines.append(f'  "{source}";')
        for target in sorted(edges[source]):
            style = " [style=dashed]" if (source, target) in local else ""
            lines.append(f'  "{source}" -> "{target}"{style};')
    return lines + ["}"]


def layer_lines(edges):
    """Each module with the project modules it imports, lowest layer first."""
    lines, layered = [], layers(edges)
    for number, layer in enumerate(layered):
        lines.append(f"layer {number}:")
        lines += [f"  {m} -> {', '.join(sorted(edges[m])) or '-'}" for m in layer]
    rest = sorted(set(edges).difference(*layered))
    if rest:
        lines.append("no layer (in a cycle, or importing a module in one):")
        lines += [f"  {m} -> {', '.join(sorted(edges[m]))}" for m in rest]
    return lines


def local_lines(graph):
    """One line per function-local import statement of a project module, with what it defers."""
    statements = local_statements(graph)
    lines = [f"function-local imports of project modules: {len(statements)}"]
    for (source, line, function), targets in statements.items():
        path = graph.files[source]
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        why = ", ".join(deferred(graph, source, targets)) or "nothing heavy"
        lines.append(f"  {where}:{line} {function}(): {', '.join(targets)}  (defers: {why})")
    return lines


def cycle_lines(edges):
    """Each cycle: its modules, one loop through them, and the edges that make it."""
    found = cycles(edges)
    if not found:
        return ["import cycles: none"]
    lines = [f"import cycles: {len(found)}"]
    for component in found:
        inside = {m: edges[m] & set(component) for m in component}
        lines.append(f"  {len(component)} modules, e.g. "
                     + " -> ".join(loop_through(inside, component)))
        lines += [f"    {m} -> {', '.join(sorted(inside[m]))}" for m in component]
    return lines


def report(graph, dot=False, quiet=False):
    """The text the script prints, and whether the graph has a cycle."""
    edges = graph.edges()
    has_cycle = bool(cycles(edges))
    if dot:
        return "\n".join(dot_lines(graph)), has_cycle
    lines = ([] if quiet else layer_lines(edges)) + local_lines(graph) + cycle_lines(edges)
    return "\n".join(lines), has_cycle


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dot", action="store_true", help="print the graph in Graphviz DOT")
    parser.add_argument("--quiet", action="store_true",
                        help="leave out the layered graph; print local imports and cycles")
    args = parser.parse_args(argv)
    text, has_cycle = report(build(), dot=args.dot, quiet=args.quiet)
    print(text)
    return 1 if has_cycle else 0


if __name__ == "__main__":
    sys.exit(main())
