"""No file of the repository cites a document outside it: what a comment or a doc relies on is
stated where it is, in the README or in a page of docs/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.docs import DOCS, pages

ROOT = Path(__file__).resolve().parents[2]
# Written in pieces, so that this file does not cite them either.
OUTSIDE = tuple(
    (name + suffix).encode()
    for name, suffix in (
        ("../", "shared"),
        ("DOMAIN", ".md"),
        ("INTERFACES", ".md"),
        ("ARCHITECTURE", "-REVIEW"),
    )
)


def _tracked() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    return [ROOT / name for name in listed.stdout.decode().split("\0") if name]


def _scanned() -> list[Path]:
    """Every tracked file, and every page of docs/ (even one not committed yet)."""
    return sorted({*_tracked(), *DOCS.rglob("*.md"), *pages()})


def test_no_file_cites_a_document_outside_the_repository() -> None:
    citing = {
        str(path.relative_to(ROOT)): [o.decode() for o in OUTSIDE if o in path.read_bytes()]
        for path in _scanned()
        if path.is_file()
    }
    assert {path: found for path, found in citing.items() if found} == {}


def test_the_documentation_is_scanned() -> None:
    scanned = set(_scanned())
    assert ROOT / "README.md" in scanned
    assert {"architecture.md", "configuration.md", "runbook.md"} <= {
        path.name for path in scanned if path.parent == DOCS
    }
