"""The archive policy's settings: the variables (ARCHIVE_MEDIA_TYPES, ARCHIVE_MIME_TYPES,
ARCHIVE_MAX_BYTES, TOO_LARGE_REPLY), an account's `policy` of the accounts file falling back to
them, and the errors that stop a process naming what is wrong."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wa_media.core.archive_policy import DEFAULT_POLICY, ArchivePolicy
from wa_media.core.errors import ConfigError
from wa_media.providers.accounts import web_accounts, worker_settings

WEB = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}
WORKER = {"WHATSAPP_ACCESS_TOKEN": "t", "S3_BUCKET": "b"}
POLICY_VARIABLES = {
    "ARCHIVE_MEDIA_TYPES": "image,document",
    "ARCHIVE_MIME_TYPES": "image/*, application/pdf",
    "ARCHIVE_MAX_BYTES": "document=20MB",
    "TOO_LARGE_REPLY": "false",
}
FILE = textwrap.dedent(
    """\
    apps: {acme: {secret: s}}
    accounts:
      "111":
        token: t
        policy:
          media_types: [video]
          max_bytes: {video: 50MB, sticker: 100000}
      "222":
        token: t
        policy:
          mime_types: ["*/*"]
          too_large_reply: true
      "333":
        token: t
    """
)


def _file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return str(path)


def test_without_settings_everything_is_archived_and_warned() -> None:
    assert web_accounts(WEB).policy_of("any") == DEFAULT_POLICY
    assert worker_settings(WORKER).accounts.for_number("any").policy == DEFAULT_POLICY  # type: ignore[union-attr]


def test_the_variables_give_the_single_account_its_policy() -> None:
    web = web_accounts({**WEB, **POLICY_VARIABLES}).policy_of("any")
    # web reads what it decides: types, MIME types, the warning.
    assert web == ArchivePolicy(
        media_types=frozenset({"image", "document"}),
        mime_types=("image/*", "application/pdf"),
        too_large_reply=False,
    )
    account = worker_settings({**WORKER, **POLICY_VARIABLES}).accounts.for_number("any")
    assert account is not None
    # the worker what it decides: MIME types (when only the look-up names one), sizes.
    assert account.policy == ArchivePolicy(
        mime_types=("image/*", "application/pdf"), max_bytes=(("document", 20_000_000),)
    )


def test_an_account_of_the_file_falls_back_to_the_variables(tmp_path: Path) -> None:
    env = {"WHATSAPP_ACCOUNTS_FILE": _file(tmp_path, FILE), **POLICY_VARIABLES}
    web = web_accounts({**env, "WHATSAPP_VERIFY_TOKEN": "v"})
    assert web.policy_of("111") == ArchivePolicy(
        media_types=frozenset({"video"}),
        mime_types=("image/*", "application/pdf"),
        max_bytes=(("sticker", 100_000), ("video", 50_000_000)),
        too_large_reply=False,
    )
    assert web.policy_of("222") == ArchivePolicy(
        media_types=frozenset({"image", "document"}), mime_types=("*/*",), too_large_reply=True
    )
    assert web.policy_of("333") == web_accounts({**WEB, **POLICY_VARIABLES}).policy_of("x")
    accounts = worker_settings({**env, "S3_BUCKET": "b"}).accounts
    policies = {n: accounts.for_number(n).policy for n in ("111", "222", "333")}  # type: ignore[union-attr]
    assert policies["111"].max_bytes == (("sticker", 100_000), ("video", 50_000_000))
    assert policies["222"] == ArchivePolicy(
        mime_types=("*/*",), max_bytes=(("document", 20_000_000),)
    )
    assert policies["333"].max_bytes == (("document", 20_000_000),)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "ARCHIVE_MEDIA_TYPES",
            "image,gif",
            "ARCHIVE_MEDIA_TYPES is invalid: 'gif' is not a media type",
        ),
        (
            "ARCHIVE_MEDIA_TYPES",
            ",",
            "ARCHIVE_MEDIA_TYPES is invalid: name at least one media type",
        ),
        (
            "ARCHIVE_MIME_TYPES",
            "image",
            "ARCHIVE_MIME_TYPES is invalid: 'image' is not a MIME pattern",
        ),
        ("TOO_LARGE_REPLY", "perhaps", "TOO_LARGE_REPLY is invalid"),
    ],
)
def test_bad_variables_stop_web(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        web_accounts({**WEB, variable: value})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("video", "expected type=size"),
        ("video=50MB,video=1MB", "'video' is given twice"),
        ("gif=1MB", "'gif' is not a media type"),
        ("video=big", "'big' is not a size"),
        ("document=0", "a size is more than 0 bytes"),
    ],
)
def test_bad_max_bytes_stops_the_worker(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"ARCHIVE_MAX_BYTES is invalid: {message}"):
        worker_settings({**WORKER, "ARCHIVE_MAX_BYTES": value})


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{media_types: [gif]}", "accounts.111.policy: media_types: 'gif' is not a media type"),
        ("{media_types: []}", "accounts.111.policy.media_types: List should have at least 1"),
        ("{mime_types: [pdf]}", "accounts.111.policy: mime_types: 'pdf' is not a MIME pattern"),
        ("{max_bytes: {video: 12XB}}", "accounts.111.policy: max_bytes: '12XB' is not a size"),
        ("{max_bytes: {video: 0}}", "accounts.111.policy: max_bytes: a size is more than 0"),
        ("{max_bytes: {voice: 1MB}}", "accounts.111.policy: max_bytes: 'voice' is not a media"),
        ("{too_large_reply: maybe}", "accounts.111.policy.too_large_reply: Input should be"),
        ("{colour: red}", "accounts.111.policy.colour: Extra inputs are not permitted"),
        ("[image]", "accounts.111.policy: Input should be a valid dictionary"),
    ],
)
def test_a_bad_policy_in_the_file_names_its_entry(
    tmp_path: Path, policy: str, message: str
) -> None:
    text = (
        f'apps: {{acme: {{secret: s}}}}\naccounts:\n  "111":\n    token: t\n    policy: {policy}\n'
    )
    env = {"WHATSAPP_ACCOUNTS_FILE": _file(tmp_path, text)}
    with pytest.raises(ConfigError, match=f"^WHATSAPP_ACCOUNTS_FILE: {message}"):
        web_accounts({**env, "WHATSAPP_VERIFY_TOKEN": "v"})
    with pytest.raises(ConfigError, match=f"^WHATSAPP_ACCOUNTS_FILE: {message}"):
        worker_settings({**env, "S3_BUCKET": "b"})
