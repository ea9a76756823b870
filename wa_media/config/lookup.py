"""`web`'s read API settings (GET /v1/media/...): its keys, their accounts' archive locations,
its rate and the lifetime of the URLs it signs. Read only when a key is configured: without
one the API is off and `web` needs no S3 setting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from wa_media.config import variables as v
from wa_media.config.accounts import ACCOUNTS_FILE_VARIABLE, AccountsFile
from wa_media.config.env import webhook_token
from wa_media.core.errors import ConfigError
from wa_media.core.lookup import ApiKey, KeyRing

__all__ = ["LookupSettings", "lookup_settings"]

Location = tuple[str, str]
"""An archive's bucket and key prefix."""


@dataclass(frozen=True)
class LookupSettings:
    """The read API's settings, validated."""

    keys: KeyRing = field(repr=False)
    locations: dict[str | None, Location]
    """Each account's (bucket, prefix) by phone_number_id; None: the single account's."""
    rate_limit: int = 20
    presigned_url_seconds: int = 3600
    endpoint_url: str | None = None

    def locations_for(self, key: ApiKey) -> list[Location]:
        """Where the media a key may read are archived, without repeats."""
        if key.accounts is None:
            return list(dict.fromkeys(self.locations.values()))
        return list(dict.fromkeys(self.locations[n] for n in sorted(key.accounts)))


def _file_key(environ: Mapping[str, str], name: str, literal: str | None, env: str | None) -> str:
    if literal is not None:
        return literal
    where = f"{ACCOUNTS_FILE_VARIABLE}: api_keys.{name}.key_env"
    value = environ.get(env or "", "").strip()
    if not value:
        raise ConfigError(f"{where} names {env}, which is not set")
    try:
        return webhook_token(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {env} is invalid: {exc}") from None


def _default_bucket(environ: Mapping[str, str], where: str) -> str:
    bucket = v.S3_BUCKET.read_optional(environ)
    if not bucket:
        raise ConfigError(f"{where} is not set and neither is S3_BUCKET (the read API needs it)")
    return bucket


def lookup_settings(
    environ: Mapping[str, str], accounts: AccountsFile | None
) -> LookupSettings | None:
    """The read API's settings, or None when no key is configured (the API is off)."""
    env_keys = v.LOOKUP_API_KEYS.read_optional(environ)
    locations: dict[str | None, Location] = {}
    if accounts is None:
        if env_keys is None:
            return None
        prefix = v.S3_PREFIX.read(environ)
        keys = tuple(
            ApiKey(f"LOOKUP_API_KEYS[{i}]", secret) for i, secret in enumerate(env_keys, 1)
        )
        locations[None] = (v.S3_BUCKET.read(environ), prefix)
    else:
        if env_keys is not None:
            raise ConfigError(
                "LOOKUP_API_KEYS is for a single account: with an accounts file, give its "
                "api_keys, each naming its accounts"
            )
        if not accounts.api_keys:
            return None
        prefix = v.S3_PREFIX.read(environ)
        keys = tuple(
            ApiKey(
                name,
                _file_key(environ, name, entry.key, entry.key_env),
                frozenset(entry.accounts),
            )
            for name, entry in accounts.api_keys.items()
        )
        for number in sorted({n for entry in accounts.api_keys.values() for n in entry.accounts}):
            account = accounts.accounts[number]
            bucket = account.bucket or _default_bucket(
                environ, f"{ACCOUNTS_FILE_VARIABLE}: accounts.{number}.bucket"
            )
            locations[number] = (bucket, prefix if account.prefix is None else account.prefix)
    if len({key.secret for key in keys}) != len(keys):
        raise ConfigError(f"{ACCOUNTS_FILE_VARIABLE}: api_keys: two keys are the same")
    return LookupSettings(
        KeyRing(keys),
        locations,
        rate_limit=v.LOOKUP_RATE_LIMIT.read(environ),
        presigned_url_seconds=v.PRESIGNED_URL_SECONDS.read(environ),
        endpoint_url=v.S3_ENDPOINT_URL.read_optional(environ),
    )
