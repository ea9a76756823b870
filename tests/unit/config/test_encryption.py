"""Server-side encryption: S3_SSE and S3_SSE_KMS_KEY_ID, the accounts file's override, and the
arguments each setting puts on a write."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from wa_media.config.encryption import NO_ENCRYPTION, Encryption
from wa_media.config.settings import WorkerSettings
from wa_media.core.errors import ConfigError
from wa_media.providers.accounts import worker_settings
from worker.clients import ClientDirectory

WORKER_ENV = {"WHATSAPP_ACCESS_TOKEN": "tok-123", "S3_BUCKET": "archive"}
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _settings(**env: str) -> WorkerSettings:
    return worker_settings({**WORKER_ENV, **env})


def _account_encryption(settings: WorkerSettings, number: str = "1") -> Encryption:
    account = settings.accounts.for_number(number)
    assert account is not None
    return account.target.encryption


@pytest.mark.parametrize(
    ("encryption", "args"),
    [
        (NO_ENCRYPTION, {}),
        (Encryption("AES256"), {"ServerSideEncryption": "AES256"}),
        (
            Encryption("aws:kms", KEY_ARN),
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY_ARN},
        ),
    ],
)
def test_request_arguments(encryption: Encryption, args: dict[str, str]) -> None:
    assert encryption.request_args() == args


def test_unset_asks_for_nothing() -> None:
    settings = _settings()
    assert settings.archive.encryption == NO_ENCRYPTION
    assert _account_encryption(settings) == NO_ENCRYPTION


def test_sse_s3() -> None:
    settings = _settings(S3_SSE="AES256")
    assert settings.archive.encryption == Encryption("AES256")
    assert _account_encryption(settings) == Encryption("AES256")


@pytest.mark.parametrize(
    "key_id",
    [
        KEY_ARN,
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "mrk-1234abcd12ab34cd56ef1234567890ab",
        "alias/wa-archive",
        "arn:aws:kms:eu-west-1:111122223333:alias/wa-archive",
        "minio-kes-key",
    ],
)
def test_sse_kms_with_a_key(key_id: str) -> None:
    settings = _settings(S3_SSE="aws:kms", S3_SSE_KMS_KEY_ID=key_id)
    assert settings.archive.encryption == Encryption("aws:kms", key_id)
    assert _account_encryption(settings) == Encryption("aws:kms", key_id)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"S3_SSE": "aes256"}, "S3_SSE is invalid: expected AES256 or aws:kms"),
        ({"S3_SSE": "none"}, "S3_SSE is invalid"),
        ({"S3_SSE": "aws:kms:dsse"}, "S3_SSE is invalid"),
        ({"S3_SSE": "SSE-C"}, "S3_SSE is invalid"),
        ({"S3_SSE": "aws:kms"}, "S3_SSE_KMS_KEY_ID is required when S3_SSE is aws:kms"),
        (
            {"S3_SSE": "AES256", "S3_SSE_KMS_KEY_ID": KEY_ARN},
            "S3_SSE_KMS_KEY_ID is set, but S3_SSE is not aws:kms",
        ),
        ({"S3_SSE_KMS_KEY_ID": KEY_ARN}, "S3_SSE_KMS_KEY_ID is set, but S3_SSE is not aws:kms"),
        (
            {"S3_SSE": "aws:kms", "S3_SSE_KMS_KEY_ID": "alias/a key"},
            "S3_SSE_KMS_KEY_ID is invalid: expected a KMS key id",
        ),
        (
            {"S3_SSE": "aws:kms", "S3_SSE_KMS_KEY_ID": "k" * 2049},
            "S3_SSE_KMS_KEY_ID is invalid",
        ),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(**env)


def test_an_invalid_key_id_is_not_repeated_in_the_error() -> None:
    with pytest.raises(ConfigError) as raised:
        _settings(S3_SSE="aws:kms", S3_SSE_KMS_KEY_ID="alias/x hunter2")
    assert "hunter2" not in str(raised.value)


FILE = """\
accounts:
  "1":
    token: t
  "2":
    token: t
    bucket: other
    sse: aws:kms
    sse_kms_key_id: alias/other-archive
  "3":
    token: t
    sse: AES256
"""


def _file(tmp_path: Path, text: str, **env: str) -> WorkerSettings:
    path = tmp_path / "accounts.yaml"
    path.write_text(text)
    return _settings(WHATSAPP_ACCOUNTS_FILE=str(path), **env)


def test_accounts_may_ask_for_their_own_encryption(tmp_path: Path) -> None:
    settings = _file(tmp_path, FILE, S3_SSE="aws:kms", S3_SSE_KMS_KEY_ID=KEY_ARN)
    assert _account_encryption(settings, "1") == Encryption("aws:kms", KEY_ARN)
    assert _account_encryption(settings, "2") == Encryption("aws:kms", "alias/other-archive")
    assert _account_encryption(settings, "3") == Encryption("AES256")


def test_accounts_inherit_no_encryption_by_default(tmp_path: Path) -> None:
    settings = _file(tmp_path, FILE)
    assert _account_encryption(settings, "1") == NO_ENCRYPTION
    assert _account_encryption(settings, "3") == Encryption("AES256")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("sse: aes256", r"accounts\.7\.sse: Input should be 'AES256' or 'aws:kms'"),
        ("sse: aws:kms", r"accounts\.7: sse_kms_key_id is required when sse is aws:kms"),
        ("sse_kms_key_id: alias/k", r"accounts\.7: sse_kms_key_id is set, but sse is not aws:kms"),
        (
            "sse: AES256\n    sse_kms_key_id: alias/k",
            r"accounts\.7: sse_kms_key_id is set, but sse is not aws:kms",
        ),
        ("sse: aws:kms\n    sse_kms_key_id: a b", r"accounts\.7\.sse_kms_key_id: expected a KMS"),
    ],
)
def test_file_errors_name_the_entry(tmp_path: Path, entry: str, message: str) -> None:
    text = f'accounts:\n  "7":\n    token: t\n    {entry}\n'
    with pytest.raises(ConfigError, match=r"WHATSAPP_ACCOUNTS_FILE: " + message):
        _file(tmp_path, text)


def test_each_account_store_writes_with_its_account_encryption(tmp_path: Path) -> None:
    settings = _file(tmp_path, FILE, S3_SSE="AES256")
    # Nothing connects until a request is made.
    directory = ClientDirectory(settings, Redis(), s3=object())  # type: ignore[arg-type]
    assert directory.for_number("1").store.target.encryption == Encryption("AES256")
    other = directory.for_number("2").store
    assert (other.bucket, other.target.encryption) == (
        "other",
        Encryption("aws:kms", "alias/other-archive"),
    )
