"""FANOUT_BATCH: how many media (and replies) one fan-out task carries, a documented setting."""

from __future__ import annotations

import pytest

from wa_media.core.errors import ConfigError
from webhook.config import WebSettings
from webhook.publisher import DEFAULT_FANOUT_BATCH, MAX_FANOUT_BATCH

WEB_ENV = {"WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"}


def test_the_default_is_a_hundred() -> None:
    assert DEFAULT_FANOUT_BATCH == 100
    assert WebSettings.from_env(WEB_ENV).fanout_batch == 100


@pytest.mark.parametrize("value", ["1", "2", "1000"])
def test_fanout_batch(value: str) -> None:
    assert WebSettings.from_env({**WEB_ENV, "FANOUT_BATCH": value}).fanout_batch == int(value)


@pytest.mark.parametrize("value", ["0", "-1", str(MAX_FANOUT_BATCH + 1), "lots"])
def test_fanout_batch_out_of_range_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="FANOUT_BATCH"):
        WebSettings.from_env({**WEB_ENV, "FANOUT_BATCH": value})
