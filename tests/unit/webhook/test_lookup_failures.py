"""The read API when what it reads fails: S3 down is a 503 with Retry-After (never a 404 that
would say the media does not exist), Redis down lets requests through (the rate is not
enforced meanwhile, and that is logged), and neither failure shows the key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from flask.testing import FlaskClient

from devstack.processes import free_port
from wa_media.config.lookup import LookupSettings
from wa_media.core.lookup import ApiKey, KeyRing
from webhook.app import create_app
from webhook.config import WebSettings

KEY = "consumer-key-0123456789"


@pytest.fixture
def client() -> Iterator[FlaskClient]:
    nothing = f"127.0.0.1:{free_port()}"  # a closed port: Redis and S3 alike refuse
    lookup = LookupSettings(
        KeyRing((ApiKey("crm", KEY),)),
        {None: ("wa-archive", "")},
        endpoint_url=f"http://{nothing}",
    )
    settings = WebSettings(
        app_secrets=("s",), verify_token="v", redis_url=f"redis://{nothing}/0", lookup=lookup
    )
    with create_app(settings).test_client() as test_client:
        yield test_client


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def test_s3_down_is_a_503_to_try_again(
    client: FlaskClient, logs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    answer = client.get("/v1/media/wamid.x", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.json == {"error": "storage unavailable"}
    events = [line["event"] for line in logs]
    assert "lookup_rate_unavailable" in events
    [line] = [line for line in logs if line["event"] == "lookup"]
    assert (line["status"], line["api_key"]) == (503, "crm")
    assert "S3 read failed" in line["reason"]
    assert KEY not in repr(logs)


def test_without_a_key_nothing_is_read(client: FlaskClient, logs: list[dict[str, Any]]) -> None:
    answer = client.get(
        "/v1/media/wamid.x", headers={"Authorization": "Bearer other-key-0123456789"}
    )
    assert answer.status_code == 401
    assert [line["event"] for line in logs] == ["lookup"]
