"""The accounts and the worker's settings, read with every provider's plugin (registry.py):
what the processes and `wa-media` call (wa_media.config.accounts takes the plugins as an
argument, the config layer being below the providers')."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from wa_media.config.accounts import (
    AccountsFile,
    Providers,
    WebAccounts,
    WorkerAccounts,
)
from wa_media.config.accounts import (
    load_accounts_file as _load_accounts_file,
)
from wa_media.config.accounts import (
    web_accounts as _web_accounts,
)
from wa_media.config.accounts import (
    worker_accounts as _worker_accounts,
)
from wa_media.config.settings import WorkerSettings
from wa_media.config.target import ArchiveTarget
from wa_media.providers.registry import PROVIDERS

__all__ = ["load_accounts_file", "web_accounts", "worker_accounts", "worker_settings"]

_PLUGINS: Providers = PROVIDERS


def load_accounts_file(path: str | Path) -> AccountsFile:
    """Read and validate a YAML or JSON accounts file (wa_media.config.accounts)."""
    return _load_accounts_file(path, _PLUGINS)


def web_accounts(environ: Mapping[str, str] = os.environ) -> WebAccounts:
    """`web`'s accounts, from WHATSAPP_ACCOUNTS_FILE or else the single-account variables."""
    return _web_accounts(environ, providers=_PLUGINS)


def worker_accounts(
    environ: Mapping[str, str], *, target: ArchiveTarget, delete_after_archive: bool
) -> WorkerAccounts:
    """The worker's accounts; `target` (its bucket empty when S3_BUCKET is unset) and the
    delete option are the defaults."""
    return _worker_accounts(
        environ, providers=_PLUGINS, target=target, delete_after_archive=delete_after_archive
    )


def worker_settings(environ: Mapping[str, str] = os.environ) -> WorkerSettings:
    """The worker's settings (WorkerSettings.from_env), with every provider's plugin."""
    return WorkerSettings.from_env(environ, providers=_PLUGINS)
