"""The worker's settings, read once from the environment at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wa_media.config import variables as v
from wa_media.config.accounts import Providers, WorkerAccounts, worker_accounts
from wa_media.config.encryption import NO_ENCRYPTION, Encryption, checked_encryption
from wa_media.config.relay import check_delete_with_relay
from wa_media.config.target import ArchiveTarget
from wa_media.config.variables import (
    DEFAULT_METRICS_PORTS,
    DEFAULT_REDIS_URL,
    DEFAULT_TOO_BIG_REPLY,
    MAX_TRY_SECONDS,
    MetricsPorts,
)
from wa_media.core.errors import ConfigError

__all__ = [
    "DEFAULT_METRICS_PORTS",
    "DEFAULT_REDIS_URL",
    "DEFAULT_TOO_BIG_REPLY",
    "MAX_TRY_SECONDS",
    "MetricsPorts",
    "WorkerSettings",
    "archive_target",
]


def _encryption(environ: Mapping[str, str]) -> Encryption:
    algorithm = v.S3_SSE.read_optional(environ)
    key_id = v.S3_SSE_KMS_KEY_ID.read_optional(environ)
    try:
        return checked_encryption(
            algorithm, key_id, algorithm_name=v.S3_SSE.name, key_name=v.S3_SSE_KMS_KEY_ID.name
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def archive_target(environ: Mapping[str, str], *, encryption: bool = True) -> ArchiveTarget:
    """The deployment's default archive target: S3_BUCKET (empty when unset), S3_PREFIX and,
    unless `encryption` is False (nothing is written), S3_SSE and S3_SSE_KMS_KEY_ID."""
    bucket = v.S3_BUCKET.read_optional(environ) or ""
    prefix = v.S3_PREFIX.read(environ)
    return ArchiveTarget(bucket, prefix, _encryption(environ) if encryption else NO_ENCRYPTION)


_DEFAULT_PORTS = MetricsPorts.parse(DEFAULT_METRICS_PORTS)


@dataclass(frozen=True)
class DeliverySettings:
    """How relayed webhooks and archive events are delivered (wa_media/core/delivery.py)."""

    timeout: float = v.DEFAULT_DELIVERY_TIMEOUT
    max_age: int = v.DEFAULT_DELIVERY_MAX_AGE
    pause_after: int = 5
    pause_seconds: int = 60
    held_bytes_max: int = v.DEFAULT_RELAY_HELD_BYTES_MAX
    presigned_urls: bool = False
    presigned_seconds: int = 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DeliverySettings:
        """Read the delivery variables; ConfigError names the first bad one."""
        return cls(
            timeout=v.DELIVERY_TIMEOUT.read(environ),
            max_age=v.DELIVERY_MAX_AGE.read(environ),
            pause_after=v.DELIVERY_PAUSE_AFTER.read(environ),
            pause_seconds=v.DELIVERY_PAUSE_SECONDS.read(environ),
            held_bytes_max=v.RELAY_HELD_BYTES_MAX.read(environ),
            presigned_urls=v.EVENT_PRESIGNED_URLS.read(environ),
            presigned_seconds=v.PRESIGNED_URL_SECONDS.read(environ),
        )


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the `worker` process needs, validated."""

    accounts: WorkerAccounts = field(repr=False)
    redis_url: str
    archive: ArchiveTarget
    """The default archive target (bucket, prefix, encryption); accounts from a file may name
    their own. Its bucket is empty when S3_BUCKET is unset."""
    s3_endpoint_url: str | None
    max_media_bytes: int
    too_big_reply_text: str
    graph_rate_limit: int = 50
    sweep_stalled_after: int = 600
    token_pause_seconds: int = 60
    lease_seconds: int = 60
    metrics_ports: MetricsPorts = _DEFAULT_PORTS
    """Where the worker serves its metrics: the first free port of these; 0: not at all."""
    use_webhook_url: bool = True
    """Download a media's first try from the URL its webhook carried, without a look-up."""
    reply_rate_per_account: int = 60
    """131052 warnings an account may send in one minute; the others are dropped."""
    reply_recipient_interval: int = 3600
    """Seconds after a warning during which its customer is sent no other by the account."""
    try_seconds: int = MAX_TRY_SECONDS
    """How long one try of a media may take, its transfer included; past it, the connection is
    closed and the media retried."""
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    """Relay and archive events: timeouts, age, pause, held bytes, presigned URLs."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, providers: Providers) -> WorkerSettings:
        """Read and validate the worker's variables; raise ConfigError naming the first bad one.
        `providers`: every provider's plugin (wa_media.providers.accounts.worker_settings passes
        the registry's)."""
        target = archive_target(environ)
        accounts = worker_accounts(
            environ,
            providers=providers,
            target=target,
            delete_after_archive=v.DELETE_AFTER_ARCHIVE.read(environ),
        )
        check_delete_with_relay(accounts.deleting_and_relaying(), environ)
        return cls(
            accounts=accounts,
            delivery=DeliverySettings.from_env(environ),
            redis_url=v.REDIS_URL.read(environ),
            archive=target,
            s3_endpoint_url=v.S3_ENDPOINT_URL.read_optional(environ),
            max_media_bytes=v.MAX_MEDIA_BYTES.read(environ),
            too_big_reply_text=v.TOO_BIG_REPLY_TEXT.read(environ),
            graph_rate_limit=v.GRAPH_RATE_LIMIT.read(environ),
            sweep_stalled_after=v.SWEEP_STALLED_AFTER.read(environ),
            token_pause_seconds=v.TOKEN_PAUSE_SECONDS.read(environ),
            lease_seconds=v.LEASE_SECONDS.read(environ),
            metrics_ports=v.WORKER_METRICS_PORT.read(environ),
            use_webhook_url=v.USE_WEBHOOK_URL.read(environ),
            reply_rate_per_account=v.REPLY_RATE_PER_ACCOUNT.read(environ),
            reply_recipient_interval=v.REPLY_RECIPIENT_INTERVAL.read(environ),
            try_seconds=v.MEDIA_TRY_SECONDS.read(environ),
        )
