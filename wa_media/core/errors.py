"""Every error class of the product, one tree; vendors' errors (redis, kombu, botocore,
requests) are translated into these by the adapter that calls the vendor, and nothing above
the adapters catches a vendor's exception (tests/repo/test_error_tree.py checks both).

The worker's errors, split by what a task should do about them:

ArchiveError
├── RetryableError          try again later (after `retry_after` seconds at least)
│   ├── ThrottledError      Meta asked us to slow down (429, throttling codes)
│   ├── TemporaryError      Meta or the network failed for now (5xx, timeouts, resets)
│   │   └── TimedOut        the try ran past its time limit (a crawling transfer)
│   ├── CredentialsError    the token is expired or revoked (190, 401): wait for an operator
│   │   ├── NoAccount       no configured account serves the phone_number_id
│   │   └── PausedError     calls with this token are paused: Meta rejected it a moment ago
│   ├── IntegrityError      the bytes did not match the announced digest
│   │   └── SizeMismatch    ... or the announced size
│   ├── StorageError        S3 failed or is unreachable
│   │   └── RedisUnavailable  Redis failed or is unreachable
│   ├── BrokerUnavailable   the broker did not take a published task
│   ├── BusyError           another worker holds this media's lease
│   └── UrlRefused          a download URL answered 401/403/404/410: look the media up again
└── PermanentError          retrying cannot help: record the media as failed with the reason
    ├── ReengagementError   131047 (On-Premises 470): the customer's 24-hour window is closed
    ├── MediaRejected       WhatsApp refuses an upload's type or size (checked before sending)
    ├── Unsupported         the provider's API has no such operation (On-Premises: media URLs)
    ├── TooBig              the media is larger than MAX_MEDIA_BYTES
    ├── PolicySkip          the account's archive policy leaves the media out: skipped, not failed
    ├── Expired             the media's 7-day window closed before it was archived
    ├── WorkerDied          tries of this media killed their worker too often (poison)
    ├── ForeignHost         a download URL points to a host not allowed the credential
    │   └── InsecureUrl     ... or is http:// to a host that is not loopback (clear text)
    ├── InvalidId           an id cannot form an object key or a request path (a ValueError)
    └── KeyConflict         the object's key holds other bytes already (left as they are)

Errors answered by a provider carry its HTTP `status` and error `code` when it gave them.

Outside the worker's tree:

ConfigError                 a setting is missing or invalid; the message names the variable
ObjectExists                a conditional S3 write found the key taken (commit.py decides)
SignatureError              a webhook is not signed by any configured app secret
├── MissingSignature        ... no signature header at all
└── InvalidSignature        ... a malformed header, or a signature no secret produces
NotWhatsAppPayload          valid JSON, but not a WhatsApp Business Account webhook (a ValueError)
BodyTimeout                 a request's body did not arrive within the body deadline

The command line's ConfigurationError (wa_media/cli/common.py) is not here: it is a
click.ClickException, how the CLI presents a ConfigError, not an error of the product.
"""

from __future__ import annotations

__all__ = [
    "ArchiveError",
    "BodyTimeout",
    "BrokerUnavailable",
    "BusyError",
    "ConfigError",
    "CredentialsError",
    "Expired",
    "ForeignHost",
    "InsecureUrl",
    "IntegrityError",
    "InvalidId",
    "InvalidSignature",
    "KeyConflict",
    "MediaRejected",
    "MissingSignature",
    "NoAccount",
    "NotWhatsAppPayload",
    "ObjectExists",
    "PausedError",
    "PermanentError",
    "PolicySkip",
    "RedisUnavailable",
    "ReengagementError",
    "RetryableError",
    "SignatureError",
    "SizeMismatch",
    "StorageError",
    "TemporaryError",
    "ThrottledError",
    "TimedOut",
    "TooBig",
    "Unsupported",
    "UrlRefused",
    "WorkerDied",
]


class ArchiveError(Exception):
    """Base of every error the worker raises on purpose; `reason` is a short, secret-free text."""

    def __init__(self, reason: str, *, code: int | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.status = status


class RetryableError(ArchiveError):
    """Worth trying again; `retry_after` is the least wait in seconds, when known."""

    def __init__(
        self,
        reason: str,
        *,
        code: int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason, code=code, status=status)
        self.retry_after = retry_after


class ThrottledError(RetryableError):
    """Meta is rate-limiting us."""


class TemporaryError(RetryableError):
    """A transient failure of Meta or the network."""


class TimedOut(TemporaryError):
    """The try ran past its time limit; the next one starts afresh."""


class CredentialsError(RetryableError):
    """The access token does not work; every call fails until an operator fixes it."""


class NoAccount(CredentialsError):
    """No configured account serves this phone_number_id: an operator has to add it."""


class PausedError(CredentialsError):
    """Calls with this token are paused: Meta rejected it a moment ago."""


class IntegrityError(RetryableError):
    """Downloaded bytes disagree with the announced sha256 or size."""


class SizeMismatch(IntegrityError):
    """Downloaded bytes disagree with the announced size."""


class StorageError(RetryableError):
    """S3 refused or could not be reached."""


class RedisUnavailable(StorageError):
    """Redis, which holds the records and the queues, failed or could not be reached."""


class BrokerUnavailable(RetryableError):
    """The broker did not take the work: `web` must not answer the request 200, and a task
    publishing it tries again."""


class BusyError(RetryableError):
    """Another worker is archiving this media right now."""


class UrlRefused(RetryableError):
    """The download URL answered 401, 403, 404 or 410: it has expired; look the media up again."""


class PermanentError(ArchiveError):
    """Retrying cannot succeed for this item."""


class ReengagementError(PermanentError):
    """Free-form text is not allowed: more than 24 hours since the customer wrote (131047)."""


class MediaRejected(PermanentError):
    """A file's type or size is not one WhatsApp accepts for upload; nothing was sent."""


class Unsupported(PermanentError):
    """The provider's API has no such operation (e.g. media URLs on the On-Premises API)."""


class TooBig(PermanentError):
    """The media is larger than MAX_MEDIA_BYTES."""


class PolicySkip(PermanentError):
    """The account's archive policy leaves the media out (its size, or the MIME type only the
    look-up named): the media is skipped, not failed; `label` is the skip reason
    (wa_media/core/archive_policy.py)."""

    def __init__(
        self,
        reason: str,
        *,
        label: str = "policy_size",
        code: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason, code=code, status=status)
        self.label = label


class Expired(PermanentError):
    """The media's 7-day window at the provider closed before it was archived."""


class WorkerDied(PermanentError):
    """Tries of this media killed their worker too often: it is poison."""


class ForeignHost(PermanentError):
    """A URL points to a host that may not receive the credential; nothing was sent."""


class InsecureUrl(ForeignHost):
    """A URL is http:// to a host that is not loopback: the credential would travel in clear
    text (ALLOW_INSECURE_HTTP allows it, for development); nothing was sent."""


class InvalidId(PermanentError, ValueError):
    """An id cannot form an object key or a request path; a ValueError too, as the parsers
    that meet one take it."""


class KeyConflict(PermanentError):
    """The object's key already holds other bytes than these; nothing was overwritten."""


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


class ObjectExists(Exception):
    """A conditional write found the key taken: another writer committed it first."""


class SignatureError(Exception):
    """The request is not signed by any configured app secret."""


class MissingSignature(SignatureError):
    """No signature header at all."""


class InvalidSignature(SignatureError):
    """A malformed header, or a signature that no configured secret produces."""


class NotWhatsAppPayload(ValueError):
    """Valid JSON, but not a WhatsApp Business Account webhook."""


class BodyTimeout(Exception):
    """The request's body did not arrive within the body deadline."""
