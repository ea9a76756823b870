"""A threaded HTTP/1.1 server with persistent connections for the simulator's WSGI apps.

werkzeug's development server closes every connection after one response (it cannot drain a
request body without reading into the next request), so clients never reuse a connection. This
handler frames both directions itself: it reads each request body to its declared end, gives
every response a Content-Length or chunked encoding, and closes only when it must (an HTTP/1.0
client, a `Connection: close`, or a body shorter than its Content-Length, as the truncate
fault sends). An app may also raise `HangUp` to drop a request unanswered, as a broken
network would.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import traceback
from collections.abc import Callable, Iterable
from email.message import Message
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

__all__ = ["CONNECTION_KEY", "HEADERS_KEY", "HangUp", "Server", "raw_header"]

# The WSGI environ key holding the number of the connection a request came on (1, 2, ...).
CONNECTION_KEY = "graphsim.connection"
# The WSGI environ key holding the request's headers as received: werkzeug leaves out of the
# environ every header with an underscore in its name, such as Graph's `file_offset`.
HEADERS_KEY = "graphsim.headers"

_DRAIN_CHUNK = 64 * 1024
# How often an idle server looks for a stop request: this bounds how long `stop()` waits.
_POLL_INTERVAL = 0.05


class HangUp(Exception):
    """Raised by an app to close the connection without answering the request."""


class _Connections:
    """Numbers accepted connections and shuts the open ones down when the server stops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted = 0
        self._open: dict[int, socket.socket] = {}
        self._closed = False

    def add(self, sock: socket.socket) -> int:
        """Register an accepted connection and return its number."""
        with self._lock:
            self._accepted += 1
            number = self._accepted
            if not self._closed:
                self._open[number] = sock
                return number
        # Accepted while the server was stopping: refuse to serve it.
        _shut(sock)
        return number

    def discard(self, number: int) -> None:
        """Forget a connection its handler has finished with."""
        with self._lock:
            self._open.pop(number, None)

    def close_all(self) -> None:
        """Shut every open connection down, waking handlers that wait for a next request."""
        with self._lock:
            self._closed = True
            open_now = list(self._open.values())
            self._open.clear()
        for sock in open_now:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    # It may be closed already, by the peer or by its handler.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def raw_header(environ: WSGIEnvironment, name: str) -> str | None:
    """A request header as received (any case), also one the WSGI environ leaves out."""
    headers = environ.get(HEADERS_KEY)
    value = headers.get(name) if isinstance(headers, Message) else None
    return value if isinstance(value, str) else None


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server plus the register of its connections."""

    def __init__(self, host: str, port: int, app: WSGIApplication, fd: int) -> None:
        super().__init__(host, port, app, handler=_Handler, fd=fd)
        self.connections = _Connections()


class _Exchange:
    """One response: its head is sent on the first body write, its body framed as declared."""

    def __init__(self, handler: _Handler) -> None:
        self._handler = handler
        self._status: str | None = None
        self._headers: list[tuple[str, str]] = []
        self.head_sent = False
        self._chunked = False
        self._bodiless = False
        self._declared: int | None = None
        self._written = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None
    ) -> Callable[[bytes], object]:
        """The WSGI `start_response` callable."""
        if exc_info is not None and exc_info[1] is not None and self.head_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        if exc_info is None and self._status is not None:
            raise AssertionError("start_response called twice")
        self._status, self._headers = status, list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """Send a piece of the body (and the head first)."""
        if not self.head_sent:
            self._send_head()
        if not data or self._bodiless:
            return
        wfile = self._handler.wfile
        if self._chunked:
            wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            wfile.write(data)
        self._written += len(data)

    def finish(self) -> None:
        """End the body; a body that broke its Content-Length can only end with the connection."""
        if not self.head_sent:
            self._send_head()
        if self._chunked:
            self._handler.wfile.write(b"0\r\n\r\n")
        elif not self._bodiless and self._declared not in (None, self._written):
            self._handler.close_connection = True

    def _send_head(self) -> None:
        if self._status is None:
            raise AssertionError("the application wrote before start_response")
        handler = self._handler
        code_text, _, reason = self._status.partition(" ")
        code = int(code_text)
        handler.send_response(code, reason or None)
        names = set()
        for name, value in self._headers:
            names.add(name.lower())
            if name.lower() == "content-length":
                self._declared = int(value)
            # send_header also notes an application's own `Connection: close`.
            handler.send_header(name, value)
        self._bodiless = handler.command == "HEAD" or code < 200 or code in (204, 304)
        if not self._bodiless and self._declared is None:
            if handler.request_version == "HTTP/1.1":
                self._chunked = True
                handler.send_header("Transfer-Encoding", "chunked")
            else:
                handler.close_connection = True
        if handler.close_connection and "connection" not in names:
            handler.send_header("Connection", "close")
        handler.end_headers()
        self.head_sent = True


def _sized_body(environ: WSGIEnvironment) -> io.IOBase | None:
    """`wsgi.input` cut at the request's Content-Length; None when that header is malformed."""
    length = environ.get("CONTENT_LENGTH", "")
    if not length:
        return io.BytesIO()
    try:
        size = int(length)
    except ValueError:
        return None
    return None if size < 0 else LimitedStream(environ["wsgi.input"], size)


class _Handler(WSGIRequestHandler):
    """Serves WSGI requests one after another on one connection, for as long as allowed."""

    protocol_version = "HTTP/1.1"
    # Without it, a small body written after the head waits for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        """Register the connection before serving it."""
        super().setup()
        self.connection_number = self.server.connections.add(self.connection)

    def finish(self) -> None:
        """Forget the connection once served."""
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection_number)

    def make_environ(self) -> WSGIEnvironment:
        """werkzeug's environ, with the connection number and a body that stops at its end."""
        environ = super().make_environ()
        environ[CONNECTION_KEY] = self.connection_number
        environ[HEADERS_KEY] = self.headers
        # A chunked body is already cut at its last chunk by werkzeug (and marked terminated).
        if not environ.get("wsgi.input_terminated"):
            body = _sized_body(environ)
            if body is None:
                # Where such a body ends is unknown, so nothing after it can be read.
                self.close_connection = True
                body = io.BytesIO()
            environ["wsgi.input"] = body
            environ["wsgi.input_terminated"] = True
        return environ

    def run_wsgi(self) -> None:
        """Answer one request, then leave the connection ready for the next one."""
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if self.request_version != "HTTP/1.1":
            self.close_connection = True  # HTTP/1.0 keep-alive is not worth supporting
        self.environ = environ = self.make_environ()
        exchange = _Exchange(self)
        body: Iterable[bytes] | None = None
        try:
            body = self.server.app(environ, exchange.start_response)
            for data in body:
                exchange.write(data)
            exchange.finish()
        except (ConnectionError, TimeoutError):
            raise  # the client went away: werkzeug's handle() drops the connection
        except HangUp:
            # Whatever of the body is still unread stays so: the client sees a reset.
            self.close_connection = True
            return
        except Exception:
            self.close_connection = True
            self.log_error("error on request:\n%s", traceback.format_exc())
            if not exchange.head_sent:
                self.send_error(500)
            return
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        if not self.close_connection:
            self._drain(environ["wsgi.input"])

    def _drain(self, stream: Any) -> None:
        # Whatever of the body the app left unread would be parsed as the next request.
        try:
            while stream.read(_DRAIN_CHUNK):
                pass
        except (OSError, ValueError, ClientDisconnected):
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing: benchmarks make thousands of requests."""


class Server:
    """One WSGI app on host:port (0: a free port), served from a daemon thread."""

    def __init__(self, app: WSGIApplication, host: str, port: int, name: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # Binding here, not in werkzeug, turns a busy port into an OSError instead of sys.exit.
        with socket.create_server((host, port), family=family) as sock:
            self.port: int = sock.getsockname()[1]
            self._server = _Server(host, self.port, app, fd=sock.fileno())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"{name}:{self.port}",
            daemon=True,
        )

    def start(self) -> None:
        """Start accepting connections."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, release the port and close every open connection."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._server.connections.close_all()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
