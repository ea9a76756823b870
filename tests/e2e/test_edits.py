"""Edits that keep their media are never lost as duplicates, whichever message arrives first."""

from __future__ import annotations

import copy
from typing import Any

from devstack import webhooks
from devstack.processes import wait_for
from tests.e2e.conftest import Sent, Stack
from wa_media.core.layout import edit_record_key


def _edit_of(original: Sent, caption: str) -> dict[str, Any]:
    content = copy.deepcopy(original.message)
    content["image"]["caption"] = caption
    return webhooks.edit_message(original.message["id"], content)


def test_an_edit_in_the_original_s_webhook_is_recorded_beside_it(stack: Stack) -> None:
    original = stack.media("image", caption="before")
    edit = _edit_of(original, "after")
    assert stack.post(original, edit).status_code == 200

    sidecar = stack.wait_archived(original)
    assert (sidecar["wamid"], sidecar["caption"]) == (original.message["id"], "before")
    record = wait_for(
        lambda: stack.json_object(edit_record_key(original.key, edit["id"])),
        timeout=90,
        what="the edit's record",
    )
    assert record["kind"] == "edit"
    assert (record["wamid"], record["original_message_id"]) == (edit["id"], original.message["id"])
    assert record["caption"] == "after"
    assert record["key"] == original.key


def test_an_original_arriving_after_its_edit_is_recorded_beside_the_object(stack: Stack) -> None:
    original = stack.media("image", caption="before")
    edit = _edit_of(original, "after")
    assert stack.post(edit).status_code == 200
    sidecar = stack.wait_archived(original)
    assert (sidecar["wamid"], sidecar["caption"]) == (edit["id"], "after")
    assert sidecar["original_message_id"] == original.message["id"]

    assert stack.post(original).status_code == 200
    record = wait_for(
        lambda: stack.json_object(edit_record_key(original.key, original.message["id"])),
        timeout=60,
        what="the original's record",
    )
    assert (record["kind"], record["caption"]) == ("message", "before")
    assert record["original_message_id"] is None
    # The object and its sidecar are the edit's, untouched.
    assert stack.sidecar(original.key) == sidecar
    assert stack.verified(original)
