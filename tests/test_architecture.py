"""The package's module structure: no import cycles between fastinpaint's modules.

Read with ``ast`` (nothing is imported). An edge ``a -> b`` is an import of module ``b`` that
``a`` runs when it is imported: statements at module level, also inside ``if``/``try``/``with``
blocks and class bodies, but not inside functions (deferred imports, run when called), under
``if TYPE_CHECKING:`` (never run) or under ``if __name__ == "__main__":`` (run only when the file is
the program, ``python -m``, as the module ``__main__``: a module object of its own, not the one
that the package imports). ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module (a ``.py`` file, or the compiled extension ``fastinpaint._C``, a leaf), else to ``pkg``. A
submodule's implicit import of its parent package is not an edge: every submodule would
otherwise "import" its package's ``__init__``, which is how Python works, not a dependency the
code chose.
"""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Optional, Set

PACKAGE = "fastinpaint"
ROOT = pathlib.Path(__file__).resolve().parents[1] / "python" / PACKAGE
#: Modules built from C++ (CMakeLists.txt), not ``.py`` files: they import nothing of the package.
COMPILED = {"fastinpaint._C"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _never_runs_on_import(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if __name__ == "__main__":``."""
    if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__":
        return any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_statements(body: List[ast.stmt]):
    """The statements of ``body`` that run when the module is imported (see the module docstring)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        yield node
        if isinstance(node, ast.If):
            if not _never_runs_on_import(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _import_time_statements(block)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            yield from _import_time_statements(node.body)


def _all_nodes(node: ast.AST):
    """Every node below ``node`` but those in a block that never runs on import (function bodies included)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _never_runs_on_import(child.test):
            yield from (n for block in child.orelse for n in [block, *_all_nodes(block)])
            continue
        yield child
        yield from _all_nodes(child)


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> Optional[str]:
    if node.level == 0:
        return node.module
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(deferred: bool = False) -> Dict[str, Set[str]]:
    """``module -> {fastinpaint modules it imports at import time}`` for every module of the package
    (``deferred``: also the imports inside functions, for a stricter look by hand)."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    modules = set(files) | COMPILED
    graph: Dict[str, Set[str]] = {m: set() for m in COMPILED}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: Set[str] = set()
        for node in _all_nodes(tree) if deferred else _import_time_statements(tree.body):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    # `import a.b.c` runs a, a.b and a.b.c; only the named module is the choice made here
                    targets.add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve_from(module, is_package, node)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.add(sub if sub in modules else base)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle ``[a, b, …, a]`` of ``graph``, or None if it is acyclic (iterative depth-first search)."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"fastinpaint", "fastinpaint.cli", "fastinpaint.training.run", "fastinpaint.nn._checkpoint"} <= set(graph)
    assert "fastinpaint.nn.pconv_unet" in graph["fastinpaint.nn"]  # `from fastinpaint.nn.pconv_unet import ...`


def test_find_cycle_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
