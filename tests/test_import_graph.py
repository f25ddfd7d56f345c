"""The package's import graph has no circles (module-level imports; lazy imports inside functions are not edges)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

PACKAGE = Path(__file__).resolve().parents[1] / "probes"


def module_graph(package: Path = PACKAGE) -> Dict[str, Set[str]]:
    """module -> the package modules it imports at module level (TYPE_CHECKING blocks excluded)."""
    names = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: Dict[str, Set[str]] = {name: set() for name in names}
    for name, path in names.items():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in names and t != name}
    return graph


def circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_in_the_package():
    assert circles(module_graph()) == []


def test_a_planted_circle_is_found(tmp_path):
    package = tmp_path / "probes"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from probes.b import x\n")
    (package / "b.py").write_text("import probes.c\nx = 1\n")
    (package / "c.py").write_text("def f():\n    from probes.a import y\n")   # lazy: not an edge
    assert circles(module_graph(package)) == []
    (package / "c.py").write_text("from probes import a\n")
    assert circles(module_graph(package)) == [["probes.a", "probes.b", "probes.c"]]
