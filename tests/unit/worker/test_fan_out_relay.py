"""The fan-out's members of this release: `relay` held once for its accounts' destinations and
published per delivery, `events` handed to the sink; what is not one is counted invalid."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from wa_media.config.accounts import Account, WorkerAccounts
from wa_media.config.destinations import Destination
from wa_media.config.target import ArchiveTarget
from wa_media.core.delivery import Relay
from wa_media.core.errors import RedisUnavailable
from wa_media.core.events import Event
from wa_media.core.provider import Connection
from wa_media.stores.deliveries import Hold
from worker import tasks


@dataclass
class Deliveries:
    held: list[tuple[str, list[str]]] = field(default_factory=list)

    def hold(self, relay: Relay, destinations: list[str]) -> Hold:
        self.held.append((relay.id, destinations))
        pending = [(f"dlv_{name}", name) for name in destinations if name != "full"]
        return Hold(pending, [(f"dlv_{n}", n) for n in destinations if n == "full"])


@dataclass
class Inbox:
    done: list[str] = field(default_factory=list)

    def held(self, relay_id: str) -> None:
        self.done.append(relay_id)

    def forget(self, relay_id: str) -> None:
        self.done.append(f"forgotten {relay_id}")


@dataclass
class Sink:
    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)


def _accounts() -> WorkerAccounts:
    connection = Connection(kind="cloud", base_url="https://g.example", credential="t")
    target = ArchiveTarget("bucket", "")
    return WorkerAccounts(
        (
            Account("111", connection, target, relay_to=("crm", "bot")),
            Account("222", connection, target, relay_to=("crm", "full")),
        ),
        {name: Destination(name, f"https://{name}.example") for name in ("crm", "bot", "full")},
    )


def _run(monkeypatch: pytest.MonkeyPatch, batch: dict[str, Any]) -> tuple[Any, ...]:
    deliveries, inbox, sink = Deliveries(), Inbox(), Sink()
    nothing = SimpleNamespace(admit_many=lambda jobs: [True for _ in jobs])
    svc = SimpleNamespace(
        deliveries=deliveries,
        inbox=inbox,
        events=sink,
        state=nothing,
        replier=SimpleNamespace(ledger=nothing),
    )
    monkeypatch.setattr(tasks, "services", lambda: svc)
    monkeypatch.setattr(tasks, "settings", lambda: SimpleNamespace(accounts=_accounts()))
    published: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda *a, **k: published.append(k["args"]))
    counts = tasks.fan_out.apply(args=(batch,), task_id="t-relay").get()
    return counts, deliveries, inbox, sink, published


def test_a_relay_goes_once_to_the_union_of_its_accounts_destinations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    relay = Relay("r1", b"{}", "application/json", None, ("111", "222"), 1.0)
    counts, deliveries, inbox, _, published = _run(monkeypatch, {"relay": relay.to_wire()})
    assert deliveries.held == [("r1", ["crm", "bot", "full"])]
    assert published == [("dlv_crm",), ("dlv_bot",)]  # `full` was dead at once (its cap)
    assert inbox.done == ["r1"]
    assert counts["relayed"] == 2


def test_events_go_to_the_sink_and_what_is_not_a_member_is_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = {"type": "media.skipped", "phone_number_id": "111", "id": "evt_1", "timestamp": 5}
    bad = [{"type": "media.unknown", "phone_number_id": "1", "id": "e", "timestamp": 1}, {}]
    counts, deliveries, _, sink, _ = _run(
        monkeypatch, {"relay": {"id": "x"}, "events": [event, *bad]}
    )
    assert [(e.id, e.type, e.timestamp) for e in sink.events] == [("evt_1", "media.skipped", 5.0)]
    assert deliveries.held == []
    assert counts["invalid"] == 3
    assert counts["events"] == 1


def test_an_unreadable_relay_is_forgotten_not_rescued_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, _, inbox, _, _ = _run(monkeypatch, {"relay": {"id": "x"}})
    assert inbox.done == ["forgotten x"]
    assert counts["invalid"] == 1


def test_web_s_record_of_its_events_is_settled_once_they_are_emitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = {"type": "media.skipped", "phone_number_id": "111", "id": "evt_1", "timestamp": 5}
    _, _, inbox, sink, _ = _run(monkeypatch, {"events": [event], "events_record": "ev_1"})
    assert [e.id for e in sink.events] == ["evt_1"]
    assert inbox.done == ["ev_1"]


def test_events_the_sink_refuses_leave_web_s_record_for_the_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event = {"type": "media.skipped", "phone_number_id": "111", "id": "evt_1", "timestamp": 5}

    def refuse(event: Event) -> None:
        raise RedisUnavailable("emit failed: ConnectionError")

    monkeypatch.setattr(Sink, "emit", lambda self, event: refuse(event))
    monkeypatch.setattr(Inbox, "held", lambda self, ident: pytest.fail(f"{ident} settled"))
    with pytest.raises(Exception):  # noqa: B017, PT011 (the fan-out's retry, whatever its class)
        _run(monkeypatch, {"events": [event], "events_record": "ev_1"})
