"""No file of the repository cites a document outside it: what a comment or a doc relies on is
stated where it is, or in the README."""

from __future__ import annotations

import subprocess
from pathlib import Path

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


def test_no_file_cites_a_document_outside_the_repository() -> None:
    citing = {
        str(path.relative_to(ROOT)): [o.decode() for o in OUTSIDE if o in path.read_bytes()]
        for path in _tracked()
        if path.is_file()
    }
    assert {path: found for path, found in citing.items() if found} == {}
