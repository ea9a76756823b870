"""The `web` process's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from worker.config import DEFAULT_REDIS_URL
from worker.env import comma_list, positive_int, read, redis_url, text

__all__ = ["MAX_BODY_BYTES", "WebSettings"]

# Meta sends at most 3 MB; anything past 4 MiB is refused before it is read.
MAX_BODY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class WebSettings:
    """Everything the `web` process needs, validated."""

    app_secrets: tuple[str, ...] = field(repr=False)
    verify_token: str = field(repr=False)
    redis_url: str = DEFAULT_REDIS_URL
    sweep_stalled_after: int = 600

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WebSettings:
        """Read and validate the web's variables; raise ConfigError naming the first bad one."""
        return cls(
            app_secrets=read(environ, "WHATSAPP_APP_SECRET", comma_list),
            verify_token=read(environ, "WHATSAPP_VERIFY_TOKEN", text),
            redis_url=read(environ, "REDIS_URL", redis_url, DEFAULT_REDIS_URL),
            sweep_stalled_after=read(environ, "SWEEP_STALLED_AFTER", positive_int, "600"),
        )
