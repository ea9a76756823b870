"""The README stays a front door and the documentation holds together: the README is short,
keeps the commands CI and newcomers rely on and links every page of docs/, and every relative
link of the README and of docs/ leads to a file that exists and, into a Markdown page, to one of
its headings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import (
    DOCS,
    README,
    ROOT,
    anchors,
    doc,
    doc_section,
    github_slug,
    headings,
    pages,
    prose,
)

# The README's budget: what it is, the quick start, the diagram, the map and the links.
README_MAX_LINES = 300
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def links(text: str) -> list[str]:
    """The targets of a Markdown text's links and images, code spans and blocks left out."""
    found = []
    for line in prose(text):
        line = CODE_SPAN.sub("", line)
        found += LINK.findall(line)
        reference = REFERENCE.match(line)
        if reference:
            found.append(reference.group(1))
    return found


def broken_links(page: Path, text: str | None = None) -> list[str]:
    """Each relative link of `page` (or of `text`, read as if it were `page`) that leads nowhere,
    with why."""
    text = page.read_text(encoding="utf-8") if text is None else text
    problems = []
    for target in links(text):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if ROOT not in (resolved, *resolved.parents):
            problems.append(f"{target}: outside the repository")
        elif resolved != page and not resolved.exists():
            problems.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md":
            linked = text if resolved == page else resolved.read_text(encoding="utf-8")
            if anchor not in anchors(linked):
                problems.append(f"{target}: no heading with that anchor")
    return problems


def test_the_readme_is_a_front_door() -> None:
    lines = doc("README").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines"
    titles = [title for level, title in headings(doc("README")) if level == 2]
    for title in ("Quick start", "How it works", "Documentation", "Repository map"):
        assert title in titles


def test_the_readme_gives_the_commands() -> None:
    """The quick start's commands: CI runs the README's test command (.ci/run)."""
    quick_start = doc_section("README", "Quick start")
    for command in ("make demo", "make test", "make run"):
        assert f"\n{command}\n" in quick_start
    assert "```mermaid" in doc_section("README", "How it works")


def test_the_readme_links_every_page() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in links(doc("README"))
        if not SCHEME.match(target)
    }
    pages_of_docs = [page for page in sorted(DOCS.glob("*.md")) if page.name != "README.md"]
    assert pages_of_docs
    assert [page.name for page in pages_of_docs if page.resolve() not in linked] == []


def test_the_map_names_every_top_level_directory() -> None:
    repository_map = doc_section("README", "Repository map")
    for directory in ("webhook", "worker", "graphsim", "devstack", "bench", "deploy", "docs"):
        assert f"`{directory}/`" in repository_map
    assert "`tests/unit/`" in repository_map


@pytest.mark.parametrize("page", pages(), ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert links(page.read_text(encoding="utf-8")), f"{page.name} links nowhere"
    assert broken_links(page) == []


def test_github_slugs() -> None:
    assert github_slug("HTTP answers of `web`") == "http-answers-of-web"
    assert github_slug("Many accounts: the accounts file") == "many-accounts-the-accounts-file"
    assert github_slug("Security: what each component trusts") == (
        "security-what-each-component-trusts"
    )
    assert (
        github_slug("Meta Cloud API (`WHATSAPP_PROVIDER=cloud`, the default)")
        == "meta-cloud-api-whatsapp_providercloud-the-default"
    )
    assert anchors("# A\n\n## A\n\n```sh\n# not a heading\n```\n") == {"a", "a-1"}


def test_broken_links_are_found() -> None:
    text = (
        "## How it works\n\n"
        "[fine](runbook.md#wamediawebdown) [same page](#how-it-works) [web](https://example.com)\n"
        "[gone](nowhere.md) [no heading](runbook.md#nowhere) [out](../../etc/passwd)\n"
        "[not here](#nowhere) `[code](span.md)`\n\n```md\n[fenced](block.md)\n```\n"
        "[ref]: missing.md\n"
    )
    assert broken_links(DOCS / "made-up.md", text) == [
        "nowhere.md: no such file",
        "runbook.md#nowhere: no heading with that anchor",
        "../../etc/passwd: outside the repository",
        "#nowhere: no heading with that anchor",
        "missing.md: no such file",
    ]
