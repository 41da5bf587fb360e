"""The house's layers, read from the package's own imports (ast), so that a change cannot quietly undo them.

Each module sits on a floor; an import may only run to the same floor or lower. Protocols are sans-IO: no
asyncio, socket or threading, and nothing of monoceros outside ``protocols/`` (limits arrive as arguments). The
adapters know no server, supervisor, command line or logs; the server knows no supervisor; nothing but
``__main__`` imports the command line. Imports inside functions count: a lazy import is an import. And the
import graph has no circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "monoceros"

# Floors, lowest first. A module's floor is that of the longest prefix that names it.
FLOORS: dict[str, int] = {
    "monoceros._version": 0,
    "monoceros.errors": 0,
    "monoceros.exitcodes": 0,
    "monoceros.protocols": 1,
    "monoceros.failures": 1,
    "monoceros.config": 2,
    "monoceros.hooks": 2,
    "monoceros.demo": 2,
    "monoceros.adapters": 3,
    "monoceros.logs": 3,
    "monoceros.access_format": 3,
    "monoceros.access_log": 3,
    "monoceros.server": 4,
    "monoceros.admin": 5,
    "monoceros.supervisor": 5,
    "monoceros.runner": 6,
    "monoceros.preflight": 6,
    "monoceros.argv": 7,
    "monoceros.cli": 7,
    "monoceros": 8,  # __init__: run()
    "monoceros.__main__": 9,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module ``name`` imports, anywhere in it (function bodies too), as dotted names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return found


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def floor(name: str) -> int:
    key = max((prefix for prefix in FLOORS if name == prefix or name.startswith(prefix + ".")), key=len)
    return FLOORS[key]


def _ours(name: str) -> set[str]:
    return {target for target in IMPORTS[name] if target in MODULES and target != name}


def test_every_module_has_a_floor() -> None:
    assert all(floor(name) >= 0 for name in MODULES)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_down_the_floors(name: str) -> None:
    up = sorted(target for target in _ours(name) if floor(target) > floor(name))
    assert not up, f"{name} (floor {floor(name)}) imports from a higher floor: {up}"


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _in(n, "monoceros.protocols")))
def test_protocols_are_sans_io(name: str) -> None:
    io = sorted(t for t in IMPORTS[name] if t.split(".")[0] in ("asyncio", "socket", "threading", "selectors"))
    assert not io, f"{name} imports {io}"
    outside = sorted(t for t in _ours(name) if not _in(t, "monoceros.protocols"))
    assert not outside, f"{name} imports monoceros outside protocols/: {outside}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _in(n, "monoceros.adapters")))
def test_adapters_know_no_server_supervisor_cli_or_logs(name: str) -> None:
    banned = ("monoceros.server", "monoceros.supervisor", "monoceros.cli", "monoceros.logs", "monoceros.access_log")
    bad = sorted(t for t in _ours(name) if any(_in(t, b) for b in banned))
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _in(n, "monoceros.server")))
def test_the_server_knows_no_supervisor_or_cli(name: str) -> None:
    bad = sorted(t for t in _ours(name) if _in(t, "monoceros.supervisor") or _in(t, "monoceros.cli"))
    assert not bad, f"{name} imports {bad}"


def test_only_main_imports_the_cli() -> None:
    importers = sorted(name for name in MODULES if "monoceros.cli" in _ours(name))
    assert importers == ["monoceros.__main__"]


def test_no_lazy_import_by_string() -> None:
    for name, path in MODULES.items():
        assert 'import_module("monoceros' not in path.read_text(), f"{name} imports monoceros by a string"


def test_the_import_graph_has_no_circle() -> None:
    graph = {name: _ours(name) for name in MODULES}
    circles = _strongly_connected(graph)
    assert not circles, f"import circles: {circles}"


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively: the groups of modules that import each other, round a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_the_circle_finder_finds_a_circle() -> None:
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []
