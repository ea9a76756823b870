"""Every environment variable of the service, declared once: its name, how its value is parsed,
its default, which processes read it and what it means.

Code reads a variable through its row, `S3_BUCKET.read(environ)` (or `read_optional` when
unset has a meaning of its own), never by its name. The configuration reference of the docs
(the table whose header is `| variable | default | read by | meaning |`) is checked against
`VARIABLES` by tests/unit/config/test_variables.py, and so is every name the product's code
reads.

Adding a setting: a row here, a field where it is used (WorkerSettings, WebSettings,
ArchiveTarget...), its use, and its row of the docs' table (docs/development.md, "Adding a
setting").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Generic, Literal, TypeVar

from wa_media.config.destinations import destination_list, signing_secret
from wa_media.config.encryption import kms_key_id, sse_algorithm
from wa_media.config.env import (
    base_url,
    comma_list,
    flag,
    host_list,
    phone_number_id,
    positive_int,
    provider_kind,
    read,
    redis_url,
    s3_prefix,
    tcp_port,
    text,
    webhook_token,
)
from wa_media.core.archive_policy import media_types, mime_patterns, parse_max_bytes
from wa_media.core.provider import DEFAULT_PROVIDER

__all__ = [
    "API_VERSION_DEFAULT",
    "D360_DEFAULT_URL",
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_FANOUT_BATCH",
    "DEFAULT_METRICS_PORTS",
    "DEFAULT_REDIS_URL",
    "DEFAULT_REPLY_MAX_PER_WEBHOOK",
    "DEFAULT_TOO_BIG_REPLY",
    "DEFAULT_WEB_METRICS_PORT",
    "GRAPH_DEFAULT_URL",
    "MAX_FANOUT_BATCH",
    "MAX_TRY_SECONDS",
    "MEDIA_HOSTS_DEFAULT",
    "PROCESSES",
    "VARIABLES",
    "MetricsPorts",
    "Process",
    "Variable",
]

T = TypeVar("T")
U = TypeVar("U")

# The providers' defaults (wa_media/providers/cloud.py, d360.py read them through their rows and
# use them for accounts of the accounts file that give no `url`).
GRAPH_DEFAULT_URL = "https://graph.facebook.com"
API_VERSION_DEFAULT = "v23.0"
MEDIA_HOSTS_DEFAULT = "lookaside.fbsbx.com"
D360_DEFAULT_URL = "https://waba-v2.360dialog.io"

Process = Literal["web", "worker", "beat", "cli"]
PROCESSES: tuple[Process, ...] = ("web", "worker", "beat", "cli")

WEB: tuple[Process, ...] = ("web",)
WORKER: tuple[Process, ...] = ("worker", "cli")
"""The worker's account and S3 settings: `wa-media` reads them too, for the same accounts."""
WORKER_ONLY: tuple[Process, ...] = ("worker",)
WORKER_AND_WEB: tuple[Process, ...] = ("web", "worker", "cli")
"""The S3 location and credentials: `web` reads them too when its read API is on (LOOKUP_*)."""


@dataclass(frozen=True)
class Variable(Generic[T]):
    """One environment variable: a row of the configuration reference."""

    name: str
    parse: Callable[[str], T]
    default: str | None
    """The value taken when the variable is unset or blank; None: no default (`read` then
    names it required, `read_optional` gives None)."""
    processes: tuple[Process, ...]
    """Which processes read it: web, worker, beat, cli (`wa-media`)."""
    doc: str
    """One line: what it sets."""
    _: KW_ONLY
    shown_default: str | None = None
    """The docs' "default" cell, when it is not the default value itself in backquotes
    (required, conditional, unset, computed)."""
    read_elsewhere: str | None = None
    """Who reads it when the product's code does not (a library, the Procfile's shell)."""

    def read(self, environ: Mapping[str, str]) -> T:
        """The parsed value, or the parsed default when unset; ConfigError names the variable
        (`NAME is required but not set`, `NAME is invalid: why`)."""
        return read(environ, self.name, self.parse, self.default)

    def read_as(self, environ: Mapping[str, str], parse: Callable[[str], U]) -> U:
        """As `read`, with a parser the caller decides at run time: a base URL's scheme, which
        ALLOW_INSECURE_HTTP allows or not."""
        return read(environ, self.name, parse, self.default)

    def read_optional(self, environ: Mapping[str, str]) -> T | None:
        """The parsed value, or None when unset or blank (the default is not used)."""
        if not environ.get(self.name, "").strip():
            return None
        return read(environ, self.name, self.parse)

    @property
    def documented_default(self) -> str:
        """What the docs' "default" column says."""
        if self.shown_default is not None:
            return self.shown_default
        if not self.default:
            raise ValueError(f"{self.name}: no default value: say what the docs show")
        return f"`{self.default}`"


# ---------------------------------------------------------------------------- values, parsers

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TOO_BIG_REPLY = (
    "Sorry, we could not receive your file: WhatsApp only delivers files up to 100 MB. "
    "Please send a smaller file, or split it into several parts."
)
# The prefork pool's soft time limit (wa_media/stores/broker.py, TASK_TIME_LIMIT - 60): a try
# may not be given longer, and is given this long by default.
MAX_TRY_SECONDS = 840
DEFAULT_METRICS_PORTS = "9808-9815"
# Meta's 3 MB take well under a second between data centres; a client slower than this is
# holding a connection, not delivering a webhook.
DEFAULT_BODY_TIMEOUT = 5.0
DEFAULT_WEB_METRICS_PORT = 9807
# The 131052 warnings one webhook may owe; the others are dropped (`request_cap`).
DEFAULT_REPLY_MAX_PER_WEBHOOK = 10
# Media (and replies) per fan-out task: a history webhook may describe thousands of media, and
# one task recording and publishing them all would hold a worker thread, and Redis, that long.
DEFAULT_FANOUT_BATCH = 100
MAX_FANOUT_BATCH = 1000


def _try_seconds(value: str) -> int:
    seconds = positive_int(value)
    if seconds > MAX_TRY_SECONDS:
        raise ValueError(f"expected 1 to {MAX_TRY_SECONDS} seconds (the task's soft time limit)")
    return seconds


def _url_form(value: str) -> str:
    # The URL's form only. A provider's base URL: whether http:// may receive a credential is
    # ALLOW_INSECURE_HTTP's to say, where the account's connection is built. S3's endpoint: its
    # requests are signed and never carry the secret key, so http:// is an operator's choice
    # (e.g. a SeaweedFS beside the worker), not a credential sent in clear.
    return base_url(value, insecure_http=True)


def _lease_seconds(value: str) -> int:
    seconds = positive_int(value)
    if not 3 <= seconds <= 600:
        raise ValueError("expected 3 to 600 seconds")
    return seconds


def _reply_text(value: str) -> str:
    if len(value) > 4096:
        raise ValueError("a WhatsApp text body holds at most 4096 characters")
    return value


def _body_timeout(value: str) -> float:
    """Seconds, more than 0 and at most 300 (a fraction is allowed)."""
    seconds = float(value)
    if not 0 < seconds <= 300:
        raise ValueError(f"expected more than 0 and at most 300 seconds, got {value}")
    return seconds


def _fanout_batch(value: str) -> int:
    number = positive_int(value)
    if number > MAX_FANOUT_BATCH:
        raise ValueError(f"expected 1 to {MAX_FANOUT_BATCH} media per fan-out task")
    return number


def _log_level(value: str) -> str:
    name = value.upper()
    if name not in logging.getLevelNamesMapping():
        raise ValueError(f"{name!r} is not a logging level")
    return name


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


# ------------------------------------------------------------------------ accounts, providers
#
# The single account's variables; with WHATSAPP_ACCOUNTS_FILE set, the file says the same per
# account (wa_media/config/accounts.py).

WHATSAPP_PROVIDER = Variable(
    "WHATSAPP_PROVIDER",
    provider_kind,
    DEFAULT_PROVIDER,
    ("web", "worker", "cli"),
    "the single account's provider: cloud, 360dialog or onprem",
)
WHATSAPP_ACCOUNTS_FILE = Variable(
    "WHATSAPP_ACCOUNTS_FILE",
    text,
    None,
    ("web", "worker", "cli"),
    "path of a YAML or JSON file describing many accounts",
    shown_default="unset",
)
WHATSAPP_APP_SECRET = Variable(
    "WHATSAPP_APP_SECRET",
    comma_list,
    None,
    ("web", "cli"),
    "single account: the Meta app secrets (comma-separated) that sign Cloud API webhooks",
    shown_default="required for `cloud`",
)
WHATSAPP_VERIFY_TOKEN = Variable(
    "WHATSAPP_VERIFY_TOKEN",
    text,
    None,
    WEB,
    "token for the GET verification handshake",
    shown_default="required when a Cloud API account receives signed webhooks",
)
WHATSAPP_ACCESS_TOKEN = Variable(
    "WHATSAPP_ACCESS_TOKEN",
    text,
    None,
    WORKER,
    "single account: Bearer token of the Graph API or of the On-Premises API",
    shown_default="required for `cloud` and `onprem`",
)
WHATSAPP_API_VERSION = Variable(
    "WHATSAPP_API_VERSION",
    text,
    API_VERSION_DEFAULT,
    WORKER,
    "single account (cloud): Graph API version in paths",
)
WHATSAPP_GRAPH_URL = Variable(
    "WHATSAPP_GRAPH_URL",
    _url_form,
    GRAPH_DEFAULT_URL,
    WORKER,
    "single account (cloud): Graph API base URL",
)
WHATSAPP_MEDIA_HOSTS = Variable(
    "WHATSAPP_MEDIA_HOSTS",
    host_list,
    MEDIA_HOSTS_DEFAULT,
    WORKER,
    "single account (cloud): hosts (host or host:port) that may receive the token on downloads",
)
ALLOW_INSECURE_HTTP = Variable(
    "ALLOW_INSECURE_HTTP",
    flag,
    "false",
    WORKER,
    "development only: let http:// base and download URLs off loopback receive the credential",
)
WHATSAPP_APP_ID = Variable(
    "WHATSAPP_APP_ID",
    text,
    None,
    WORKER,
    "single account (cloud): the Meta app owning resumable upload sessions",
    shown_default="unset",
)
D360_API_KEY = Variable(
    "D360_API_KEY",
    text,
    None,
    WORKER,
    "single account: the D360-API-KEY",
    shown_default="required for `360dialog`",
)
D360_URL = Variable(
    "D360_URL",
    _url_form,
    D360_DEFAULT_URL,
    WORKER,
    "single account (360dialog): the 360dialog API base URL",
)
WHATSAPP_ONPREM_URL = Variable(
    "WHATSAPP_ONPREM_URL",
    _url_form,
    None,
    WORKER,
    "single account: base URL of the On-Premises web app",
    shown_default="required for `onprem`",
)
WHATSAPP_WEBHOOK_TOKEN = Variable(
    "WHATSAPP_WEBHOOK_TOKEN",
    webhook_token,
    None,
    WEB,
    "single account: the secret path token of POST /webhook/<token>",
    shown_default="required for `360dialog` and `onprem`",
)
WHATSAPP_PHONE_NUMBER_ID = Variable(
    "WHATSAPP_PHONE_NUMBER_ID",
    phone_number_id,
    None,
    WEB,
    "single account (onprem): the id its media are archived under",
    shown_default="required for `onprem`",
)
ARCHIVE_OUTBOUND = Variable(
    "ARCHIVE_OUTBOUND",
    flag,
    "true",
    WEB,
    "archive the media the business itself sent (echoes, history); accounts may override it",
)
# The archive policy (wa_media/core/archive_policy.py); an account's `policy` of the accounts
# file replaces each value it gives.
ARCHIVE_MEDIA_TYPES = Variable(
    "ARCHIVE_MEDIA_TYPES",
    lambda value: media_types(value.split(",")),
    "image,video,audio,document,sticker",
    WEB,
    "media types archived (comma-separated); the others are skipped (`policy_type`)",
)
ARCHIVE_MIME_TYPES = Variable(
    "ARCHIVE_MIME_TYPES",
    lambda value: mime_patterns(value.split(",")),
    "*/*",
    ("web", "worker", "cli"),
    "MIME patterns archived (type/subtype, type/*, */*); the others are skipped (`policy_mime`)",
)
ARCHIVE_MAX_BYTES = Variable(
    "ARCHIVE_MAX_BYTES",
    parse_max_bytes,
    None,
    WORKER,
    "largest size archived per media type (video=50MB,document=20MB); larger: `policy_size`",
    shown_default="unset: no limit but `MAX_MEDIA_BYTES`",
)
TOO_LARGE_REPLY = Variable(
    "TOO_LARGE_REPLY",
    flag,
    "true",
    WEB,
    "send the 131052 warning; false: a media.failed event (code 131052) tells consumers",
)
DELETE_AFTER_ARCHIVE = Variable(
    "DELETE_AFTER_ARCHIVE",
    flag,
    "false",
    WORKER_ONLY,
    "delete each media from the provider once archived; accounts may override it",
)

# ------------------------------------------------------------------------------ the processes

REDIS_URL = Variable(
    "REDIS_URL",
    redis_url,
    DEFAULT_REDIS_URL,
    ("web", "worker", "beat", "cli"),
    "Celery broker and the service's state",
)
PORT = Variable(
    "PORT",
    tcp_port,
    "8000",
    WEB,
    "the port web listens on",
    read_elsewhere="the Procfile's `gunicorn --bind ${PORT:-8000}`",
)
WEBHOOK_BODY_TIMEOUT = Variable(
    "WEBHOOK_BODY_TIMEOUT",
    _body_timeout,
    "5",
    WEB,
    "seconds a request's whole body may take to arrive (0 < s <= 300)",
)
WEB_METRICS_PORT = Variable(
    "WEB_METRICS_PORT",
    tcp_port,
    str(DEFAULT_WEB_METRICS_PORT),
    WEB,
    "TCP port of the gunicorn master's GET /metrics; 0: none",
)
LOG_LEVEL = Variable(
    "LOG_LEVEL",
    _log_level,
    "INFO",
    ("web", "worker", "beat", "cli"),
    "level of the logs",
)
BEAT_SCHEDULE_FILE = Variable(
    "BEAT_SCHEDULE_FILE",
    text,
    None,
    ("beat",),
    "the file where beat remembers when it last sent the sweep",
    shown_default="`wa-media-celerybeat-schedule` in the temporary directory (`TMPDIR`, else "
    "`/tmp`)",
)
WORKER_METRICS_PORT = Variable(
    "WORKER_METRICS_PORT",
    MetricsPorts.parse,
    DEFAULT_METRICS_PORTS,
    WORKER_ONLY,
    "TCP port, or range of ports (the first free one), of the worker's GET /metrics; 0: none",
)
PROMETHEUS_MULTIPROC_DIR = Variable(
    "PROMETHEUS_MULTIPROC_DIR",
    text,
    None,
    ("web", "worker"),
    "directory under which each web and worker keeps its metric files",
    shown_default="unset: a new temporary directory per process",
)

# ------------------------------------------------------------------------------------- S3

S3_BUCKET = Variable(
    "S3_BUCKET",
    text,
    None,
    WORKER_AND_WEB,
    "archive bucket (the default bucket of the accounts file)",
    shown_default="required, unless every account of the accounts file names its bucket",
)
S3_PREFIX = Variable(
    "S3_PREFIX",
    s3_prefix,
    "",
    WORKER_AND_WEB,
    "key prefix (the default prefix of the accounts file)",
    shown_default="empty",
)
S3_ENDPOINT_URL = Variable(
    "S3_ENDPOINT_URL",
    _url_form,
    None,
    WORKER_AND_WEB,
    "any S3-compatible endpoint (http:// or https://)",
    shown_default="unset (AWS)",
)
S3_SSE = Variable(
    "S3_SSE",
    sse_algorithm,
    None,
    WORKER_ONLY,
    "server-side encryption asked for on every write: AES256 or aws:kms",
    shown_default="unset",
)
S3_SSE_KMS_KEY_ID = Variable(
    "S3_SSE_KMS_KEY_ID",
    kms_key_id,
    None,
    WORKER_ONLY,
    "the KMS key of aws:kms",
    shown_default="required when `S3_SSE` is `aws:kms`, refused otherwise",
)
_BOTO3_CHAIN = "boto3's usual chain"
AWS_ACCESS_KEY_ID = Variable(
    "AWS_ACCESS_KEY_ID",
    text,
    None,
    WORKER_AND_WEB,
    "S3 credentials",
    shown_default=_BOTO3_CHAIN,
    read_elsewhere="botocore",
)
AWS_SECRET_ACCESS_KEY = Variable(
    "AWS_SECRET_ACCESS_KEY",
    text,
    None,
    WORKER_AND_WEB,
    "S3 credentials",
    shown_default=_BOTO3_CHAIN,
    read_elsewhere="botocore",
)
AWS_DEFAULT_REGION = Variable(
    "AWS_DEFAULT_REGION",
    text,
    None,
    WORKER_AND_WEB,
    "S3 region",
    shown_default=_BOTO3_CHAIN,
    read_elsewhere="botocore",
)

# ------------------------------------------------------------------------ media and replies

MAX_MEDIA_BYTES = Variable(
    "MAX_MEDIA_BYTES",
    positive_int,
    "104857600",
    WORKER,
    "largest file the worker downloads",
)
TOO_BIG_REPLY_TEXT = Variable(
    "TOO_BIG_REPLY_TEXT",
    _reply_text,
    DEFAULT_TOO_BIG_REPLY,
    WORKER_ONLY,
    "the warning sent on error 131052 (at most 4096 characters)",
    shown_default="a clear English default",
)
REPLY_MAX_PER_WEBHOOK = Variable(
    "REPLY_MAX_PER_WEBHOOK",
    positive_int,
    str(DEFAULT_REPLY_MAX_PER_WEBHOOK),
    WEB,
    "131052 warnings one webhook may owe",
)
REPLY_RATE_PER_ACCOUNT = Variable(
    "REPLY_RATE_PER_ACCOUNT",
    positive_int,
    "60",
    WORKER_ONLY,
    "131052 warnings an account may send in a minute",
)
REPLY_RECIPIENT_INTERVAL = Variable(
    "REPLY_RECIPIENT_INTERVAL",
    positive_int,
    "3600",
    WORKER_ONLY,
    "seconds after a warning during which its customer is sent no other",
)
GRAPH_RATE_LIMIT = Variable(
    "GRAPH_RATE_LIMIT",
    positive_int,
    "50",
    WORKER_ONLY,
    "calls to Meta per second per access token, shared through Redis",
)
LEASE_SECONDS = Variable(
    "LEASE_SECONDS",
    _lease_seconds,
    "60",
    WORKER_ONLY,
    "a media's lease, renewed while a worker holds it (3 to 600)",
)
FANOUT_BATCH = Variable(
    "FANOUT_BATCH",
    _fanout_batch,
    str(DEFAULT_FANOUT_BATCH),
    WEB,
    "media (and 131052 warnings) per fan-out task (1 to 1000)",
)
SWEEP_STALLED_AFTER = Variable(
    "SWEEP_STALLED_AFTER",
    positive_int,
    "600",
    ("web", "worker"),
    "seconds past its due time a queued media may wait before the sweep enqueues it again",
)
TOKEN_PAUSE_SECONDS = Variable(
    "TOKEN_PAUSE_SECONDS",
    positive_int,
    "60",
    WORKER_ONLY,
    "how long calls to Meta pause after the token was rejected",
)
MEDIA_TRY_SECONDS = Variable(
    "MEDIA_TRY_SECONDS",
    _try_seconds,
    str(MAX_TRY_SECONDS),
    WORKER_ONLY,
    "how long one try of a media may take (1 to 840)",
)
USE_WEBHOOK_URL = Variable(
    "USE_WEBHOOK_URL",
    flag,
    "true",
    WORKER_ONLY,
    "download a media's first try from the URL its webhook carried, without a look-up",
)

# ----------------------------------------------------------------- lookup and presigned URLs

MAX_PRESIGNED_URL_SECONDS = 7 * 24 * 3600  # what S3's signature version 4 allows

# ------------------------------------------------------------------- relay and archive events
#
# Destinations of the single account; with WHATSAPP_ACCOUNTS_FILE set, its `destinations:` and
# each account's `relay_to` and `events_to` say the same (wa_media/config/relay.py).

# Delivery's bounds (wa_media/core/delivery.py).
DEFAULT_DELIVERY_TIMEOUT = 10
DEFAULT_DELIVERY_MAX_AGE = 86400
DEFAULT_RELAY_HELD_BYTES_MAX = 1024 * 1024 * 1024


def _delivery_timeout(value: str) -> float:
    seconds = float(value)
    if not 0 < seconds <= 120:
        raise ValueError(f"expected more than 0 and at most 120 seconds, got {value}")
    return seconds


def _presigned_seconds(value: str) -> int:
    seconds = positive_int(value)
    if seconds > MAX_PRESIGNED_URL_SECONDS:
        raise ValueError(f"expected 1 to {MAX_PRESIGNED_URL_SECONDS} seconds (7 days)")
    return seconds


def _api_keys(value: str) -> tuple[str, ...]:
    """Comma-separated API keys, each at least 16 URL-safe characters."""
    keys = comma_list(value)
    for key in keys:
        webhook_token(key)
    if len(set(keys)) != len(keys):
        raise ValueError("a key is listed twice")
    return keys


RELAY_DESTINATIONS = Variable(
    "RELAY_DESTINATIONS",
    destination_list,
    None,
    ("web", "worker", "cli"),
    "single account: `name=url,...` where every accepted webhook is relayed (https://; "
    "http:// to loopback only)",
    shown_default="unset (no relay)",
)
RELAY_SIGNING_SECRET = Variable(
    "RELAY_SIGNING_SECRET",
    signing_secret,
    None,
    WORKER,
    "single account: `whsec_...` signing relayed webhooks that arrived unsigned (360dialog, "
    "On-Premises) per Standard Webhooks",
    shown_default="required with `RELAY_DESTINATIONS` for `360dialog` and `onprem`",
)
EVENT_ENDPOINTS = Variable(
    "EVENT_ENDPOINTS",
    destination_list,
    None,
    WORKER,
    "single account: `name=url,...` receiving the archive events",
    shown_default="unset (no events)",
)
EVENT_SIGNING_SECRET = Variable(
    "EVENT_SIGNING_SECRET",
    signing_secret,
    None,
    WORKER,
    "single account: `whsec_...` signing the archive events per Standard Webhooks",
    shown_default="required with `EVENT_ENDPOINTS`",
)
EVENT_PRESIGNED_URLS = Variable(
    "EVENT_PRESIGNED_URLS",
    flag,
    "false",
    WORKER,
    "add a presigned GET URL of the object (`data.url`, `data.url_expires_at`) to each event",
)
PRESIGNED_URL_SECONDS = Variable(
    "PRESIGNED_URL_SECONDS",
    _presigned_seconds,
    "3600",
    ("web", "worker", "cli"),
    "lifetime of the presigned GET URLs handed out (at most 604800, and never past the "
    "signing credentials' own expiry)",
)
LOOKUP_API_KEYS = Variable(
    "LOOKUP_API_KEYS",
    _api_keys,
    None,
    WEB,
    "comma-separated API keys of `GET /v1/media/...`, each reading the single account's media "
    "(the accounts file has `api_keys`)",
    shown_default="unset: the read API is off",
)
LOOKUP_RATE_LIMIT = Variable(
    "LOOKUP_RATE_LIMIT",
    positive_int,
    "20",
    WEB,
    "requests per second each API key may make to the read API, shared through Redis",
)
DELIVERY_TIMEOUT = Variable(
    "DELIVERY_TIMEOUT",
    _delivery_timeout,
    str(DEFAULT_DELIVERY_TIMEOUT),
    WORKER_ONLY,
    "seconds one delivery attempt may take, connection and answer (0 < s <= 120)",
)
DELIVERY_MAX_AGE = Variable(
    "DELIVERY_MAX_AGE",
    positive_int,
    str(DEFAULT_DELIVERY_MAX_AGE),
    ("worker", "cli"),
    "seconds after receipt a delivery is retried before it becomes a dead letter",
)
DELIVERY_PAUSE_AFTER = Variable(
    "DELIVERY_PAUSE_AFTER",
    positive_int,
    "5",
    WORKER_ONLY,
    "consecutive failed attempts after which a destination is paused",
)
DELIVERY_PAUSE_SECONDS = Variable(
    "DELIVERY_PAUSE_SECONDS",
    positive_int,
    "60",
    WORKER_ONLY,
    "how long a paused destination is sent nothing",
)
RELAY_HELD_BYTES_MAX = Variable(
    "RELAY_HELD_BYTES_MAX",
    positive_int,
    str(DEFAULT_RELAY_HELD_BYTES_MAX),
    WORKER_ONLY,
    "bytes of webhook bodies held in Redis for relay; past it, new bodies become dead letters",
)
DELETE_WITH_RELAY_ACCEPTED = Variable(
    "DELETE_WITH_RELAY_ACCEPTED",
    flag,
    "false",
    WORKER_ONLY,
    "accept `DELETE_AFTER_ARCHIVE` for accounts whose webhooks are relayed",
)

VARIABLES: tuple[Variable[Any], ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Variable)
)
"""Every row, in the order above."""
