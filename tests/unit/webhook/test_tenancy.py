"""Accounts are kept apart: which app's signature each Cloud account accepts, what the
signature check reports, and how a payload signed by another app is parsed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wa_media.core.errors import ConfigError, InvalidSignature
from wa_media.providers.accounts import web_accounts, worker_settings
from webhook.config import WebSettings
from webhook.payload import LISTED_REASONS, SKIP_REASONS, parse_cloud_payload
from webhook.signature import sign, verify

BODY = b'{"object":"whatsapp_business_account","entry":[]}'
ALPHA, BETA = "100000001", "100000002"

TWO_APPS = textwrap.dedent(
    f"""\
    apps:
      alpha:
        secret_env: ALPHA_SECRET
        app_id: "111"
      beta:
        secret: beta-secret
        app_id: "222"
    accounts:
      "{ALPHA}":
        token: alpha-token
        app: alpha
      "{BETA}":
        token: beta-token
        apps: [beta]
    """
)
ENV = {"ALPHA_SECRET": "alpha-secret", "S3_BUCKET": "archive", "WHATSAPP_VERIFY_TOKEN": "vt"}


def _file(tmp_path: Path, text: str) -> dict[str, str]:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return {**ENV, "WHATSAPP_ACCOUNTS_FILE": str(path)}


# --- the signature check says which secrets signed the body -----------------------------------


def test_the_signature_check_reports_which_secret_matched() -> None:
    assert verify(BODY, sign(BODY, "b"), ["a", "b", "c"]) == (1,)
    assert verify(BODY, sign(BODY, "a"), ["a"]) == (0,)


def test_every_matching_secret_is_reported() -> None:
    # Two apps given the same secret: the body is signed for both.
    assert verify(BODY, sign(BODY, "same"), ["same", "other", "same"]) == (0, 2)


def test_no_match_still_raises() -> None:
    with pytest.raises(InvalidSignature):
        verify(BODY, sign(BODY, "x"), ["a", "b"])


# --- which apps an account accepts ------------------------------------------------------------


def test_each_cloud_account_accepts_its_own_apps_only(tmp_path: Path) -> None:
    accounts = web_accounts(_file(tmp_path, TWO_APPS))
    assert accounts.app_names == ("alpha", "beta")
    assert accounts.app_secrets == ("alpha-secret", "beta-secret")
    by_number = {route.phone_number_id: route for route in accounts.routes}
    assert by_number[ALPHA].apps == frozenset({"alpha"})
    assert by_number[BETA].apps == frozenset({"beta"})
    alpha_signed = accounts.apps_of((0,))
    assert alpha_signed == frozenset({"alpha"})
    assert accounts.signed_by(ALPHA, alpha_signed)
    assert not accounts.signed_by(BETA, alpha_signed)
    assert accounts.signed_by(BETA, accounts.apps_of((1,)))
    assert accounts.signed_by(BETA, accounts.apps_of((0, 1)))


def test_an_account_may_accept_several_apps(tmp_path: Path) -> None:
    text = TWO_APPS.replace("apps: [beta]", "apps: [beta, alpha]")
    accounts = web_accounts(_file(tmp_path, text))
    assert accounts.signed_by(BETA, frozenset({"alpha"}))
    assert accounts.signed_by(BETA, frozenset({"beta"}))


def test_with_one_app_configured_it_is_implied(tmp_path: Path) -> None:
    text = 'apps:\n  only: {secret: s, app_id: "9"}\naccounts:\n  "1": {token: t}\n'
    env = _file(tmp_path, text)
    accounts = web_accounts(env)
    (route,) = accounts.routes
    assert route.apps == frozenset({"only"})
    account = worker_settings(env).accounts.for_number("1")
    assert account is not None
    assert account.connection.app_id == "9"


def test_with_several_apps_a_cloud_account_must_name_its_own(tmp_path: Path) -> None:
    text = TWO_APPS.replace("    apps: [beta]\n", "")
    message = rf"WHATSAPP_ACCOUNTS_FILE: accounts\.{BETA}\.apps: .*2 apps are configured"
    with pytest.raises(ConfigError, match=message):
        web_accounts(_file(tmp_path, text))
    # The worker reads the same file and stops the same way.
    with pytest.raises(ConfigError, match=message):
        worker_settings(_file(tmp_path, text))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("apps: [nope]", r"accounts\.7\.apps: no app named 'nope'"),
        ("app: alpha\n    apps: [beta]", r"accounts\.7: give either app or apps, not both"),
        ("apps: []", r"accounts\.7\.apps: List should have at least 1 item"),
        (f"provider: 360dialog\n    webhook_token: {'h' * 20}\n    apps: [alpha]",
         r"accounts\.7: apps applies to provider cloud only"),
    ],
)  # fmt: skip
def test_app_errors_name_the_entry(tmp_path: Path, entry: str, message: str) -> None:
    text = (
        "apps:\n  alpha: {secret: a}\n  beta: {secret: b}\n"
        f'accounts:\n  "7":\n    token: t\n    {entry}\n'
    )
    with pytest.raises(ConfigError, match=r"WHATSAPP_ACCOUNTS_FILE: " + message):
        web_accounts(_file(tmp_path, text))


def test_a_cloud_account_reached_by_path_token_needs_no_app(tmp_path: Path) -> None:
    text = TWO_APPS + f'  "3":\n    token: t\n    webhook_token: {"h" * 20}\n'
    accounts = web_accounts(_file(tmp_path, text))
    assert not accounts.signed_by("3", frozenset({"alpha", "beta"}))
    assert accounts.by_token("h" * 20) is not None


def test_the_single_account_of_the_environment_takes_any_of_its_secrets() -> None:
    web = WebSettings.from_env({"WHATSAPP_APP_SECRET": "s1,s2", "WHATSAPP_VERIFY_TOKEN": "v"})
    accounts = web.accounts
    assert accounts.signed_by("any-number", accounts.apps_of((1,)))
    assert accounts.signed_by("any-number", accounts.apps_of((0,)))


def test_web_settings_carry_the_app_names(tmp_path: Path) -> None:
    web = WebSettings.from_env(_file(tmp_path, TWO_APPS))
    assert web.accounts.apps_of((1,)) == frozenset({"beta"})
    assert "beta-secret" not in repr(web)


# --- a payload for a number signed by another app --------------------------------------------


def _media(number: str) -> dict[str, object]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": number},
                            "messages": [
                                {
                                    "from": "16505551234",
                                    "id": "wamid.1",
                                    "timestamp": "1700000000",
                                    "type": "image",
                                    "image": {"id": "m1", "mime_type": "image/jpeg"},
                                },
                                {
                                    "from": "16505551234",
                                    "id": "wamid.2",
                                    "timestamp": "1700000000",
                                    "type": "unsupported",
                                    "errors": [{"code": 131052, "title": "too big"}],
                                },
                            ],
                        },
                    }
                ],
            }
        ],
    }


def test_changes_signed_by_another_app_are_skipped_as_wrong_app() -> None:
    assert "wrong_app" in SKIP_REASONS
    assert "wrong_app" in LISTED_REASONS
    parsed = parse_cloud_payload(_media(BETA), signed_for=lambda number: number == ALPHA)
    assert parsed.media == []
    assert parsed.replies == []
    assert [(s.reason, s.wamid, s.phone_number_id) for s in parsed.skipped] == [
        ("wrong_app", "wamid.1", BETA),
        ("wrong_app", "wamid.2", BETA),
    ]
    assert parsed.skipped[0].listed
    assert "app" in parsed.skipped[0].detail
    signed = parse_cloud_payload(_media(ALPHA), signed_for=lambda number: number == ALPHA)
    assert [job.media_id for job in signed.media] == ["m1"]
    assert [reply.wamid for reply in signed.replies] == ["wamid.2"]


def test_an_unknown_number_stays_unknown_account_whoever_signed() -> None:
    parsed = parse_cloud_payload(
        _media("999"), accepts=lambda n: n in (ALPHA, BETA), signed_for=lambda _: False
    )
    assert {s.reason for s in parsed.skipped} == {"unknown_account"}
