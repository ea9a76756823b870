"""Which WhatsApp accounts this deployment serves: one from the environment, or many from a file.

`web` needs to know, for each account, how its webhooks authenticate (a Meta app secret or a
secret path token) and which phone_number_id they belong to; the worker needs the provider,
the credential and where in S3 the media go. Each reads only its part: `web` never resolves a
provider credential, the worker never needs a webhook token.

What differs from one provider to another (its variables, its fields of the file and their
checks, whether Meta signs its webhooks) is its plugin's, in wa_media/providers: each
implements ProviderAccounts, and the functions here take them as `providers`, every kind's
plugin; wa_media.providers.accounts passes the registry's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from wa_media.config import variables as v
from wa_media.config.destinations import (
    DESTINATION_NAME,
    Destination,
    destination_url,
    signing_secret,
)
from wa_media.config.encryption import (
    Encryption,
    SseAlgorithm,
    checked_encryption,
    kms_key_id,
)
from wa_media.config.env import (
    base_url,
    s3_prefix,
    usable_phone_number_id,
    webhook_token,
)
from wa_media.config.relay import env_destinations, file_destinations
from wa_media.config.target import ArchiveTarget
from wa_media.core.archive_policy import (
    DEFAULT_POLICY,
    ArchivePolicy,
    limits_of,
    media_types,
    mime_patterns,
)
from wa_media.core.errors import ConfigError
from wa_media.core.provider import DEFAULT_PROVIDER, Connection, ProviderKind
from wa_media.observability.logs import get_logger

__all__ = [
    "ACCOUNTS_FILE_VARIABLE",
    "Account",
    "AccountEntry",
    "AccountsFile",
    "ApiKeyEntry",
    "PolicyEntry",
    "ProviderAccounts",
    "Providers",
    "WebAccounts",
    "WebRoute",
    "WorkerAccounts",
    "file_url",
    "load_accounts_file",
    "web_accounts",
    "worker_accounts",
]

ACCOUNTS_FILE_VARIABLE = v.WHATSAPP_ACCOUNTS_FILE.name

log = get_logger(__name__)

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# --------------------------------------------------------------------- the providers' parts


class ProviderAccounts(Protocol):
    """How the accounts of one provider are read: what its plugin (wa_media/providers) says."""

    kind: ProviderKind
    signed_webhooks: bool
    """Whether Meta signs its webhooks with an app's secret (X-Hub-Signature-256, at
    `/webhook`): its accounts need an app secret, or else a webhook token; the others' webhooks
    authenticate by their path token alone."""
    webhooks_name_number: bool
    """Whether its webhooks name the phone_number_id they are for; if not, its account
    configured by variables needs WHATSAPP_PHONE_NUMBER_ID (the archive's keys hold it)."""
    url_required: str | None
    """What an accounts file entry's `url` is, when the entry must give it; None: optional."""
    own_fields: tuple[str, ...]
    """The accounts file fields only this provider's entries may give."""

    def check_entry(self, entry: AccountEntry) -> None:
        """Its own checks of an accounts file entry, after the shared ones; ValueError."""

    def env_connection(self, environ: Mapping[str, str], insecure: bool) -> Connection:
        """The connection of the account configured by variables (ConfigError names the
        variable); `insecure`: ALLOW_INSECURE_HTTP."""

    def file_connection(
        self,
        number: str,
        entry: AccountEntry,
        accounts: AccountsFile,
        credential: str,
        insecure: bool,
    ) -> Connection:
        """The connection of the accounts file's entry for `number`, whose credential is
        `credential` (ConfigError names the entry's field)."""


Providers = Mapping[ProviderKind, ProviderAccounts]
"""Every provider kind's plugin."""

_PROVIDERS = "providers"  # the key of the plugins in the file's validation context


def _providers_of(info: ValidationInfo) -> Providers:
    context = info.context
    if not isinstance(context, dict) or _PROVIDERS not in context:
        raise TypeError("an accounts file is validated with the providers' plugins")
    providers: Providers = context[_PROVIDERS]
    return providers


# ------------------------------------------------------------------------- the accounts file


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _one_of(entry: BaseModel, literal: str, variable: str, *, required: bool) -> None:
    given = [name for name in (literal, variable) if getattr(entry, name) is not None]
    if len(given) > 1:
        raise ValueError(f"give either {literal} or {variable}, not both")
    if required and not given:
        raise ValueError(f"{literal} or {variable} is required")


EnvName = Annotated[str, Field(pattern=_ENV_NAME)]
NonEmpty = Annotated[str, Field(min_length=1)]
KmsKeyId = Annotated[str, AfterValidator(kms_key_id)]
Prefix = Annotated[str, AfterValidator(s3_prefix)]


class AppEntry(_Entry):
    """A Meta app: its secret signs Cloud API webhooks; its id owns resumable upload sessions."""

    secret: NonEmpty | None = Field(default=None, repr=False)
    secret_env: EnvName | None = None
    app_id: NonEmpty | None = None

    @model_validator(mode="after")
    def _secret_given(self) -> AppEntry:
        _one_of(self, "secret", "secret_env", required=True)
        return self


class PolicyEntry(_Entry):
    """An account's archive policy; each value given replaces the variable's
    (ARCHIVE_MEDIA_TYPES, ARCHIVE_MIME_TYPES, ARCHIVE_MAX_BYTES, TOO_LARGE_REPLY)."""

    media_types: list[NonEmpty] | None = Field(default=None, min_length=1)
    mime_types: list[NonEmpty] | None = Field(default=None, min_length=1)
    max_bytes: dict[NonEmpty, int | str] | None = Field(default=None, min_length=1)
    too_large_reply: bool | None = None

    @model_validator(mode="after")
    def _values(self) -> PolicyEntry:
        # Checked here, so that a mistake stops the process naming the entry and its field.
        checks = (
            ("media_types", media_types),
            ("mime_types", mime_patterns),
            ("max_bytes", limits_of),
        )
        for name, check in checks:
            value = getattr(self, name)
            try:
                if value is not None:
                    check(value)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self

    def policy(self, default: ArchivePolicy) -> ArchivePolicy:
        """`default` with this entry's values; ValueError for a bad one."""
        return default.overridden(
            media_types=None if self.media_types is None else media_types(self.media_types),
            mime_types=None if self.mime_types is None else mime_patterns(self.mime_types),
            max_bytes=None if self.max_bytes is None else limits_of(self.max_bytes),
            too_large_reply=self.too_large_reply,
        )


def _policy(entry: AccountEntry, default: ArchivePolicy) -> ArchivePolicy:
    return default if entry.policy is None else entry.policy.policy(default)


class AccountEntry(_Entry):
    """One phone number: its provider, credential, webhook token and archive location."""

    provider: ProviderKind = DEFAULT_PROVIDER
    token: NonEmpty | None = Field(default=None, repr=False)
    token_env: EnvName | None = None
    url: str | None = None
    api_version: NonEmpty | None = None
    media_hosts: list[NonEmpty] | None = None
    app: NonEmpty | None = None
    apps: list[NonEmpty] | None = Field(default=None, min_length=1)
    """The Meta apps whose signature this Cloud API account accepts (`app` names one)."""
    webhook_token: str | None = Field(default=None, repr=False)
    webhook_token_env: EnvName | None = None
    bucket: NonEmpty | None = None
    prefix: Prefix | None = None
    delete_after_archive: bool | None = None
    archive_outbound: bool | None = None
    policy: PolicyEntry | None = None
    sse: SseAlgorithm | None = None
    sse_kms_key_id: KmsKeyId | None = None
    relay_to: list[NonEmpty] = Field(default_factory=list)
    """The destinations (of `destinations:`) every webhook of this account is relayed to."""
    events_to: list[NonEmpty] = Field(default_factory=list)
    """The destinations receiving this account's archive events."""

    _signed: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> AccountEntry:
        providers = _providers_of(info)
        plugin = providers[self.provider]
        self._signed = plugin.signed_webhooks
        _one_of(self, "token", "token_env", required=True)
        checked_encryption(
            self.sse, self.sse_kms_key_id, algorithm_name="sse", key_name="sse_kms_key_id"
        )
        # Webhooks Meta does not sign authenticate by their path token.
        _one_of(self, "webhook_token", "webhook_token_env", required=not plugin.signed_webhooks)
        if self.url is not None:
            # Its form only: whether http:// may be used is the worker's to say
            # (ALLOW_INSECURE_HTTP), when it builds the account's connection.
            base_url(self.url, insecure_http=True)
        elif plugin.url_required is not None:
            raise ValueError(f"url ({plugin.url_required}) is required")
        if self.webhook_token is not None:
            webhook_token(self.webhook_token)
        for other in providers.values():
            for name in other.own_fields:
                if name not in plugin.own_fields and getattr(self, name) is not None:
                    raise ValueError(f"{name} applies to provider {other.kind} only")
        plugin.check_entry(self)
        return self

    @property
    def signed_webhooks(self) -> bool:
        """Whether Meta signs this account's webhooks with an app's secret (its provider's)."""
        return self._signed

    @property
    def named_apps(self) -> tuple[str, ...]:
        """The apps the entry names itself (`app` or `apps`), in order."""
        if self.apps is not None:
            return tuple(self.apps)
        return () if self.app is None else (self.app,)


class ApiKeyEntry(_Entry):
    """A consumer's key of `web`'s read API (wa_media/config/apikeys.py): the accounts whose
    media it may read."""

    key: NonEmpty | None = Field(default=None, repr=False)
    key_env: EnvName | None = None
    accounts: list[NonEmpty] = Field(min_length=1)

    @model_validator(mode="after")
    def _key_given(self) -> ApiKeyEntry:
        _one_of(self, "key", "key_env", required=True)
        if self.key is not None:
            webhook_token(self.key)
        return self


DestinationName = Annotated[str, Field(pattern=f"^{DESTINATION_NAME.pattern}$")]


class DestinationEntry(_Entry):
    """A relay destination or event endpoint: its URL and its Standard Webhooks secret."""

    url: Annotated[str, AfterValidator(destination_url)] = Field(repr=False)
    secret: Annotated[str, AfterValidator(signing_secret)] | None = Field(default=None, repr=False)
    secret_env: EnvName | None = None

    @model_validator(mode="after")
    def _secret_once(self) -> DestinationEntry:
        _one_of(self, "secret", "secret_env", required=False)
        return self


class AccountsFile(_Entry):
    """The accounts file: Meta apps by name, destinations by name, accounts by
    phone_number_id, read API keys."""

    apps: dict[NonEmpty, AppEntry] = Field(default_factory=dict)
    destinations: dict[
        Annotated[str, Field(pattern=DESTINATION_NAME.pattern)], DestinationEntry
    ] = Field(default_factory=dict)
    accounts: dict[NonEmpty, AccountEntry] = Field(min_length=1)
    api_keys: dict[NonEmpty, ApiKeyEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> AccountsFile:
        for name, api_key in self.api_keys.items():
            for number in api_key.accounts:
                if number not in self.accounts:
                    raise ValueError(f"api_keys.{name}.accounts: no account {number!r}")
        for number, entry in self.accounts.items():
            for key in ("relay_to", "events_to"):
                for name in getattr(entry, key):
                    if name not in self.destinations:
                        raise ValueError(
                            f"accounts.{number}.{key}: no destination named {name!r} in "
                            "destinations"
                        )
            if not usable_phone_number_id(number):
                raise ValueError(
                    f"accounts.{number}: not a usable phone_number_id (1 to 128 of "
                    "A-Z a-z 0-9 _ . -, not dots alone)"
                )
            key = "app" if entry.app is not None else "apps"
            for app in entry.named_apps:
                if app not in self.apps:
                    raise ValueError(f"accounts.{number}.{key}: no app named {app!r} in apps")
            # An app's signature speaks only for the accounts that name it: with several apps,
            # a Cloud account signed for must say which (one app is implied).
            if (
                entry.signed_webhooks
                and not entry.named_apps
                and len(self.apps) > 1
                and entry.webhook_token is None
                and entry.webhook_token_env is None
            ):
                raise ValueError(
                    f"accounts.{number}.apps: name the app (app) or apps (apps) whose signature "
                    f"this account accepts: {len(self.apps)} apps are configured"
                )
        tokens = [
            entry.webhook_token or entry.webhook_token_env for entry in self.accounts.values()
        ]
        named = [t for t in tokens if t is not None]
        if len(named) != len(set(named)):
            raise ValueError("two accounts share a webhook token: it must name one account")
        return self

    def apps_of(self, number: str) -> tuple[str, ...]:
        """The apps whose signature the Cloud account of `number` accepts: those it names, or
        the only app configured; none for an account reached by its path token alone."""
        entry = self.accounts[number]
        if not entry.signed_webhooks:
            return ()
        if entry.named_apps:
            return entry.named_apps
        return tuple(self.apps) if len(self.apps) == 1 else ()


def _location(loc: tuple[int | str, ...]) -> str:
    # Whole-file checks name their entry in the message itself.
    return "".join(f"{part}: " if i == len(loc) - 1 else f"{part}." for i, part in enumerate(loc))


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # PyYAML's own text quotes the offending line, which may hold a credential: say where, and
    # what, without it.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return type(exc).__name__


_warned_modes: set[tuple[str, int]] = set()


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return  # reading it fails next, with the reason
    if mode & 0o044 and (str(path), mode) not in _warned_modes:
        # Once per process and file: gunicorn's workers inherit the master's set.
        _warned_modes.add((str(path), mode))
        log.warning(
            "accounts_file_readable_by_others",
            file=str(path),
            mode=f"{mode:04o}",
            detail="it may hold credentials: chmod 600 (or 640 for a group of its own)",
        )


def load_accounts_file(path: str | Path, providers: Providers) -> AccountsFile:
    """Read and validate a YAML or JSON accounts file; ConfigError names the bad entry, and
    never quotes a value of the file (it may hold credentials)."""
    name = ACCOUNTS_FILE_VARIABLE
    _warn_if_readable_by_others(Path(path))
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        problem = _yaml_problem(exc)
        raise ConfigError(f"{name}: {path} is not valid YAML or JSON: {problem}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{name}: {path} is not valid YAML or JSON: not UTF-8 (byte {exc.start})"
        ) from None
    try:
        return AccountsFile.model_validate(document, context={_PROVIDERS: providers})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{name}: {_location(first['loc'])}{message}") from None


def _variable(environ: Mapping[str, str], where: str, name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{ACCOUNTS_FILE_VARIABLE}: {where} names {name}, which is not set")
    return value


def _secret(
    environ: Mapping[str, str], where: str, literal: str | None, variable: str | None
) -> str | None:
    if literal is not None:
        return literal
    if variable is not None:
        return _variable(environ, where, variable)
    return None


# ------------------------------------------------------------------------------- web's view


@dataclass(frozen=True)
class WebRoute:
    """An account as `web` sees it: how its webhooks arrive and whose media they carry."""

    provider: ProviderKind
    phone_number_id: str | None
    """None: any phone_number_id (a single account configured by environment variables)."""
    webhook_token: str | None = field(default=None, repr=False)
    archive_outbound: bool = True
    """Whether media the business sent (coexistence echoes, history) are archived too."""
    apps: frozenset[str] | None = None
    """The Meta apps whose signature speaks for this account; None: any configured secret's
    (a single account configured by environment variables)."""
    signed: bool = field(default=False, kw_only=True)
    """Whether Meta signs its provider's webhooks (the Cloud API's): they may then arrive at
    `/webhook`, signed by an app's secret."""
    policy: ArchivePolicy = field(default=DEFAULT_POLICY, kw_only=True)
    """Which media types and MIME types it archives, whether it sends the 131052 warning."""
    relay: bool = field(default=False, kw_only=True)
    """Whether its webhooks are relayed (it has relay destinations)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class WebAccounts:
    """The accounts `web` accepts webhooks for."""

    routes: tuple[WebRoute, ...]
    app_secrets: tuple[str, ...] = field(repr=False)
    app_names: tuple[str, ...] = ()
    """The app owning each of `app_secrets`, position for position (empty without a file)."""
    _by_digest: dict[bytes, WebRoute] = field(init=False, repr=False, compare=False)
    _relaying: frozenset[str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_digest = {_digest(r.webhook_token): r for r in self.routes if r.webhook_token}
        object.__setattr__(self, "_by_digest", by_digest)
        relaying = frozenset(r.phone_number_id for r in self.routes if r.relay)
        object.__setattr__(self, "_relaying", relaying)

    def by_token(self, token: str) -> WebRoute | None:
        """The account a path token names, or None; the comparison is constant-time."""
        # Looked up by a digest of the token, so the dictionary's timing says nothing useful
        # about the token itself, then compared in constant time.
        route = self._by_digest.get(_digest(token))
        if route is None or route.webhook_token is None:
            return None
        if not hmac.compare_digest(route.webhook_token.encode(), token.encode()):
            return None
        return route

    def signed_accepts(self, phone_number_id: str) -> bool:
        """Whether a signed `/webhook` payload for this number belongs to a Cloud account."""
        return any(
            route.signed and route.phone_number_id in (None, phone_number_id)
            for route in self.routes
        )

    def apps_of(self, positions: tuple[int, ...]) -> frozenset[str]:
        """The apps whose secrets (by position in `app_secrets`) signed a webhook."""
        return frozenset(self.app_names[i] for i in positions if i < len(self.app_names))

    def signed_by(self, phone_number_id: str, apps: frozenset[str]) -> bool:
        """Whether a webhook signed by these apps may speak for this number's Cloud account."""
        fallback = False
        for route in self.routes:
            if not route.signed:
                continue
            if route.phone_number_id == phone_number_id:
                return route.apps is None or bool(route.apps & apps)
            if route.phone_number_id is None:
                fallback = route.apps is None or bool(route.apps & apps)
        return fallback

    def archives_outbound(self, phone_number_id: str) -> bool:
        """Whether the account of this number archives the media the business sent."""
        fallback = True
        for route in self.routes:
            if route.phone_number_id == phone_number_id:
                return route.archive_outbound
            if route.phone_number_id is None:
                fallback = route.archive_outbound
        return fallback

    def policy_of(self, phone_number_id: str) -> ArchivePolicy:
        """The archive policy of the account of this number (as `archives_outbound` finds it)."""
        fallback = DEFAULT_POLICY
        for route in self.routes:
            if route.phone_number_id == phone_number_id:
                return route.policy
            if route.phone_number_id is None:
                fallback = route.policy
        return fallback

    @property
    def relays(self) -> bool:
        """Whether any account relays its webhooks."""
        return bool(self._relaying)

    def relayed(self, numbers: list[str]) -> list[str] | None:
        """The numbers of a webhook whose accounts relay it; None: it goes to no destination.
        An account of any number (the variables') relays every webhook, naming no number."""
        if None in self._relaying:
            return numbers
        named = [number for number in numbers if number in self._relaying]
        return named or None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every webhook token, to keep out of logs."""
        return tuple(r.webhook_token for r in self.routes if r.webhook_token)


def web_accounts(environ: Mapping[str, str], *, providers: Providers) -> WebAccounts:
    """`web`'s accounts, from WHATSAPP_ACCOUNTS_FILE or else the single-account variables."""
    path = v.WHATSAPP_ACCOUNTS_FILE.read_optional(environ)
    outbound = v.ARCHIVE_OUTBOUND.read(environ)
    policy = ArchivePolicy(
        media_types=v.ARCHIVE_MEDIA_TYPES.read(environ),
        mime_types=v.ARCHIVE_MIME_TYPES.read(environ),
        too_large_reply=v.TOO_LARGE_REPLY.read(environ),
    )
    if path:
        return _web_from_file(load_accounts_file(path, providers), environ, outbound, policy)
    kind = v.WHATSAPP_PROVIDER.read(environ)
    plugin = providers[kind]
    relay = bool(env_destinations(environ, events=False).relay_to)
    if plugin.signed_webhooks:
        secrets = v.WHATSAPP_APP_SECRET.read(environ)
        route = WebRoute(
            kind, None, archive_outbound=outbound, signed=True, policy=policy, relay=relay
        )
        return WebAccounts((route,), secrets)
    token = v.WHATSAPP_WEBHOOK_TOKEN.read(environ)
    number = None
    if not plugin.webhooks_name_number:
        # Its payloads name no phone_number_id: the archive needs one for its keys.
        number = v.WHATSAPP_PHONE_NUMBER_ID.read(environ)
    app_secrets = v.WHATSAPP_APP_SECRET.read_optional(environ) or ()
    return WebAccounts(
        (WebRoute(kind, number, token, outbound, policy=policy, relay=relay),), app_secrets
    )


def _web_from_file(
    accounts: AccountsFile, environ: Mapping[str, str], outbound: bool, policy: ArchivePolicy
) -> WebAccounts:
    secrets = tuple(
        _secret(environ, f"apps.{name}.secret_env", app.secret, app.secret_env) or ""
        for name, app in accounts.apps.items()
    )
    routes = tuple(
        WebRoute(
            entry.provider,
            number,
            _secret(
                environ,
                f"accounts.{number}.webhook_token_env",
                entry.webhook_token,
                entry.webhook_token_env,
            ),
            outbound if entry.archive_outbound is None else entry.archive_outbound,
            frozenset(accounts.apps_of(number)),
            signed=entry.signed_webhooks,
            policy=_policy(entry, policy),
            relay=bool(entry.relay_to),
        )
        for number, entry in accounts.accounts.items()
    )
    if not secrets and any(r.signed and not r.webhook_token for r in routes):
        raise ConfigError(
            f"{ACCOUNTS_FILE_VARIABLE}: apps: Cloud API accounts need at least one app secret"
        )
    return WebAccounts(routes, secrets, tuple(accounts.apps))


# ---------------------------------------------------------------------------- worker's view


@dataclass(frozen=True)
class Account:
    """An account as the worker sees it: how to reach its provider, where its media go."""

    phone_number_id: str | None
    """None: any phone_number_id (a single account configured by environment variables)."""
    connection: Connection
    target: ArchiveTarget
    delete_after_archive: bool = False
    policy: ArchivePolicy = DEFAULT_POLICY
    """Its MIME types and size limits, which the worker checks once it knows them."""
    relay_to: tuple[str, ...] = ()
    """The names of the destinations its webhooks are relayed to."""
    events_to: tuple[str, ...] = ()
    """The names of the destinations its archive events go to."""


@dataclass(frozen=True)
class WorkerAccounts:
    """The accounts whose media the worker archives."""

    accounts: tuple[Account, ...]
    destinations: Mapping[str, Destination] = field(default_factory=dict, repr=False)
    """Every relay destination and event endpoint, by name."""

    def relay_destinations(self, numbers: list[str]) -> list[Destination]:
        """The union of the destinations of these numbers' accounts, each once; the account
        of any number (the variables') relays webhooks naming none."""
        names: dict[str, None] = {}
        for number in numbers or [""]:
            account = self.for_number(number)
            if account is not None:
                names.update(dict.fromkeys(account.relay_to))
        return [self.destinations[name] for name in names if name in self.destinations]

    def event_endpoints(self, number: str) -> list[Destination]:
        """The endpoints receiving the archive events of this number's account."""
        account = self.for_number(number)
        names = () if account is None else account.events_to
        return [self.destinations[name] for name in names if name in self.destinations]

    def deleting_and_relaying(self) -> list[str]:
        """The accounts (`*`: the variables') that delete media after archiving them and relay
        their webhooks."""
        return [
            account.phone_number_id or "*"
            for account in self.accounts
            if account.delete_after_archive and account.relay_to
        ]

    def for_number(self, number: str) -> Account | None:
        """The account of a phone_number_id, or None when none is configured for it."""
        fallback = None
        for account in self.accounts:
            if account.phone_number_id == number:
                return account
            if account.phone_number_id is None:
                fallback = account
        return fallback

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every provider credential and signing secret, and the destinations' URLs (they may
        hold a token), to keep out of logs."""
        signing = [d.secret for d in self.destinations.values() if d.secret]
        urls = [d.url for d in self.destinations.values()]
        return (
            *(account.connection.credential for account in self.accounts),
            *signing,
            *urls,
        )


def worker_accounts(
    environ: Mapping[str, str],
    *,
    providers: Providers,
    target: ArchiveTarget,
    delete_after_archive: bool,
) -> WorkerAccounts:
    """The worker's accounts; `target` (its bucket empty when S3_BUCKET is unset) and the
    delete option are the defaults."""
    insecure = v.ALLOW_INSECURE_HTTP.read(environ)
    path = v.WHATSAPP_ACCOUNTS_FILE.read_optional(environ)
    policy = ArchivePolicy(
        mime_types=v.ARCHIVE_MIME_TYPES.read(environ),
        max_bytes=v.ARCHIVE_MAX_BYTES.read_optional(environ) or (),
    )
    if path:
        return _worker_from_file(
            load_accounts_file(path, providers),
            providers,
            environ,
            insecure,
            target=target,
            delete_after_archive=delete_after_archive,
            policy=policy,
        )
    if not target.bucket:
        raise ConfigError("S3_BUCKET is required but not set")
    kind = v.WHATSAPP_PROVIDER.read(environ)
    connection = providers[kind].env_connection(environ, insecure)
    found = env_destinations(environ)
    if found.relay_to and not providers[kind].signed_webhooks:
        # Its webhooks arrive unsigned: each destination is sent them signed by us.
        v.RELAY_SIGNING_SECRET.read(environ)
    account = Account(
        None, connection, target, delete_after_archive, policy, found.relay_to, found.events_to
    )
    return WorkerAccounts((account,), found.directory)


def file_url(number: str, url: str, insecure: bool) -> str:
    """An accounts file entry's base URL, checked as `base_url` does; ConfigError names the
    entry."""
    try:
        return base_url(url, insecure_http=insecure)
    except ValueError as exc:
        raise ConfigError(f"{ACCOUNTS_FILE_VARIABLE}: accounts.{number}.url: {exc}") from None


def _worker_from_file(
    accounts: AccountsFile,
    providers: Providers,
    environ: Mapping[str, str],
    insecure: bool,
    *,
    target: ArchiveTarget,
    delete_after_archive: bool,
    policy: ArchivePolicy,
) -> WorkerAccounts:
    resolved = []
    destinations = file_destinations(accounts.destinations, environ)
    for number, entry in accounts.accounts.items():
        for key, names in (("relay_to", entry.relay_to), ("events_to", entry.events_to)):
            for name in names:
                needed = key == "events_to" or not entry.signed_webhooks
                if needed and destinations[name].secret is None:
                    raise ConfigError(
                        f"{ACCOUNTS_FILE_VARIABLE}: destinations.{name}: secret or secret_env is "
                        f"required: accounts.{number}.{key} sends it what only our signature "
                        "authenticates"
                    )
        if not (entry.bucket or target.bucket):
            raise ConfigError(
                f"{ACCOUNTS_FILE_VARIABLE}: accounts.{number}.bucket is not set and "
                "neither is S3_BUCKET"
            )
        credential = _secret(environ, f"accounts.{number}.token_env", entry.token, entry.token_env)
        assert credential is not None  # the schema requires token or token_env
        plugin = providers[entry.provider]
        resolved.append(
            Account(
                number,
                plugin.file_connection(number, entry, accounts, credential, insecure),
                target.overridden(
                    bucket=entry.bucket,
                    prefix=entry.prefix,
                    # The entry's two settings replace the default together, as the variables do.
                    encryption=None
                    if entry.sse is None
                    else Encryption(entry.sse, entry.sse_kms_key_id),
                ),
                delete_after_archive
                if entry.delete_after_archive is None
                else entry.delete_after_archive,
                _policy(entry, policy),
                tuple(entry.relay_to),
                tuple(entry.events_to),
            )
        )
    return WorkerAccounts(tuple(resolved), destinations)
