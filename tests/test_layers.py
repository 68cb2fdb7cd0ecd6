"""The packages lean one way only: gateway -> drivers / vision / anomaly -> edge_config -> edge_core.

Read from the source (every import statement, at module level or inside a function), so a lazy
import cannot hide a wrong-way dependency or a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("gateway", "drivers", "vision", "anomaly", "edge_config", "edge_core", "simulators")
# What each package may import of the project (besides itself).
ALLOWED: dict[str, frozenset[str]] = {
    "edge_core": frozenset(),
    "edge_config": frozenset({"edge_core"}),
    "drivers": frozenset({"edge_config", "edge_core"}),
    "vision": frozenset({"edge_config", "edge_core"}),
    "anomaly": frozenset({"edge_config", "edge_core"}),
    "simulators": frozenset({"edge_config", "edge_core"}),
    "gateway": frozenset({"drivers", "vision", "anomaly", "edge_config", "edge_core", "simulators"}),
}
LONG_MODULE = 500
LONG_REASON = "Why this file is long:"


def _modules() -> dict[str, Path]:
    found = {}
    for pkg in PROJECT:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str) -> set[str]:
    """The project modules ``path`` imports (``from pkg import mod`` counts as pkg.mod when that
    is a module)."""
    modules = _modules()
    out: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:
                t = t.rpartition(".")[0]
            if t and t.split(".")[0] in PROJECT:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    return {name: _imports(path, name) - {name} for name, path in _modules().items()}


def test_every_package_imports_only_the_layers_below_it() -> None:
    wrong = []
    for name, deps in _graph().items():
        pkg = name.split(".")[0]
        for dep in sorted(deps):
            top = dep.split(".")[0]
            if top != pkg and top not in ALLOWED[pkg]:
                wrong.append(f"{name} imports {dep}")
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    # A package's __init__ re-exporting its own modules is not a cycle between modules.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not (name.startswith(d + ".") and d == name.rpartition(".")[0])}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_camera_driver_knows_nothing_of_vision() -> None:
    assert not {d for d in _imports(REPO / "drivers" / "camera.py", "drivers.camera") if d.startswith("vision")}


def test_a_long_module_says_why_at_its_top() -> None:
    # vision/_kernels.py is long for numba's cache (keyed on the source file): its map says so.
    silent = []
    for path in sorted(p for pkg in (*PROJECT, "tests", "bench") for p in (REPO / pkg).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        long = text.count("\n") > LONG_MODULE and path.name != "_kernels.py"
        if long and LONG_REASON not in (ast.get_docstring(ast.parse(text)) or ""):
            silent.append(str(path.relative_to(REPO)))
    assert silent == [], f"over {LONG_MODULE} lines: split them or say at the top: {LONG_REASON!r}"


def test_the_layer_check_sees_a_wrong_way_import(tmp_path: Path) -> None:
    # The checker itself must be able to fail: a driver importing the gateway is caught.
    probe = REPO / "drivers" / "camera.py"
    tree_imports = _imports(probe, "drivers.camera")
    assert "drivers.onvif" in tree_imports and "edge_core.errors" in tree_imports
    fake = tmp_path / "bad.py"
    fake.write_text("def f():\n    from gateway.app import Gateway\n    return Gateway\n")
    assert _imports(fake, "drivers.bad") == {"gateway.app"}
