"""Accounts from the environment or from a file: what each process resolves, and the errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wa_media.config.target import ArchiveTarget
from wa_media.core.errors import ConfigError
from wa_media.providers.accounts import (
    load_accounts_file,
    web_accounts,
    worker_accounts,
    worker_settings,
)
from wa_media.providers.d360 import D360_DEFAULT_URL
from webhook.config import WebSettings

HOOK = "hook-token-0123456789abcdef"
OTHER_HOOK = "other-token-0123456789abcdef"

EXAMPLE = textwrap.dedent(
    f"""\
    apps:
      acme:
        secret_env: ACME_APP_SECRET
        app_id: "1234567890"
    accounts:
      "106540352242922":
        provider: cloud
        token_env: ACME_TOKEN
        app: acme
      "222000111":
        provider: 360dialog
        token: d360-key
        webhook_token: {HOOK}
        bucket: agency
        prefix: /clients/beta/
        delete_after_archive: true
      "15550001111":
        provider: onprem
        token_env: ONPREM_TOKEN
        url: https://wa.example.internal:9090/
        webhook_token_env: ONPREM_HOOK
    """
)
ENV = {
    "ACME_APP_SECRET": "app-secret",
    "ACME_TOKEN": "cloud-token",
    "ONPREM_TOKEN": "onprem-token",
    "ONPREM_HOOK": OTHER_HOOK,
    "S3_BUCKET": "archive",
}


def _file(tmp_path: Path, text: str, name: str = "accounts.yaml") -> dict[str, str]:
    path = tmp_path / name
    path.write_text(text)
    return {**ENV, "WHATSAPP_ACCOUNTS_FILE": str(path)}


def test_file_gives_web_its_routes_and_app_secrets(tmp_path: Path) -> None:
    accounts = web_accounts(_file(tmp_path, EXAMPLE))
    assert accounts.app_secrets == ("app-secret",)
    assert [(r.provider, r.phone_number_id) for r in accounts.routes] == [
        ("cloud", "106540352242922"),
        ("360dialog", "222000111"),
        ("onprem", "15550001111"),
    ]
    assert accounts.by_token(HOOK) is not None
    assert accounts.by_token(HOOK).phone_number_id == "222000111"  # type: ignore[union-attr]
    assert accounts.by_token(OTHER_HOOK).provider == "onprem"  # type: ignore[union-attr]
    assert accounts.by_token(HOOK[:-1]) is None
    assert accounts.by_token(HOOK + "x") is None
    assert accounts.by_token("") is None
    assert accounts.signed_accepts("106540352242922")
    assert not accounts.signed_accepts("222000111")  # a 360dialog number is not signed for
    assert not accounts.signed_accepts("42")


def test_web_never_resolves_provider_credentials(tmp_path: Path) -> None:
    env = _file(tmp_path, EXAMPLE)
    del env["ACME_TOKEN"], env["ONPREM_TOKEN"]
    assert len(web_accounts(env).routes) == 3


def test_file_gives_the_worker_connections_buckets_and_prefixes(tmp_path: Path) -> None:
    settings = worker_settings(_file(tmp_path, EXAMPLE))
    cloud = settings.accounts.for_number("106540352242922")
    d360 = settings.accounts.for_number("222000111")
    onprem = settings.accounts.for_number("15550001111")
    assert cloud is not None
    assert d360 is not None
    assert onprem is not None
    assert (cloud.connection.kind, cloud.connection.credential) == ("cloud", "cloud-token")
    assert cloud.connection.app_id == "1234567890"
    assert (cloud.target.bucket, cloud.target.prefix, cloud.delete_after_archive) == (
        "archive",
        "",
        False,
    )
    assert d360.connection.base_url == D360_DEFAULT_URL
    assert (d360.target.bucket, d360.target.prefix, d360.delete_after_archive) == (
        "agency",
        "clients/beta",
        True,
    )
    assert onprem.connection.base_url == "https://wa.example.internal:9090"
    assert settings.accounts.for_number("42") is None
    assert set(settings.accounts.secrets) == {"cloud-token", "d360-key", "onprem-token"}
    assert "cloud-token" not in repr(settings)


def test_json_works_as_well_as_yaml(tmp_path: Path) -> None:
    text = '{"accounts": {"1": {"token": "t"}}, "apps": {"a": {"secret": "s"}}}'
    accounts = web_accounts(_file(tmp_path, text, "accounts.json"))
    assert accounts.app_secrets == ("s",)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("provider: telegram\n    token: t", r"accounts\.7\.provider: Input should be"),
        ("provider: cloud", r"accounts\.7: token or token_env is required"),
        ("token: a\n    token_env: B", r"accounts\.7: give either token or token_env"),
        ("provider: onprem\n    token: t\n    webhook_token: " + HOOK, r"accounts\.7: url"),
        ("provider: 360dialog\n    token: t", r"accounts\.7: webhook_token or webhook_token_env"),
        ("token: t\n    tokn: x", r"accounts\.7\.tokn: Extra inputs are not permitted"),
        ("token: t\n    app: nope", r"accounts\.7\.app: no app named 'nope'"),
        ("provider: 360dialog\n    token: t\n    webhook_token: short",
         r"accounts\.7: expected at least 16"),
        ("token: t\n    url: ftp://x", r"accounts\.7: expected an http"),
        ("provider: 360dialog\n    token: t\n    api_version: v1\n    webhook_token: " + HOOK,
         r"accounts\.7: api_version applies to provider cloud only"),
    ],
)  # fmt: skip
def test_file_errors_name_the_entry(tmp_path: Path, entry: str, message: str) -> None:
    text = f'accounts:\n  "7":\n    {entry}\n'
    with pytest.raises(ConfigError, match=r"WHATSAPP_ACCOUNTS_FILE: " + message):
        web_accounts(_file(tmp_path, text))


def test_file_errors_for_whole_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        web_accounts({"WHATSAPP_ACCOUNTS_FILE": str(tmp_path / "missing.yaml")})
    with pytest.raises(ConfigError, match="not valid YAML"):
        web_accounts(_file(tmp_path, "accounts: [unclosed"))
    with pytest.raises(ConfigError, match="accounts: Field required"):
        web_accounts(_file(tmp_path, "apps: {}"))
    with pytest.raises(ConfigError, match=r"accounts\.a/b: not a usable phone_number_id"):
        web_accounts(_file(tmp_path, 'accounts:\n  "a/b": {token: t}\n  "c": {token: t}'))
    shared = (
        "accounts:\n"
        f'  "1": {{provider: 360dialog, token: t, webhook_token: {HOOK}}}\n'
        f'  "2": {{provider: 360dialog, token: t, webhook_token: {HOOK}}}\n'
    )
    with pytest.raises(ConfigError, match="share a webhook token"):
        web_accounts(_file(tmp_path, shared))


def test_variables_named_by_the_file_must_be_set(tmp_path: Path) -> None:
    env = _file(tmp_path, EXAMPLE)
    del env["ONPREM_HOOK"]
    with pytest.raises(ConfigError, match=r"accounts\.15550001111\.webhook_token_env names ONPREM"):
        web_accounts(env)
    env = _file(tmp_path, EXAMPLE)
    del env["ACME_TOKEN"]
    with pytest.raises(ConfigError, match=r"accounts\.106540352242922\.token_env names ACME_TOKEN"):
        worker_settings(env)


def test_cloud_accounts_need_an_app_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="need at least one app secret"):
        web_accounts(_file(tmp_path, 'accounts:\n  "1": {token: t}\n'))


def test_an_account_without_bucket_needs_s3_bucket(tmp_path: Path) -> None:
    env = _file(tmp_path, EXAMPLE)
    del env["S3_BUCKET"]
    with pytest.raises(ConfigError, match=r"accounts\.106540352242922\.bucket is not set"):
        worker_settings(env)


def test_single_cloud_account_from_the_environment() -> None:
    env = {"WHATSAPP_APP_SECRET": "s1, s2", "WHATSAPP_VERIFY_TOKEN": "vt"}
    web = WebSettings.from_env(env)
    assert web.app_secrets == ("s1", "s2")
    assert web.accounts.signed_accepts("any-number")
    worker = worker_accounts(
        {"WHATSAPP_ACCESS_TOKEN": "tok", "WHATSAPP_APP_ID": "99"},
        target=ArchiveTarget("b", "p"),
        delete_after_archive=False,
    )
    account = worker.for_number("any-number")
    assert account is not None
    assert (account.connection.kind, account.connection.app_id) == ("cloud", "99")


def test_single_360dialog_account_from_the_environment() -> None:
    env = {"WHATSAPP_PROVIDER": "360dialog", "WHATSAPP_WEBHOOK_TOKEN": HOOK}
    web = WebSettings.from_env(env)
    assert web.verify_token is None  # no signed route, no handshake to answer
    route = web.accounts.by_token(HOOK)
    assert route is not None
    assert route.phone_number_id is None
    assert not web.accounts.signed_accepts("1")
    worker = worker_accounts(
        {"WHATSAPP_PROVIDER": "360dialog", "D360_API_KEY": "key"},
        target=ArchiveTarget("b"),
        delete_after_archive=True,
    )
    account = worker.for_number("1")
    assert account is not None
    assert account.delete_after_archive
    assert (account.connection.base_url, account.connection.credential) == (
        D360_DEFAULT_URL,
        "key",
    )


def test_single_onprem_account_from_the_environment() -> None:
    env = {
        "WHATSAPP_PROVIDER": "onprem",
        "WHATSAPP_WEBHOOK_TOKEN": HOOK,
        "WHATSAPP_PHONE_NUMBER_ID": "15550001111",
    }
    route = WebSettings.from_env(env).accounts.by_token(HOOK)
    assert route is not None
    assert route.phone_number_id == "15550001111"
    worker = worker_settings(
        {
            "WHATSAPP_PROVIDER": "onprem",
            "WHATSAPP_ONPREM_URL": "https://10.0.0.5:9090",
            "WHATSAPP_ACCESS_TOKEN": "t",
            "S3_BUCKET": "b",
        }
    )
    account = worker.accounts.for_number("15550001111")
    assert account is not None
    assert account.connection.kind == "onprem"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"WHATSAPP_PROVIDER": "twilio"}, "WHATSAPP_PROVIDER"),
        ({"WHATSAPP_PROVIDER": "360dialog"}, "WHATSAPP_WEBHOOK_TOKEN"),
        ({"WHATSAPP_PROVIDER": "onprem", "WHATSAPP_WEBHOOK_TOKEN": HOOK},
         "WHATSAPP_PHONE_NUMBER_ID"),
        ({"WHATSAPP_PROVIDER": "onprem", "WHATSAPP_WEBHOOK_TOKEN": HOOK,
          "WHATSAPP_PHONE_NUMBER_ID": "a/b"}, "WHATSAPP_PHONE_NUMBER_ID"),
        ({"WHATSAPP_PROVIDER": "360dialog", "WHATSAPP_WEBHOOK_TOKEN": "x"},
         "WHATSAPP_WEBHOOK_TOKEN"),
        ({"WHATSAPP_APP_SECRET": "s"}, "WHATSAPP_VERIFY_TOKEN"),
    ],
)  # fmt: skip
def test_web_environment_errors_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        WebSettings.from_env(env)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"WHATSAPP_PROVIDER": "360dialog"}, "D360_API_KEY"),
        ({"WHATSAPP_PROVIDER": "360dialog", "D360_API_KEY": "k", "D360_URL": "x"}, "D360_URL"),
        ({"WHATSAPP_PROVIDER": "onprem", "WHATSAPP_ACCESS_TOKEN": "t"}, "WHATSAPP_ONPREM_URL"),
        ({"WHATSAPP_ACCESS_TOKEN": "t", "DELETE_AFTER_ARCHIVE": "maybe"}, "DELETE_AFTER_ARCHIVE"),
    ],
)
def test_worker_environment_errors_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        worker_settings({"S3_BUCKET": "b", **env})


def test_load_accounts_file_returns_the_validated_model(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(EXAMPLE)
    model = load_accounts_file(path)
    assert model.accounts["222000111"].delete_after_archive is True
    assert "d360-key" not in repr(model)


def test_outbound_archiving_is_on_unless_an_account_or_the_variable_says_no(
    tmp_path: Path,
) -> None:
    text = EXAMPLE.replace("    app: acme\n", "    app: acme\n    archive_outbound: false\n")
    accounts = web_accounts(_file(tmp_path, text))
    assert accounts.archives_outbound("106540352242922") is False
    assert accounts.archives_outbound("222000111") is True
    off = web_accounts({**_file(tmp_path, EXAMPLE), "ARCHIVE_OUTBOUND": "false"})
    assert off.archives_outbound("222000111") is False
    single = {"WHATSAPP_APP_SECRET": "s", "ARCHIVE_OUTBOUND": "no"}
    assert web_accounts(single).archives_outbound("1") is False
    with pytest.raises(ConfigError, match="ARCHIVE_OUTBOUND"):
        web_accounts({**single, "ARCHIVE_OUTBOUND": "maybe"})
