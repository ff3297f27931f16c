"""The rules of the house (shared/layout.md), checked on every import in the package,
including the ones inside functions: arrows point down, no circles, SQLAlchemy only in
store/, rich only in cli/render.py, no module over 600 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "dagctl"
# Higher layers may import lower ones, never the reverse. `store` sits beside the
# chain: anything above `dags` may use it, and it uses only `dags` and the base.
RANK = {"cli": 6, "actions": 5, "scheduling": 4, "managers": 3, "execution": 2, "dags": 1}
BASE = {"config", "errors", "secrets", "states", "plugins", "__init__", "__main__"}
MAX_LINES = 600
# Entry points stand above every wing: `python -m dagctl` and the public Python API.
ENTRY_POINTS = {"dagctl", "dagctl.__main__"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module.startswith("dagctl"):
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts}


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _dagctl_imports(module: str) -> set[str]:
    return {name for name in _imports(MODULES[module]) if name in MODULES and name != module}


def test_arrows_point_down() -> None:
    wrong = []
    for module in MODULES:
        if module in ENTRY_POINTS:
            continue
        wing = _wing(module)
        for target in _dagctl_imports(module):
            to = _wing(target)
            if to == wing or to in BASE:
                continue
            if wing in BASE:
                wrong.append(f"{module} -> {target} (the base imports no wing)")
            elif to == "cli":
                wrong.append(f"{module} -> {target} (nothing imports cli)")
            elif wing == "store" and to != "dags":
                wrong.append(f"{module} -> {target} (store uses only dags and the base)")
            elif to == "store" and wing in ("dags", "execution"):
                wrong.append(f"{module} -> {target} (below the store)")
            elif wing in RANK and to in RANK and RANK[to] > RANK[wing]:
                wrong.append(f"{module} -> {target} (runs back up)")
    assert wrong == []


def test_no_import_circles() -> None:
    graph = {m: _dagctl_imports(m) for m in MODULES}
    # A package's __init__ re-exporting its own modules is not a circle of behaviour.
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_only_store_imports_sqlalchemy_and_only_render_imports_rich() -> None:
    sql = sorted(
        m
        for m in MODULES
        if any(n.startswith("sqlalchemy") for n in _imports(MODULES[m]))
        and not m.startswith("dagctl.store")
        and m != "dagctl.execution.sqltask"  # the user's own database, documented exception
    )
    rich = sorted(
        m
        for m in MODULES
        if any(n.startswith("rich") for n in _imports(MODULES[m])) and m != "dagctl.cli.render"
    )
    web = sorted(
        m
        for m in MODULES
        if any(n.startswith(("starlette", "uvicorn")) for n in _imports(MODULES[m]))
        and not m.startswith("dagctl.web")
    )
    assert (sql, rich, web) == ([], [], [])


def test_no_module_is_over_600_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_importing_the_cli_imports_neither_sqlalchemy_nor_rich() -> None:
    code = (
        "import sys, dagctl.cli; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'rich', 'alembic')); "
        "print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
