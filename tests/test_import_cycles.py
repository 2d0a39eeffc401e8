"""No import cycles in the packages: every import counts, also those inside functions.

The packages import TensorFlow and each other lazily (inside functions), which
hides a circle from Python but not from a reader: ``a`` needs ``b`` needs ``a``.
The graph is read from the source files (``ast``), found by walking the file
tree, so a new module or subpackage is checked without being named here.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("imgen", "augment", "transfer")


def module_files(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module and package ``__init__`` below ``packages``."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _never_runs_on_import(node: ast.AST, parents: dict) -> bool:
    """Inside ``if TYPE_CHECKING:`` or ``if __name__ == "__main__":`` (a script's entry point, which runs
    only when the file is the program, never when another module imports it)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and ("TYPE_CHECKING" in ast.unparse(node.test)
                                         or "__name__ == '__main__'" in ast.unparse(node.test)):
            return True
    return False


def imported_names(name: str, path: Path) -> set[str]:
    """Dotted names ``path`` imports anywhere (top level or inside functions), relative imports resolved.

    ``from pkg import x`` yields ``pkg.x`` as well as ``pkg``: ``x`` may be a submodule.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if _never_runs_on_import(node, parents):
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: modules of ours it makes Python run}``: the named module and its packages' ``__init__``.

    A module's own enclosing packages are left out: Python has initialised them before it runs.
    """
    graph = {}
    for name, path in files.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        targets = set()
        for imported in imported_names(name, path):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in files and candidate not in own and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _path_between(graph, start: str, members: set[str]) -> list[str]:
    """One circle through ``start`` inside ``members`` (breadth first), for the failure message."""
    queue, seen = [[start]], {start}
    while queue:
        path = queue.pop(0)
        for target in sorted(graph[path[-1]] & members):
            if target == start:
                return path + [start]
            if target not in seen:
                seen.add(target)
                queue.append(path + [target])
    return [start]


def test_the_packages_have_no_import_cycles():
    files = module_files()
    assert {"imgen", "augment", "transfer", "transfer.training.runner"} <= set(files)
    graph = import_graph(files)
    found = cycles(graph)
    message = "\n".join(" -> ".join(_path_between(graph, c[0], set(c))) for c in found)
    assert not found, f"import cycles (imports inside functions count too):\n{message}"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_lazy_circle_through_a_subpackage_is_found(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.sub import b\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "def f():\n    from ..c import g\n",
        "pkg/c.py": "import pkg.a\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import d\n",
        "pkg/d.py": "from pkg import c\n",
    })
    graph = import_graph(module_files(tmp_path, ("pkg",)))
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]  # pkg.d -> pkg.c only under TYPE_CHECKING back


@pytest.mark.parametrize("text", ["import pkg.b\n", "from . import b\n", "from .b import x\n"])
def test_every_spelling_of_an_import_is_an_edge(tmp_path, text):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": text, "pkg/b.py": "def f():\n    import pkg.a\n"})
    assert cycles(import_graph(module_files(tmp_path, ("pkg",)))) == [["pkg.a", "pkg.b"]]
