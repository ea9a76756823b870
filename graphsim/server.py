"""The simulator's WSGI apps, their routes, and `Simulator`, which serves them from threads."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from graphsim import cloud_api, control_api, d360_api, graph_api, onprem_api
from graphsim.client import SimulatorClient
from graphsim.dialects import ONPREM
from graphsim.errors import d360_error, graph_error
from graphsim.messages import addressee
from graphsim.records import LOGGED_KEY, LoggedRequest
from graphsim.responses import Refusal, json_response
from graphsim.routing import VERSION_PATTERN, Endpoint, VersionConverter
from graphsim.serving import CONNECTION_KEY, HangUp, Server
from graphsim.state import DEFAULT_D360_KEYS, DEFAULT_ONPREM_TOKENS, SimState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["ForeignApp", "GraphApp", "Simulator"]

DEFAULT_TOKEN = "sim-token"  # noqa: S105 - the simulator's test token, not a secret


def _url_map() -> Map:
    return Map(
        [*control_api.rules(), *cloud_api.rules(), *d360_api.rules(), *onprem_api.rules()],
        converters={"version": VersionConverter},
    )


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(f"{prefix}/")


def _unsupported(request: Request, exc: HTTPException) -> Response:
    # Worded in the dialect of the path's prefix, as each provider's own server would.
    message = f"Unsupported {request.method} request to {request.path}"
    status = exc.code or 400
    if _under(request.path, d360_api.PREFIX):
        return json_response(d360_error(message), status)
    if _under(request.path, onprem_api.PREFIX):
        return ONPREM.error(status, message)
    return json_response(graph_error(100, message), status)


def _recipient(request: Request) -> str | None:
    # Read even when the handler refused before parsing, so a 401 send is logged with its `to`
    # (or its `recipient`, a BSUID).
    payload = request.get_json(force=True, silent=True)
    return addressee(payload) if isinstance(payload, dict) else None


def _logged_key(endpoint: Endpoint, request: Request, args: dict[str, str]) -> str | None:
    if endpoint.op == "send":
        return _recipient(request)
    if "session" in args:
        return f"upload:{args['session']}"
    noted = request.environ.get(LOGGED_KEY)
    return noted if isinstance(noted, str) else args.get("media_id")


class _RoutedApp:
    """A WSGI app dispatching to the `Endpoint` its URL map finds."""

    def __init__(self, state: SimState, url_map: Map) -> None:
        self.state = state
        self._map = url_map

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one WSGI request."""
        # Closing the request removes the temporary files of an uploaded form.
        with Request(environ) as request:
            try:
                endpoint, args = self._map.bind_to_environ(environ).match()
            except HTTPException as exc:
                response = _unsupported(request, exc)
            else:
                # Any well-formed version is served, as Meta serves every supported one.
                args = {k: v for k, v in args.items() if k != "_"}
                response = self._handle(endpoint, request, args)
        return response(environ, start_response)

    def _handle(self, endpoint: Endpoint, request: Request, args: dict[str, str]) -> Response:
        try:
            return endpoint(self.state, request, args)
        except Refusal as refusal:
            return refusal.response
        except HTTPException as exc:
            return _unsupported(request, exc)


class GraphApp(_RoutedApp):
    """The main server's app: the three providers' endpoints plus the `/_sim/` control API."""

    def __init__(self, state: SimState) -> None:
        super().__init__(state, _url_map())

    def _handle(self, endpoint: Endpoint, request: Request, args: dict[str, str]) -> Response:
        op, dialect = endpoint.op, endpoint.dialect
        if op is None or dialect is None:
            return super()._handle(endpoint, request, args)
        arrived = time.time()
        authorized = dialect.authorized(self.state, request)

        def log(status: int | None) -> None:
            entry = LoggedRequest(
                op=op,
                media_id=_logged_key(endpoint, request, args),
                time=arrived,
                status=status,
                user_agent=request.headers.get("User-Agent"),
                authorized=authorized,
                connection=request.environ.get(CONNECTION_KEY),
                provider=dialect.provider,
            )
            self.state.records.log_request(entry)

        try:
            response = super()._handle(endpoint, request, args)
        except HangUp:
            log(None)  # dropped unanswered, by an interrupt fault
            raise
        log(response.status_code)
        return response


class ForeignApp(_RoutedApp):
    """The foreign host's app: `/foreign/{media_id}`, any method, recorded."""

    def __init__(self, state: SimState) -> None:
        rule = Rule("/foreign/<media_id>", endpoint=Endpoint(graph_api.foreign))
        super().__init__(state, Map([rule]))


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - mapping a wildcard bind to a dialable name
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Simulator:
    """WhatsApp's provider APIs simulated on a local threaded HTTP server, plus a foreign host.

    One server speaks three dialects over one media store, fault book and records: Meta's
    Cloud API (Bearer `token`) at the root, 360dialog (`D360-API-KEY`) under `/d360` and the
    On-Premises API (its own Bearer tokens) under `/onprem`.

    The foreign host is a second server on another port of the same host: the `foreign`
    look-up fault and the `redirect` download fault send clients there, and it records what
    reached it, so a test can check that no access token leaves the allowed media host.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        version: str = "v23.0",
        url_ttl: float = 300.0,
        *,
        d360_keys: Sequence[str] = DEFAULT_D360_KEYS,
        onprem_tokens: Sequence[str] = DEFAULT_ONPREM_TOKENS,
    ) -> None:
        if not re.fullmatch(VERSION_PATTERN, version):
            raise ValueError(f"version must look like v23.0, not {version!r}")
        if url_ttl <= 0:
            raise ValueError("url_ttl must be positive")
        self.token = token
        self.version = version
        self.url_ttl = url_ttl
        self.d360_keys = tuple(d360_keys)
        self.onprem_tokens = tuple(onprem_tokens)
        self._state = SimState(token, url_ttl, self.d360_keys, self.onprem_tokens)
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
    def d360_url(self) -> str:
        """360dialog's base URL, e.g. `http://127.0.0.1:PORT/d360`."""
        return f"{self.url}{d360_api.PREFIX}"

    @property
    def onprem_url(self) -> str:
        """The On-Premises API's base URL (before `/v1`), e.g. `http://127.0.0.1:PORT/onprem`."""
        return f"{self.url}{onprem_api.PREFIX}"

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
