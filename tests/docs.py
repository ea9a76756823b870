"""The documentation as tests read it: the top-level README and the pages of docs/, by name.

`doc("configuration")` is docs/configuration.md, `doc("README")` the top-level README.md;
`doc_section` cuts a page down to one heading's section, and `anchors` gives the anchors GitHub
makes of a page's headings, for checking links into it.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"

FENCE = re.compile(r"^(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def doc_path(name: str) -> Path:
    """docs/<name>.md, or the top-level README.md for "README"."""
    return README if name == "README" else DOCS / f"{name}.md"


@cache
def doc(name: str) -> str:
    """The text of a documentation page (see `doc_path`)."""
    return doc_path(name).read_text(encoding="utf-8")


def pages() -> list[Path]:
    """The top-level README and every page of docs/."""
    return [README, *sorted(DOCS.glob("*.md"))]


def _in_prose(lines: list[str]) -> list[bool]:
    """For each line, whether it is outside fenced code blocks (which hold no heading or link)."""
    flags, fence = [], ""
    for line in lines:
        found = FENCE.match(line.strip())
        flags.append(not fence and not found)
        if fence:
            if found and found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence):
                fence = ""
        elif found:
            fence = found.group(1)
    return flags


def prose(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines = text.splitlines()
    return [line for line, kept in zip(lines, _in_prose(lines), strict=True) if kept]


def headings(text: str) -> list[tuple[int, str]]:
    """Each ATX heading of a Markdown text, as (level, title), in order."""
    found = (HEADING.match(line) for line in prose(text))
    return [(len(m.group(1)), m.group(2)) for m in found if m]


def doc_section(name: str, title: str) -> str:
    """The text of the section of a page headed `title` (any level), its subsections included:
    up to the next heading of the same level or higher."""
    lines = doc(name).splitlines()
    level, section = 0, []
    for line, kept in zip(lines, _in_prose(lines), strict=True):
        found = HEADING.match(line) if kept else None
        if level and found and len(found.group(1)) <= level:
            break
        if level:
            section.append(line)
        elif found and found.group(2) == title:
            level = len(found.group(1))
    assert level, f"{doc_path(name).relative_to(ROOT)} has no heading {title!r}"
    return "\n".join(section) + "\n"


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation but `-` and `_`
    dropped (inline code's backticks included), spaces made hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a Markdown text's headings; a repeated one gets `-1`, `-2`, ... as on
    GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, title in headings(text):
        slug = github_slug(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found
