"""What the log configuration lets through."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from wa_media.observability.logs import configure_logging


@pytest.fixture
def restored() -> Iterator[None]:
    root, pool = logging.getLogger(), logging.getLogger("urllib3")
    handlers, levels = root.handlers[:], (root.level, pool.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    pool.setLevel(levels[1])


def test_urllib3_request_lines_stay_out_of_debug_logs(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG")
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s HTTP/1.1" 200', "https", "crm.example", 443, "POST", "/hook?t=secret"
    )
    assert "t=secret" not in capsys.readouterr().err
    logging.getLogger("urllib3.connectionpool").warning("Retrying after connection broken")
    assert "Retrying" in capsys.readouterr().err


def test_urllib3_follows_a_quieter_level(restored: None) -> None:
    configure_logging("WARNING")
    assert logging.getLogger("urllib3").getEffectiveLevel() == logging.WARNING
