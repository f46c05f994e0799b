"""The project's import structure as contracts (DESIGN.md section 1): the layer order below,
`strategies` never importing `benchmark`, `benchmark.reporting` importing only the vocabulary and
never torch, and no import cycle between modules or rooms. Every module's imports are read from
its source (top level and inside functions), so a deferred import counts as much as a top-level one."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from benchmark.paths import REPO_ROOT

PACKAGES = ("benchmark", "strategies")

# ---- The contracts: the one place where the order is stated -----------------------------------
# A room is a sub-package or top-level module of `benchmark` (benchmark.run, benchmark.cli), or
# `strategies`. LAYERS runs top to bottom (DESIGN.md: `cli -> run -> train -> features -> data`,
# `train -> strategies`, the zoo at the bottom): a room may import rooms on lower layers, never one
# on a higher layer; rooms on one layer are independent (neither imports the other).
LAYERS = (
    ("benchmark.cli", "benchmark.api"),  # the two entry points
    ("benchmark.perf",),  # developer benchmarks behind `fusebench perf`: they drive run/ and train/
    ("benchmark.run",),
    ("benchmark.engine", "benchmark.tracking"),  # run -> engine/tracking: the Ray executor; MLflow runs and UI
    ("benchmark.train",),
    ("benchmark.features",),
    ("benchmark.data",),
    ("benchmark.stores",),  # the shared stores (databases, matrix records, driver lock, retry): tracking, run, train
    ("strategies",),
)
# Rooms the layer order leaves out: shared leaves and side rooms, still bound by the cycle tests
# (and reporting by its own contract below). A new room must be placed in LAYERS or here.
UNLAYERED = {
    "benchmark",  # the package's __init__
    "benchmark.vocabulary",  # the ground floor: tasks, metrics and their direction, tags, the name codec
    "benchmark.reporting",  # imports only REPORTING_MAY_IMPORT, so nothing of run, train or torch
    "benchmark.inputmodel", "benchmark.yamlfile", "benchmark.paths", "benchmark.progress", "benchmark.quiet",
}
# What reporting may import outside itself: the vocabulary and where files live. Never torch.
REPORTING_MAY_IMPORT = {"benchmark.vocabulary", "benchmark.paths"}
# Imports that break the order and are tolerated for now, as (importer, imported) module pairs,
# each with a comment saying why and what removes it. None today; a listed pair that no longer
# exists fails the test, so the list cannot outlive the fix.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


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


def _room(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "benchmark" else parts[0]


def _floors(layers) -> dict[str, int]:
    return {room: floor for floor, rooms in enumerate(layers) for room in rooms}


def _layer_violations(graph: dict[str, set[str]], layers, exceptions=frozenset()) -> list[str]:
    """Each import from a room to one on a higher layer or to a sibling on its own layer."""
    floors = _floors(layers)
    found = []
    for module, targets in sorted(graph.items()):
        here = floors.get(_room(module))
        for target in sorted(targets):
            there = floors.get(_room(target))
            if here is None or there is None or _room(target) == _room(module) or (module, target) in exceptions:
                continue
            if there < here:
                found.append(f"{module} imports {target}: {_room(module)} is below {_room(target)}")
            elif there == here:
                found.append(f"{module} imports {target}: {_room(module)} and {_room(target)} are independent")
    return found


def test_the_import_graph_is_read():
    graph = _graph()
    assert "benchmark.run.unit_runner" in graph and "benchmark.train.cell" in graph["benchmark.run.unit_runner"]
    assert "strategies.registry" in graph["strategies"]


def test_no_strategy_imports_the_package_that_discovers_it():
    """`strategies/__init__` imports every strategy module (discover()); a strategy imports its
    decorator from strategies.registration, so no module of the zoo imports the package back."""
    graph = _graph()
    zoo = [name for name in graph if name.startswith("strategies.")]
    assert "strategies.early" in zoo and "strategies.registration" in graph["strategies.early"]
    back = sorted(name for name in zoo if "strategies" in graph[name])
    assert not back, f"strategy modules importing the `strategies` package (import from strategies.registration): {back}"


def test_no_import_cycle_between_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_between_subpackages():
    rooms: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        rooms.setdefault(_room(module), set()).update(_room(t) for t in targets if _room(t) != _room(module))
    cycle = _find_cycle(rooms)
    assert cycle is None, "sub-packages import each other: " + " -> ".join(cycle)


def test_every_room_is_placed_and_the_contracts_name_only_what_exists():
    graph = _graph()
    rooms = {_room(m) for m in graph}
    layered = set(_floors(LAYERS))
    assert not layered & UNLAYERED, layered & UNLAYERED
    unplaced = rooms - layered - UNLAYERED
    assert not unplaced, f"rooms placed neither in LAYERS nor in UNLAYERED (tests/test_structure.py): {sorted(unplaced)}"
    stale = (layered | UNLAYERED) - rooms
    assert not stale, f"the contracts name rooms that no longer exist: {sorted(stale)}"
    assert REPORTING_MAY_IMPORT <= set(graph), REPORTING_MAY_IMPORT - set(graph)
    gone = {pair for pair in KNOWN_EXCEPTIONS if pair[1] not in graph.get(pair[0], ())}
    assert not gone, f"known exceptions that no longer occur; remove them from KNOWN_EXCEPTIONS: {sorted(gone)}"


def test_the_layer_order_holds():
    violations = _layer_violations(_graph(), LAYERS, KNOWN_EXCEPTIONS)
    order = " -> ".join(" | ".join(rooms) for rooms in LAYERS)
    assert not violations, f"imports against the layer order {order}:\n" + "\n".join(violations)


def test_the_layer_check_finds_an_upward_and_a_sideways_import():
    layers = (("benchmark.cli", "benchmark.api"), ("benchmark.run",), ("benchmark.data",))
    graph = {"benchmark.data.cards": {"benchmark.run.worker", "benchmark.data.splits"},
             "benchmark.run.worker": {"benchmark.data.cards"}, "benchmark.cli": {"benchmark.api", "benchmark.run"},
             "benchmark.api": {"benchmark.paths"}, "benchmark.data.splits": set()}
    assert _layer_violations(graph, layers) == [
        "benchmark.cli imports benchmark.api: benchmark.cli and benchmark.api are independent",
        "benchmark.data.cards imports benchmark.run.worker: benchmark.data is below benchmark.run"]
    exceptions = {("benchmark.data.cards", "benchmark.run.worker"), ("benchmark.cli", "benchmark.api")}
    assert _layer_violations(graph, layers, exceptions) == []


def test_strategies_never_import_benchmark():
    offenders = {m: sorted(t for t in targets if t.startswith("benchmark"))
                 for m, targets in _graph().items() if m.startswith("strategies")}
    assert not any(offenders.values()), offenders


def _external_imports(path: Path) -> set[str]:
    """Top-level names of what ``path`` imports by absolute import (torch, numpy, benchmark, ...)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_vocabulary_is_the_ground_floor():
    """Every package may import the vocabulary, so it imports nothing of the project (and no
    third-party package): anything it imported would sit under every room."""
    graph, modules = _graph(), _project_modules()
    assert not graph["benchmark.vocabulary"], graph["benchmark.vocabulary"]
    assert _external_imports(modules["benchmark.vocabulary"]) <= {"__future__"}


def test_reporting_imports_only_the_vocabulary_and_never_torch():
    graph, modules = _graph(), _project_modules()
    reporting = sorted(m for m in graph if _room(m) == "benchmark.reporting")
    outside = {t for m in reporting for t in graph[m] if _room(t) != "benchmark.reporting"}
    assert outside <= REPORTING_MAY_IMPORT, outside - REPORTING_MAY_IMPORT
    direct = [m for m in reporting if "torch" in _external_imports(modules[m])]
    assert not direct, f"reporting modules that import torch: {direct}"
    # ... nor through what they import: load every reporting module (and so everything each imports
    # at module level) in a fresh interpreter and look for torch.
    code = ("import importlib, sys\n"
            f"for name in {reporting!r}: importlib.import_module(name)\n"
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, "importing benchmark.reporting's modules imported torch" + result.stderr[-2000:]
