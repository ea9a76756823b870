"""`web`'s read API settings (wa_media/config/lookup.py): off without a key, its S3 settings
read only when on, keys from the variable or the accounts file, each naming its accounts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from wa_media.core.errors import ConfigError
from webhook.config import WebSettings

WEB = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}
KEY = "consumer-key-0123456789"


def test_without_a_key_the_api_is_off_and_no_s3_setting_is_read() -> None:
    settings = WebSettings.from_env({**WEB, "S3_PREFIX": "a//b", "PRESIGNED_URL_SECONDS": "x"})
    assert settings.lookup is None


def test_a_single_account_s_keys_read_its_bucket() -> None:
    settings = WebSettings.from_env(
        {
            **WEB,
            "LOOKUP_API_KEYS": f"{KEY}, other-key-0123456789",
            "S3_BUCKET": "b",
            "S3_PREFIX": "/p/",
        }
    )
    lookup = settings.lookup
    assert lookup is not None
    assert [key.name for key in lookup.keys.keys] == ["LOOKUP_API_KEYS[1]", "LOOKUP_API_KEYS[2]"]
    assert all(key.accounts is None for key in lookup.keys.keys)
    assert lookup.locations_for(lookup.keys.keys[0]) == [("b", "p")]
    assert (lookup.rate_limit, lookup.presigned_url_seconds, lookup.endpoint_url) == (
        20,
        3600,
        None,
    )
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({}, r"^S3_BUCKET is required but not set$"),
        (
            {"S3_BUCKET": "b", "LOOKUP_API_KEYS": "short"},
            r"^LOOKUP_API_KEYS is invalid: expected at least 16",
        ),
        ({"S3_BUCKET": "b", "LOOKUP_API_KEYS": f"{KEY},{KEY}"}, r"listed twice"),
        ({"S3_BUCKET": "b", "LOOKUP_RATE_LIMIT": "0"}, r"^LOOKUP_RATE_LIMIT is invalid"),
        (
            {"S3_BUCKET": "b", "PRESIGNED_URL_SECONDS": "604801"},
            r"^PRESIGNED_URL_SECONDS is invalid: expected 1 to 604800",
        ),
        ({"S3_BUCKET": "b", "S3_ENDPOINT_URL": "ftp://x"}, r"^S3_ENDPOINT_URL is invalid"),
    ],
)
def test_with_a_key_the_s3_settings_are_checked(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WebSettings.from_env({**WEB, "LOOKUP_API_KEYS": KEY, **extra})


def _file(tmp_path: Path, **top: Any) -> Path:
    path = tmp_path / "accounts.json"
    document = {
        "apps": {"acme": {"secret": "s"}},
        "accounts": {
            "100000001": {"token": "t", "bucket": "alpha-archive"},
            "100000002": {"token": "t", "prefix": "beta"},
            "100000003": {"token": "t"},
        },
        **top,
    }
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def test_the_accounts_file_s_keys_read_their_accounts_buckets_and_prefixes(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        api_keys={
            "crm": {"key": KEY, "accounts": ["100000001", "100000002"]},
            "export": {"key_env": "EXPORT_KEY", "accounts": ["100000002"]},
        },
    )
    environ = {
        "WHATSAPP_ACCOUNTS_FILE": str(path),
        **WEB,
        "EXPORT_KEY": "export-key-0123456789",
        "S3_BUCKET": "default",
        "S3_PREFIX": "all",
    }
    lookup = WebSettings.from_env(environ).lookup
    assert lookup is not None
    crm, export = lookup.keys.keys
    assert (crm.name, crm.accounts) == ("crm", frozenset({"100000001", "100000002"}))
    assert (export.secret, export.accounts) == ("export-key-0123456789", frozenset({"100000002"}))
    assert lookup.locations_for(crm) == [("alpha-archive", "all"), ("default", "beta")]
    assert lookup.locations_for(export) == [("default", "beta")]


def test_an_accounts_file_without_keys_leaves_the_api_off(tmp_path: Path) -> None:
    environ = {"WHATSAPP_ACCOUNTS_FILE": str(_file(tmp_path)), **WEB}
    assert WebSettings.from_env(environ).lookup is None


@pytest.mark.parametrize(
    ("api_keys", "environ", "message"),
    [
        (
            {"crm": {"key": KEY, "accounts": ["999"]}},
            {"S3_BUCKET": "b"},
            r"api_keys\.crm\.accounts: no account '999'",
        ),
        (
            {"crm": {"key": KEY, "accounts": []}},
            {},
            r"api_keys\.crm\.accounts: List should have at least 1",
        ),
        ({"crm": {"accounts": ["100000001"]}}, {}, r"api_keys\.crm: key or key_env is required"),
        (
            {"crm": {"key": "short", "accounts": ["100000001"]}},
            {},
            r"api_keys\.crm: expected at least 16",
        ),
        (
            {"crm": {"key_env": "MISSING", "accounts": ["100000001"]}},
            {},
            r"api_keys\.crm\.key_env names MISSING, which is not set",
        ),
        (
            {"crm": {"key": KEY, "accounts": ["100000003"]}},
            {},
            r"accounts\.100000003\.bucket is not set and neither is S3_BUCKET",
        ),
        (
            {
                "a": {"key": KEY, "accounts": ["100000001"]},
                "b": {"key": KEY, "accounts": ["100000001"]},
            },
            {},
            r"two keys are the same",
        ),
        (
            {"crm": {"key": KEY, "accounts": ["100000001"]}},
            {"LOOKUP_API_KEYS": KEY},
            r"LOOKUP_API_KEYS is for a single account",
        ),
    ],
)
def test_the_accounts_file_s_keys_are_checked(
    tmp_path: Path, api_keys: dict[str, Any], environ: dict[str, str], message: str
) -> None:
    path = _file(tmp_path, api_keys=api_keys)
    with pytest.raises(ConfigError, match=message) as raised:
        WebSettings.from_env({"WHATSAPP_ACCOUNTS_FILE": str(path), **WEB, **environ})
    assert KEY not in str(raised.value)
