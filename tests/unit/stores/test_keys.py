"""The Redis keys are the contract with the releases before and after this one: each spelled
once (wa_media/core/keys.py), as this release's and the previous ones spell them."""

from __future__ import annotations

import ast
from pathlib import Path

from wa_media.core import keys
from wa_media.core.records import MediaRef, ReplyRef

ROOT = Path(__file__).resolve().parents[3]
# Everything that reads or writes the records: the product and the development tools.
SPELLERS = ("wa_media", "webhook", "worker", "devstack", "bench")


def test_the_keys_are_spelled_as_before() -> None:
    assert [
        keys.PENDING_KEY,
        keys.PENDING_WINDOW_KEY,
        keys.FAILED_KEY,
        keys.ARCHIVED_KEY,
        keys.SWEEP_LOCK_KEY,
        keys.SWEEP_LAST_KEY,
        keys.REPLIES_PENDING_KEY,
        keys.SKIPPED_KEY,
        keys.PAUSED_KEY,
    ] == [
        "wa:pending",
        "wa:pending:window",
        "wa:failed",
        "wa:archived",
        "wa:sweep-lock",
        "wa:sweep:last",
        "wa:replies:pending",
        "wa:skipped",
        "wa:paused",
    ]
    assert keys.commit_key("b", "pn/2026/m1.jpg") == "wa:commit:b/pn/2026/m1.jpg"
    assert keys.pause_key("f1") == "wa:pause:f1"
    assert keys.rate_key("f1", 1800000000) == "wa:rate:f1:1800000000"
    assert keys.reply_to_key("pn", "f2") == "wa:reply-to:pn:f2"
    assert keys.reply_rate_key("pn", 30000000) == "wa:reply-rate:pn:30000000"
    assert (keys.LEASE_PATTERN, keys.REPLY_PATTERN) == ("wa:lease:*", "wa:reply:*")


def test_a_media_and_a_warning_name_their_keys_by_account() -> None:
    media = MediaRef("106540352242922", "m1")
    assert (media.member, media.key, media.lease_key, media.legacy_key) == (
        "106540352242922:m1",
        "wa:media:106540352242922:m1",
        "wa:lease:106540352242922:m1",
        "wa:media:m1",
    )
    reply = ReplyRef("106540352242922", "wamid.1")
    assert (reply.member, reply.key, reply.job_key, reply.legacy_key) == (
        "106540352242922:wamid.1",
        "wa:reply:106540352242922:wamid.1",
        "wa:reply-job:106540352242922:wamid.1",
        "wa:reply:wamid.1",
    )


def _spelled_keys(path: Path) -> list[int]:
    """Lines of string literals (docstrings aside) that start a `wa:` key."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            if isinstance(first, ast.Constant) and str(first.value).startswith("wa:"):
                lines.append(node.lineno)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("wa:")
            and id(node) not in docstrings
        ):
            lines.append(node.lineno)
    return lines


def test_no_other_module_spells_a_key() -> None:
    spelled = {
        str(path.relative_to(ROOT)): lines
        for package in SPELLERS
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := _spelled_keys(path))
    }
    assert set(spelled) == {"wa_media/core/keys.py"}, spelled
