"""Which accounts a webhook names, for its relay: pure, no I/O.

A body names its phone_number_ids in each change's `value.metadata` (Cloud API, and 360dialog
passing it on; its partner envelope in `data.metadata`). A delivery at `/webhook/<token>` is
its route's account's (an On-Premises body names none).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["body_numbers"]

_NUMBER = re.compile(r"[A-Za-z0-9_.-]{1,128}")


def _metadata_number(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return number if isinstance(number, str) and _NUMBER.fullmatch(number) else None


def body_numbers(document: Any) -> list[str]:
    """The phone_number_ids a webhook body names, each once, in order."""
    found: dict[str, None] = {}
    if not isinstance(document, dict):
        return []
    entries = document.get("entry")
    if isinstance(entries, list):
        for entry in entries:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            for change in changes if isinstance(changes, list) else []:
                if isinstance(change, dict):
                    number = _metadata_number(change.get("value"))
                    if number is not None:
                        found[number] = None
    elif "event" in document:
        number = _metadata_number(document.get("data"))
        if number is not None:
            found[number] = None
    return list(found)
