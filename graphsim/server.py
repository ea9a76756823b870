"""The simulator's WSGI apps, their routes, and `Simulator`, which serves them from threads."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.wrappers import Request, Response

from graphsim import control_api, graph_api
from graphsim.client import SimulatorClient
from graphsim.errors import graph_error
from graphsim.records import GraphOp, LoggedRequest
from graphsim.responses import Refusal, json_response
from graphsim.serving import CONNECTION_KEY, Server
from graphsim.state import SimState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ForeignApp", "GraphApp", "Simulator"]

_VERSION = r"v\d+\.\d+"
DEFAULT_TOKEN = "sim-token"  # noqa: S105 - the simulator's test token, not a secret

Handler = Callable[..., Response]


class _VersionConverter(BaseConverter):
    """Matches a Graph API version such as `v23.0`."""

    regex = _VERSION


def _url_map() -> Map:
    c, g = control_api, graph_api
    return Map(
        [
            Rule("/_sim/media", methods=["POST"], endpoint=c.add_media),
            Rule("/_sim/media/generated", methods=["POST"], endpoint=c.add_generated_media),
            Rule("/_sim/faults", methods=["POST"], endpoint=c.add_fault),
            Rule("/_sim/faults", methods=["GET"], endpoint=c.list_faults),
            Rule("/_sim/faults", methods=["DELETE"], endpoint=c.clear_faults),
            Rule("/_sim/faults/<fault_id>", methods=["DELETE"], endpoint=c.remove_fault),
            Rule("/_sim/latency", methods=["PUT"], endpoint=c.set_latency),
            Rule("/_sim/messages", methods=["GET"], endpoint=c.sent_messages),
            Rule("/_sim/foreign", methods=["GET"], endpoint=c.foreign_requests),
            Rule("/_sim/requests", methods=["GET"], endpoint=c.request_log),
            Rule("/_sim/stats", methods=["GET"], endpoint=c.stats),
            Rule("/_sim/tokens", methods=["PUT"], endpoint=c.set_tokens),
            Rule("/_sim/reset", methods=["POST"], endpoint=c.reset),
            Rule("/lookaside/<media_id>", methods=["GET"], endpoint=g.download),
            Rule("/<version:_>/<phone_number_id>/messages", methods=["POST"], endpoint=g.send),
            Rule("/<version:_>/<media_id>", methods=["GET"], endpoint=g.lookup),
            Rule("/<version:_>/<media_id>", methods=["DELETE"], endpoint=g.delete),
        ],
        converters={"version": _VersionConverter},
    )


# The Graph API operations the request log records, by handler.
_LOGGED: dict[Handler, GraphOp] = {
    graph_api.lookup: "lookup",
    graph_api.download: "download",
    graph_api.send: "send",
    graph_api.delete: "delete",
}


def _unsupported(request: Request, exc: HTTPException) -> Response:
    message = f"Unsupported {request.method} request to {request.path}"
    return json_response(graph_error(100, message), exc.code or 400)


def _recipient(request: Request) -> str | None:
    # Read even when the handler refused before parsing, so a 401 send is logged with its `to`.
    payload = request.get_json(force=True, silent=True)
    to = payload.get("to") if isinstance(payload, dict) else None
    return to if isinstance(to, str) else None


class _RoutedApp:
    """A WSGI app dispatching to `handler(state, request, **url_args)` by its URL map."""

    def __init__(self, state: SimState, url_map: Map) -> None:
        self.state = state
        self._map = url_map

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one WSGI request."""
        request = Request(environ)
        try:
            handler, args = self._map.bind_to_environ(environ).match()
        except HTTPException as exc:
            response = _unsupported(request, exc)
        else:
            # Any well-formed version is served, as Meta serves every supported one.
            args = {k: v for k, v in args.items() if k != "_"}
            response = self._handle(handler, request, args)
        return response(environ, start_response)

    def _handle(self, handler: Handler, request: Request, args: dict[str, str]) -> Response:
        try:
            response: Response = handler(self.state, request, **args)
            return response
        except Refusal as refusal:
            return refusal.response
        except HTTPException as exc:
            return _unsupported(request, exc)


class GraphApp(_RoutedApp):
    """The main server's app: Graph endpoints plus the `/_sim/` control API."""

    def __init__(self, state: SimState) -> None:
        super().__init__(state, _url_map())

    def _handle(self, handler: Handler, request: Request, args: dict[str, str]) -> Response:
        op = _LOGGED.get(handler)
        if op is None:
            return super()._handle(handler, request, args)
        arrived = time.time()
        authorized = self.state.tokens.accepts(request.headers.get("Authorization"))
        response = super()._handle(handler, request, args)
        self.state.records.log_request(
            LoggedRequest(
                op=op,
                media_id=_recipient(request) if op == "send" else args.get("media_id"),
                time=arrived,
                status=response.status_code,
                user_agent=request.headers.get("User-Agent"),
                authorized=authorized,
                connection=request.environ.get(CONNECTION_KEY),
            )
        )
        return response


class ForeignApp(_RoutedApp):
    """The foreign host's app: `/foreign/{media_id}`, any method, recorded."""

    def __init__(self, state: SimState) -> None:
        super().__init__(state, Map([Rule("/foreign/<media_id>", endpoint=graph_api.foreign)]))


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - mapping a wildcard bind to a dialable name
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Simulator:
    """Meta's WhatsApp Cloud API simulated on a local threaded HTTP server, plus a foreign host.

    The foreign host is a second server on another port of the same host: the `foreign`
    look-up fault and the `redirect` download fault send clients there, and it records what
    reached it, so a test can check that no access token leaves the allowed media host.
    """

    def __init__(
        self, token: str = DEFAULT_TOKEN, version: str = "v23.0", url_ttl: float = 300.0
    ) -> None:
        if not re.fullmatch(_VERSION, version):
            raise ValueError(f"version must look like v23.0, not {version!r}")
        if url_ttl <= 0:
            raise ValueError("url_ttl must be positive")
        self.token = token
        self.version = version
        self.url_ttl = url_ttl
        self._state = SimState(token, url_ttl)
        self._app = GraphApp(self._state)
        self._foreign_app = ForeignApp(self._state)
        self._servers: tuple[Server, Server] | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0: a free port), the foreign host on a free port; serve both."""
        if self._servers is not None:
            raise RuntimeError("the simulator is already running")
        graph = Server(self._app, host, port, name="graphsim")
        try:
            foreign = Server(self._foreign_app, host, 0, name="graphsim-foreign")
        except BaseException:
            graph.stop()
            raise
        url_host = _url_host(host)
        self._state.base_url = f"http://{url_host}:{graph.port}"
        self._state.foreign_base_url = f"http://{url_host}:{foreign.port}"
        self._state.closing.clear()
        self._servers = (graph, foreign)
        graph.start()
        foreign.start()

    @property
    def url(self) -> str:
        """The server's base URL, e.g. `http://127.0.0.1:PORT`."""
        if self._servers is None:
            raise RuntimeError("the simulator is not running")
        return self._state.base_url

    @property
    def graph_url(self) -> str:
        """The Graph API base URL including the version, e.g. `http://127.0.0.1:PORT/v23.0`."""
        return f"{self.url}/{self.version}"

    @property
    def media_host(self) -> str:
        """The `host:port` of download URLs, for a worker's download-host allowlist."""
        return self.url.removeprefix("http://")

    @property
    def foreign_url(self) -> str:
        """The foreign host's base URL, e.g. `http://127.0.0.1:OTHER_PORT`."""
        if self._servers is None:
            raise RuntimeError("the simulator is not running")
        return self._state.foreign_base_url

    def client(self) -> SimulatorClient:
        """Return a control API client for this simulator."""
        return SimulatorClient(self.url)

    def stop(self) -> None:
        """Stop both servers, release their ports and close open connections; idempotent."""
        servers = self._servers
        if servers is None:
            return
        self._servers = None
        # Cuts latency pauses short, so no handler holds a connection open.
        self._state.closing.set()
        for server in servers:
            server.stop()

    def __enter__(self) -> Simulator:
        if self._servers is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
