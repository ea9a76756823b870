"""The simulator stands apart from the code it tests: it imports nothing from `worker` or
`webhook`, so that a wrong rule shared by both sides cannot pass unnoticed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import graphsim

GRAPHSIM = Path(graphsim.__file__).parent
FORBIDDEN = {"worker", "webhook"}


def module_imports(path: Path) -> list[tuple[int, str]]:
    """Each module a file imports (absolute names; relative imports stay in the package)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append((node.lineno, str(node.args[0].value)))
    return found


def test_no_simulator_module_imports_the_worker_or_the_webhook() -> None:
    modules = sorted(GRAPHSIM.rglob("*.py"))
    offending = [
        f"{path.relative_to(GRAPHSIM.parent)}:{line} imports {name}"
        for path in modules
        for line, name in module_imports(path)
        if name.split(".")[0] in FORBIDDEN
    ]

    assert len(modules) > 10
    assert offending == []


def test_importing_every_simulator_module_loads_neither() -> None:
    script = (
        "import importlib, pkgutil, sys, graphsim\n"
        "for module in pkgutil.walk_packages(graphsim.__path__, 'graphsim.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )

    assert set(result.stdout.split()) & FORBIDDEN == set()
