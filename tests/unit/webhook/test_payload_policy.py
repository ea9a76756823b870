"""`web` applies each account's archive policy while parsing: a media of a type or MIME type
the account does not archive is skipped (`policy_type`, `policy_mime`: counted, listed) with a
`media.skipped` event, and a 131052 of an account that sends no warning of its own is dropped
(`reply_off`) with a `media.failed` event; the events ride the fan-out batch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wa_media.core.archive_policy import DEFAULT_POLICY, ArchivePolicy
from wa_media.core.events import Event, event_id, events_record_id
from webhook import publisher as publisher_module
from webhook.payload import LISTED_REASONS, SKIP_REASONS, parse_cloud_payload, parse_onprem_payload
from webhook.publisher import Publisher

PNID = "106540352242922"
OTHER = "222000111"
DIGEST = "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="
POLICY = ArchivePolicy(
    media_types=frozenset({"image", "document"}),
    mime_types=("image/*", "application/pdf"),
)


def media(kind: str, wamid: str, mime_type: str | None, media_id: str = "m1") -> dict[str, Any]:
    body: dict[str, Any] = {"id": media_id, "sha256": DIGEST}
    if mime_type is not None:
        body["mime_type"] = mime_type
    return {"from": "16505551234", "id": wamid, "timestamp": "1700000000", "type": kind, kind: body}


def too_big(wamid: str) -> dict[str, Any]:
    return {
        "from": "16505551234",
        "id": wamid,
        "timestamp": "1700000000",
        "type": "unsupported",
        "errors": [{"code": 131052, "title": "Media file size too big"}],
    }


def payload(*messages: dict[str, Any], number: str = PNID) -> dict[str, Any]:
    value = {
        "metadata": {"phone_number_id": number},
        "contacts": [{"wa_id": "16505551234", "profile": {"name": "A", "username": "ana"}}],
        "messages": list(messages),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA1", "changes": [{"field": "messages", "value": value}]}],
    }


def policies(number: str) -> ArchivePolicy:
    return POLICY if number == PNID else DEFAULT_POLICY


def test_the_new_reasons_are_counted_and_listed() -> None:
    assert {"policy_type", "policy_mime"} <= set(SKIP_REASONS)
    assert {"policy_type", "policy_mime"} <= LISTED_REASONS


def test_a_policy_skips_by_type_and_mime_type_with_an_event() -> None:
    parsed = parse_cloud_payload(
        payload(
            media("image", "wamid.1", "image/jpeg", "m1"),
            media("video", "wamid.2", "video/mp4", "m2"),
            media("document", "wamid.3", "application/zip", "m3"),
            media("document", "wamid.4", "application/pdf", "m4"),
            media("document", "wamid.5", None, "m5"),
        ),
        received_at=1_700_000_009,
        policy_of=policies,
    )
    # A media whose MIME type the webhook does not say waits for the worker's look-up.
    assert [job.media_id for job in parsed.media] == ["m1", "m4", "m5"]
    assert [(s.reason, s.wamid, s.type, s.listed) for s in parsed.skipped] == [
        ("policy_type", "wamid.2", "video", True),
        ("policy_mime", "wamid.3", "document", True),
    ]
    assert parsed.skipped[0].detail == "the account does not archive video media"
    assert parsed.skipped[1].detail == "the account does not archive application/zip"
    assert [(e.type, e.data["media_id"], e.data["label"]) for e in parsed.events] == [
        ("media.skipped", "m2", "policy_type"),
        ("media.skipped", "m3", "policy_mime"),
    ]
    event = parsed.events[0]
    assert event.id == event_id("media.skipped", PNID, "wamid.2", "m2")
    assert event.timestamp == 1_700_000_009
    assert event.data["customer"]["username"] == "ana"
    assert (event.data["waba_id"], event.data["mime_type"]) == ("WABA1", "video/mp4")


def test_another_account_keeps_its_own_policy() -> None:
    parsed = parse_cloud_payload(
        payload(media("video", "wamid.2", "video/mp4"), number=OTHER), policy_of=policies
    )
    assert [job.type for job in parsed.media] == ["video"]
    assert parsed.skipped == parsed.events == []


def test_an_edit_bringing_a_media_the_account_does_not_archive_is_skipped() -> None:
    edit = {
        "from": "16505551234",
        "id": "wamid.e",
        "timestamp": "1700000000",
        "type": "edit",
        "edit": {
            "original_message_id": "wamid.0",
            "message": media("video", "wamid.x", "video/mp4", "m9"),
        },
    }
    parsed = parse_cloud_payload(payload(edit), policy_of=policies)
    assert parsed.media == []
    assert [(s.reason, s.wamid) for s in parsed.skipped] == [("policy_type", "wamid.e")]
    assert parsed.events[0].data["original_message_id"] == "wamid.0"


def test_the_131052_warning_off_drops_it_and_tells_the_consumers() -> None:
    quiet = ArchivePolicy(too_large_reply=False)
    parsed = parse_cloud_payload(
        payload(too_big("wamid.big")), received_at=1_700_000_001, policy_of=lambda _: quiet
    )
    assert parsed.replies == []
    assert [(d.reason, d.wamid, d.phone_number_id) for d in parsed.dropped_replies] == [
        ("reply_off", "wamid.big", PNID)
    ]
    [event] = parsed.events
    assert (event.type, event.data["code"], event.data["wamid"]) == (
        "media.failed",
        131052,
        "wamid.big",
    )
    assert event.data["customer"]["phone"] == "16505551234"
    assert event.id == event_id("media.failed", PNID, "wamid.big", "")


def test_the_131052_warning_on_is_sent_and_no_event() -> None:
    parsed = parse_cloud_payload(payload(too_big("wamid.big")), policy_of=policies)
    assert [reply.wamid for reply in parsed.replies] == ["wamid.big"]
    assert parsed.events == parsed.dropped_replies == []


def test_on_premises_payloads_follow_the_account_policy() -> None:
    document = {
        "contacts": [{"wa_id": "16505551234"}],
        "messages": [
            media("video", "wamid.v", "video/mp4", "m2"),
            media("image", "wamid.i", "image/png", "m1"),
            too_big("wamid.big"),
        ],
    }
    quiet = ArchivePolicy(media_types=frozenset({"image"}), too_large_reply=False)
    parsed = parse_onprem_payload(document, "15550001111", policy=quiet)
    assert [job.media_id for job in parsed.media] == ["m1"]
    assert [s.reason for s in parsed.skipped] == ["policy_type"]
    assert [d.reason for d in parsed.dropped_replies] == ["reply_off"]
    assert sorted(e.type for e in parsed.events) == ["media.failed", "media.skipped"]


class _Scripts:
    """Stands for Redis under the relay inbox: records each call of its script."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[Any]]] = []

    def register_script(self, script: str) -> Any:
        def record(*, keys: list[str], args: list[Any]) -> int:
            self.calls.append((keys, args))
            return 1

        return record


class _State:
    def __init__(self) -> None:
        self.admitted: list[Any] = []
        self.redis = _Scripts()  # the relay inbox, which keeps web's records of its events

    def admit_many(self, jobs: list[Any], relay: Any = None) -> list[bool]:
        self.admitted += jobs
        return [True] * len(jobs)


def _publish(
    monkeypatch: pytest.MonkeyPatch, parsed: Any, batch_size: int = 100, state: Any = None
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    class _Result:
        id = "task"

    def send_task(celery: Any, name: str, *, args: list[Any], **options: Any) -> _Result:
        sent.append(args[0])
        return _Result()

    monkeypatch.setattr(publisher_module, "send_task", send_task)
    state = state or _State()
    publisher = Publisher(None, state, state, batch_size=batch_size)  # type: ignore[arg-type]
    publisher.publish(parsed)
    return sent


def test_web_records_its_events_before_their_fan_out(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_cloud_payload(
        payload(media("video", "wamid.2", "video/mp4")), policy_of=policies
    )
    state = _State()
    [batch] = _publish(monkeypatch, parsed, state=state)
    [(keys, args)] = state.redis.calls
    assert batch["events_record"] == args[2] == events_record_id([e.id for e in parsed.events])
    assert keys[0] == f"wa:deliver-inbox:{batch['events_record']}"
    assert json.loads(args[0]) == {"events": batch["events"]}


def test_a_webhook_with_only_events_publishes_a_fan_out_holding_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = parse_cloud_payload(
        payload(media("video", "wamid.2", "video/mp4")), policy_of=policies
    )
    [batch] = _publish(monkeypatch, parsed)
    assert batch["media"] == batch["replies"] == []
    assert [Event.from_wire(raw) for raw in batch["events"]] == parsed.events


def test_events_are_split_with_the_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    messages = [media("image", f"wamid.i{i}", "image/png", f"i{i}") for i in range(3)]
    messages += [media("video", f"wamid.v{i}", "video/mp4", f"v{i}") for i in range(5)]
    parsed = parse_cloud_payload(payload(*messages), policy_of=policies)
    batches = _publish(monkeypatch, parsed, batch_size=2)
    assert [len(b["media"]) for b in batches] == [2, 1, 0]
    assert [len(b["events"]) for b in batches] == [2, 2, 1]


def test_a_batch_without_events_is_what_the_previous_release_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parsed = parse_cloud_payload(payload(media("image", "wamid.1", "image/png")))
    state = _State()
    [batch] = _publish(monkeypatch, parsed, state=state)
    assert set(batch) == {"media", "replies"}
    assert state.redis.calls == []
