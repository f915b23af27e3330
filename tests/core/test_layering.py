"""workbench.core is pure numerics: no module of it imports Qt, h5py, the config, io or the GUI,
neither when imported nor later from inside a function."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import workbench.core

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "pyqtgraph", "h5py", "workbench.config", "workbench.io", "workbench.gui")


def _core_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(workbench.core.__path__, prefix="workbench.core.")
    )


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    # ``if TYPE_CHECKING:`` imports are read by type checkers only, never run
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def test_the_walk_finds_every_core_module() -> None:
    found = set(_core_modules())
    on_disk = {
        "workbench.core." + ".".join(p.relative_to(ROOT / "workbench/core").with_suffix("").parts)
        for p in (ROOT / "workbench/core").rglob("*.py")
        if p.name != "__init__.py"
    }
    assert on_disk <= found and len(found) >= 20


def test_no_core_module_imports_qt_h5py_config_io_or_gui_anywhere_in_its_code() -> None:
    """Every import statement, at the top or inside a function (a lazy import is still one)."""
    bad = []
    for path in sorted((ROOT / "workbench/core").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            hits = [n for n in names if _forbidden(n)]
            if hits and not _type_checking_only(node, parents):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {hits[0]}")
    assert not bad, "\n".join(bad)


def test_importing_all_of_core_loads_none_of_them() -> None:
    """In a fresh interpreter: importing every core module pulls in none of the forbidden ones."""
    modules = _core_modules()
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if any(m == b or m.startswith(b + '.') "
        f"for b in {FORBIDDEN!r}))\n"
        "print(*bad); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
