"""Keeping the secret path tokens of `POST /webhook/<token>` out of gunicorn's own logs.

Gunicorn writes request lines and paths in its access log (when one is configured) and in its
error log (a request it cannot parse, an error while handling one, at `--log-level debug`
every malformed request line). Each record of both loggers is written with whatever follows
`/webhook/` replaced.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger

__all__ = ["RedactingLogger", "redact_paths"]

REDACTED = "[redacted]"
# Whatever follows `/webhook/` (slash percent-encoded or not, any case) up to the end of the
# request target: the token, and a query string that might repeat it.
_TOKEN_PATH = re.compile(r"(/webhook(?:/|%2f)+)[^\s\"']+", re.IGNORECASE)


def redact_paths(text: str) -> str:
    """`text` with every path token replaced."""
    return _TOKEN_PATH.sub(rf"\1{REDACTED}", text)


class _RedactFilter(logging.Filter):
    """Renders a record's message (and traceback) now, with the tokens replaced."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self._formatter.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            message += "\n" + record.exc_text
            record.exc_text = None
        if record.stack_info:
            message += "\n" + record.stack_info
            record.stack_info = None
        record.msg = redact_paths(message)
        record.args = None
        return True


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn is untyped
    """Gunicorn's logger, with path tokens kept out of its access and error logs."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, _RedactFilter) for f in log.filters):
                log.addFilter(_RedactFilter())
