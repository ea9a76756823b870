"""The benchmark figures trace to run reports: every `bench/runs/*.txt` that bench/RESULTS.md, a
README or a page of docs/ names exists, every run report has its header, and RESULTS.md names
every report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import pages

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "bench" / "runs"
CITING = (
    ROOT / "bench" / "RESULTS.md",
    *pages(),
    ROOT / "deploy" / "README.md",
    ROOT / "bench" / "README.md",
)
REFERENCE = re.compile(r"bench/runs/[\w.-]+\.txt")
REPORTS = sorted(RUNS.glob("*.txt"))

# Header lines of a report (bench/record_run.py writes them; the chaos runs' reports, made by
# `make chaos`, say `started:` for the date), each with what its value must show.
HEADER = {
    "command": re.compile(r"^command: (\S*python\S* bench/\w+\.py|make \w+)", re.M),
    "date": re.compile(r"^(date|started): 20\d\d-\d\d-\d\d[ T]\d\d:\d\d", re.M),
    "commit": re.compile(r"^commit: [0-9a-f]{7,40}(-dirty)?$", re.M),
    "machine": re.compile(r"^machine: \d+ cores\b.*, [\d.]+ (GiB|GB)\b", re.M),
    "load before": re.compile(r"^load average before: [\d.]+ [\d.]+ [\d.]+$", re.M),
    "load after": re.compile(r"^load average after: [\d.]+ [\d.]+ [\d.]+$", re.M),
}


def cited() -> dict[str, set[Path]]:
    """Each report path named by a citing document, with the documents naming it."""
    found: dict[str, set[Path]] = {}
    for document in CITING:
        for name in REFERENCE.findall(document.read_text()):
            found.setdefault(name, set()).add(document)
    return found


def test_there_are_reports_and_citations() -> None:
    assert REPORTS
    assert cited()
    # The scaling figures of docs/architecture.md trace to their reports too.
    assert any(ROOT / "docs" / "architecture.md" in documents for documents in cited().values())


@pytest.mark.parametrize("name", sorted(cited()))
def test_every_cited_report_exists(name: str) -> None:
    documents = ", ".join(str(d.relative_to(ROOT)) for d in cited()[name])
    assert (ROOT / name).is_file(), f"{documents} cite {name}, which does not exist"


@pytest.mark.parametrize("report", REPORTS, ids=lambda path: path.name)
def test_every_report_has_its_header(report: Path) -> None:
    text = report.read_text()
    missing = [field for field, pattern in HEADER.items() if not pattern.search(text)]
    assert not missing, f"{report.name} lacks {', '.join(missing)}"


@pytest.mark.parametrize("report", REPORTS, ids=lambda path: path.name)
def test_every_report_is_cited_by_the_results(report: Path) -> None:
    assert f"bench/runs/{report.name}" in (ROOT / "bench" / "RESULTS.md").read_text()
