"""What the `wa-media` commands share: settings, clients, errors and progress bars."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from wa_media.config import variables as v
from wa_media.config.accounts import Account
from wa_media.config.env import CONFIG_ERROR
from wa_media.config.settings import archive_target
from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import ArchiveError, ConfigError, PermanentError
from wa_media.core.provider import Progress, Provider
from wa_media.providers.accounts import worker_accounts
from wa_media.providers.registry import make_provider
from wa_media.stores.records import MediaStateStore
from wa_media.stores.redis_client import connect as connect_redis

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILED",
    "EXIT_UNAVAILABLE",
    "ConfigurationError",
    "api_errors",
    "archive_locations",
    "phone_number_option",
    "progress_bar",
    "provider_for",
    "read_env_file",
    "s3_endpoint_url",
    "state_store",
    "when",
]

EXIT_FAILED = 1
EXIT_CONFIG = CONFIG_ERROR
EXIT_UNAVAILABLE = 3

_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a file of `NAME=value` lines (blank lines and `#` comments skipped;
    `export ` before a name and quotes around a value, single or double, are dropped; nothing
    is expanded). ConfigError names the line that is not such a line, never its content."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({type(exc).__name__})") from None
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"{path} line {number}: expected NAME=value")
        name, value = match.group(1), match.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    return variables


class ConfigurationError(click.ClickException):
    """A setting is missing or invalid: one line naming it, exit status 2 (as web, worker and
    beat)."""

    exit_code = EXIT_CONFIG

    def show(self, file: Any = None) -> None:
        """`wa-media: configuration error: ...` on standard error."""
        click.echo(f"wa-media: configuration error: {self.format_message()}", err=True)


def state_store() -> tuple[MediaStateStore, str]:
    """The media records in REDIS_URL, and that URL."""
    try:
        url = v.REDIS_URL.read(os.environ)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    return MediaStateStore(connect_redis(url, socket_connect_timeout=2, socket_timeout=10)), url


def when(value: str | None) -> str:
    """A Unix time as a short UTC date and time, or `-`."""
    if not value:
        return "-"
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _account(phone_number_id: str | None) -> Account:
    environ = os.environ
    try:
        accounts = worker_accounts(
            environ,
            # The media commands never write to S3; the archive's bucket is not needed.
            target=ArchiveTarget(v.S3_BUCKET.read_optional(environ) or "-"),
            delete_after_archive=False,
        )
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    if phone_number_id is not None:
        account = accounts.for_number(phone_number_id)
        if account is None:
            raise click.UsageError(f"no configured account serves {phone_number_id}")
        return account
    if len(accounts.accounts) > 1:
        raise click.UsageError("several accounts are configured: pass --phone-number-id")
    return accounts.accounts[0]


def archive_locations() -> list[tuple[str, str]]:
    """Each configured account's (bucket, prefix), without repeats."""
    environ = os.environ
    try:
        # Nothing is written: the encryption settings are not read.
        target = archive_target(environ, encryption=False)
        accounts = worker_accounts(environ, target=target, delete_after_archive=False)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    return list(dict.fromkeys((a.target.bucket, a.target.prefix) for a in accounts.accounts))


def s3_endpoint_url() -> str | None:
    """S3_ENDPOINT_URL, or None for AWS."""
    try:
        return v.S3_ENDPOINT_URL.read_optional(os.environ)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None


def provider_for(phone_number_id: str | None) -> tuple[Provider, str | None]:
    """The provider client of the chosen account, and the phone_number_id to use with it."""
    account = _account(phone_number_id)
    try:
        max_bytes = v.MAX_MEDIA_BYTES.read(os.environ)
    except ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    provider = make_provider(account.connection, max_media_bytes=max_bytes)
    return provider, phone_number_id or account.phone_number_id


@contextmanager
def api_errors() -> Iterator[None]:
    """Turn a provider's refusal into a clear message and exit status."""
    try:
        yield
    except ArchiveError as exc:
        click.echo(f"error: {exc.reason}", err=True)
        sys.exit(EXIT_FAILED if isinstance(exc, PermanentError) else EXIT_UNAVAILABLE)


@contextmanager
def progress_bar(label: str, length: int | None) -> Iterator[Progress | None]:
    """A progress bar on standard error for a transfer of `length` bytes (when known)."""
    if not length:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        yield bar.update


phone_number_option = click.option(
    "--phone-number-id", help="The account to use (needed when several are configured)."
)
