"""The worker's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from worker.env import comma_list, positive_int, read, redis_url, text

__all__ = ["DEFAULT_REDIS_URL", "DEFAULT_TOO_BIG_REPLY", "WorkerSettings"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TOO_BIG_REPLY = (
    "Sorry, we could not receive your file: WhatsApp only delivers files up to 100 MB. "
    "Please send a smaller file, or split it into several parts."
)


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("expected an http:// or https:// URL")
    return value.rstrip("/")


def _optional_url(value: str) -> str | None:
    return _base_url(value) if value else None


def _host_list(value: str) -> tuple[str, ...]:
    hosts = tuple(host.lower() for host in comma_list(value))
    for host in hosts:
        if "/" in host or "@" in host or " " in host:
            raise ValueError(f"{host!r} is not a host or host:port")
    return hosts


def _lease_seconds(value: str) -> int:
    seconds = positive_int(value)
    if not 3 <= seconds <= 600:
        raise ValueError("expected 3 to 600 seconds")
    return seconds


def _reply_text(value: str) -> str:
    if len(value) > 4096:
        raise ValueError("a WhatsApp text body holds at most 4096 characters")
    return value


@dataclass(frozen=True)
class WorkerSettings:
    """Everything the `worker` process needs, validated."""

    access_token: str = field(repr=False)
    api_version: str
    graph_url: str
    media_hosts: tuple[str, ...]
    redis_url: str
    s3_bucket: str
    s3_prefix: str
    s3_endpoint_url: str | None
    max_media_bytes: int
    too_big_reply_text: str
    graph_rate_limit: int = 50
    sweep_stalled_after: int = 600
    token_pause_seconds: int = 60
    lease_seconds: int = 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerSettings:
        """Read and validate the worker's variables; raise ConfigError naming the first bad one."""
        return cls(
            access_token=read(environ, "WHATSAPP_ACCESS_TOKEN", text),
            api_version=read(environ, "WHATSAPP_API_VERSION", text, "v23.0"),
            graph_url=read(environ, "WHATSAPP_GRAPH_URL", _base_url, "https://graph.facebook.com"),
            media_hosts=read(environ, "WHATSAPP_MEDIA_HOSTS", _host_list, "lookaside.fbsbx.com"),
            redis_url=read(environ, "REDIS_URL", redis_url, DEFAULT_REDIS_URL),
            s3_bucket=read(environ, "S3_BUCKET", text),
            s3_prefix=read(environ, "S3_PREFIX", lambda v: v.strip("/"), ""),
            s3_endpoint_url=read(environ, "S3_ENDPOINT_URL", _optional_url, ""),
            max_media_bytes=read(environ, "MAX_MEDIA_BYTES", positive_int, "104857600"),
            too_big_reply_text=read(
                environ, "TOO_BIG_REPLY_TEXT", _reply_text, DEFAULT_TOO_BIG_REPLY
            ),
            graph_rate_limit=read(environ, "GRAPH_RATE_LIMIT", positive_int, "50"),
            sweep_stalled_after=read(environ, "SWEEP_STALLED_AFTER", positive_int, "600"),
            token_pause_seconds=read(environ, "TOKEN_PAUSE_SECONDS", positive_int, "60"),
            lease_seconds=read(environ, "LEASE_SECONDS", _lease_seconds, "60"),
        )
