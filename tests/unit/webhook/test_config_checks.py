"""Settings checked at start-up: prefixes, Redis URLs, phone_number_ids, the accounts file's
errors (which never quote a value), web's new settings, `wa-media simulate`'s secrets, and the
path tokens kept out of gunicorn's logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from wa_media.cli import main
from wa_media.config.env import phone_number_id, redis_url, s3_prefix
from wa_media.core.errors import ConfigError
from wa_media.providers.accounts import load_accounts_file, web_accounts, worker_settings
from webhook.config import WebSettings
from webhook.redact import RedactingLogger, redact_paths

SECRET_LOOKING = "sk_live_Zq9SECRETvalue4242"
WEB = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}
WORKER = {"S3_BUCKET": "b", "WHATSAPP_ACCESS_TOKEN": "t"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("", ""),
        ("/", ""),
        ("archive", "archive"),
        ("/a/b/", "a/b"),
        ("clients/beta", "clients/beta"),
        ("a.b/c..d/...x", "a.b/c..d/...x"),
        ("with space/x", "with space/x"),
    ],
)
def test_usable_prefixes_are_trimmed_of_surrounding_slashes(given: str, kept: str) -> None:
    assert s3_prefix(given) == kept


@pytest.mark.parametrize(
    "prefix",
    ["a//b", "x/..", "../other", "./a", "a/./b", "a/../b", "..", "a/\x00b", "a\nb", "a\x7f"],
)
def test_unusable_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"segment|control"):
        s3_prefix(prefix)
    with pytest.raises(ConfigError, match=r"^S3_PREFIX is invalid: "):
        worker_settings({**WORKER, "S3_PREFIX": prefix})


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://h",
        "rediss://:p@h:6380/2",
        "unix:///run/redis.sock",
        "redis://user:pass@[::1]:6379/15",
        "redis://h:6379",
    ],
)
def test_usable_redis_urls(url: str) -> None:
    assert redis_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://h/0",
        "redis://h:notaport/0",
        "redis://h:70000/0",
        "redis://h:0/0",
        "redis://h/zero",
        "redis:///0",
        "redis://h/0 1",
        "unix://",
        "redis://:hunter2@h:x/0",
    ],
)
def test_malformed_redis_urls_are_named_without_quoting_them(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^REDIS_URL is invalid: ") as caught:
        WebSettings.from_env({**WEB, "REDIS_URL": url})
    assert "hunter2" not in str(caught.value)
    assert url not in str(caught.value)


@pytest.mark.parametrize("number", [".", "..", "...", "a/b", "", "x" * 129])
def test_path_like_phone_number_ids_are_refused(number: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not dots alone"):
        phone_number_id(number)
    if number:
        path = tmp_path / "accounts.yaml"
        path.write_text(f'accounts: {{"{number}": {{token: t}}}}\n', encoding="utf-8")
        with pytest.raises(ConfigError, match="not a usable phone_number_id"):
            load_accounts_file(path)


def test_an_onprem_number_of_dots_is_refused_at_start() -> None:
    environ = {
        "WHATSAPP_PROVIDER": "onprem",
        "WHATSAPP_WEBHOOK_TOKEN": "a" * 16,
        "WHATSAPP_PHONE_NUMBER_ID": "..",
    }
    with pytest.raises(ConfigError, match=r"^WHATSAPP_PHONE_NUMBER_ID is invalid"):
        web_accounts(environ)


@pytest.mark.parametrize("prefix", ["../other", "a//b", "x/.."])
def test_an_account_prefix_is_checked_when_the_file_loads(prefix: str, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(f'accounts: {{"1555": {{token: t, prefix: "{prefix}"}}}}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^WHATSAPP_ACCOUNTS_FILE: accounts\.1555\.prefix: "):
        load_accounts_file(path)


@pytest.mark.parametrize(
    "document",
    [
        # Wrong types: a secret-looking value where a flag, a list or a mapping belongs.
        f'accounts: {{"1555": {{token: t, delete_after_archive: "{SECRET_LOOKING}"}}}}\n',
        f'accounts: {{"1555": {{token: t, media_hosts: "{SECRET_LOOKING}"}}}}\n',
        f'accounts: {{"1555": {{token: [{SECRET_LOOKING}]}}}}\n',
        f'accounts: {{"1555": {{token: {{value: {SECRET_LOOKING}}}}}}}\n',
        f"apps: {{main: {{secret: {SECRET_LOOKING}, secret_env: 5}}}}\n"
        'accounts: {"1": {token: t}}\n',
        f'accounts: {{"1555": {{token: t, sse: "{SECRET_LOOKING}"}}}}\n',
        f'accounts: {{"1555": {{token: t, url: "{SECRET_LOOKING}"}}}}\n',
        f'accounts: {{"1555": "{SECRET_LOOKING}"}}\n',
        # Broken YAML on the line of a secret: PyYAML's own message quotes that line.
        f'accounts:\n  "1555":\n    token: {SECRET_LOOKING}\n   webhook_token: [\n',
        f'accounts:\n  "1555":\n    token: "{SECRET_LOOKING}\n',
        f'accounts:\n  "1555": {{token: {SECRET_LOOKING}: x}}\n',
        f'accounts:\n\t"1555": {{token: {SECRET_LOOKING}}}\n',
    ],
)
def test_accounts_file_errors_never_quote_a_value(document: str, tmp_path: Path) -> None:
    path = tmp_path / "accounts.yaml"
    path.write_text(document, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^WHATSAPP_ACCOUNTS_FILE: ") as caught:
        load_accounts_file(path)
    assert SECRET_LOOKING not in str(caught.value)
    assert SECRET_LOOKING[:10] not in str(caught.value)


def test_web_reads_the_body_deadline_and_the_metrics_port() -> None:
    settings = WebSettings.from_env(WEB)
    assert (settings.body_timeout, settings.metrics_port) == (5.0, 9807)
    settings = WebSettings.from_env({**WEB, "WEBHOOK_BODY_TIMEOUT": "2.5", "WEB_METRICS_PORT": "0"})
    assert (settings.body_timeout, settings.metrics_port) == (2.5, 0)
    for value in ("0", "-1", "301", "nan", "inf", "soon"):
        with pytest.raises(ConfigError, match=r"^WEBHOOK_BODY_TIMEOUT is invalid"):
            WebSettings.from_env({**WEB, "WEBHOOK_BODY_TIMEOUT": value})
    for value in ("65536", "-1", "http"):
        with pytest.raises(ConfigError, match=r"^WEB_METRICS_PORT is invalid"):
            WebSettings.from_env({**WEB, "WEB_METRICS_PORT": value})


# --- wa-media simulate: secrets from the environment or a file --------------------------------


@pytest.mark.parametrize("option", ["--secret", "--token"])
def test_simulate_takes_no_secret_on_the_command_line(option: str) -> None:
    result = CliRunner().invoke(main, ["simulate", "http://127.0.0.1:9", option, SECRET_LOOKING])
    assert result.exit_code == 2
    assert "No such option" in result.output


def test_simulate_reads_its_secrets_from_a_variable_or_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET_LOOKING + "\n", encoding="utf-8")
    runner = CliRunner()
    unreachable = "http://127.0.0.1:9"
    env = {"WHATSAPP_APP_SECRET": "", "MINE": SECRET_LOOKING}
    for args in (["--secret-file", str(secret_file)], ["--secret-env", "MINE"],
                 ["--token-env", "MINE"], ["--token-file", str(secret_file)]):  # fmt: skip
        result = runner.invoke(main, ["simulate", unreachable, *args], env=env)
        assert result.exit_code == 3, result.output  # got as far as sending
        assert SECRET_LOOKING not in result.output
    for args in ([], ["--secret-env", "UNSET_HERE"], ["--secret-file", str(tmp_path / "none")],
                 ["--token-env", "MINE", "--token-file", str(secret_file)]):  # fmt: skip
        result = runner.invoke(main, ["simulate", unreachable, *args], env=env)
        assert result.exit_code == 2, result.output


# --- path tokens in gunicorn's logs -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("POST /webhook/abcDEF0123456789xyz HTTP/1.1", "POST /webhook/[redacted] HTTP/1.1"),
        ('"POST /webhook/tok?x=tok HTTP/1.1" 404', '"POST /webhook/[redacted] HTTP/1.1" 404'),
        ("POST /WebHook%2Ftok HTTP/1.1", "POST /WebHook%2F[redacted] HTTP/1.1"),
        ("Error handling request /webhook//tok", "Error handling request /webhook//[redacted]"),
        ("POST /webhook HTTP/1.1", "POST /webhook HTTP/1.1"),
        ("GET /healthz", "GET /healthz"),
    ],
)
def test_redact_paths(text: str, redacted: str) -> None:
    assert redact_paths(text) == redacted


def test_gunicorns_logger_redacts_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gunicorn.config import Config

    logger = RedactingLogger(Config())
    logger.error_log.propagate = True
    with caplog.at_level(logging.DEBUG, logger="gunicorn.error"):
        logger.error("Error handling request %s", "/webhook/tok1234567890abcd")
        try:
            raise ValueError("bad line POST /webhook/tok1234567890abcd HTTP/1.1")
        except ValueError:
            logger.exception("Error handling request")
    assert "tok1234567890abcd" not in caplog.text
    assert caplog.text.count("/webhook/[redacted]") >= 2
