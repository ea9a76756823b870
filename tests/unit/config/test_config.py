import pytest

from wa_media.config.settings import DEFAULT_TOO_BIG_REPLY
from wa_media.core.errors import ConfigError
from wa_media.providers.accounts import worker_settings
from webhook.config import WebSettings

WORKER_ENV = {"WHATSAPP_ACCESS_TOKEN": "tok-123", "S3_BUCKET": "archive"}


def test_worker_defaults() -> None:
    settings = worker_settings(WORKER_ENV)
    account = settings.accounts.for_number("106540352242922")
    assert account is not None
    connection = account.connection
    assert connection.api_version == "v23.0"
    assert connection.base_url == "https://graph.facebook.com"
    assert connection.media_hosts == ("lookaside.fbsbx.com",)
    assert (account.target.bucket, account.delete_after_archive) == ("archive", False)
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.archive.prefix == ""
    assert settings.s3_endpoint_url is None
    assert settings.max_media_bytes == 104857600
    assert settings.too_big_reply_text == DEFAULT_TOO_BIG_REPLY
    assert str(settings.metrics_ports) == "9808-9815"
    assert list(settings.metrics_ports.ports)[:2] == [9808, 9809]
    assert settings.use_webhook_url is True


def test_worker_values() -> None:
    settings = worker_settings(
        {
            **WORKER_ENV,
            "S3_PREFIX": "/wa/media/",
            "WHATSAPP_MEDIA_HOSTS": "a.example, 127.0.0.1:9000",
            "WHATSAPP_GRAPH_URL": "http://127.0.0.1:5000/",
            "MAX_MEDIA_BYTES": "1000",
        }
    )
    assert settings.archive.prefix == "wa/media"
    account = settings.accounts.for_number("1")
    assert account is not None
    assert account.target.prefix == "wa/media"
    assert account.connection.media_hosts == ("a.example", "127.0.0.1:9000")
    assert account.connection.base_url == "http://127.0.0.1:5000"
    assert settings.max_media_bytes == 1000


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"WHATSAPP_ACCESS_TOKEN": ""}, "WHATSAPP_ACCESS_TOKEN"),
        ({"S3_BUCKET": " "}, "S3_BUCKET"),
        ({"MAX_MEDIA_BYTES": "lots"}, "MAX_MEDIA_BYTES"),
        ({"MAX_MEDIA_BYTES": "-1"}, "MAX_MEDIA_BYTES"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"WHATSAPP_GRAPH_URL": "graph.facebook.com"}, "WHATSAPP_GRAPH_URL"),
        ({"S3_ENDPOINT_URL": "localhost:8333"}, "S3_ENDPOINT_URL"),
        ({"WHATSAPP_MEDIA_HOSTS": "https://x/"}, "WHATSAPP_MEDIA_HOSTS"),
        ({"TOO_BIG_REPLY_TEXT": "x" * 4097}, "TOO_BIG_REPLY_TEXT"),
        ({"WORKER_METRICS_PORT": "65536"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "-1"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "http"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "9815-9808"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "0-9808"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "9808-65536"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "9808-"}, "WORKER_METRICS_PORT"),
        ({"WORKER_METRICS_PORT": "9808,9809"}, "WORKER_METRICS_PORT"),
        ({"USE_WEBHOOK_URL": "sometimes"}, "USE_WEBHOOK_URL"),
    ],
)
def test_worker_errors_name_the_variable(changes: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        worker_settings({**WORKER_ENV, **changes})


@pytest.mark.parametrize(
    ("value", "ports", "off"),
    [
        ("0", [0], True),
        ("9100", [9100], False),
        ("65535", [65535], False),
        ("9808-9810", [9808, 9809, 9810], False),
        ("9808-9808", [9808], False),
    ],
)
def test_worker_metrics_ports(value: str, ports: list[int], off: bool) -> None:
    settings = worker_settings({**WORKER_ENV, "WORKER_METRICS_PORT": value})
    assert list(settings.metrics_ports.ports) == ports
    assert settings.metrics_ports.off is off


@pytest.mark.parametrize(("value", "used"), [("false", False), ("0", False), ("TRUE", True)])
def test_use_webhook_url(value: str, used: bool) -> None:
    settings = worker_settings({**WORKER_ENV, "USE_WEBHOOK_URL": value})
    assert settings.use_webhook_url is used


def test_secrets_stay_out_of_repr() -> None:
    assert "tok-123" not in repr(worker_settings(WORKER_ENV))
    web = WebSettings.from_env({"WHATSAPP_APP_SECRET": "s1,s2", "WHATSAPP_VERIFY_TOKEN": "vt"})
    assert web.app_secrets == ("s1", "s2")
    assert "s1" not in repr(web)
    assert "vt" not in repr(web)


@pytest.mark.parametrize("missing", ["WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"])
def test_web_requires(missing: str) -> None:
    env = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}
    del env[missing]
    with pytest.raises(ConfigError, match=missing):
        WebSettings.from_env(env)
