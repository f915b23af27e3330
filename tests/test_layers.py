"""The packages depend one way: gui -> jobs -> io -> core and cli -> jobs -> io -> core.

Read from the source with ``ast`` (nothing is imported, so an import that only happens on some
path is seen too). An import under ``if TYPE_CHECKING:`` never runs and is not counted.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"

#: what each layer must never import, at module level or inside a function
FORBIDDEN = {
    "core": {"config", "io", "jobs", "gui", "cli", "cli_support"},
    "io": {"jobs", "gui", "cli", "cli_support"},
    "jobs": {"gui", "cli", "cli_support"},
}

#: imports inside a function that break a rule and are being removed on another branch
#: (i15-registries takes workbench.config out of core/train.py); nothing else may be added
KNOWN_LAZY: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """``workbench.io.runs`` -> ``io``; ``workbench.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports(tree: ast.AST) -> Iterator[tuple[str, bool]]:
    """Every ``workbench.*`` module imported, with whether it is at module level."""

    def walk(node: ast.AST, top: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                yield from walk(ast.Module(body=child.orelse, type_ignores=[]), top)
                continue
            inner = top and not isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, top
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                yield child.module, top
                for alias in child.names:  # `from workbench import cli` imports workbench.cli
                    yield f"{child.module}.{alias.name}", top
            yield from walk(child, inner)

    for name, top in walk(tree, True):
        if name.startswith("workbench."):
            yield name, top


def edges() -> list[tuple[str, str, str, bool]]:
    """(importing module, its layer, imported layer, at module level) for every import that
    crosses from one layer to another."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        src = layer(module)
        for name, top in imports(ast.parse(path.read_text(encoding="utf-8"))):
            dst = layer(name)
            if dst != src:
                found.append((module, src, dst, top))
    return found


def test_layers_import_only_downwards() -> None:
    broken = [
        f"{module} imports workbench.{dst}" + ("" if top else " (inside a function)")
        for module, src, dst, top in edges()
        if dst in FORBIDDEN.get(src, ()) and (top or (module, dst) not in KNOWN_LAZY)
    ]
    assert broken == []


def test_no_import_cycle_between_packages() -> None:
    """The module-level imports between the packages and top modules form no cycle."""
    graph: dict[str, set[str]] = {}
    for _, src, dst, top in edges():
        if top:
            graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            assert cycle is None, " -> ".join(cycle)


def test_the_check_sees_a_forbidden_import() -> None:
    """The reader finds imports at module level, in functions and in `from x import y`, and
    skips TYPE_CHECKING blocks: otherwise the tests above would pass by finding nothing."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import workbench.io.runs\n"
        "from workbench import jobs\n"
        "if TYPE_CHECKING:\n"
        "    from workbench.gui import state\n"
        "def f():\n"
        "    from workbench.cli import main\n"
    )
    found = set(imports(ast.parse(source)))
    assert ("workbench.io.runs", True) in found
    assert ("workbench.jobs", True) in found
    assert ("workbench.cli", False) in found
    assert not any(name.startswith("workbench.gui") for name, _ in found)
    crossings = edges()
    assert {"core", "io", "jobs", "gui", "cli"} <= {src for _, src, _, _ in crossings}
    assert ("workbench.jobs.train", "jobs", "io", True) in crossings
