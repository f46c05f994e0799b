"""The project's import structure: no cycle between modules, `strategies` never imports
`benchmark`, and `benchmark.reporting` never imports torch (a report builds without it)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from benchmark.paths import REPO_ROOT

PACKAGES = ("benchmark", "strategies")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO_ROOT / package).rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports anywhere (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the submodule pkg.mod when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _project_modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_is_read():
    graph = _graph()
    assert "benchmark.run.worker" in graph and "benchmark.train.cell" in graph["benchmark.run.worker"]
    assert "strategies.registry" in graph["strategies"]


def test_no_import_cycle_between_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_between_subpackages():
    def room(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "benchmark" else parts[0]  # cli, paths, progress: rooms of their own

    rooms: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        rooms.setdefault(room(module), set()).update(room(t) for t in targets if room(t) != room(module))
    cycle = _find_cycle(rooms)
    assert cycle is None, "sub-packages import each other: " + " -> ".join(cycle)


def test_strategies_never_import_benchmark():
    offenders = {m: sorted(t for t in targets if t.startswith("benchmark"))
                 for m, targets in _graph().items() if m.startswith("strategies")}
    assert not any(offenders.values()), offenders


def test_reporting_imports_only_the_schema_and_never_torch():
    graph = _graph()
    reporting = {m for m in graph if m.startswith("benchmark.reporting")}
    outside = {t for m in reporting for t in graph[m] if not t.startswith("benchmark.reporting")}
    assert outside <= {"benchmark.scale.schema", "benchmark.paths"}, outside
    code = "import sys, benchmark.reporting; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, "importing benchmark.reporting imported torch" + result.stderr[-2000:]
