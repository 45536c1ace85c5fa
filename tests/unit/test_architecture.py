"""The package's import graph, read from the source with `ast`: imports run one way, the local
cloud is imported only by what starts one, and no module waits on its own import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gameday

PACKAGE_DIR = Path(gameday.__file__).resolve().parent

# Each room and the rooms it may import (besides itself). Imports run one way: procedures import
# observation, faults, load and measurement, which import the clients and the records.
BASE = {"errors", "records", "timing", "deployment", "lazy", "table_consistency"}
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "lazy": set(),
    "table_consistency": set(),
    "records": {"errors"},
    "timing": {"errors"},
    "deployment": {"errors", "timing", "records", "safety", "table_consistency"},
    "safety": {"errors", "deployment", "timing", "lazy", "records"},
    "aws": BASE,
    "faults": BASE | {"aws", "observe", "safety"},   # a fault's effect is checked as a client sees it (pinned HTTP)
    "observe": BASE | {"aws"},
    "load": BASE | {"aws", "observe"},
    "measure": BASE,
    "report": BASE,
    "provision": BASE | {"aws", "infra"},
    "infra": set(),
    "gamedays": BASE | {"aws", "faults", "observe", "load", "measure", "report"},
    "catalog": BASE | {"aws", "faults", "observe", "load", "measure", "report", "gamedays"},
    "plugin": BASE | {"aws", "gamedays", "report", "measure", "localcloud"},
    "cli": BASE | {"aws", "faults", "gamedays", "report", "provision", "measure", "localcloud", "plugin", "safety", "observe"},
    "localcloud": BASE | {"provision", "infra"},
}
# Nothing imports the local cloud but the command that starts one and the fixture that does.
LOCALCLOUD_IMPORTERS = {"gameday.cli.main", "gameday.cli.local", "gameday.cli.plan", "gameday.plugin"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """Every gameday module `path` imports, at module level or inside functions, except under
    `if TYPE_CHECKING:`. `from package import name` counts as importing package.name when that is a
    module, else the package itself."""
    tree = ast.parse(path.read_text(), filename=str(path))
    this = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "gameday")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = this.split(".") if is_package else this.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if base.split(".")[0] != "gameday":
                return
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {name for name in found if name != this}


def import_graph() -> dict[str, set[str]]:
    paths = [p for p in PACKAGE_DIR.rglob("*.py") if "functions" not in p.relative_to(PACKAGE_DIR).parts]
    known = {module_name(p) for p in paths}
    return {module_name(p): {m for m in imported_modules(p, known) if m in known} for p in paths}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gameday"


def test_the_graph_is_read_from_the_real_package() -> None:
    graph = import_graph()
    assert "gameday.gamedays.failover" in graph and "gameday.faults.base" in graph
    assert any(room(m) == "observe" for m in graph["gameday.gamedays.failover"])


def test_no_import_cycle() -> None:
    graph = import_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            walk(start)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_starters_import_the_local_cloud() -> None:
    graph = import_graph()
    offenders = sorted(f"{m} imports {', '.join(sorted(d for d in deps if room(d) == 'localcloud'))}"
                       for m, deps in graph.items()
                       if room(m) != "localcloud" and m not in LOCALCLOUD_IMPORTERS
                       and any(room(d) == "localcloud" for d in deps))
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("source_room", sorted(MAY_IMPORT))
def test_imports_run_one_way(source_room: str) -> None:
    graph = import_graph()
    allowed = MAY_IMPORT[source_room] | {source_room, "gameday"}
    wrong = sorted(f"{m} -> {d}" for m, deps in graph.items() if room(m) == source_room
                   for d in deps if room(d) not in allowed)
    assert not wrong, f"{source_room} may import only {sorted(MAY_IMPORT[source_room])}:\n" + "\n".join(wrong)
