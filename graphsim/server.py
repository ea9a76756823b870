"""The simulator's WSGI app, its routes, and `Simulator`, which serves it from a thread."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from graphsim import control_api, graph_api
from graphsim.client import SimulatorClient
from graphsim.errors import graph_error
from graphsim.responses import Refusal, json_response
from graphsim.state import SimState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["GraphApp", "Simulator"]

_VERSION = r"v\d+\.\d+"
DEFAULT_TOKEN = "sim-token"  # noqa: S105 - the simulator's test token, not a secret


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
            Rule("/_sim/stats", methods=["GET"], endpoint=c.stats),
            Rule("/_sim/tokens", methods=["PUT"], endpoint=c.set_tokens),
            Rule("/_sim/reset", methods=["POST"], endpoint=c.reset),
            Rule("/lookaside/<media_id>", methods=["GET"], endpoint=g.download),
            Rule("/foreign/<media_id>", endpoint=g.foreign),
            Rule("/<version:_>/<phone_number_id>/messages", methods=["POST"], endpoint=g.send),
            Rule("/<version:_>/<media_id>", methods=["GET"], endpoint=g.lookup),
            Rule("/<version:_>/<media_id>", methods=["DELETE"], endpoint=g.delete),
        ],
        converters={"version": _VersionConverter},
    )


class GraphApp:
    """The WSGI application: Graph endpoints plus the `/_sim/` control API."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self._map = _url_map()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one WSGI request."""
        response = self._dispatch(Request(environ))
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            handler, args = adapter.match()
            # Any well-formed version is served, as Meta serves every supported one.
            args = {k: v for k, v in args.items() if k != "_"}
            response: Response = handler(self.state, request, **args)
            return response
        except Refusal as refusal:
            return refusal.response
        except HTTPException as exc:
            message = f"Unsupported {request.method} request to {request.path}"
            return json_response(graph_error(100, message), exc.code or 400)


class _QuietHandler(WSGIRequestHandler):
    """A request handler without access logs: benchmarks make thousands of requests."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing."""


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - mapping a wildcard bind to a dialable name
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class Simulator:
    """Meta's WhatsApp Cloud API, simulated on a local threaded HTTP server."""

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
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0: a free port) and serve from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the simulator is already running")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Binding here, not in werkzeug, turns a busy port into an OSError instead of sys.exit.
        with socket.create_server((host, port), family=family) as sock:
            bound_port = sock.getsockname()[1]
            server = make_server(
                host,
                bound_port,
                self._app,
                threaded=True,
                request_handler=_QuietHandler,
                fd=sock.fileno(),
            )
        url_host = _url_host(host)
        self._state.base_url = f"http://{url_host}:{bound_port}"
        # Same server, another name: a worker allowlisting media_host must refuse it.
        foreign_host = "127.0.0.1" if url_host == "localhost" else "localhost"
        self._state.foreign_base_url = f"http://{foreign_host}:{bound_port}"
        self._state.closing.clear()
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"graphsim:{bound_port}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The server's base URL, e.g. `http://127.0.0.1:PORT`."""
        if self._server is None:
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

    def client(self) -> SimulatorClient:
        """Return a control API client for this simulator."""
        return SimulatorClient(self.url)

    def stop(self) -> None:
        """Stop serving and release the port; a no-op when not running."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        self._state.closing.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
