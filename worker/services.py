"""The worker's settings, read once, and the clients of each worker process."""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from functools import partial

from redis import Redis

from wa_media.config.settings import WorkerSettings
from wa_media.core.ports import EventSink
from wa_media.observability.logs import register_secrets
from wa_media.providers.accounts import worker_settings
from wa_media.stores.broker import DELIVERIES_QUEUE, MAX_COUNTDOWN, apply_async
from wa_media.stores.commit import CommitClaims
from wa_media.stores.deliveries import DeliveryOutbox, DeliveryState, RelayInbox
from wa_media.stores.delivery_http import DeliveryClient
from wa_media.stores.records import MediaStateStore, ReplyLedger, ReplyLimits
from wa_media.stores.redis_client import connect as connect_redis
from wa_media.stores.s3 import PARTS_IN_FLIGHT, make_s3_client, presign_get
from worker.archive import Archiver
from worker.clients import ClientDirectory
from worker.delivery import Deliverer
from worker.replies import Replier

__all__ = ["Services", "services", "set_tasks_at_once", "settings"]


@functools.cache
def settings() -> WorkerSettings:
    """The worker's settings, read once."""
    return worker_settings()


@dataclass
class _Pool:
    """What start-up tells about the pool: how many tasks one process may run at once."""

    tasks_at_once: int = 1


_POOL = _Pool()


def set_tasks_at_once(count: int) -> None:
    """Size the connection pools of the clients built from now on for `count` tasks at once."""
    _POOL.tasks_at_once = count


@dataclass(frozen=True)
class Services:
    """The clients of one worker process, built after fork so no socket is shared, and shared
    by the process's threads: the Redis client, the S3 client and each provider's session are
    thread-safe, with a connection pool sized for the tasks that run at once."""

    archiver: Archiver
    replier: Replier
    state: MediaStateStore
    redis: Redis
    deliveries: DeliveryState
    deliverer: Deliverer
    inbox: RelayInbox
    events: EventSink
    """The consumers' outbox: archive events, and those `web` decided (in fan-out batches)."""


_services: dict[int, Services] = {}
# Building clients takes a while and boto3's default session must not be used by two threads at
# once: the first tasks of a threads pool wait for one build instead of racing to make many.
_services_lock = threading.Lock()


def _publish_delivery(ident: str) -> None:
    # The task is this process's own: imported here, as tasks.py imports this module.
    from worker.tasks import deliver

    apply_async(deliver, args=(ident,), queue=DELIVERIES_QUEUE)


def _build_services() -> Services:
    config = settings()
    register_secrets(config.accounts.secrets)
    connections = _POOL.tasks_at_once
    redis = connect_redis(config.redis_url, socket_connect_timeout=5, socket_timeout=10)
    # A large file's upload sends PARTS_IN_FLIGHT parts at once.
    s3 = make_s3_client(config.s3_endpoint_url, max_connections=connections * PARTS_IN_FLIGHT)
    clients = ClientDirectory(config, redis, s3, pool_size=connections)
    state = MediaStateStore(
        redis, stall_after=config.sweep_stalled_after, lease_ttl=config.lease_seconds
    )
    deliveries = DeliveryState(
        redis,
        max_age=config.delivery.max_age,
        held_bytes_max=config.delivery.held_bytes_max,
        stall_after=config.sweep_stalled_after,
    )
    destinations = dict(config.accounts.destinations)
    events = DeliveryOutbox(deliveries, config.accounts.event_endpoints, _publish_delivery)
    return Services(
        deliveries=deliveries,
        deliverer=Deliverer(
            config.delivery,
            destinations,
            deliveries,
            DeliveryClient(config.delivery.timeout, pool_size=connections),
            max_countdown=MAX_COUNTDOWN,
            presign=partial(presign_get, s3),
        ),
        inbox=RelayInbox(redis),
        archiver=Archiver(config, clients, state, CommitClaims(redis), events),
        replier=Replier(
            config,
            clients,
            ReplyLedger(redis, stall_after=config.sweep_stalled_after),
            ReplyLimits(
                redis,
                per_minute=config.reply_rate_per_account,
                interval=config.reply_recipient_interval,
            ),
        ),
        state=state,
        redis=redis,
        events=events,
    )


def services() -> Services:
    """This process's clients."""
    pid = os.getpid()
    found = _services.get(pid)
    if found is None:
        with _services_lock:
            found = _services.get(pid) or _build_services()
            _services[pid] = found
    return found
