"""What a URL rule points at: a handler, the operation it logs and the dialect it speaks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.routing import BaseConverter
from werkzeug.wrappers import Request, Response

from graphsim.dialects import Dialect
from graphsim.records import GraphOp
from graphsim.state import SimState

__all__ = ["VERSION_PATTERN", "Endpoint", "VersionConverter"]

VERSION_PATTERN = r"v\d+\.\d+"

Handler = Callable[..., Response]


class VersionConverter(BaseConverter):
    """Matches a Graph API version such as `v23.0`."""

    regex = VERSION_PATTERN


@dataclass(frozen=True)
class Endpoint:
    """A handler; with a dialect, called as `handler(state, request, dialect, **url_args)`."""

    handler: Handler
    op: GraphOp | None = None  # requests of endpoints with an op go to the request log
    dialect: Dialect | None = None

    def __call__(self, state: SimState, request: Request, args: dict[str, str]) -> Response:
        """Answer a request with the URL's arguments."""
        if self.dialect is None:
            return self.handler(state, request, **args)
        return self.handler(state, request, self.dialect, **args)
