"""Each test module that needs a database of the shared Redis names its own number
(`redis_db(n)`): two modules on one number would flush each other's data."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
DATABASES = range(16)  # Redis's default `databases 16`


def redis_db_calls() -> list[tuple[str, ast.expr | None]]:
    """(module, first argument) of every `redis_db(...)` call under tests/."""
    calls = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "redis_db":
                module = str(path.relative_to(TESTS.parent))
                calls.append((module, node.args[0] if node.args else None))
    return calls


def test_the_calls_are_found() -> None:
    assert len({module for module, _ in redis_db_calls()}) >= 5


def test_each_number_is_a_literal_database() -> None:
    for module, argument in redis_db_calls():
        assert isinstance(argument, ast.Constant), f"{module}: redis_db needs a literal number"
        assert argument.value in DATABASES, f"{module}: redis_db({argument.value!r})"


def test_no_two_modules_share_a_database() -> None:
    users: dict[object, set[str]] = defaultdict(set)
    for module, argument in redis_db_calls():
        if isinstance(argument, ast.Constant):
            users[argument.value].add(module)
    shared = {number: sorted(modules) for number, modules in users.items() if len(modules) > 1}
    assert shared == {}
