"""The deliveries' records in Redis: relayed webhooks and archive events, from the moment they
are held until a destination took them (or they became dead letters), and the outbox that
turns archive events into deliveries.

- A relayed webhook's body is held once (`wa:deliver-body:{relay id}`: body, size, refs) for
  all its destinations; each delivery (`wa:delivery:{id}`) references it, and the last one
  settled gives the body and its bytes back (`wa:deliver:held-bytes`). Past
  RELAY_HELD_BYTES_MAX, a new body is not held: its deliveries are dead letters
  (`held_bytes_cap`) without a body.
- Each destination's unsettled deliveries are indexed by age (`wa:deliver-pending:{name}`),
  for the oldest-pending gauge; every unsettled delivery is in `wa:deliver:due`, scored by
  when the sweep should look at it (a task lost with its worker is published again).
- Dead letters are kept with their bodies (`wa:deliver:dead`), listed and replayed by
  `wa-media dead-letters` and `wa-media redeliver`.
- A destination failing DELIVERY_PAUSE_AFTER attempts in a row is paused
  (`wa:deliver-pause:{name}`) for DELIVERY_PAUSE_SECONDS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.commands.core import Script

from wa_media.config.destinations import Destination
from wa_media.core.delivery import DeliveryRecord, Relay, delivery_id
from wa_media.core.events import Event
from wa_media.core.keys import (
    DELIVER_BODIES_KEY,
    DELIVER_DEAD_KEY,
    DELIVER_DESTINATIONS_KEY,
    DELIVER_DUE_KEY,
    DELIVER_HELD_BYTES_KEY,
    DELIVER_INBOX_KEY,
    deliver_body_key,
    deliver_failures_key,
    deliver_inbox_key,
    deliver_pause_key,
    deliver_pending_key,
    delivery_key,
)
from wa_media.stores.redis_client import decoded, naming_failures

__all__ = [
    "DEAD_LETTER_TTL",
    "INBOX_TTL",
    "SENT_TTL",
    "DeliveryGauges",
    "DeliveryOutbox",
    "DeliveryState",
    "Hold",
    "RelayInbox",
]

# A dead letter (its record, and its body) is kept this long after it died.
DEAD_LETTER_TTL = 8 * 24 * 3600
# A delivered record is kept this long, so that a fan-out or an event run again makes no
# second delivery.
SENT_TTL = 24 * 3600
# A relay `web` published is kept until its fan-out held it, at most this long.
INBOX_TTL = 8 * 24 * 3600
# Kept past the maximum age of a pending delivery, so that a record never expires unsettled.
_PENDING_MARGIN = 24 * 3600


# KEYS: body, held bytes, bodies, due, dead, destinations, then per destination its record
# and its pending index. ARGV: body, size, cap, now, body ttl, record ttl, dead ttl, look at,
# ref, source, content type, signature, received at, then per destination its id and name.
# Returns, per delivery made (none for those made before), {id, state}.
_HOLD = """
local made = {}
local fresh = {}
local n = (#KEYS - 6) / 2
for i = 1, n do
  if redis.call('EXISTS', KEYS[6 + 2 * i - 1]) == 0 then table.insert(fresh, i) end
end
if #fresh == 0 then return made end
local size = tonumber(ARGV[2])
local over = false
if redis.call('EXISTS', KEYS[1]) == 0 then
  local held = tonumber(redis.call('GET', KEYS[2]) or '0')
  if held + size > tonumber(ARGV[3]) then
    over = true
  else
    redis.call('HSET', KEYS[1], 'body', ARGV[1], 'size', size, 'refs', 0)
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    redis.call('INCRBY', KEYS[2], size)
    redis.call('ZADD', KEYS[3], tonumber(ARGV[4]) + tonumber(ARGV[5]), ARGV[9] .. '|' .. size)
  end
end
for _, i in ipairs(fresh) do
  local record = KEYS[6 + 2 * i - 1]
  local id = ARGV[13 + 2 * i - 1]
  local name = ARGV[13 + 2 * i]
  redis.call('HSET', record, 'kind', 'relay', 'destination', name, 'source', ARGV[10],
    'received_at', ARGV[13], 'age_from', ARGV[13], 'attempts', 0,
    'content_type', ARGV[11], 'signature', ARGV[12])
  redis.call('SADD', KEYS[6], name)
  if over then
    redis.call('HSET', record, 'state', 'dead', 'dead_reason', 'held_bytes_cap',
      'dead_at', ARGV[4])
    redis.call('EXPIRE', record, ARGV[7])
    redis.call('ZADD', KEYS[5], ARGV[4], id)
    redis.call('EXPIRE', KEYS[5], ARGV[7])
    table.insert(made, {id, 'dead'})
  else
    redis.call('HSET', record, 'state', 'pending', 'body_ref', ARGV[9])
    redis.call('HINCRBY', KEYS[1], 'refs', 1)
    redis.call('EXPIRE', record, ARGV[6])
    redis.call('ZADD', KEYS[6 + 2 * i], ARGV[13], id)
    redis.call('EXPIRE', KEYS[6 + 2 * i], ARGV[6])
    redis.call('ZADD', KEYS[4], ARGV[8], id)
    redis.call('EXPIRE', KEYS[4], ARGV[6])
    table.insert(made, {id, 'pending'})
  end
end
return made
"""

# KEYS: record, pending index, due, destinations. ARGV: id, name, source, received at, event,
# record ttl, look at. 1 when made, 0 when it was already.
_EMIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'kind', 'event', 'destination', ARGV[2], 'source', ARGV[3],
  'received_at', ARGV[4], 'age_from', ARGV[4], 'attempts', 0, 'state', 'pending',
  'event', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('SADD', KEYS[4], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[6])
return 1
"""

# KEYS: record. A delivery's attempt begins: its record's fields, when its destination's pause
# ends ('' when not paused), and its held body ('' when none): one round trip.
_BEGIN = """
local fields = redis.call('HGETALL', KEYS[1])
if #fields == 0 then return {fields, '', ''} end
local destination = redis.call('HGET', KEYS[1], 'destination') or ''
local paused = redis.call('GET', 'wa:deliver-pause:' .. destination) or ''
local body = ''
local ref = redis.call('HGET', KEYS[1], 'body_ref')
if ref then body = redis.call('HGET', 'wa:deliver-body:' .. ref, 'body') or '' end
return {fields, paused, body}
"""

# KEYS: record, pending index, due, held bytes, bodies, the destination's failures in a row.
# ARGV: id, sent ttl, now, attempts. 1 when it was pending (now sent), 0 otherwise.
_SENT = """
redis.call('DEL', KEYS[6])
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'attempts', ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'sent', 'sent_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local ref = redis.call('HGET', KEYS[1], 'body_ref')
if ref then
  local body = 'wa:deliver-body:' .. ref
  if redis.call('EXISTS', body) == 1 then
    local refs = redis.call('HINCRBY', body, 'refs', -1)
    if refs <= 0 then
      local size = redis.call('HGET', body, 'size')
      redis.call('DEL', body)
      redis.call('DECRBY', KEYS[4], size)
      redis.call('ZREM', KEYS[5], ref .. '|' .. size)
    end
  end
end
return 1
"""

# KEYS: record, pending index, due, dead, bodies. ARGV: id, now, reason, dead ttl, error.
_DEAD = """
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'dead', 'dead_reason', ARGV[3], 'dead_at', ARGV[2],
  'last_error', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[4], ARGV[4])
local ref = redis.call('HGET', KEYS[1], 'body_ref')
if ref then
  local body = 'wa:deliver-body:' .. ref
  if redis.call('EXISTS', body) == 1 then
    local size = redis.call('HGET', body, 'size')
    local ttl = tonumber(ARGV[4])
    if redis.call('TTL', body) < ttl then
      redis.call('EXPIRE', body, ttl)
      redis.call('ZREM', KEYS[5], ref .. '|' .. size)
      redis.call('ZADD', KEYS[5], tonumber(ARGV[2]) + ttl, ref .. '|' .. size)
    end
  end
end
return 1
"""

# KEYS: record, pending index, due, dead. ARGV: id, now, record ttl, look at.
# 1 replayed, 0 not a dead letter, -1 its body is not held.
_REPLAY = """
if redis.call('HGET', KEYS[1], 'state') ~= 'dead' then return 0 end
if redis.call('HGET', KEYS[1], 'kind') == 'relay' then
  local ref = redis.call('HGET', KEYS[1], 'body_ref')
  if not ref or redis.call('EXISTS', 'wa:deliver-body:' .. ref) == 0 then return -1 end
end
redis.call('HSET', KEYS[1], 'state', 'pending', 'age_from', ARGV[2], 'attempts', 0)
redis.call('HDEL', KEYS[1], 'dead_reason', 'dead_at')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""

# KEYS: held bytes, bodies. ARGV: now. Gives back the bytes of bodies that expired.
_REAP = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
local freed = 0
for _, member in ipairs(gone) do
  local bar = string.find(member, '|', 1, true)
  local ref = string.sub(member, 1, bar - 1)
  local size = tonumber(string.sub(member, bar + 1))
  if redis.call('EXISTS', 'wa:deliver-body:' .. ref) == 0 then
    redis.call('DECRBY', KEYS[1], size)
    freed = freed + size
  end
  redis.call('ZREM', KEYS[2], member)
end
return freed
"""


# KEYS: the relay's record, the inbox. ARGV: the relay member (JSON), now, relay id, ttl.
_INBOX = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Hold:
    """What holding a relay made: the deliveries to send, and those dead at once (the body was
    over the cap)."""

    pending: list[tuple[str, str]] = field(default_factory=list)
    """(delivery id, destination) of each delivery made pending."""
    dead: list[tuple[str, str]] = field(default_factory=list)
    """(delivery id, destination) of each made a dead letter (`held_bytes_cap`)."""


@dataclass(frozen=True)
class DeliveryGauges:
    """The deliveries' state a scrape reports."""

    oldest: dict[str, float | None]
    """Per destination deliveries were made for, when its oldest unsettled delivery's age
    started (None: none unsettled)."""
    held_bytes: int
    dead_letters: int


@dataclass
class DeliveryState:
    """The deliveries' records, held bodies, indexes and pauses. Every method raises
    RedisUnavailable when Redis fails."""

    redis: Redis
    max_age: float = 86400.0
    held_bytes_max: int = 1024 * 1024 * 1024
    stall_after: float = 600.0
    """How long past its due time an unsettled delivery waits before the sweep publishes it
    again."""
    _scripts: dict[str, Script] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in (
                ("hold", _HOLD),
                ("begin", _BEGIN),
                ("emit", _EMIT),
                ("sent", _SENT),
                ("dead", _DEAD),
                ("replay", _REPLAY),
                ("reap", _REAP),
            )
        }

    @property
    def record_ttl(self) -> int:
        """How long an unsettled record is kept: past its maximum age, with a margin."""
        return int(self.max_age) + _PENDING_MARGIN

    # ------------------------------------------------------------------------- making them

    def hold(self, relay: Relay, destinations: list[str], now: float | None = None) -> Hold:
        """Hold `relay`'s body once and make one delivery per destination (none again for a
        destination that has one already: the fan-out may run twice)."""
        if not destinations:
            return Hold()
        now = time.time() if now is None else now
        ids = [delivery_id(relay.id, name) for name in destinations]
        keys = [
            deliver_body_key(relay.id),
            DELIVER_HELD_BYTES_KEY,
            DELIVER_BODIES_KEY,
            DELIVER_DUE_KEY,
            DELIVER_DEAD_KEY,
            DELIVER_DESTINATIONS_KEY,
        ]
        args: list[Any] = [
            relay.body,
            len(relay.body),
            self.held_bytes_max,
            f"{now:.3f}",
            int(self.max_age) + DEAD_LETTER_TTL,
            self.record_ttl,
            DEAD_LETTER_TTL,
            f"{now + self.stall_after:.3f}",
            relay.id,
            relay.id,
            relay.content_type,
            relay.signature or "",
            f"{relay.received_at:.3f}",
        ]
        for ident, name in zip(ids, destinations, strict=True):
            keys += [delivery_key(ident), deliver_pending_key(name)]
            args += [ident, name]
        with naming_failures("relay hold"):
            made = self._scripts["hold"](keys=keys, args=args)
        names = dict(zip(ids, destinations, strict=True))
        result = Hold()
        for raw_id, raw_state in made:
            ident = decoded(raw_id)
            target = result.pending if decoded(raw_state) == "pending" else result.dead
            target.append((ident, names[ident]))
        return result

    def emit(self, event: Event, destination: str, now: float | None = None) -> str | None:
        """Make the delivery of `event` to `destination`; its id, or None when it was made
        before (the event was emitted again)."""
        now = time.time() if now is None else now
        ident = delivery_id(event.id, destination)
        body = json.dumps(
            {
                "type": event.type,
                "timestamp": event.timestamp,
                "data": event.data,
                "phone_number_id": event.phone_number_id,
            },
            separators=(",", ":"),
        )
        keys = [
            delivery_key(ident),
            deliver_pending_key(destination),
            DELIVER_DUE_KEY,
            DELIVER_DESTINATIONS_KEY,
        ]
        args: list[str | int] = [
            ident,
            destination,
            event.id,
            # Its age (DELIVERY_MAX_AGE, the latency) counts from now, not from what it tells:
            # an event emitted again long after (an edit of a media archived days ago) is due.
            f"{now:.3f}",
            body,
            self.record_ttl,
            f"{now + self.stall_after:.3f}",
        ]
        with naming_failures("event hold"):
            made = self._scripts["emit"](keys=keys, args=args)
        return ident if int(made) else None

    # ------------------------------------------------------------------------- reading them

    def begin(self, ident: str) -> tuple[DeliveryRecord | None, float | None, bytes | None]:
        """An attempt begins: the delivery's record, when its destination's pause ends (None:
        not paused) and its held body (None: none held), in one round trip."""
        with naming_failures("read"):
            raw_fields, raw_paused, raw_body = self._scripts["begin"](keys=[delivery_key(ident)])
        pairs = [decoded(item) for item in raw_fields]
        record = DeliveryRecord.from_hash(ident, dict(zip(pairs[::2], pairs[1::2], strict=True)))
        paused = float(decoded(raw_paused)) if raw_paused else None
        if raw_body and not isinstance(raw_body, bytes):
            raw_body = str(raw_body).encode()
        return record, paused, raw_body or None

    def get(self, ident: str) -> DeliveryRecord | None:
        """The delivery's record; None when it is gone."""
        with naming_failures("read"):
            raw = self.redis.hgetall(delivery_key(ident))
        return DeliveryRecord.from_hash(ident, {decoded(k): decoded(v) for k, v in raw.items()})

    def body(self, ref: str) -> bytes | None:
        """A held webhook body; None when it is not held (any more)."""
        with naming_failures("read"):
            raw = self.redis.hget(deliver_body_key(ref), "body")
        if raw is None:
            return None
        return raw if isinstance(raw, bytes) else str(raw).encode()

    def due(self, now: float, limit: int = 500) -> list[str]:
        """Unsettled deliveries whose look by the sweep is due."""
        with naming_failures("read"):
            members = self.redis.zrangebyscore(DELIVER_DUE_KEY, "-inf", now, start=0, num=limit)
        return [decoded(m) for m in members]

    def dead_letters(self, limit: int = 1000) -> list[DeliveryRecord]:
        """The dead letters, newest first."""
        with naming_failures("read"):
            members = self.redis.zrevrange(DELIVER_DEAD_KEY, 0, limit - 1)
        records = []
        for member in members:
            record = self.get(decoded(member))
            if record is not None and record.state == "dead":
                records.append(record)
        return records

    def destinations(self) -> list[str]:
        """The destinations deliveries were made for."""
        with naming_failures("read"):
            return sorted(decoded(m) for m in self.redis.smembers(DELIVER_DESTINATIONS_KEY))

    # ------------------------------------------------------------------------- settling them

    def sent(
        self, record: DeliveryRecord, now: float | None = None, attempts: int | None = None
    ) -> bool:
        """The destination took it (2xx), at attempt number `attempts`: settled, its
        destination's failures in a row ended; the body goes when no delivery needs it. False
        when it was not pending (a duplicate settled it first)."""
        now = time.time() if now is None else now
        keys = [
            delivery_key(record.id),
            deliver_pending_key(record.destination),
            DELIVER_DUE_KEY,
            DELIVER_HELD_BYTES_KEY,
            DELIVER_BODIES_KEY,
            deliver_failures_key(record.destination),
        ]
        count = record.attempts + 1 if attempts is None else attempts
        args: list[str | int] = [record.id, SENT_TTL, f"{now:.3f}", count]
        with naming_failures("delivery settle"):
            return bool(int(self._scripts["sent"](keys=keys, args=args)))

    def dead(
        self, record: DeliveryRecord, reason: str, error: str = "", now: float | None = None
    ) -> bool:
        """Given up: a dead letter, kept with its body for DEAD_LETTER_TTL."""
        now = time.time() if now is None else now
        keys = [
            delivery_key(record.id),
            deliver_pending_key(record.destination),
            DELIVER_DUE_KEY,
            DELIVER_DEAD_KEY,
            DELIVER_BODIES_KEY,
        ]
        args: list[str | int] = [record.id, f"{now:.3f}", reason, DEAD_LETTER_TTL, error]
        with naming_failures("dead letter"):
            return bool(int(self._scripts["dead"](keys=keys, args=args)))

    def failed(self, record: DeliveryRecord, error: str, attempts: int) -> int:
        """Attempt number `attempts` failed: recorded, and counted in its destination's
        failures in a row; their number (one round trip)."""
        failures = deliver_failures_key(record.destination)
        with naming_failures("delivery write"), self.redis.pipeline() as pipe:
            pipe.hset(
                delivery_key(record.id), mapping={"last_error": error[:500], "attempts": attempts}
            )
            pipe.incr(failures)
            pipe.expire(failures, DEAD_LETTER_TTL)
            _, in_row, _ = pipe.execute()
        return int(in_row)

    def retry_at(self, record: DeliveryRecord, at: float) -> None:
        """Its next attempt is due at `at`: the sweep looks at it `stall_after` later."""
        with naming_failures("delivery write"), self.redis.pipeline() as pipe:
            pipe.hset(delivery_key(record.id), "next_try_at", f"{at:.3f}")
            pipe.zadd(DELIVER_DUE_KEY, {record.id: at + self.stall_after}, xx=True)
            pipe.execute()

    def look_again(self, ident: str, at: float) -> None:
        """Have the sweep look at an unsettled delivery again at `at`."""
        with naming_failures("delivery write"):
            self.redis.zadd(DELIVER_DUE_KEY, {ident: at}, xx=True)

    def forget(self, ident: str) -> None:
        """Drop a settled or vanished delivery from the sweep's index."""
        with naming_failures("delivery write"):
            self.redis.zrem(DELIVER_DUE_KEY, ident)

    def replay(self, ident: str, now: float | None = None) -> int:
        """Make a dead letter pending again, its maximum age starting now: 1 done, 0 not a
        dead letter, -1 its body is no longer held."""
        now = time.time() if now is None else now
        record = self.get(ident)
        if record is None:
            return 0
        keys = [
            delivery_key(ident),
            deliver_pending_key(record.destination),
            DELIVER_DUE_KEY,
            DELIVER_DEAD_KEY,
        ]
        args: list[str | int] = [
            ident,
            f"{now:.3f}",
            self.record_ttl,
            f"{now + self.stall_after:.3f}",
        ]
        with naming_failures("replay"):
            return int(self._scripts["replay"](keys=keys, args=args))

    def reap_bodies(self, now: float | None = None) -> int:
        """Give back the bytes of held bodies that expired; how many."""
        now = time.time() if now is None else now
        with naming_failures("reap"):
            return int(
                self._scripts["reap"](
                    keys=[DELIVER_HELD_BYTES_KEY, DELIVER_BODIES_KEY], args=[f"{now:.3f}"]
                )
            )

    # ----------------------------------------------------------------- pausing destinations

    def pause(self, destination: str, seconds: float, now: float | None = None) -> float:
        """Pause `destination` for `seconds`; when the pause ends."""
        now = time.time() if now is None else now
        ends = now + seconds
        with naming_failures("pause"):
            self.redis.set(deliver_pause_key(destination), f"{ends:.3f}", ex=max(1, int(seconds)))
        return ends

    def paused_until(self, destination: str, now: float | None = None) -> float | None:
        """When the pause of `destination` ends; None when it is not paused."""
        now = time.time() if now is None else now
        with naming_failures("read"):
            raw = self.redis.get(deliver_pause_key(destination))
        if raw is None:
            return None
        ends = float(decoded(raw))
        return ends if ends > now else None

    # ------------------------------------------------------------------------ the gauges

    def gauges(self) -> DeliveryGauges:
        """What a scrape tells of the deliveries: 3 commands in one round trip, then one per
        destination in another (none without destinations), whatever the backlog."""
        with naming_failures("read"), self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(DELIVER_DESTINATIONS_KEY)
            pipe.get(DELIVER_HELD_BYTES_KEY)
            pipe.zcard(DELIVER_DEAD_KEY)
            members, held, dead = pipe.execute()
        names = sorted(decoded(m) for m in members)
        heads: list[Any] = []
        if names:
            with naming_failures("read"), self.redis.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.zrange(deliver_pending_key(name), 0, 0, withscores=True)
                heads = pipe.execute()
        oldest = {
            name: float(head[0][1]) if head else None
            for name, head in zip(names, heads, strict=True)
        }
        return DeliveryGauges(oldest, int(held or 0), int(dead))

    def held_bytes(self) -> int:
        """Bytes of webhook bodies held for relay."""
        with naming_failures("read"):
            return int(self.redis.get(DELIVER_HELD_BYTES_KEY) or 0)

    def dead_count(self) -> int:
        """Dead letters kept."""
        with naming_failures("read"):
            return int(self.redis.zcard(DELIVER_DEAD_KEY))


@dataclass
class RelayInbox:
    """The relays `web` published, and the events it decided, until their fan-out held them:
    should the fan-out be lost with its worker, the sweep publishes it again
    (`wa:deliver:inbox`; the events' records have ids starting `ev_`)."""

    redis: Redis
    _admit: Script = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._admit = self.redis.register_script(_INBOX)

    def admit(self, relay: Relay, now: float | None = None) -> None:
        """Record a relay before it is published: one command, on `web`'s path (a webhook
        with media writes `record` with its media's records instead, in the same call)."""
        now = time.time() if now is None else now
        keys = [deliver_inbox_key(relay.id), DELIVER_INBOX_KEY]
        args: list[str | int] = [json.dumps(relay.to_wire()), f"{now:.3f}", relay.id, INBOX_TTL]
        with naming_failures("relay record"):
            self._admit(keys=keys, args=args)

    def admit_events(
        self, ident: str, events: list[dict[str, Any]], now: float | None = None
    ) -> None:
        """Record the events `web` decided (their wire form) before their fan-out is published,
        under `ident` (events_record_id): should the fan-out be lost, or be taken by a worker of
        a release that ignores events, the sweep publishes them again."""
        now = time.time() if now is None else now
        keys = [deliver_inbox_key(ident), DELIVER_INBOX_KEY]
        args: list[str | int] = [json.dumps({"events": events}), f"{now:.3f}", ident, INBOX_TTL]
        with naming_failures("events record"):
            self._admit(keys=keys, args=args)

    @staticmethod
    def record(relay: Relay) -> tuple[list[str], list[str | int]]:
        """The keys and values of a relay's record, for MediaStateStore.admit_many to write
        with the webhook's media (scored by the call's time)."""
        keys = [deliver_inbox_key(relay.id), DELIVER_INBOX_KEY]
        return keys, [json.dumps(relay.to_wire()), relay.id, INBOX_TTL]

    def held(self, relay_id: str) -> None:
        """The fan-out held it: nothing more to rescue."""
        with naming_failures("relay record"), self.redis.pipeline() as pipe:
            pipe.delete(deliver_inbox_key(relay_id))
            pipe.zrem(DELIVER_INBOX_KEY, relay_id)
            pipe.execute()

    def stalled(self, before: float, limit: int = 100) -> list[tuple[str, dict[str, Any] | None]]:
        """Relays recorded before `before` and not held yet, with their member (None when its
        record expired)."""
        with naming_failures("read"):
            ids = [
                decoded(m)
                for m in self.redis.zrangebyscore(DELIVER_INBOX_KEY, "-inf", before, 0, limit)
            ]
            raws = [self.redis.get(deliver_inbox_key(ident)) for ident in ids]
        return [
            (ident, None if raw is None else json.loads(raw))
            for ident, raw in zip(ids, raws, strict=True)
        ]

    def look_again(self, relay_id: str, at: float) -> None:
        """Leave a stalled relay alone until `at`."""
        with naming_failures("relay record"):
            self.redis.zadd(DELIVER_INBOX_KEY, {relay_id: at}, xx=True)

    def forget(self, relay_id: str) -> None:
        """Drop a relay whose record is gone."""
        self.held(relay_id)


@dataclass
class DeliveryOutbox:
    """The archive events' sink (wa_media.core.ports.EventSink): one delivery per endpoint of
    the event's account, made once per (event id, endpoint), then published."""

    state: DeliveryState
    endpoints: Callable[[str], list[Destination]]
    """The event endpoints of a phone_number_id's account."""
    publish: Callable[[str], None]
    """Publish the task of a delivery id (BrokerUnavailable when the broker refuses: the
    sweep publishes it later)."""

    def emit(self, event: Event) -> None:
        """Hold `event` for each of its account's endpoints; again, harmlessly."""
        for endpoint in self.endpoints(event.phone_number_id):
            ident = self.state.emit(event, endpoint.name)
            if ident is not None:
                self.publish(ident)
