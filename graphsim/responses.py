"""JSON responses, and the exception that cuts a handler short with one."""

from __future__ import annotations

import json
from collections.abc import Mapping

from werkzeug.wrappers import Response

__all__ = ["Refusal", "json_response"]


def json_response(
    body: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Return `body` serialised as a JSON response."""
    return Response(
        json.dumps(body), status=status, headers=headers, content_type="application/json"
    )


class Refusal(Exception):
    """Raised by a handler to answer at once with `response` (an error or an injected fault)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response
