"""Relay destinations and event endpoints: their URLs, names and secrets, from the variables or
the accounts file, as `web` and the worker each see them; DELETE_AFTER_ARCHIVE with relay."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pytest

from wa_media.config.destinations import destination_list, destination_url, signing_secret
from wa_media.core.errors import ConfigError
from wa_media.providers.accounts import web_accounts, worker_settings

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER = "whsec_" + base64.b64encode(b"o" * 32).decode()
HOOK = "hook-token-0123456789abcdef"
CLOUD_ENV = {"WHATSAPP_ACCESS_TOKEN": "tok", "S3_BUCKET": "archive"}
WEB_ENV = {"WHATSAPP_APP_SECRET": "app-secret", "WHATSAPP_VERIFY_TOKEN": "verify"}


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.com/hook?token=x",
        "http://127.0.0.1:8080/hook",
        "http://127.9.9.9/hook",
        "http://[::1]:9000/",
        "http://localhost/hook",
    ],
)
def test_https_or_loopback_http_is_taken(url: str) -> None:
    assert destination_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://crm.example.com/hook", "loopback host only"),
        ("http://10.0.0.1/hook", "loopback host only"),
        ("ftp://crm.example.com/", "https://"),
        ("crm.example.com/hook", "https://"),
    ],
)
def test_other_urls_are_refused_without_being_quoted(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        destination_url(url)
    assert url not in str(caught.value)


def test_a_list_names_each_destination_once() -> None:
    assert destination_list("crm=https://a.example/x, bot=http://127.0.0.1:1/y") == (
        ("crm", "https://a.example/x"),
        ("bot", "http://127.0.0.1:1/y"),
    )
    for bad, why in [
        ("crm=https://a.example,crm=https://b.example", "named twice"),
        ("https://a.example", "name=url"),
        ("c r m=https://a.example", "name=url"),
        ("crm=http://a.example", "crm: http:// is taken"),
        (",", "at least one"),
    ]:
        with pytest.raises(ValueError, match=why):
            destination_list(bad)


def test_a_signing_secret_is_a_standard_webhooks_secret() -> None:
    assert signing_secret(SECRET) == SECRET
    for bad in ("secret", "whsec_", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match=r"whsec_|24 bytes"):
            signing_secret(bad)


# --- the single account's variables ------------------------------------------------------------


def test_the_variables_relay_every_webhook_of_the_single_account() -> None:
    env = {**CLOUD_ENV, "RELAY_DESTINATIONS": "crm=https://crm.example/h,bot=https://bot.example/h"}
    accounts = worker_settings(env).accounts
    assert [d.name for d in accounts.relay_destinations(["1", "2"])] == ["crm", "bot"]
    # A body naming no number (a field of the whole WABA) goes to them too.
    assert [d.name for d in accounts.relay_destinations([])] == ["crm", "bot"]
    assert accounts.event_endpoints("1") == []
    assert "https://crm.example/h" in accounts.secrets
    web = web_accounts({**WEB_ENV, "RELAY_DESTINATIONS": "crm=https://crm.example/h"})
    assert web.relayed(["1"]) == ["1"]
    assert web.relayed([]) == []
    assert web_accounts(WEB_ENV).relayed(["1"]) is None


def test_event_endpoints_need_their_secret_and_names_of_their_own() -> None:
    env = {**CLOUD_ENV, "EVENT_ENDPOINTS": "feed=https://feed.example/e"}
    with pytest.raises(ConfigError, match="EVENT_SIGNING_SECRET is required"):
        worker_settings(env)
    accounts = worker_settings({**env, "EVENT_SIGNING_SECRET": SECRET}).accounts
    (endpoint,) = accounts.event_endpoints("any")
    assert (endpoint.name, endpoint.secret) == ("feed", SECRET)
    assert SECRET in accounts.secrets
    clash = {**env, "EVENT_SIGNING_SECRET": SECRET, "RELAY_DESTINATIONS": "feed=https://x.example"}
    with pytest.raises(ConfigError, match="EVENT_ENDPOINTS is invalid: feed is already"):
        worker_settings(clash)


def test_unsigned_providers_need_the_relay_signing_secret() -> None:
    env = {
        "WHATSAPP_PROVIDER": "360dialog",
        "D360_API_KEY": "key",
        "S3_BUCKET": "archive",
        "RELAY_DESTINATIONS": "crm=https://crm.example/h",
    }
    with pytest.raises(ConfigError, match="RELAY_SIGNING_SECRET is required"):
        worker_settings(env)
    assert worker_settings({**env, "RELAY_SIGNING_SECRET": SECRET}).accounts.destinations


def test_an_insecure_destination_stops_start_up_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="RELAY_DESTINATIONS is invalid: crm: http://"):
        worker_settings({**CLOUD_ENV, "RELAY_DESTINATIONS": "crm=http://crm.example/h"})
    with pytest.raises(ConfigError, match="RELAY_DESTINATIONS is invalid"):
        web_accounts({**WEB_ENV, "RELAY_DESTINATIONS": "crm=http://crm.example/h"})


def test_delete_after_archive_with_relay_is_refused_unless_accepted() -> None:
    env = {
        **CLOUD_ENV,
        "RELAY_DESTINATIONS": "crm=https://crm.example/h",
        "DELETE_AFTER_ARCHIVE": "true",
    }
    with pytest.raises(ConfigError, match="DELETE_AFTER_ARCHIVE is refused with relay"):
        worker_settings(env)
    assert worker_settings({**env, "DELETE_WITH_RELAY_ACCEPTED": "true"})
    del env["RELAY_DESTINATIONS"]
    assert worker_settings(env)


def test_the_delivery_settings() -> None:
    delivery = worker_settings(CLOUD_ENV).delivery
    assert (delivery.timeout, delivery.max_age, delivery.pause_after) == (10, 86400, 5)
    assert (delivery.pause_seconds, delivery.held_bytes_max) == (60, 1024**3)
    assert (delivery.presigned_urls, delivery.presigned_seconds) == (False, 3600)
    for name, value in [
        ("DELIVERY_TIMEOUT", "0"),
        ("DELIVERY_TIMEOUT", "500"),
        ("DELIVERY_MAX_AGE", "0"),
        ("PRESIGNED_URL_SECONDS", "604801"),
        ("RELAY_HELD_BYTES_MAX", "-1"),
    ]:
        with pytest.raises(ConfigError, match=f"{name} is invalid"):
            worker_settings({**CLOUD_ENV, name: value})


# --- the accounts file ----------------------------------------------------------------------------

FILE = textwrap.dedent(
    f"""\
    apps:
      acme: {{secret: app-secret}}
    destinations:
      crm: {{url: "https://crm.example/hook", secret_env: CRM_SECRET}}
      bot: {{url: "http://127.0.0.1:9000/bot", secret: "{OTHER}"}}
      feed: {{url: "https://feed.example/events", secret: "{OTHER}"}}
      plain: {{url: "https://plain.example/hook"}}
    accounts:
      "111":
        token: t1
        relay_to: [crm, plain]
        events_to: [feed]
      "222":
        token: t2
        relay_to: [crm, bot]
      "333":
        provider: onprem
        token: t3
        url: https://onprem.example
        webhook_token: {HOOK}
        relay_to: [bot]
      "444":
        token: t4
    """
)


def _file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return {
        "WHATSAPP_ACCOUNTS_FILE": str(path),
        "S3_BUCKET": "archive",
        "CRM_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": "verify",
    }


def test_the_file_gives_each_account_its_destinations(tmp_path: Path) -> None:
    accounts = worker_settings(_file(tmp_path, FILE)).accounts
    names = [d.name for d in accounts.relay_destinations(["111", "222", "999"])]
    assert names == ["crm", "plain", "bot"]  # the union, each once
    assert [d.name for d in accounts.relay_destinations(["444"])] == []
    assert [d.name for d in accounts.relay_destinations([])] == []
    assert accounts.destinations["crm"].secret == SECRET
    assert accounts.destinations["plain"].secret is None
    assert [d.name for d in accounts.event_endpoints("111")] == ["feed"]
    assert accounts.event_endpoints("222") == []
    web = web_accounts(_file(tmp_path, FILE))
    assert web.relayed(["111", "444", "999"]) == ["111"]
    assert web.relayed(["444"]) is None
    route = web.by_token(HOOK)
    assert route is not None
    assert route.relay


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            ("relay_to: [crm, plain]", "relay_to: [crm, nope]"),
            "accounts.111.relay_to: no destination named 'nope'",
        ),
        (
            ("events_to: [feed]", "events_to: [plain]"),
            "destinations.plain: secret or secret_env is required",
        ),
        (
            ("relay_to: [bot]", "relay_to: [plain]"),
            "destinations.plain: secret or secret_env is required",
        ),
        (('"https://plain.example/hook"', '"http://plain.example/hook"'), "destinations.plain.url"),
        (("crm: {url", "c r m: {url"), "destinations"),
        (
            ("secret_env: CRM_SECRET", "secret_env: NOT_SET"),
            "destinations.crm.secret_env names NOT_SET",
        ),
    ],
)
def test_the_file_is_checked(tmp_path: Path, change: tuple[str, str], why: str) -> None:
    with pytest.raises(ConfigError, match=why.replace(".", r"\.")):
        worker_settings(_file(tmp_path, FILE.replace(*change)))
