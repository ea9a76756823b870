"""A chaos run: the real stack archives a thousand media while its parts are killed.

    .venv/bin/python bench/chaos.py [--small] [--seed N] [--pool prefork] [--no-aof] [...]

It starts a private redis-server (AOF on), SeaweedFS, the Graph API simulator (in this
process), `web`, `beat` and two `worker` processes, each the Procfile's worker command (its pool
unless `--pool` says otherwise); POSTs signed webhooks, some of them twice or three times; makes
look-ups and downloads fail or crawl; SIGKILLs workers in the middle of archiving, and Redis, and
takes S3 away for a while. Then it waits until every media is settled and checks the bucket
object by object against the simulator, and that every blow landed. Exit 0 only if every check
passed.

Everything it injects comes from the seed: the plan (which media gets which fault, which POSTs
are repeated, when what is killed) is built by pure functions before anything starts. What the
plan cannot fix is timing: which tries a kill interrupts depends on the machine.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import requests
from botocore.exceptions import BotoCoreError, ClientError
from redis import Redis
from redis.exceptions import RedisError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from devstack import webhooks
from devstack.downstream import Downstream
from devstack.processes import Service, free_port, wait_for
from devstack.redis_server import RedisServer
from devstack.seaweed import SeaweedFS
from devstack.stack import (
    StackEnv,
    WorkerPool,
    deployed_pool,
    start_beat,
    start_web,
    start_worker,
    worker_argv,
)
from devstack.webhooks import DEFAULT_PHONE_NUMBER_ID, MediaKind
from graphsim import MediaRecord, Simulator, SimulatorClient, SimulatorError
from wa_media.core.index import is_index_key, media_id_entry_key, wamid_entry_key
from wa_media.core.keys import LEASE_PATTERN, REPLY_PATTERN, reply_key
from wa_media.core.layout import build_key, sidecar_key

# `python bench/chaos.py` puts bench/ on the path, not the repository root that holds `bench`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack_runner import (
    START,
    media_states,
    pool_children,
    say,
    sigterm_as_interrupt,
    start_backends,
    table,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BUCKET = "wa-archive"
PHONE_NUMBER_ID = webhooks.DEFAULT_PHONE_NUMBER_ID
WABA_ID = webhooks.DEFAULT_WABA_ID

# The first kill comes this long after the first POST, so that some work is in flight.
CHAOS_START = 3.0
# How long a kill waits for a victim in a slow download before killing it anyway.
BUSY_WAIT = 10.0
BUSY_POLL = 0.25
# A slow download answers after this long: a kill that finds one in progress cuts its try short.
SLOW_DOWNLOAD = 8.0
# The pool's concurrency when --pool names another pool than the Procfile's: a process per core.
VARIANT_CONCURRENCY = 2
POST_THREADS = 8
POST_TIMEOUT = 10.0
POST_BACKOFF_CAP = 15.0
VERIFY_THREADS = 4
PROGRESS_EVERY = 15.0
READ_CHUNK = 1024 * 1024
THROTTLING_CODES = (4, 17, 32, 613, 80007, 130429, 131048, 131056)

MIME_TYPES: dict[MediaKind, tuple[str, ...]] = {
    "image": ("image/jpeg", "image/png"),
    "video": ("video/mp4", "video/3gpp"),
    "audio": ("audio/mpeg", "audio/aac", "audio/mp4", "audio/amr"),
    "voice": ("audio/ogg; codecs=opus",),
    "sticker": ("image/webp",),
}
# Filename patterns of documents with their MIME type; zip is not in the extension table (.bin).
DOCUMENTS = (
    ("Invoice {n}.pdf", "application/pdf"),
    ("Facture n°{n}.pdf", "application/pdf"),
    ("scan_{n}.txt", "text/plain"),
    ("契約書 {n}.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("backup {n}.zip", "application/zip"),
)
CAPTIONED: frozenset[MediaKind] = frozenset({"image", "video", "document"})

FaultKind = Literal[
    "lookup 5xx",
    "lookup 429 + Retry-After",
    "lookup throttled (HTTP 400)",
    "download 404 (expired)",
    "download corrupted",
    "download truncated",
    "download slow",
]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)
Action = Literal["kill_worker", "kill_child", "kill_redis", "s3_down", "s3_up"]
# The kills of worker processes, which cut the tries they run short.
PROCESS_KILLS: tuple[Action, ...] = ("kill_worker", "kill_child")


# --------------------------------------------------------------------------------------------
# Parameters


@dataclass(frozen=True)
class Params:
    """Everything a run depends on; the plan is a pure function of these."""

    seed: int = 1
    media: int = 1000
    min_size: int = 1_000
    max_size: int = 20_000_000
    max_batch: int = 10
    too_big: float = 0.02
    twice: float = 0.30
    thrice: float = 0.05
    lookup_5xx: float = 0.10
    lookup_429: float = 0.05
    lookup_throttled: float = 0.02
    download_404: float = 0.10
    download_corrupt: float = 0.02
    download_truncate: float = 0.02
    download_slow: float = 0.05
    worker_kills: int = 5
    child_kills: int = 5
    redis_kills: int = 1
    redis_downtime: float = 2.0
    s3_outage: float = 30.0
    delivery_window: float = 95.0
    chaos_window: float = 80.0
    settle_timeout: float = 300.0
    max_post_tries: int = 10
    workers: int = 2
    pool: str = field(default_factory=lambda: deployed_pool().name)
    concurrency: int = field(default_factory=lambda: deployed_pool().concurrency)
    aof: bool = True

    @property
    def worker_pool(self) -> WorkerPool:
        """The workers' pool and concurrency."""
        return WorkerPool(self.pool, self.concurrency)

    def fault_rates(self, op: Literal["lookup", "download"]) -> tuple[tuple[FaultKind, float], ...]:
        """The fault kinds of one operation with their share of the media."""
        if op == "lookup":
            return (
                ("lookup 5xx", self.lookup_5xx),
                ("lookup 429 + Retry-After", self.lookup_429),
                ("lookup throttled (HTTP 400)", self.lookup_throttled),
            )
        return (
            ("download 404 (expired)", self.download_404),
            ("download corrupted", self.download_corrupt),
            ("download truncated", self.download_truncate),
            ("download slow", self.download_slow),
        )


SMALL = {
    "media": 100,
    # A fifth of the first downloads slow, so that each kill finds one in progress.
    "download_slow": 0.20,
    "worker_kills": 1,
    "child_kills": 1,
    "redis_kills": 1,
    "s3_outage": 10.0,
    "delivery_window": 35.0,
    "chaos_window": 20.0,
    "settle_timeout": 150.0,
}


# --------------------------------------------------------------------------------------------
# The plan: pure, built from the seed before anything starts


@dataclass(frozen=True)
class Fault:
    """One fault rule the simulator applies once to one media."""

    kind: FaultKind
    rule: dict[str, Any]
    """The fields of `graphsim.faults.FaultRule`, as SimulatorClient.add_fault takes them."""


@dataclass(frozen=True)
class MediaPlan:
    """One media message: what the simulator serves, what the webhook says, what goes wrong."""

    media_id: str
    kind: MediaKind
    mime_type: str
    size: int
    content_seed: int
    wamid: str
    sender: str
    age: int
    """Seconds between the message's timestamp and the run's start."""
    caption: str | None
    filename: str | None
    faults: tuple[Fault, ...]


@dataclass(frozen=True)
class TooBigPlan:
    """A 131052 message; its sender is nobody else's, so its warnings can be counted."""

    wamid: str
    sender: str
    age: int


MessageRef = tuple[Literal["media", "too_big"], int]


@dataclass(frozen=True)
class Delivery:
    """One POST of a batch: copy 0 is the original, later copies are Meta's duplicates."""

    batch: int
    copy: int
    at: float
    """Seconds after the first POST."""


@dataclass(frozen=True)
class ChaosEvent:
    """One blow, `at` seconds after the first POST; a kill prefers the worker in `slot`."""

    at: float
    action: Action
    slot: int = 0


@dataclass(frozen=True)
class Plan:
    """What the run injects, all of it derived from the parameters."""

    params: Params
    media: tuple[MediaPlan, ...]
    too_big: tuple[TooBigPlan, ...]
    batches: tuple[tuple[MessageRef, ...], ...]
    deliveries: tuple[Delivery, ...]
    events: tuple[ChaosEvent, ...]

    def digest(self) -> str:
        """A short fingerprint: two runs with equal parameters print the same one."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def faults(self) -> Counter[str]:
        """How many faults of each kind the plan injects."""
        return Counter(fault.kind for item in self.media for fault in item.faults)

    def actions(self) -> Counter[str]:
        """How many events of each action the plan holds."""
        return Counter(event.action for event in self.events)

    def slow_media(self) -> frozenset[str]:
        """The media whose first download is slow."""
        return frozenset(
            item.media_id
            for item in self.media
            for fault in item.faults
            if fault.kind == "download slow"
        )


def _rng(params: Params, aspect: str) -> random.Random:
    # One stream per aspect: changing how POSTs are repeated does not move the faults.
    return random.Random(f"{params.seed}/{aspect}")


def _wamid(rng: random.Random) -> str:
    return "wamid.HBgL" + base64.b64encode(rng.randbytes(27)).decode()


def _media_ids(rng: random.Random, count: int) -> list[str]:
    ids: dict[str, None] = {}
    while len(ids) < count:
        ids[str(rng.randrange(10**15, 10**16))] = None
    return list(ids)


def _log_uniform(rng: random.Random, low: int, high: int) -> int:
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


def _pick(rng: random.Random, rates: Sequence[tuple[FaultKind, float]]) -> FaultKind | None:
    """At most one kind: each with its probability, none with the rest."""
    draw = rng.random()
    for kind, rate in rates:
        if draw < rate:
            return kind
        draw -= rate
    return None


def fault_rule(kind: FaultKind, media_id: str, rng: random.Random) -> dict[str, Any]:
    """The simulator rule for one fault, used once."""
    rule: dict[str, Any] = {"media_id": media_id, "times": 1}
    match kind:
        case "lookup 5xx":
            rule |= {"op": "lookup", "status": rng.choice((500, 502, 503))}
        case "lookup 429 + Retry-After":
            rule |= {"op": "lookup", "status": 429, "retry_after": rng.randint(1, 4)}
        case "lookup throttled (HTTP 400)":
            rule |= {"op": "lookup", "status": 400, "error": {"code": rng.choice(THROTTLING_CODES)}}
        case "download 404 (expired)":
            rule |= {"op": "download", "status": 404}
        case "download corrupted":
            rule |= {"op": "download", "corrupt": True}
        case "download truncated":
            rule |= {"op": "download", "truncate": True}
        case "download slow":
            rule |= {"op": "download", "latency": SLOW_DOWNLOAD}
    return rule


def _faults(params: Params, rng: random.Random, media_id: str) -> tuple[Fault, ...]:
    chosen = (_pick(rng, params.fault_rates("lookup")), _pick(rng, params.fault_rates("download")))
    return tuple(Fault(kind, fault_rule(kind, media_id, rng)) for kind in chosen if kind)


def _describe(rng: random.Random, kind: MediaKind, n: int) -> tuple[str, str | None, str | None]:
    """MIME type, caption and filename of one media."""
    caption = f"{kind} {n} 📷" if kind in CAPTIONED and rng.random() < 0.5 else None
    if kind != "document":
        return rng.choice(MIME_TYPES[kind]), caption, None
    pattern, mime = rng.choice(DOCUMENTS)
    return mime, caption, pattern.format(n=n)


def plan_media(params: Params) -> tuple[MediaPlan, ...]:
    """Every type in turn, sizes log-uniform, ages up to three days, faults at their rates."""
    rng, fault_rng = _rng(params, "media"), _rng(params, "faults")
    kinds = [webhooks.MEDIA_KINDS[i % len(webhooks.MEDIA_KINDS)] for i in range(params.media)]
    rng.shuffle(kinds)
    senders = [f"1650555{n:04d}" for n in rng.sample(range(10_000), 40)]
    planned = []
    for n, (kind, media_id) in enumerate(zip(kinds, _media_ids(rng, params.media), strict=True)):
        mime, caption, filename = _describe(rng, kind, n)
        planned.append(
            MediaPlan(
                media_id=media_id,
                kind=kind,
                mime_type=mime,
                size=_log_uniform(rng, params.min_size, params.max_size),
                content_seed=rng.getrandbits(32),
                wamid=_wamid(rng),
                sender=rng.choice(senders),
                age=rng.randrange(3 * 24 * 3600),
                caption=caption,
                filename=filename,
                faults=_faults(params, fault_rng, media_id),
            )
        )
    return tuple(planned)


def plan_too_big(params: Params) -> tuple[TooBigPlan, ...]:
    """The 131052 messages, each from a sender of its own."""
    rng = _rng(params, "too_big")
    count = round(params.media * params.too_big)
    return tuple(
        TooBigPlan(_wamid(rng), f"4477009{n:05d}", rng.randrange(3600)) for n in range(count)
    )


def plan_batches(params: Params, media: int, too_big: int) -> tuple[tuple[MessageRef, ...], ...]:
    """Every message once, shuffled, in batches of 1 to max_batch."""
    rng = _rng(params, "batches")
    refs: list[MessageRef] = [("media", i) for i in range(media)]
    refs += [("too_big", i) for i in range(too_big)]
    rng.shuffle(refs)
    batches = []
    while refs:
        size = rng.randint(1, params.max_batch)
        batches.append(tuple(refs[:size]))
        del refs[:size]
    return tuple(batches)


def plan_deliveries(params: Params, batches: int) -> tuple[Delivery, ...]:
    """Originals evenly over the delivery window; duplicates at once or up to 30 s later."""
    rng = _rng(params, "deliveries")
    spacing = params.delivery_window / max(1, batches)
    planned = []
    for batch in range(batches):
        at = batch * spacing
        planned.append(Delivery(batch, 0, at))
        draw = rng.random()
        extra = 2 if draw < params.thrice else 1 if draw < params.thrice + params.twice else 0
        for copy in range(1, extra + 1):
            later = 0.0 if rng.random() < 0.5 else rng.uniform(2.0, 30.0)
            planned.append(Delivery(batch, copy, round(at + later, 3)))
    return tuple(sorted(planned, key=lambda d: (d.at, d.batch, d.copy)))


def plan_events(params: Params) -> tuple[ChaosEvent, ...]:
    """The kills in shuffled order, one per equal slice of the chaos window."""
    rng = _rng(params, "chaos")
    counts: dict[Action, int] = {
        "kill_worker": params.worker_kills,
        "kill_child": params.child_kills,
        "kill_redis": params.redis_kills,
        "s3_down": 1 if params.s3_outage > 0 else 0,
    }
    blows = [action for action, count in counts.items() for _ in range(count)]
    rng.shuffle(blows)
    width = params.chaos_window / max(1, len(blows))
    events = []
    for n, action in enumerate(blows):
        at = round(CHAOS_START + width * (n + rng.uniform(0.1, 0.9)), 3)
        events.append(ChaosEvent(at, action, rng.randrange(params.workers)))
        if action == "s3_down":
            events.append(ChaosEvent(at + params.s3_outage, "s3_up"))
    return tuple(sorted(events, key=lambda e: e.at))


def build_plan(params: Params) -> Plan:
    """The whole plan for these parameters."""
    media = plan_media(params)
    too_big = plan_too_big(params)
    batches = plan_batches(params, len(media), len(too_big))
    return Plan(
        params=params,
        media=media,
        too_big=too_big,
        batches=batches,
        deliveries=plan_deliveries(params, len(batches)),
        events=plan_events(params),
    )


# --------------------------------------------------------------------------------------------
# Output


# --------------------------------------------------------------------------------------------
# The stack


@dataclass
class WorkerSlot:
    """One of the worker processes; a killed worker's replacement takes its slot."""

    index: int
    service: Service
    name: str
    generation: int = 0


@dataclass
class Stack:
    """What the run started. Every process ever started is in `started`, so that one callback
    stops them all, replacements included."""

    workdir: Path
    params: Params
    redis_server: RedisServer
    seaweed: SeaweedFS
    sim: Simulator
    env: StackEnv
    web_port: int
    started: list[Service]
    web: Service | None = None
    beat: Service | None = None
    workers: list[WorkerSlot] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        """Where web, worker and beat write."""
        return self.workdir / "logs"

    @property
    def web_url(self) -> str:
        """The base URL of web."""
        return f"http://127.0.0.1:{self.web_port}"

    def _track(self, service: Service) -> Service:
        self.started.append(service)
        return service

    def start_web(self) -> None:
        """Start web (again) on its port."""
        self.web = self._track(start_web(self.env, self.logs, port=self.web_port)[0])

    def start_beat(self) -> None:
        """Start beat (again)."""
        self.beat = self._track(start_beat(self.env, self.logs))

    def start_worker(self, index: int, generation: int = 0) -> WorkerSlot:
        """Start a worker for slot `index` and put it there."""
        name = f"w{index + 1}" if generation == 0 else f"w{index + 1}-r{generation}"
        pool = self.params.worker_pool
        # The Procfile's command word for word, with a hostname of its own.
        service = start_worker(
            self.env,
            self.logs,
            name=name,
            pool=pool.name,
            concurrency=pool.concurrency,
            shortcuts=False,
        )
        slot = WorkerSlot(index, self._track(service), name, generation)
        if index < len(self.workers):
            self.workers[index] = slot
        else:
            self.workers.append(slot)
        return slot


def start_stack(
    exits: contextlib.ExitStack, workdir: Path, params: Params, relay_url: str, events: Consumer
) -> Stack:
    """Redis, SeaweedFS, the simulator, web, beat and the workers, each stopped by `exits`;
    every webhook relayed to `relay_url`, the archive events sent to `events`."""
    extra = (
        ("SWEEP_STALLED_AFTER", "60"),
        ("RELAY_DESTINATIONS", f"chaos={relay_url}"),
        ("EVENT_ENDPOINTS", f"chaos-events={events.endpoint.url}"),
        ("EVENT_SIGNING_SECRET", events.secret),
    )
    backends = start_backends(exits, workdir, BUCKET, aof=params.aof, extra=extra)
    stack = Stack(
        workdir,
        params,
        backends.redis_server,
        backends.seaweed,
        backends.sim,
        backends.env,
        free_port(),
        backends.started,
    )
    stack.start_web()
    stack.start_beat()
    for index in range(params.workers):
        stack.start_worker(index)
    say(f"web {stack.web_url}, beat, {params.workers} workers: {worker_command(params)}")
    return stack


def worker_command(params: Params) -> str:
    """The command line of the workers (each with its own hostname)."""
    return shlex.join(worker_argv("w1", params.worker_pool, shortcuts=False))


# --------------------------------------------------------------------------------------------
# Media in the simulator and webhook bodies


@dataclass(frozen=True)
class Registered:
    """A planned media as the simulator holds it, with the key it must get."""

    plan: MediaPlan
    record: MediaRecord
    timestamp: int
    key: str


def register(
    client: SimulatorClient, plan: Plan, now: int
) -> tuple[list[Registered], dict[str, FaultKind]]:
    """Store every media in the simulator and add its faults; fault ids with their kind."""
    registered = []
    fault_ids: dict[str, FaultKind] = {}
    for item in plan.media:
        record = client.add_generated_media(
            item.size,
            item.content_seed,
            item.mime_type,
            media_id=item.media_id,
            phone_number_id=PHONE_NUMBER_ID,
        )
        timestamp = now - item.age
        key = build_key("", PHONE_NUMBER_ID, timestamp, record.id, record.mime_type)
        registered.append(Registered(item, record, timestamp, key))
        for fault in item.faults:
            fault_ids[client.add_fault(**fault.rule)] = fault.kind
    return registered, fault_ids


def _media_message(item: Registered) -> dict[str, Any]:
    return webhooks.media_message(
        item.plan.kind,
        item.record.id,
        sha256_b64=item.record.sha256_b64,
        mime_type=item.record.mime_type,
        sender=item.plan.sender,
        wamid=item.plan.wamid,
        timestamp=item.timestamp,
        caption=item.plan.caption,
        filename=item.plan.filename,
    )


def webhook_bodies(plan: Plan, registered: Sequence[Registered], now: int) -> list[bytes]:
    """The encoded payload of every batch; each of its deliveries POSTs the same bytes."""
    bodies = []
    for batch in plan.batches:
        messages = []
        for kind, index in batch:
            if kind == "media":
                messages.append(_media_message(registered[index]))
            else:
                too_big = plan.too_big[index]
                messages.append(
                    webhooks.too_big_message(
                        sender=too_big.sender, wamid=too_big.wamid, timestamp=now - too_big.age
                    )
                )
        payload = webhooks.envelope(messages, phone_number_id=PHONE_NUMBER_ID, waba_id=WABA_ID)
        bodies.append(webhooks.encode(payload))
    return bodies


# --------------------------------------------------------------------------------------------
# Delivery, as Meta does it: at least once, again later after a non-200


@dataclass
class DeliveryStats:
    """What the POSTs met; updated from the delivery threads."""

    posts: int = 0
    unavailable: int = 0
    """Answers 5xx (503: the broker was unreachable)."""
    connection_errors: int = 0
    redeliveries: int = 0
    duplicates: int = 0
    """Copies after the first that web accepted."""
    delivered: int = 0
    given_up: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to counters under the lock."""
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def note(self, kind: Literal["given_up", "refused"], text: str) -> None:
        """Record a POST that did not end in 200."""
        with self.lock:
            getattr(self, kind).append(text)


class Deliverer:
    """POSTs each planned delivery at its time from a bounded pool; retries 5xx and errors."""

    def __init__(
        self, url: str, secret: str, bodies: Sequence[bytes], params: Params, stop: threading.Event
    ) -> None:
        self.url = f"{url}/webhook"
        self.secret = secret
        self.bodies = bodies
        self.max_tries = params.max_post_tries
        self.stop = stop
        self.stats = DeliveryStats()

    def run(self, deliveries: Sequence[Delivery], started: float) -> None:
        """Submit each delivery when it is due; return when all of them ended."""
        with ThreadPoolExecutor(max_workers=POST_THREADS, thread_name_prefix="post") as pool:
            futures = []
            for delivery in deliveries:
                if self.stop.wait(max(0.0, started + delivery.at - time.monotonic())):
                    break
                futures.append(pool.submit(self.deliver, delivery))
            if self.stop.is_set():
                pool.shutdown(wait=True, cancel_futures=True)
            wait(futures)

    def deliver(self, delivery: Delivery) -> None:
        """POST one delivery until web answers 200, at most max_tries times."""
        body = self.bodies[delivery.batch]
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": webhooks.sign(body, self.secret),
        }
        label = f"batch {delivery.batch} copy {delivery.copy}"
        for attempt in range(1, self.max_tries + 1):
            if attempt > 1:
                self.stats.add(redeliveries=1)
            status = self._post(body, headers)
            if status == 200:
                self.stats.add(delivered=1, duplicates=1 if delivery.copy else 0)
                return
            if status is not None and status < 500:
                self.stats.note("refused", f"{label}: HTTP {status}")
                return
            if self.stop.wait(min(POST_BACKOFF_CAP, 2.0 ** (attempt - 1))):
                return
        self.stats.note("given_up", f"{label}: no 200 after {self.max_tries} tries")

    def _post(self, body: bytes, headers: dict[str, str]) -> int | None:
        self.stats.add(posts=1)
        try:
            answer = requests.post(self.url, data=body, headers=headers, timeout=POST_TIMEOUT)
        except requests.RequestException:
            self.stats.add(connection_errors=1)
            return None
        if answer.status_code >= 500:
            self.stats.add(unavailable=1)
        return answer.status_code


# --------------------------------------------------------------------------------------------
# Chaos: the kills, executed in order from the main thread


@dataclass
class KillRecord:
    """One blow as it happened."""

    action: Action
    at: float
    """time.time() of the kill."""
    target: str
    held: tuple[str, ...] = ()
    """Media whose try the killed processes were running (they held its lease)."""
    slow: tuple[str, ...] = ()
    """Those of `held` in the middle of their slow download: certainly cut short."""
    replies: int = 0
    """Warnings being sent at the kill (claimed in the reply ledger, not recorded yet)."""
    cut: tuple[str, ...] = ()
    """Those of `held` whose next try counted the kill as a crash (filled in after the run)."""
    note: str = ""


@dataclass(frozen=True)
class Try:
    """An archive try in flight: its media and the process running it."""

    media_id: str
    pid: int
    slow: bool
    """In its planned slow download right now."""


class Lookout:
    """Finds the tries a worker's processes are running, from what the stack records: a try
    holds its media's lease (`wa:lease:{phone_number_id}:{media_id}`, whose token starts
    `host:pid:`), and a slow download in progress is one the simulator counted on arrival but
    has not answered yet.

    Every error is kept: a run that could not see what it killed fails."""

    def __init__(self, redis_url: str, client: SimulatorClient, slow: frozenset[str]) -> None:
        self.redis = Redis.from_url(
            redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5
        )
        self.client = client
        self.slow = slow
        self.host = socket.gethostname()
        self.errors: list[str] = []

    def _error(self, what: str, exc: Exception) -> None:
        self.errors.append(f"{what}: {type(exc).__name__}: {exc}"[:300])

    def _values(self, pattern: str) -> dict[str, str]:
        keys = sorted(str(key) for key in self.redis.scan_iter(pattern, count=1000))
        values = self.redis.mget(keys) if keys else []
        return {k: str(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def tries(self, pids: set[int]) -> list[Try]:
        """The tries running in these processes."""
        try:
            leases = self._values(LEASE_PATTERN)
        except (RedisError, OSError) as exc:
            self._error("reading the leases", exc)
            return []
        running = []
        for key, token in leases.items():
            host, _, rest = token.partition(":")
            pid = rest.partition(":")[0]
            if host == self.host and pid.isdigit() and int(pid) in pids:
                # The run's media all come to one account: the media id names them.
                running.append((key.rpartition(":")[2], int(pid)))
        slow = self._slow_downloads({media for media, _ in running} & self.slow)
        return [Try(media, pid, media in slow) for media, pid in running]

    def _slow_downloads(self, media: set[str]) -> set[str]:
        if not media:
            return set()
        try:
            arrived = self.client.stats()["downloads"]
            answered = Counter(
                r["media_id"] for r in self.client.requests() if r["op"] == "download"
            )
        except (SimulatorError, OSError) as exc:
            self._error("asking the simulator", exc)
            return set()
        # The slow fault holds the first download of its media: counted when it arrived, in the
        # request log once answered. Read in this order, a download that ends meanwhile is left out.
        return {m for m in media if arrived.get(m, 0) == 1 and answered[m] == 0}

    def replies_in_flight(self) -> int:
        """Warnings claimed in the reply ledger and not recorded as sent yet."""
        try:
            return sum(1 for value in self._values(REPLY_PATTERN).values() if value == "sending")
        except (RedisError, OSError) as exc:
            self._error("reading the reply ledger", exc)
            return 0

    def close(self) -> None:
        """Release the connections."""
        self.redis.close()


@dataclass(frozen=True)
class Exit:
    """A process that exited without being killed by the run."""

    name: str
    code: int | None
    after: float
    """Seconds since the start of the run."""
    last_words: str

    def __str__(self) -> str:
        return f"{self.name} exited (code {self.code}) at {self.after:.0f}s: {self.last_words}"


def last_words(log: Path) -> str:
    """The last critical or error event of a JSON-lines log, else its last line."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    for line in reversed(lines):
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("level") in ("critical", "error"):
                return str(event.get("event"))[:200]
    return lines[-1][:200] if lines else "(empty log)"


class Chaos:
    """Carries out the planned events against the running stack, and restarts what exits on
    its own, as a process supervisor would; those exits are failures of the run."""

    def __init__(self, stack: Stack, lookout: Lookout, rng: random.Random) -> None:
        self.stack = stack
        self.lookout = lookout
        self.rng = rng
        self.records: list[KillRecord] = []
        self.exits: list[Exit] = []

    def run(self, events: Sequence[ChaosEvent], started: float) -> None:
        """Each event at its time (later if the previous one took longer)."""
        for n, event in enumerate(events):
            self.wait_until(started + event.at)
            following = events[n + 1].at if n + 1 < len(events) else math.inf
            busy_until = min(time.monotonic() + BUSY_WAIT, started + following)
            record = self.apply(event, busy_until)
            if record is not None:
                self.records.append(record)
                if record.action in PROCESS_KILLS:
                    cut = f"tries in flight {len(record.held)}, slow downloads {len(record.slow)}"
                    say(f"chaos: {record.action} {record.target} ({cut}) {record.note}")
                else:
                    say(f"chaos: {record.action} {record.target} {record.note}")

    def wait_until(self, moment: float) -> None:
        """Sleep until `moment`, looking after the processes meanwhile."""
        while True:
            self.supervise()
            left = moment - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(1.0, left))

    def supervise(self) -> None:
        """Restart web, beat or a worker that exited although nobody killed it."""
        stack = self.stack
        for slot in list(stack.workers):
            if not slot.service.alive():
                self._exited(slot.service, slot.name)
                stack.start_worker(slot.index, slot.generation + 1)
        if stack.web is not None and not stack.web.alive():
            self._exited(stack.web, "web")
            stack.start_web()
        if stack.beat is not None and not stack.beat.alive():
            self._exited(stack.beat, "beat")
            stack.start_beat()

    def _exited(self, service: Service, name: str) -> None:
        code = service.process.poll() if service.process is not None else None
        gone = Exit(name, code, time.monotonic() - START, last_words(service.log_path))
        self.exits.append(gone)
        say(f"SUPERVISOR: {gone}; restarting it")

    def apply(self, event: ChaosEvent, busy_until: float) -> KillRecord | None:
        """One event."""
        match event.action:
            case "kill_worker":
                return self.kill_worker(self.stack.workers[event.slot], busy_until)
            case "kill_child":
                return self.kill_child(self.stack.workers[event.slot], busy_until)
            case "kill_redis":
                return self.kill_redis(self.stack.params.redis_downtime)
            case "s3_down":
                self.stack.seaweed.kill()
                return KillRecord("s3_down", time.time(), "seaweedfs")
            case "s3_up":
                self.stack.seaweed.start(attempts=1)
                say("chaos: SeaweedFS restarted on the same port and data directory")
                return None
        raise AssertionError(event.action)

    def _victims(self, slot: WorkerSlot) -> set[int]:
        """The processes of a worker whose tries a kill cuts: the pool processes of prefork,
        the worker itself otherwise (its threads run the tries)."""
        if self.stack.params.pool == "prefork":
            return set(pool_children(slot.service.pid))
        return {slot.service.pid}

    def _busy(self, planned: WorkerSlot, until: float) -> tuple[WorkerSlot, list[Try]]:
        """A worker and the tries it runs: the planned one, or another if only that one is in
        the middle of a slow download; waiting until `until` for one to be."""
        slots = [planned, *(s for s in self.stack.workers if s is not planned)]
        while True:
            owners = {pid: slot.index for slot in slots for pid in self._victims(slot)}
            running = self.lookout.tries(set(owners))
            by_slot = {
                slot.index: [t for t in running if owners[t.pid] == slot.index] for slot in slots
            }
            ready = [slot for slot in slots if any(t.slow for t in by_slot[slot.index])]
            if ready:
                return ready[0], by_slot[ready[0].index]
            if time.monotonic() >= until:
                busy = [slot for slot in slots if by_slot[slot.index]] or [planned]
                return busy[0], by_slot[busy[0].index]
            time.sleep(BUSY_POLL)

    def _replace(self, slot: WorkerSlot, killed_at: float) -> str:
        replacement = self.stack.start_worker(slot.index, slot.generation + 1)
        return f"-> {replacement.name} ready after {time.time() - killed_at:.1f}s"

    def kill_worker(self, planned: WorkerSlot, busy_until: float) -> KillRecord:
        """SIGKILL a whole worker (its process group) and start its replacement at once."""
        slot, running = self._busy(planned, busy_until)
        replies = self.lookout.replies_in_flight()
        killed_at = time.time()
        slot.service.kill()
        note = self._replace(slot, killed_at)
        return KillRecord(
            "kill_worker", killed_at, slot.name, *_held(running), replies=replies, note=note
        )

    def kill_child(self, planned: WorkerSlot, busy_until: float) -> KillRecord:
        """SIGKILL one process of a worker in the middle of a try: a pool process of prefork
        (the worker forks another), or else the worker's only process (replaced at once)."""
        slot, running = self._busy(planned, busy_until)
        best = [t for t in running if t.slow] or running
        if self.stack.params.pool != "prefork":
            pid = slot.service.pid
        elif best:
            pid = self.rng.choice(best).pid
        elif children := pool_children(slot.service.pid):
            pid = self.rng.choice(children)
        else:
            return KillRecord("kill_child", time.time(), slot.name, note="no pool process")
        replies = self.lookout.replies_in_flight()
        killed_at = time.time()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        note = ""
        if pid == slot.service.pid:
            slot.service.kill()  # waits for it to be gone
            note = self._replace(slot, killed_at)
        held, slow = _held([t for t in running if t.pid == pid])
        target = f"{slot.name} pid {pid}"
        return KillRecord("kill_child", killed_at, target, held, slow, replies, note=note)

    def kill_redis(self, downtime: float) -> KillRecord:
        """SIGKILL redis-server and start it again, on the same port and data directory, after
        `downtime` seconds (webhooks meanwhile are answered 503 and delivered again)."""
        killed_at = time.time()
        self.stack.redis_server.kill()
        time.sleep(downtime)
        self.stack.redis_server.start()
        note = f"answering again after {time.time() - killed_at:.1f}s"
        return KillRecord("kill_redis", killed_at, "redis-server", note=note)


def _held(running: Sequence[Try]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The media of these tries, and those of them in a slow download."""
    return tuple(t.media_id for t in running), tuple(t.media_id for t in running if t.slow)


# --------------------------------------------------------------------------------------------
# Waiting until everything is settled


@dataclass
class Snapshot:
    """The states in Redis, the sidecars in the bucket and the warnings sent, at one moment."""

    states: dict[str, str]
    sidecars: set[str]
    replies: Counter[str]

    def settled(self, item: Registered) -> bool:
        """Archived with its sidecar in the bucket, or given up."""
        state = self.states.get(item.record.id, "")
        return state == "failed" or (state == "archived" and sidecar_key(item.key) in self.sidecars)


def list_keys(s3: S3Client) -> dict[str, int]:
    """Every key in the bucket with its size."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = int(entry.get("Size", 0))
    return found


def snapshot(
    redis: Redis, s3: S3Client, client: SimulatorClient, registered: Sequence[Registered]
) -> Snapshot:
    """What Redis, the bucket and the simulator say now."""
    states = media_states(redis, [item.record.id for item in registered], "state")
    sidecars = {key for key in list_keys(s3) if key.endswith(".json")}
    replies = Counter(str(message.get("to")) for message in client.sent_messages())
    return Snapshot(states, sidecars, replies)


def settle(
    redis: Redis,
    s3: S3Client,
    client: SimulatorClient,
    registered: Sequence[Registered],
    plan: Plan,
    timeout: float,
    tick: Callable[[], None],
) -> bool:
    """Poll until every media is settled and every 131052 sender was warned, or `timeout`;
    `tick` runs before each look."""
    expected_replies = {item.sender for item in plan.too_big}
    next_report = [time.monotonic()]

    def done() -> bool:
        tick()
        try:
            now = snapshot(redis, s3, client, registered)
        except (RedisError, OSError, ClientError, BotoCoreError, SimulatorError) as exc:
            say(f"settling: cannot read the state yet ({type(exc).__name__})")
            return False
        settled = sum(1 for item in registered if now.settled(item))
        warned = len(expected_replies & set(now.replies))
        if time.monotonic() >= next_report[0]:
            next_report[0] += PROGRESS_EVERY
            counts = Counter(now.states.values())
            states = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            say(
                f"settling: {settled}/{len(registered)} settled ({states}); "
                f"warnings {warned}/{len(expected_replies)}"
            )
        return settled == len(registered) and warned == len(expected_replies)

    try:
        wait_for(done, timeout=timeout, interval=2.0, what="every media settled")
    except TimeoutError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Verification against the bucket


@dataclass
class Verification:
    """What the bucket, Redis and the simulator hold once the run settled."""

    archived: int = 0
    objects: int = 0
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    integrity: list[str] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stuck: dict[str, str] = field(default_factory=dict)
    unrecorded: list[str] = field(default_factory=list)
    """Media without a `wa:media` record: no fan-out ever admitted them."""
    unacked: Counter[str] = field(default_factory=Counter)
    """Celery messages delivered to a worker and never acknowledged, by task: kombu hands them
    out again only after the visibility timeout. Not a check; it explains lost work."""
    multipart: list[str] = field(default_factory=list)
    replies: int = 0
    duplicate_replies: int = 0
    unsettled_replies: int = 0
    """Warnings sent whose ledger still says `sending`: their worker died before recording
    them, so a copy of the reply task sends again once the claim expires."""
    unwarned: list[str] = field(default_factory=list)
    strangers: list[str] = field(default_factory=list)


def _read_object(s3: S3Client, key: str) -> tuple[str, int]:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    digest = hashlib.sha256()
    size = 0
    for chunk in body.iter_chunks(READ_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def check_media(s3: S3Client, item: Registered) -> list[str]:
    """Problems of one archived media: its bytes, then its sidecar."""
    record, problems = item.record, []
    try:
        digest, size = _read_object(s3, item.key)
    except (ClientError, BotoCoreError) as exc:
        return [f"{record.id}: GET {item.key} failed: {exc}"]
    if digest != record.sha256 or size != record.file_size:
        problems.append(
            f"{record.id}: object has sha256 {digest[:12]}.. and {size} bytes, "
            f"the simulator serves {record.sha256[:12]}.. and {record.file_size} bytes"
        )
    try:
        raw = s3.get_object(Bucket=BUCKET, Key=sidecar_key(item.key))["Body"].read()
        document = json.loads(raw)
    except (ClientError, BotoCoreError, ValueError) as exc:
        return [*problems, f"{record.id}: sidecar unreadable: {exc}"]
    expected = {
        "sha256": record.sha256,
        "size": record.file_size,
        "key": item.key,
        "media_id": record.id,
    }
    for name, value in expected.items():
        if not isinstance(document, dict) or document.get(name) != value:
            found = document.get(name) if isinstance(document, dict) else document
            problems.append(f"{record.id}: sidecar {name}={found!r}, expected {value!r}")
    for entry_key in index_keys(item):
        try:
            entry = json.loads(s3.get_object(Bucket=BUCKET, Key=entry_key)["Body"].read())
        except (ClientError, BotoCoreError, ValueError) as exc:
            problems.append(f"{record.id}: index entry {entry_key} unreadable: {exc}")
            continue
        if not isinstance(entry, dict) or entry.get("key") != item.key:
            problems.append(f"{record.id}: index entry {entry_key} names another object")
    return problems


def index_keys(item: Registered) -> list[str]:
    """The index entries an archived media must have: by its media id and by its wamid."""
    by_media_id = media_id_entry_key("", item.record.id)
    return [k for k in (by_media_id, wamid_entry_key("", item.plan.wamid)) if k is not None]


def incomplete_uploads(s3: S3Client) -> list[str]:
    """Multipart uploads begun and neither completed nor aborted."""
    found = []
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=BUCKET):
        found += [
            f"{u.get('Key')} ({u.get('UploadId', '')[:12]}..)" for u in page.get("Uploads", [])
        ]
    return found


def verify(
    s3: S3Client,
    redis: Redis,
    client: SimulatorClient,
    registered: Sequence[Registered],
    plan: Plan,
) -> Verification:
    """Check the bucket object by object, the records in Redis and the warnings sent."""
    result = Verification()
    keys = list_keys(s3)
    expected = {item.key for item in registered} | {sidecar_key(i.key) for i in registered}
    expected |= {entry for item in registered for entry in index_keys(item)}
    result.objects = sum(1 for key in keys if not key.endswith(".json") and not is_index_key(key))
    result.unexpected = sorted(set(keys) - expected)
    present = [i for i in registered if i.key in keys and sidecar_key(i.key) in keys]
    found = {item.record.id for item in present}
    result.missing = sorted(i.record.id for i in registered if i.record.id not in found)
    with ThreadPoolExecutor(max_workers=VERIFY_THREADS) as pool:
        outcomes = list(pool.map(lambda item: check_media(s3, item), present))
    for problems in outcomes:
        described = [p for p in problems if "sidecar" in p or "index entry" in p]
        result.integrity += [p for p in problems if p not in described]
        result.sidecars += described
        result.archived += not problems
    _check_records(result, redis, registered)
    result.unacked = unacked_tasks(redis)
    _check_replies(result, client, redis, plan)
    result.multipart = incomplete_uploads(s3)
    return result


def _check_records(result: Verification, redis: Redis, registered: Sequence[Registered]) -> None:
    ids = [item.record.id for item in registered]
    states = media_states(redis, ids, "state")
    errors = media_states(redis, ids, "last_error")
    for media_id in ids:
        state = states.get(media_id)
        if state is None:
            result.unrecorded.append(media_id)
        elif state == "failed":
            result.failed[media_id] = errors.get(media_id, "")
        elif state != "archived":
            result.stuck[media_id] = state


def unacked_tasks(redis: Redis) -> Counter[str]:
    """Task names of the messages in kombu's `unacked` hash (the Redis transport's layout:
    each value is JSON `[message, exchange, routing_key]`)."""
    names = Counter[str]()
    for raw in redis.hvals("unacked"):
        try:
            names[str(json.loads(raw)[0]["headers"]["task"])] += 1
        except (ValueError, LookupError, TypeError):
            names["(unreadable)"] += 1
    return names


def _check_replies(result: Verification, client: SimulatorClient, redis: Redis, plan: Plan) -> None:
    sent = Counter(str(message.get("to")) for message in client.sent_messages())
    expected = {item.sender for item in plan.too_big}
    result.replies = sum(sent.values())
    result.duplicate_replies = sum(n - 1 for to, n in sent.items() if to in expected)
    result.unwarned = sorted(expected - set(sent))
    result.strangers = sorted(set(sent) - expected)
    warned = [item.wamid for item in plan.too_big if item.sender in sent]
    with redis.pipeline(transaction=False) as pipe:
        for wamid in warned:
            pipe.get(reply_key(f"{DEFAULT_PHONE_NUMBER_ID}:{wamid}"))
        ledger = pipe.execute()
    result.unsettled_replies = sum(1 for value in ledger if value == "sending")


# --------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True)
class Evidence:
    """What the workers' logs say the blows did."""

    broker_losses: int = 0
    """Times a worker lost its connection to Redis, the broker."""
    s3_retries: int = 0
    """Tries that failed on S3 and were retried."""
    replies_cut_by_redis: int = 0
    """Warnings sent whose record in the ledger then failed on Redis."""


def read_evidence(logs: Path) -> Evidence:
    """Count, in every worker's log (replacements included), what the blows left there."""
    losses = s3 = cut = 0
    for path in sorted(logs.glob("worker-*.log")):
        text = path.read_text(errors="replace")
        losses += text.count("Connection to broker lost")
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            name, label = event.get("event"), event.get("reason_label")
            s3 += name == "media_retry" and label == "s3_unavailable"
            cut += name == "reply_retry" and str(event.get("reason", "")).startswith(
                "Redis reply settle failed"
            )
    return Evidence(losses, s3, cut)


def reply_allowance(plan: Plan, kills: Sequence[KillRecord], evidence: Evidence) -> int:
    """How many warnings the blows may have made go out twice.

    A warning is claimed in the ledger (`sending`) before it is sent and recorded (`sent`)
    after, and a claim keeps every copy of the reply task away until it expires. So a second
    send needs a first one whose record never came: its process killed between the send and the
    record (at most the replies being sent at that kill, and one at least, for a reply may start
    as the kill is prepared), or Redis failing that record (which the worker logs). A Redis kill
    at any other moment cannot do it: the claim is refused while Redis is down, and the AOF
    brings claims and records back (without it, the kill forgets the whole ledger, and any
    warning may go out again). S3 has no part in replies."""
    struck = [k for k in kills if k.action in PROCESS_KILLS]
    allowed = sum(max(1, k.replies) for k in struck) + evidence.replies_cut_by_redis
    if not plan.params.aof:
        allowed += sum(1 for k in kills if k.action == "kill_redis") * len(plan.too_big)
    return allowed


@dataclass
class RelayVerification:
    """What the relay destination received of the webhooks web accepted."""

    missing: list[int] = field(default_factory=list)
    """The batches (their index) whose webhook never reached it."""
    received: int = 0
    duplicates: int = 0


def verify_relay(relay: Downstream, bodies: Sequence[bytes], timeout: float) -> RelayVerification:
    """Wait until every webhook body reached the relay destination byte for byte (or
    `timeout`); what arrived."""
    deadline = time.monotonic() + timeout
    while True:
        counts = Counter(r.body for r in relay.taken())
        missing = [n for n, body in enumerate(bodies) if not counts[body]]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # polling the destination's record until the deadline
    duplicates = sum(counts[body] - 1 for body in set(bodies) if counts[body] > 1)
    return RelayVerification(missing, sum(1 for b in set(bodies) if counts[b]), duplicates)


@dataclass(frozen=True)
class Consumer:
    """The endpoint of archive events, and the secret it verifies their signatures with."""

    endpoint: Downstream
    secret: str


@dataclass
class EventVerification:
    """What the event endpoint received: each media's final outcome, told once or more."""

    missing: list[str] = field(default_factory=list)
    """Media (their ids) without a verified event of their outcome (`media.archived` for those
    in the bucket, `media.failed` for the others)."""
    forged: int = 0
    """Requests whose signature the standardwebhooks library refused."""
    received: int = 0
    duplicates: int = 0
    """Events received again (the same webhook-id): allowed, at least once."""


def verify_events(
    consumer: Consumer, registered: Sequence[Registered], archived: set[str], timeout: float
) -> EventVerification:
    """Wait until every media's event arrived, verified as a consumer would (or `timeout`)."""
    hook = Webhook(consumer.secret)
    deadline = time.monotonic() + timeout
    while True:
        taken = consumer.endpoint.taken()
        told: dict[str, set[str]] = {}
        ids: Counter[str] = Counter()
        forged = 0
        for request in taken:
            try:
                event = hook.verify(request.body, request.headers)
            except WebhookVerificationError:
                forged += 1
                continue
            ids[request.headers.get("webhook-id", "")] += 1
            told.setdefault(str(event["data"].get("media_id")), set()).add(event["type"])
        missing = [
            item.record.id
            for item in registered
            if ("media.archived" if item.record.id in archived else "media.failed")
            not in told.get(item.record.id, set())
        ]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # polling the endpoint's record until the deadline
    duplicates = sum(n - 1 for n in ids.values())
    return EventVerification(missing, forged, len(ids), duplicates)


@dataclass
class Outcome:
    """Everything the report shows."""

    plan: Plan
    stats: DeliveryStats
    faults_triggered: Counter[str]
    kills: list[KillRecord]
    verification: Verification
    settled: bool
    recovery: tuple[float, str] | None
    phases: dict[str, float]
    unexpected_exits: list[Exit]
    evidence: Evidence = field(default_factory=Evidence)
    lookout_errors: list[str] = field(default_factory=list)
    relay: RelayVerification = field(default_factory=RelayVerification)
    events: EventVerification = field(default_factory=EventVerification)

    def chaos_checks(self) -> list[tuple[str, bool, str]]:
        """(check, passed, detail) for what the run injected: each blow must have landed."""
        planned = self.plan.faults()
        unfired = [
            f"{kind} {self.faults_triggered[kind]}/{n}"
            for kind, n in sorted(planned.items())
            if self.faults_triggered[kind] < n
        ]
        struck: Counter[str] = Counter(k.action for k in self.kills)
        expected = Counter({a: n for a, n in self.plan.actions().items() if a != "s3_up"})
        process_kills = [k for k in self.kills if k.action in PROCESS_KILLS]
        idle = [
            f"{k.action} {k.target} ({len(k.held)} tries seen)" for k in process_kills if not k.cut
        ]
        e, v = self.evidence, self.verification
        duplicates = v.duplicate_replies + v.unsettled_replies
        allowed = reply_allowance(self.plan, self.kills, e)
        return [
            ("every planned fault fired", not unfired, "; ".join(unfired)),
            ("every planned kill and outage happened", struck == expected,
             f"planned {_counts(expected)}; happened {_counts(struck)}"),
            ("every worker kill cut a try short", bool(process_kills) and not idle,
             "; ".join(idle) or "no worker kill"),
            ("every Redis kill noticed by the workers",
             e.broker_losses >= struck["kill_redis"],
             f"{e.broker_losses} broker connections lost for {struck['kill_redis']} kills"),
            ("the S3 outage failed uploads", e.s3_retries > 0 or not struck["s3_down"],
             "no try failed on S3 while it was down"),
            ("duplicate warnings <= what worker kills could cause", duplicates <= allowed,
             f"{v.duplicate_replies} sent twice and {v.unsettled_replies} still to be, "
             f"{allowed} allowed"),
            ("every victim seen", not self.lookout_errors, "; ".join(self.lookout_errors[:3])),
        ]  # fmt: skip

    def checks(self) -> list[tuple[str, bool, str]]:
        """(check, passed, detail) for every check of the run."""
        v = self.verification
        return [
            ("every POST accepted", not (self.stats.given_up or self.stats.refused),
             "; ".join((self.stats.given_up + self.stats.refused)[:5])),
            ("everything settled in time", self.settled,
             f"{len(v.stuck) + len(v.unrecorded)} media not settled"),
            ("every media archived and verified", v.archived == len(self.plan.media),
             f"{len(self.plan.media) - v.archived} not; {len(v.missing)} lack object or sidecar"),
            ("no media failed", not v.failed, _first(v.failed)),
            ("nothing stuck queued/archiving", not v.stuck, _first(v.stuck)),
            ("every media recorded in Redis", not v.unrecorded,
             f"no wa:media record (never admitted by a fan-out): {', '.join(v.unrecorded[:6])}"),
            ("sha256 and size match", not v.integrity, "; ".join(v.integrity[:3])),
            ("sidecars and index entries agree", not v.sidecars, "; ".join(v.sidecars[:3])),
            ("no duplicate or stray objects", not v.unexpected, ", ".join(v.unexpected[:5])),
            ("no incomplete multipart uploads", not v.multipart, ", ".join(v.multipart[:5])),
            ("every 131052 sender warned", not v.unwarned, ", ".join(v.unwarned[:5])),
            ("no warning to anybody else", not v.strangers, ", ".join(v.strangers[:5])),
            ("no process exited unbidden", not self.unexpected_exits,
             "; ".join(str(gone) for gone in self.unexpected_exits)),
            ("every webhook relayed as received", not self.relay.missing,
             f"batches never relayed: {self.relay.missing[:10]}"),
            ("every media's outcome evented", not self.events.missing,
             f"media without their event: {', '.join(self.events.missing[:6])}"),
            ("every event's signature verifies", not self.events.forged,
             f"{self.events.forged} requests refused by standardwebhooks"),
            *self.chaos_checks(),
        ]  # fmt: skip

    def failed_checks(self) -> list[str]:
        """The names and details of the checks that failed."""
        return [f"{name}: {detail}" for name, ok, detail in self.checks() if not ok]

    def rows(self) -> list[tuple[str, str]]:
        """The table."""
        v, s, p, e = self.verification, self.stats, self.plan, self.evidence
        planned = p.faults()
        struck: Counter[str] = Counter(record.action for record in self.kills)
        rows = [
            ("seed / plan", f"{p.params.seed} / {p.digest()}"),
            ("workers", f"{p.params.workers} x `{worker_command(p.params)}`"),
            ("messages", f"{len(p.media)} media + {len(p.too_big)} too big (131052), "
                         f"{len(p.batches)} batches"),
            ("webhook POSTs", f"{s.posts} (5xx {s.unavailable}, connection errors "
                              f"{s.connection_errors}, redeliveries {s.redeliveries})"),
            ("duplicates delivered", f"{s.duplicates} of {len(p.deliveries) - len(p.batches)}"),
            ("webhooks relayed", f"{self.relay.received}/{len(p.batches)} received as sent, "
                                 f"{self.relay.duplicates} twice or more"),
            ("archive events", f"{self.events.received} verified, for {len(p.media)} media; "
                               f"{self.events.duplicates} received again"),
        ]  # fmt: skip
        for kind in FAULT_KINDS:
            rows.append((f"fault: {kind}", f"{self.faults_triggered[kind]}/{planned[kind]} hit"))
        for action in PROCESS_KILLS:
            records = [k for k in self.kills if k.action == action]
            tries = sum(len(k.held) for k in records)
            slow = sum(1 for k in records if k.slow)
            cut = sum(len(k.cut) for k in records)
            summary = f"{len(records)}, {slow} amid a slow download; tries in flight {tries}"
            rows.append((f"kills: {action}", f"{summary}, cut short {cut}"))
        redis_kills = f"{struck['kill_redis']} ({e.broker_losses} broker connections lost)"
        rows.append(("kills: kill_redis", redis_kills))
        outages = f"{struck['s3_down']} of {p.params.s3_outage:.0f}s"
        rows.append(("S3 outages", f"{outages} ({e.s3_retries} tries failed on S3)"))
        rows += [
            ("media archived", f"{v.archived}/{len(p.media)}"),
            ("objects (without sidecars)", str(v.objects)),
            ("duplicate or stray objects", str(len(v.unexpected))),
            ("sha256/size failures", str(len(v.integrity))),
            ("sidecar or index problems", str(len(v.sidecars))),
            ("media lost (not archived)", str(len(p.media) - v.archived)),
            ("media failed", f"{len(v.failed)} {_reasons(v.failed)}"),
            ("media stuck (queued/archiving)", str(len(v.stuck))),
            ("media without a Redis record", str(len(v.unrecorded))),
            ("unacked broker messages at the end", _counts(v.unacked)),
            ("incomplete multipart uploads", str(len(v.multipart))),
            ("unbidden exits (restarted)", str(len(self.unexpected_exits))),
            ("warnings sent", f"{v.replies} for {len(p.too_big)} 131052 messages"),
            (
                "duplicate warnings",
                f"{v.duplicate_replies} sent, {v.unsettled_replies} to come "
                f"({reply_allowance(p, self.kills, e)} allowed)",
            ),
        ]
        if self.recovery is not None:
            seconds, what = self.recovery
            rows.append(("longest kill -> re-archived", f"{seconds:.1f}s ({what})"))
        phases = ", ".join(f"{name} {sec:.0f}s" for name, sec in self.phases.items())
        rows.append(("wall time", f"{time.monotonic() - START:.0f}s ({phases})"))
        return rows


def _first(items: dict[str, str]) -> str:
    return "; ".join(f"{key}: {value}" for key, value in list(items.items())[:3])


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counter.most_common()) or "0"


def _reasons(failed: dict[str, str]) -> str:
    if not failed:
        return ""
    counts = Counter(failed.values()).most_common(3)
    return "(" + "; ".join(f"{n}x {reason}" for reason, n in counts) + ")"


def longest_recovery(redis: Redis, kills: Sequence[KillRecord]) -> tuple[float, str] | None:
    """The longest time from a worker or pool kill until a media it held was archived."""
    longest: tuple[float, str] | None = None
    for record in kills:
        if not record.held:
            continue
        archived_at = media_states(redis, list(record.held), "updated_at")
        states = media_states(redis, list(record.held), "state")
        for media_id, at in archived_at.items():
            if states.get(media_id) != "archived":
                continue
            seconds = float(at) - record.at
            if seconds > 0 and (longest is None or seconds > longest[0]):
                longest = (seconds, f"{record.action} {record.target}, media {media_id}")
    return longest


def note_cut_tries(redis: Redis, kills: Sequence[KillRecord]) -> None:
    """Fill in each kill's `cut`: the media it held whose record counts a crash, which the next
    try of a media counts when it finds the last one never finished."""
    for record in kills:
        crashes = media_states(redis, list(record.held), "crashes") if record.held else {}
        record.cut = tuple(m for m in record.held if int(crashes.get(m, "0") or 0) > 0)


def faults_triggered(client: SimulatorClient, fault_ids: dict[str, FaultKind]) -> Counter[str]:
    """The planned fault rules the simulator used up."""
    used = Counter[str]()
    for rule in client.faults():
        if rule.get("id") in fault_ids and rule.get("remaining") == 0:
            used[fault_ids[rule["id"]]] += 1
    return used


# --------------------------------------------------------------------------------------------
# The run


class Phases:
    """Wall time per phase."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.monotonic()

    def end(self, name: str) -> None:
        """Close the current phase under `name`."""
        now = time.monotonic()
        self.seconds[name] = now - self._mark
        self._mark = now


def prepare(
    client: SimulatorClient, plan: Plan
) -> tuple[list[Registered], dict[str, FaultKind], list[bytes]]:
    """Media and faults into the simulator; the webhook bodies that announce the media."""
    now = int(time.time())
    registered, fault_ids = register(client, plan, now)
    total = sum(item.record.file_size for item in registered)
    say(f"simulator: {len(registered)} media ({total / 1e9:.2f} GB), {len(fault_ids)} faults")
    return registered, fault_ids, webhook_bodies(plan, registered, now)


def deliver_amid_chaos(
    exits: contextlib.ExitStack, stack: Stack, plan: Plan, bodies: list[bytes], chaos: Chaos
) -> DeliveryStats:
    """POST from a thread of its own while this one carries out the chaos events."""
    stop = threading.Event()
    exits.callback(stop.set)
    deliverer = Deliverer(stack.web_url, stack.env.app_secret, bodies, plan.params, stop)
    started = time.monotonic()
    say(f"delivering {len(plan.deliveries)} POSTs over {plan.params.delivery_window:.0f}s")
    sender = threading.Thread(target=deliverer.run, args=(plan.deliveries, started), daemon=True)
    sender.start()
    chaos.run(plan.events, started)
    while sender.is_alive():
        chaos.supervise()
        sender.join(timeout=1.0)
    say(f"delivery done: {deliverer.stats.delivered} POSTs accepted")
    return deliverer.stats


def execute(exits: contextlib.ExitStack, workdir: Path, plan: Plan) -> Outcome:
    """Start the stack, deliver amid chaos, settle and verify."""
    params, phases = plan.params, Phases()
    relay = exits.enter_context(Downstream())
    events = Consumer(
        exits.enter_context(Downstream("/events")),
        "whsec_" + base64.b64encode(_rng(params, "events").randbytes(32)).decode(),
    )
    stack = start_stack(exits, workdir, params, relay.url, events)
    client = exits.enter_context(stack.sim.client())
    redis = Redis.from_url(stack.redis_server.url, decode_responses=True, socket_timeout=10)
    exits.callback(redis.close)
    s3 = stack.seaweed.client()
    phases.end("start-up")
    registered, fault_ids, bodies = prepare(client, plan)
    phases.end("registration")

    lookout = Lookout(stack.redis_server.url, client, plan.slow_media())
    exits.callback(lookout.close)
    chaos = Chaos(stack, lookout, _rng(params, "victims"))
    stats = deliver_amid_chaos(exits, stack, plan, bodies, chaos)
    phases.end("delivery and chaos")

    settled = settle(redis, s3, client, registered, plan, params.settle_timeout, chaos.supervise)
    say("settled" if settled else f"NOT settled after {params.settle_timeout:.0f}s")
    phases.end("settling")
    verification = verify(s3, redis, client, registered, plan)
    relayed = verify_relay(relay, bodies, params.settle_timeout)
    archived = {item.record.id for item in registered} - set(verification.missing)
    evented = verify_events(events, registered, archived, params.settle_timeout)
    note_cut_tries(redis, chaos.records)
    chaos.supervise()
    phases.end("verification")
    return Outcome(
        plan=plan,
        stats=stats,
        faults_triggered=faults_triggered(client, fault_ids),
        kills=chaos.records,
        verification=verification,
        settled=settled,
        recovery=longest_recovery(redis, chaos.records),
        phases=phases.seconds,
        unexpected_exits=chaos.exits,
        evidence=read_evidence(stack.logs),
        lookout_errors=lookout.errors,
        relay=relayed,
        events=evented,
    )


def report(outcome: Outcome, workdir: Path) -> bool:
    """Print the table and the verdict; True when every check passed."""
    text = "\n".join(["", "Chaos run", table(outcome.rows()), ""])
    failed = outcome.failed_checks()
    if failed:
        text += "\nFAILED checks:\n" + "\n".join(f"  - {line}" for line in failed)
    else:
        text += f"\nAll {len(outcome.checks())} checks passed."
    print(text, flush=True)
    with contextlib.suppress(OSError):
        (workdir / "report.txt").write_text(text + "\n")
    return not failed


def run(plan: Plan, workdir: Path) -> Outcome:
    """Execute the plan; everything started is stopped before this returns or raises."""
    exits = contextlib.ExitStack()
    # Registered first, so it runs last: whatever a cut-short start left behind.
    with sigterm_as_interrupt(), exits:
        outcome = execute(exits, workdir, plan)
        say("stopping everything")
        stopping = time.monotonic()
    outcome.phases["teardown"] = time.monotonic() - stopping
    return outcome


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None = None) -> tuple[Params, bool, Path | None]:
    """Parameters, --keep, and the run directory if one was given."""
    d = Params()
    parser = argparse.ArgumentParser(
        description="Chaos run of the whole stack; exit 0 only if every check passed."
    )
    add = parser.add_argument
    add("--small", action="store_true", help="about 100 messages, one kill of each kind")
    add("--seed", type=int, default=d.seed, help="what is injected derives from it (%(default)s)")
    add("--no-aof", action="store_true", help="run Redis without persistence, to measure loss")
    add("--keep", action="store_true", help="keep the run directory even when every check passed")
    add("--pool", help=f"the workers' --pool (the Procfile's: {d.pool})")
    add(
        "--concurrency",
        type=int,
        help=f"the workers' --concurrency (the Procfile's {d.concurrency} with its pool, "
        f"else {VARIANT_CONCURRENCY})",
    )
    add("--run-dir", type=Path, help="where to put data and logs (default: a new temporary one)")
    add("--media", type=int, help=f"media messages ({d.media})")
    add("--max-batch", type=int, help=f"messages per POST, 1 to this ({d.max_batch})")
    add("--too-big", type=float, help=f"131052 messages, share of the media ({d.too_big})")
    add("--twice", type=float, help=f"POSTs delivered twice ({d.twice})")
    add("--thrice", type=float, help=f"POSTs delivered three times ({d.thrice})")
    add("--lookup-5xx", type=float, help=f"look-ups answering 5xx once ({d.lookup_5xx})")
    add("--lookup-429", type=float, help=f"look-ups answering 429 once ({d.lookup_429})")
    add(
        "--lookup-throttled",
        type=float,
        help=f"look-ups throttled, HTTP 400 ({d.lookup_throttled})",
    )
    add("--download-404", type=float, help=f"downloads answering 404 once ({d.download_404})")
    add("--download-corrupt", type=float, help=f"downloads corrupted once ({d.download_corrupt})")
    add("--download-truncate", type=float, help=f"downloads cut short once ({d.download_truncate})")
    add(
        "--download-slow",
        type=float,
        help=f"first downloads answered after {SLOW_DOWNLOAD:.0f}s ({d.download_slow})",
    )
    add("--worker-kills", type=int, help=f"whole workers SIGKILLed ({d.worker_kills})")
    add(
        "--child-kills",
        type=int,
        help=f"pool processes SIGKILLed, or the worker's one process with the threads pool "
        f"({d.child_kills})",
    )
    add("--redis-kills", type=int, help=f"redis-server SIGKILLed ({d.redis_kills})")
    add("--redis-downtime", type=float, help=f"seconds before it restarts ({d.redis_downtime:.0f})")
    add("--s3-outage", type=float, help=f"seconds without S3, 0 for none ({d.s3_outage:.0f})")
    add("--delivery-window", type=float, help=f"seconds the POSTs span ({d.delivery_window:.0f})")
    add("--chaos-window", type=float, help=f"seconds the kills span ({d.chaos_window:.0f})")
    add(
        "--settle-timeout", type=float, help=f"seconds to wait for the end ({d.settle_timeout:.0f})"
    )
    add("--max-post-tries", type=int, help=f"tries of a POST answered 5xx ({d.max_post_tries})")
    args = parser.parse_args(argv)
    values: dict[str, Any] = {"seed": args.seed, "aof": not args.no_aof}
    if args.small:
        values |= SMALL
    if args.pool is not None and args.pool != d.pool and args.concurrency is None:
        values["concurrency"] = VARIANT_CONCURRENCY
    for name in (f.name for f in dataclasses.fields(Params)):
        given = getattr(args, name, None)
        if given is not None and name not in ("seed", "aof"):
            values[name] = given
    return Params(**values), args.keep, args.run_dir


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chaos plan; 0 when every check passed."""
    params, keep, run_dir = parse_args(argv)
    plan = build_plan(params)
    workdir = run_dir or Path(tempfile.mkdtemp(prefix="wa-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    actions = ", ".join(f"{name} {n}" for name, n in sorted(plan.actions().items()))
    say(f"seed {params.seed}, plan {plan.digest()}: {len(plan.media)} media, {actions}")
    say(f"run directory {workdir}")
    try:
        outcome = run(plan, workdir)
    except KeyboardInterrupt:
        print(f"\nInterrupted: everything started is stopped; logs in {workdir}", file=sys.stderr)
        return 130
    except (SimulatorError, RedisError, OSError, RuntimeError, TimeoutError) as exc:
        print(f"\nCHAOS RUN BROKE: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"Logs and data are kept in {workdir}", file=sys.stderr)
        return 2
    passed = report(outcome, workdir)
    if passed and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not passed:
        print(f"\nLogs (web, worker-*, beat) are in {workdir / 'logs'}; Redis and SeaweedFS data "
              f"in {workdir}", flush=True)  # fmt: skip
    else:
        print(f"\nRun directory kept: {workdir}", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
