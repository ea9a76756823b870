"""The deliveries' records against a real Redis (a private server: every shared database number
is some module's): bodies held once with a count of references, the held-bytes cap, settling,
dead letters and their replay, pauses, the outbox's deduplication, the relay inbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from devstack.redis_server import RedisServer
from wa_media.config.destinations import Destination
from wa_media.core.delivery import Relay, delivery_id
from wa_media.core.errors import RedisUnavailable
from wa_media.core.events import EVENTS_RECORD_PREFIX, Event, events_record_id
from wa_media.core.jobs import MediaJob
from wa_media.core.keys import DELIVER_DUE_KEY, DELIVER_HELD_BYTES_KEY
from wa_media.core.records import MediaRef
from wa_media.stores.deliveries import DeliveryOutbox, DeliveryState, RelayInbox
from wa_media.stores.records import MediaStateStore
from wa_media.stores.redis_client import connect

NOW = time.time()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    redis_server = RedisServer(Path(tmp_path_factory.mktemp("deliveries")), persistent=False)
    redis_server.start()
    yield redis_server
    redis_server.stop()


@pytest.fixture
def redis(server: RedisServer) -> Iterator[Redis]:
    client = connect(server.url)
    client.flushdb()
    yield client
    client.close()


def relay(ident: str = "r1", body: bytes = b'{"entry": []}') -> Relay:
    return Relay(ident, body, "application/json", "sha256=00", ("111",), NOW)


def test_a_body_is_held_once_for_all_its_destinations(redis: Redis) -> None:
    state = DeliveryState(redis, held_bytes_max=1000)
    hold = state.hold(relay(), ["a", "b"], now=NOW)
    assert [name for _, name in hold.pending] == ["a", "b"]
    assert hold.dead == []
    assert state.held_bytes() == len(relay().body)
    assert state.body("r1") == relay().body
    # The fan-out run again makes nothing more.
    assert state.hold(relay(), ["a", "b"], now=NOW).pending == []
    assert state.held_bytes() == len(relay().body)
    first, second = (state.get(ident) for ident, _ in hold.pending)
    assert first is not None
    assert second is not None
    assert (first.kind, first.state, first.signature) == ("relay", "pending", "sha256=00")
    assert first.received_at == pytest.approx(NOW, abs=0.01)
    gauges = state.gauges()
    assert gauges.oldest == {"a": pytest.approx(NOW, abs=0.01), "b": pytest.approx(NOW, abs=0.01)}
    assert (gauges.held_bytes, gauges.dead_letters) == (len(relay().body), 0)
    # The body stays while one delivery needs it; the last one settled gives its bytes back.
    assert state.sent(first)
    assert not state.sent(first)  # a duplicate
    assert state.body("r1") is not None
    assert state.sent(second)
    assert state.body("r1") is None
    assert state.held_bytes() == 0
    assert state.gauges().oldest == {"a": None, "b": None}
    assert redis.zcard(DELIVER_DUE_KEY) == 0


def test_past_the_cap_a_new_body_is_dead_for_each_destination(redis: Redis) -> None:
    state = DeliveryState(redis, held_bytes_max=30)
    assert state.hold(relay("r1", b"x" * 20), ["a"], now=NOW).pending
    over = state.hold(relay("r2", b"y" * 20), ["a", "b"], now=NOW)
    assert over.pending == []
    assert [name for _, name in over.dead] == ["a", "b"]
    assert state.held_bytes() == 20
    assert state.body("r2") is None
    dead = state.dead_letters()
    assert {(d.destination, d.dead_reason) for d in dead} == {
        ("a", "held_bytes_cap"),
        ("b", "held_bytes_cap"),
    }
    # Without its body it cannot be replayed.
    assert state.replay(over.dead[0][0]) == -1


def test_a_dead_letter_keeps_its_body_and_is_replayed(redis: Redis) -> None:
    state = DeliveryState(redis, max_age=60)
    (ident, _), (other, _) = state.hold(relay(), ["a", "b"], now=NOW).pending
    record = state.get(ident)
    assert record is not None
    assert state.dead(record, "max_age", "HTTP 500", now=NOW + 61)
    assert not state.dead(record, "max_age")  # once
    other_record = state.get(other)
    assert other_record is not None
    state.sent(other_record)
    assert state.body("r1") == relay().body  # kept for the dead letter
    (listed,) = state.dead_letters()
    assert (listed.id, listed.dead_reason, listed.last_error) == (ident, "max_age", "HTTP 500")
    assert state.replay(ident, now=NOW + 100) == 1
    assert state.replay(ident) == 0  # pending now, not dead
    replayed = state.get(ident)
    assert replayed is not None
    assert (replayed.state, replayed.attempts) == ("pending", 0)
    assert replayed.age_from == pytest.approx(NOW + 100, abs=0.01)
    assert state.dead_letters() == []
    assert state.sent(replayed)
    assert state.held_bytes() == 0


def test_failed_attempts_are_recorded_and_pause_the_destination(redis: Redis) -> None:
    state = DeliveryState(redis, stall_after=10)
    ((ident, _),) = state.hold(relay(), ["a"], now=NOW).pending
    record, paused, body = state.begin(ident)
    assert record is not None
    assert (paused, body) == (None, relay().body)
    assert [state.failed(record, "HTTP 503", n) for n in (1, 2, 3)] == [1, 2, 3]
    state.retry_at(record, NOW + 5)
    assert redis.zscore(DELIVER_DUE_KEY, ident) == pytest.approx(NOW + 15)
    again = state.get(ident)
    assert again is not None
    assert (again.attempts, again.last_error) == (3, "HTTP 503")
    assert state.paused_until("a") is None
    ends = state.pause("a", 30, now=time.time())
    assert state.paused_until("a") == pytest.approx(ends)
    assert state.begin(ident)[1] == pytest.approx(ends)
    assert state.sent(again)
    assert state.failed(again, "HTTP 500", 4) == 1  # a success ended the row
    assert state.begin(ident)[2] is None  # its body went with it
    assert state.begin("dlv_nothing") == (None, None, None)


def test_the_outbox_makes_one_delivery_per_endpoint_once(redis: Redis) -> None:
    state = DeliveryState(redis)
    published: list[str] = []
    endpoints = {
        "111": [
            Destination("feed", "https://f.example", "whsec_x"),
            Destination("crm", "https://c.example"),
        ]
    }
    outbox = DeliveryOutbox(state, lambda number: endpoints.get(number, []), published.append)
    event = Event("media.archived", "111", "evt_1", NOW, {"wamid": "w1"})
    outbox.emit(event)
    outbox.emit(event)
    outbox.emit(Event("media.archived", "999", "evt_2", NOW, {}))  # no endpoints: nothing
    assert published == [delivery_id("evt_1", "feed"), delivery_id("evt_1", "crm")]
    record = state.get(published[0])
    assert record is not None
    assert (record.kind, record.source, record.destination) == ("event", "evt_1", "feed")
    assert record.event is not None
    assert '"wamid":"w1"' in record.event


def test_the_inbox_keeps_a_relay_until_its_fan_out_held_it(redis: Redis) -> None:
    inbox = RelayInbox(redis)
    inbox.admit(relay("r1"), now=NOW - 100)
    inbox.admit(relay("r2"), now=NOW)
    stalled = inbox.stalled(NOW - 50)
    assert [ident for ident, _ in stalled] == ["r1"]
    assert Relay.from_wire(stalled[0][1]) == relay("r1")
    inbox.look_again("r1", NOW)
    assert inbox.stalled(NOW - 50) == []
    inbox.held("r1")
    inbox.held("r2")
    assert inbox.stalled(NOW + 10) == []


def test_an_event_s_age_counts_from_its_emission_not_from_what_it_tells(redis: Redis) -> None:
    state = DeliveryState(redis)
    ident = state.emit(Event("media.archived", "111", "evt_old", NOW - 10**6, {}), "feed", NOW)
    assert ident is not None
    record = state.get(ident)
    assert record is not None
    assert record.age_from == pytest.approx(NOW, abs=0.01)
    assert record.received_at == pytest.approx(NOW, abs=0.01)


def test_the_inbox_keeps_web_s_events_until_a_fan_out_emitted_them(redis: Redis) -> None:
    inbox = RelayInbox(redis)
    events = [{"type": "media.skipped", "phone_number_id": "1", "id": "evt_1", "timestamp": 1.0}]
    ident = events_record_id(["evt_1"])
    assert ident.startswith(EVENTS_RECORD_PREFIX)
    inbox.admit_events(ident, events, now=NOW - 100)
    assert inbox.stalled(NOW - 50) == [(ident, {"events": events})]
    inbox.held(ident)
    assert inbox.stalled(NOW + 10) == []


def test_expired_bodies_give_their_bytes_back(redis: Redis) -> None:
    state = DeliveryState(redis)
    state.hold(relay(), ["a"], now=NOW)
    redis.delete("wa:deliver-body:r1")  # as its expiry would
    assert state.reap_bodies(now=NOW + 10**8) == len(relay().body)
    assert int(redis.get(DELIVER_HELD_BYTES_KEY) or 0) == 0


def test_redis_failures_are_the_products_error(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "gone", persistent=False).start()
    client = connect(server.url, socket_connect_timeout=1, socket_timeout=1)
    state = DeliveryState(client)
    server.stop()
    with pytest.raises(RedisUnavailable, match="relay hold"):
        state.hold(relay(), ["a"])
    with pytest.raises(RedisUnavailable):
        RelayInbox(client).admit(relay())


def test_web_records_a_relay_with_its_webhooks_media_in_one_call(redis: Redis) -> None:
    store = MediaStateStore(redis)
    jobs = [
        MediaJob(
            phone_number_id="111",
            waba_id=None,
            wamid=f"wamid.{n}",
            sender="15550001",
            timestamp=int(NOW),
            type="image",
            media_id=f"m{n}",
            mime_type="image/jpeg",
            sha256=None,
        )
        for n in range(3)
    ]
    assert store.admit_many(jobs, RelayInbox.record(relay("r9"))) == [True, True, True]
    assert store.get(MediaRef.of(jobs[2])).state == "queued"
    ((ident, member),) = RelayInbox(redis).stalled(time.time() + 1)
    assert ident == "r9"
    assert member is not None
    assert Relay.from_wire(member) == relay("r9")
    # Without a relay, the call is as before.
    assert store.admit_many(jobs) == [True, True, True]
