"""The worker's settings, read once from the environment at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wa_media.config.accounts import Providers, WorkerAccounts, base_url, flag, worker_accounts
from wa_media.config.encryption import (
    NO_ENCRYPTION,
    Encryption,
    checked_encryption,
    kms_key_id,
    sse_algorithm,
)
from wa_media.config.env import positive_int, read, redis_url, s3_prefix
from wa_media.core.errors import ConfigError

__all__ = [
    "DEFAULT_METRICS_PORTS",
    "DEFAULT_REDIS_URL",
    "DEFAULT_TOO_BIG_REPLY",
    "MAX_TRY_SECONDS",
    "MetricsPorts",
    "WorkerSettings",
]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TOO_BIG_REPLY = (
    "Sorry, we could not receive your file: WhatsApp only delivers files up to 100 MB. "
    "Please send a smaller file, or split it into several parts."
)


# The prefork pool's soft time limit (wa_media/stores/broker.py, TASK_TIME_LIMIT - 60): a try
# may not be given longer, and is given this long by default.
MAX_TRY_SECONDS = 840


def _try_seconds(value: str) -> int:
    seconds = positive_int(value)
    if seconds > MAX_TRY_SECONDS:
        raise ValueError(f"expected 1 to {MAX_TRY_SECONDS} seconds (the task's soft time limit)")
    return seconds


def _optional_url(value: str) -> str | None:
    # S3's requests are signed, and never carry the secret key: http:// is an operator's choice
    # (e.g. a SeaweedFS beside the worker), not a credential sent in clear.
    return base_url(value, insecure_http=True) if value else None


def _lease_seconds(value: str) -> int:
    seconds = positive_int(value)
    if not 3 <= seconds <= 600:
        raise ValueError("expected 3 to 600 seconds")
    return seconds


def _encryption(environ: Mapping[str, str]) -> Encryption:
    algorithm = read(environ, "S3_SSE", lambda v: sse_algorithm(v) if v else None, "")
    key_id = read(environ, "S3_SSE_KMS_KEY_ID", lambda v: kms_key_id(v) if v else None, "")
    try:
        return checked_encryption(
            algorithm, key_id, algorithm_name="S3_SSE", key_name="S3_SSE_KMS_KEY_ID"
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class MetricsPorts:
    """Where a worker may serve its metrics: one port, or the first free one of a range.

    Several workers on one host (one per core) share a range: each takes the lowest port no
    other process listens on. `0` serves none.
    """

    first: int
    last: int

    @property
    def off(self) -> bool:
        """No metrics server at all."""
        return self.first == 0

    @property
    def ports(self) -> range:
        """The ports to try, lowest first."""
        return range(self.first, self.last + 1)

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @classmethod
    def parse(cls, value: str) -> MetricsPorts:
        """`9808`, `9808-9815` or `0`; ValueError otherwise."""
        low, dash, high = value.partition("-")
        if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
            raise ValueError(f"expected a TCP port, a range such as 9808-9815, or 0, got {value!r}")
        first = int(low)
        last = int(high) if dash else first
        if not 0 <= first <= 65535 or not 0 <= last <= 65535:
            raise ValueError(f"expected TCP ports from 0 (off) to 65535, got {value!r}")
        if dash and not 0 < first <= last:
            raise ValueError(f"expected a range from a lower port to a higher one, got {value!r}")
        return cls(first, last)


DEFAULT_METRICS_PORTS = "9808-9815"


def _reply_text(value: str) -> str:
    if len(value) > 4096:
        raise ValueError("a WhatsApp text body holds at most 4096 characters")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the `worker` process needs, validated."""

    accounts: WorkerAccounts = field(repr=False)
    redis_url: str
    s3_bucket: str | None
    """The default bucket; accounts from a file may name their own."""
    s3_prefix: str
    s3_endpoint_url: str | None
    max_media_bytes: int
    too_big_reply_text: str
    graph_rate_limit: int = 50
    sweep_stalled_after: int = 600
    token_pause_seconds: int = 60
    lease_seconds: int = 60
    s3_encryption: Encryption = NO_ENCRYPTION
    """The default server-side encryption; accounts from a file may ask for their own."""
    metrics_ports: MetricsPorts = MetricsPorts(9808, 9815)
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, providers: Providers) -> WorkerSettings:
        """Read and validate the worker's variables; raise ConfigError naming the first bad one.
        `providers`: every provider's plugin (wa_media.providers.accounts.worker_settings passes
        the registry's)."""
        bucket = read(environ, "S3_BUCKET", lambda v: v or None, "")
        prefix = read(environ, "S3_PREFIX", s3_prefix, "")
        delete_after_archive = read(environ, "DELETE_AFTER_ARCHIVE", flag, "false")
        encryption = _encryption(environ)
        return cls(
            accounts=worker_accounts(
                environ,
                providers=providers,
                bucket=bucket,
                prefix=prefix,
                delete_after_archive=delete_after_archive,
                encryption=encryption,
            ),
            redis_url=read(environ, "REDIS_URL", redis_url, DEFAULT_REDIS_URL),
            s3_bucket=bucket,
            s3_prefix=prefix,
            s3_endpoint_url=read(environ, "S3_ENDPOINT_URL", _optional_url, ""),
            max_media_bytes=read(environ, "MAX_MEDIA_BYTES", positive_int, "104857600"),
            too_big_reply_text=read(
                environ, "TOO_BIG_REPLY_TEXT", _reply_text, DEFAULT_TOO_BIG_REPLY
            ),
            graph_rate_limit=read(environ, "GRAPH_RATE_LIMIT", positive_int, "50"),
            sweep_stalled_after=read(environ, "SWEEP_STALLED_AFTER", positive_int, "600"),
            token_pause_seconds=read(environ, "TOKEN_PAUSE_SECONDS", positive_int, "60"),
            lease_seconds=read(environ, "LEASE_SECONDS", _lease_seconds, "60"),
            s3_encryption=encryption,
            metrics_ports=read(
                environ, "WORKER_METRICS_PORT", MetricsPorts.parse, DEFAULT_METRICS_PORTS
            ),
            use_webhook_url=read(environ, "USE_WEBHOOK_URL", flag, "true"),
            reply_rate_per_account=read(environ, "REPLY_RATE_PER_ACCOUNT", positive_int, "60"),
            reply_recipient_interval=read(
                environ, "REPLY_RECIPIENT_INTERVAL", positive_int, "3600"
            ),
            try_seconds=read(environ, "MEDIA_TRY_SECONDS", _try_seconds, str(MAX_TRY_SECONDS)),
        )
