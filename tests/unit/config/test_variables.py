"""The table of environment variables (wa_media/config/variables.py) is the one truth: every
name the product reads is a row of it, every row is read, and the docs' configuration reference
lists exactly its rows, with their defaults and the processes that read them.

The docs' table is found by its header row, in README.md or any docs/*.md page.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

from wa_media.config import variables
from wa_media.config.variables import PROCESSES, VARIABLES, Variable
from wa_media.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ("wa_media", "webhook", "worker")
TABLE_FILE = ROOT / "wa_media" / "config" / "variables.py"
HEADER = "| variable | default | read by | meaning |"
# The docs' "read by" column names the service's processes; `wa-media` (cli) reads what the
# worker reads, and is left out of it.
DOCUMENTED_PROCESSES = tuple(p for p in PROCESSES if p != "cli")
# The calls that take a variable's name: read(environ, NAME, ...) of wa_media/config/env.py,
# environ.get(NAME) and os.getenv(NAME).
NAME_TAKING = {"read": 1, "get": 0, "getenv": 0}
# Modules that may still read a variable by name that others read through its row.
BY_NAME_TOO = {
    # prometheus_client's own variable, set by use_multiprocess_dir to the directory it chose
    # under PROMETHEUS_MULTIPROC_DIR's (read through its row by the processes).
    "wa_media/observability/metrics.py",
}

ROWS: dict[str, Variable[object]] = {
    ident: value for ident, value in vars(variables).items() if isinstance(value, Variable)
}


# --- what the code reads ---------------------------------------------------------------------


def _constants(tree: ast.Module) -> dict[str, str]:
    """A module's `NAME = "literal"` assignments."""
    found = {}
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            found[node.targets[0].id] = node.value.value
    return found


def _environ_like(node: ast.expr) -> bool:
    """`os.environ`, or a mapping passed as `environ` (not a WSGI request's environ)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"
    return isinstance(node, ast.Name) and (node.id == "environ" or node.id.endswith("_environ"))


def read_names(source: str) -> set[str]:
    """The variable names a module's code reads by name: string literals (or module constants
    holding one) given to read(environ, NAME, ...), environ.get(NAME), os.getenv(NAME) or
    environ[NAME]."""
    tree = ast.parse(source)
    constants = _constants(tree)

    def literal(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None  # a name chosen at run time (an accounts file's token_env, --secret-env)

    names = set()
    for node in ast.walk(tree):
        argument: ast.expr | None = None
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            position = NAME_TAKING.get(called)
            if position is None or len(node.args) <= position:
                continue
            if called == "get" and not (
                isinstance(func, ast.Attribute) and _environ_like(func.value)
            ):
                continue
            if called == "read" and isinstance(func, ast.Attribute):
                continue  # a row's own read(environ)
            argument = node.args[position]
        elif isinstance(node, ast.Subscript) and _environ_like(node.value):
            argument = node.slice
        if argument is not None and (name := literal(argument)) is not None:
            names.add(name)
    return names


def read_rows(source: str) -> set[str]:
    """The rows a module reads through the table: ROW.read(...), ROW.read_as(...) or
    ROW.read_optional(...), ROW as a name or an attribute (`v.S3_BUCKET`)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("read", "read_as", "read_optional")
        ):
            row = node.func.value
            ident = row.attr if isinstance(row, ast.Attribute) else getattr(row, "id", None)
            if ident in ROWS:
                found.add(ident)
    return found


def product_sources() -> Iterator[tuple[Path, str]]:
    """Every module of the product but the table itself."""
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != TABLE_FILE:
                yield path, path.read_text(encoding="utf-8")


@cache
def names_read_by_name() -> dict[str, set[str]]:
    """Each variable name read by name, with the modules reading it."""
    found: dict[str, set[str]] = {}
    for path, source in product_sources():
        for name in read_names(source):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


@cache
def rows_read() -> frozenset[str]:
    """The rows the product reads through the table."""
    return frozenset(row for _, source in product_sources() for row in read_rows(source))


@cache
def library_text(name: str) -> str:
    """The Python sources of an installed library."""
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} is not installed"
    assert spec.submodule_search_locations, f"{name} is not a package"
    return "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for location in spec.submodule_search_locations
        for path in Path(location).rglob("*.py")
    )


def test_the_scan_finds_every_way_of_reading_a_name() -> None:
    source = """
import os
from wa_media.config.env import read
FILE_VARIABLE = "A_FILE"
def f(environ, name):
    read(environ, "A_READ", int, "1")
    environ.get("A_GET", "")
    os.environ.get(FILE_VARIABLE)
    os.getenv("A_GETENV")
    os.environ["A_SUBSCRIPT"] = "x"
    environ.get(name)  # chosen at run time
    {"NOT_ENV": 1}.get("NOT_A_VARIABLE")
    request.environ.get("wsgi.input")
    S3_BUCKET.read(environ)
    v.S3_PREFIX.read_optional(environ)
"""
    assert read_names(source) == {"A_READ", "A_GET", "A_FILE", "A_GETENV", "A_SUBSCRIPT"}
    assert read_rows(source) == {"S3_BUCKET", "S3_PREFIX"}


def test_each_row_is_named_after_its_variable() -> None:
    assert len(ROWS) == len(VARIABLES)
    assert [row.name for row in VARIABLES] == list(ROWS)
    assert all(ident == row.name for ident, row in ROWS.items())


def test_every_variable_the_code_reads_by_name_is_a_row() -> None:
    unknown = {
        name: sorted(where) for name, where in names_read_by_name().items() if name not in ROWS
    }
    assert not unknown, f"read by name, but not rows of wa_media/config/variables.py: {unknown}"


def test_every_row_is_read() -> None:
    # By the product (through the row, or by name where the reads are not converted yet), or
    # by whoever the row names: a library, or the Procfile's shell.
    procfile = (ROOT / "Procfile").read_text(encoding="utf-8")
    unread = []
    for ident, row in ROWS.items():
        if row.read_elsewhere == "botocore":
            quoted = (f'"{row.name}"', f"'{row.name}'")
            if not any(q in library_text("botocore") for q in quoted):
                unread.append(f"{row.name} (botocore does not name it)")
        elif row.read_elsewhere is not None:
            if "${" + row.name not in procfile:
                unread.append(f"{row.name} (the Procfile does not expand it)")
        elif ident not in rows_read() and row.name not in names_read_by_name():
            unread.append(row.name)
    assert not unread, f"rows no code reads: {unread}"


def test_rows_read_through_the_table_are_not_also_read_by_name() -> None:
    # Once a variable is read through its row, no module reads it by name: one parse rule.
    both = {
        name: sorted(where)
        for name, where in names_read_by_name().items()
        if name in rows_read() and not where <= BY_NAME_TOO
    }
    assert not both, f"read through the table and by name: {both}"


# --- the rows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("row", VARIABLES, ids=lambda row: row.name)
def test_a_row_is_complete_and_its_default_parses(row: Variable[object]) -> None:
    assert row.processes, "which processes read it?"
    assert set(row.processes) <= set(PROCESSES)
    assert list(row.processes) == sorted(row.processes, key=PROCESSES.index)
    assert row.doc
    assert "\n" not in row.doc
    assert row.documented_default
    if row.default:
        row.parse(row.default)  # raises if the default is not a value of its own parser


def test_reading_through_a_row() -> None:
    row = variables.MAX_MEDIA_BYTES
    assert row.read({}) == 104857600
    assert row.read({"MAX_MEDIA_BYTES": " 7 "}) == 7
    assert row.read_optional({"MAX_MEDIA_BYTES": "  "}) is None
    assert row.read_optional({"MAX_MEDIA_BYTES": "7"}) == 7
    with pytest.raises(ConfigError, match=r"^MAX_MEDIA_BYTES is invalid: expected a positive"):
        row.read({"MAX_MEDIA_BYTES": "0"})
    with pytest.raises(ConfigError, match=r"^WHATSAPP_ACCESS_TOKEN is required but not set$"):
        variables.WHATSAPP_ACCESS_TOKEN.read({"WHATSAPP_ACCESS_TOKEN": " "})
    with pytest.raises(ConfigError, match=r"^LOG_LEVEL is invalid: 'LOUD' is not a logging level"):
        variables.LOG_LEVEL.read({"LOG_LEVEL": "loud"})
    assert variables.LOG_LEVEL.read({"LOG_LEVEL": "debug"}) == "DEBUG"


# --- the docs' table ---------------------------------------------------------------------------


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


@cache
def documented_rows() -> tuple[str, dict[str, tuple[str, str]]]:
    """The file holding the configuration reference, and its rows: each variable named in a
    first cell, with that row's "default" and "read by" cells."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    holding = [
        page
        for page in pages
        if page.exists() and HEADER in page.read_text(encoding="utf-8").splitlines()
    ]
    assert len(holding) == 1, f"expected one page with the table {HEADER!r}, found {holding}"
    lines = holding[0].read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2  # after the header and the |---| line
    rows: dict[str, tuple[str, str]] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == 4, f"not four cells: {line}"
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0])
        assert names, f"no variable in the first cell: {line}"
        for name in names:
            assert name not in rows, f"{name} is listed twice"
            rows[name] = (cells[1], cells[2])
    return str(holding[0].relative_to(ROOT)), rows


def expected_rows() -> dict[str, tuple[str, str]]:
    """What the docs' table must say of each row: its default and who reads it."""
    return {
        row.name: (
            row.documented_default,
            ", ".join(p for p in DOCUMENTED_PROCESSES if p in row.processes),
        )
        for row in VARIABLES
        if set(row.processes) & set(DOCUMENTED_PROCESSES)
    }


def test_the_docs_table_lists_exactly_the_rows() -> None:
    page, documented = documented_rows()
    missing = sorted(set(expected_rows()) - set(documented))
    extra = sorted(set(documented) - set(expected_rows()))
    assert not missing, f"rows of wa_media/config/variables.py missing from {page}: {missing}"
    assert not extra, f"{page} lists variables that are not rows: {extra}"


def test_the_docs_table_gives_each_rows_default_and_readers() -> None:
    page, documented = documented_rows()
    wrong = [
        f"{name}: {page} says {documented[name]}, the table {expected}"
        for name, expected in expected_rows().items()
        if name in documented and documented[name] != expected
    ]
    assert not wrong, "\n".join(wrong)


def test_the_docs_table_is_found_by_its_header() -> None:
    assert _cells("| `A`, `B` | `1` | web, worker | what |") == [
        "`A`, `B`",
        "`1`",
        "web, worker",
        "what",
    ]
    page, documented = documented_rows()
    assert page == "README.md" or page.startswith("docs/")
    assert documented["REDIS_URL"] == ("`redis://127.0.0.1:6379/0`", "web, worker, beat")
