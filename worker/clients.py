"""The clients of each account in one worker process: its provider and its archive bucket."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from redis import Redis

from wa_media.config.accounts import Account
from wa_media.config.settings import WorkerSettings
from wa_media.core.errors import NoAccount
from wa_media.core.ports import ArchiveBucket
from wa_media.core.provider import MediaSource
from wa_media.providers.registry import make_provider
from wa_media.providers.transfer import POOL_SIZE, new_session
from wa_media.stores.gate import MetaGate
from wa_media.stores.s3 import ArchiveStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["AccountClients", "AccountDirectory", "ClientDirectory"]

# How long a media or reply for an unconfigured number waits before it is tried again.
NO_ACCOUNT_RETRY = 300.0


@dataclass(frozen=True)
class AccountClients:
    """What archiving a media of one account needs."""

    account: Account
    provider: MediaSource
    store: ArchiveBucket


class AccountDirectory(Protocol):
    """Each account's clients, by the number they serve (`ClientDirectory`)."""

    def for_number(self, phone_number_id: str) -> AccountClients:
        """The clients of the account serving this number; NoAccount when none does."""


@dataclass
class ClientDirectory:
    """Builds each account's clients on first use and keeps them for the process's life.

    The tasks of a process (threads of a `threads` pool) share it: each account's clients are
    built once, under a lock, and are themselves thread-safe.
    """

    settings: WorkerSettings
    redis: Redis
    s3: S3Client
    pool_size: int = POOL_SIZE
    """Connections each provider session keeps per host: the tasks the process runs at once."""
    _built: dict[str, AccountClients] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def for_number(self, phone_number_id: str) -> AccountClients:
        """The clients of the account serving this number; NoAccount when none does."""
        account = self.settings.accounts.for_number(phone_number_id)
        if account is None:
            raise NoAccount(
                f"no configured account serves phone_number_id {phone_number_id}",
                retry_after=NO_ACCOUNT_RETRY,
            )
        key = account.phone_number_id or "*"
        clients = self._built.get(key)
        if clients is None:
            with self._lock:
                clients = self._built.get(key) or self._build(account)
                self._built[key] = clients
        return clients

    def _build(self, account: Account) -> AccountClients:
        config = self.settings
        gate = MetaGate(
            self.redis,
            account.connection.credential,
            config.graph_rate_limit,
            config.token_pause_seconds,
        )
        provider = make_provider(
            account.connection,
            max_media_bytes=config.max_media_bytes,
            gate=gate,
            session=new_session(pool_size=self.pool_size),
        )
        store = ArchiveStore(self.s3, account.target)
        return AccountClients(account, provider, store)
