"""The read API's decisions (docs/consuming.md, "The lookup API"): which key a request
carries, which accounts it may read, whether it is over its rate. Pure."""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field

__all__ = ["ApiKey", "KeyRing", "RateVerdict", "key_fingerprint", "rate_verdict"]


def key_fingerprint(secret: str) -> str:
    """A short, one-way name for a key: Redis and logs never hold the key itself."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True)
class ApiKey:
    """A consumer's key: its name (for logs), its secret, the accounts it may read."""

    name: str
    secret: str = field(repr=False)
    accounts: frozenset[str] | None = None
    """The phone_number_ids whose media it reads; None: the single account's, whatever its
    number (LOOKUP_API_KEYS)."""

    @property
    def fingerprint(self) -> str:
        """The key's fingerprint (its rate counter's name in Redis)."""
        return key_fingerprint(self.secret)

    def reads(self, phone_number_id: str) -> bool:
        """Whether the key may read this account's media."""
        return self.accounts is None or phone_number_id in self.accounts


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, found by the secret a request presents."""

    keys: tuple[ApiKey, ...]
    _by_digest: dict[bytes, ApiKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_digest", {_digest(k.secret): k for k in self.keys})

    def __bool__(self) -> bool:
        return bool(self.keys)

    def by_secret(self, secret: str) -> ApiKey | None:
        """The key of this secret, or None; the comparison is constant-time."""
        # Looked up by a digest, so the dictionary's timing says nothing useful about the
        # secret, then compared in constant time.
        key = self._by_digest.get(_digest(secret))
        if key is None or not hmac.compare_digest(key.secret.encode(), secret.encode()):
            return None
        return key

    def by_authorization(self, header: str | None) -> ApiKey | None:
        """The key an `Authorization: Bearer <key>` header presents, or None."""
        scheme, _, secret = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            return None
        return self.by_secret(secret.strip())

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every key, to keep out of logs."""
        return tuple(key.secret for key in self.keys)


@dataclass(frozen=True)
class RateVerdict:
    """Whether a request is within its key's rate; if not, seconds until it would be."""

    allowed: bool
    retry_after: int = 0


def rate_verdict(count: int, per_second: int, now: float) -> RateVerdict:
    """A key's `count`th request of the current one-second window (Unix time), under a limit
    of `per_second`."""
    if count <= per_second:
        return RateVerdict(True)
    # The next window opens within the second; Retry-After counts whole seconds.
    return RateVerdict(False, max(1, math.ceil(math.floor(now) + 1 - now)))
