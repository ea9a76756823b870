"""A downstream consumer for the tests: a threaded HTTP server on 127.0.0.1 that records every
request it is sent (body, headers, when) and answers as it is told: 200, 500, 429 with a
Retry-After, a redirect, or hangs without answering, and comes back when told to.

    with Downstream() as relay:
        relay.answer(500)          # every request from now on
        relay.answer(429, retry_after=2)
        relay.hang()               # holds each request, then hangs up without answering
        relay.answer(200)          # comes back
        relay.wait_count(3)
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from devstack.processes import wait_for

__all__ = ["Downstream", "Received"]


@dataclass(frozen=True)
class Received:
    """One request the server was sent, and how it answered it."""

    path: str
    body: bytes
    headers: dict[str, str]
    """Header names in lower case."""
    at: float
    status: int | None
    """What it answered (None: it hung up without answering)."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        at = time.time()
        owner = self.server.owner
        owner.arrived(self, body, at)
        status, retry_after, location = owner.mode()
        if status is None:
            # Held without an answer until released (or `hang_seconds`), then hung up on: the
            # client gave up long before, and nothing it sent counts as taken.
            owner.released.wait(owner.hang_seconds)
            owner.record(self, body, at, None)
            self.close_connection = True
            return
        owner.record(self, body, at, status)
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: Downstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up first (a timed-out delivery): nothing to report


class Downstream:
    """A recording HTTP server; `url` is where to send to."""

    def __init__(self, path: str = "/hook") -> None:
        self._lock = threading.Lock()
        self._status: int | None = 200
        self._retry_after: str | None = None
        self._location: str | None = None
        self.received: list[Received] = []
        """The requests answered (or hung up on), with their status."""
        self.arrivals: list[Received] = []
        self.released = threading.Event()
        self.released.set()
        self.hang_seconds = 120.0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Downstream:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------------ answering

    def answer(
        self, status: int, *, retry_after: str | int | None = None, location: str | None = None
    ) -> None:
        """Answer every request from now on with `status` (and Retry-After, Location)."""
        with self._lock:
            self._status = status
            self._retry_after = None if retry_after is None else str(retry_after)
            self._location = location
        self.released.set()

    def hang(self, seconds: float = 120.0) -> None:
        """Hold every request without answering, for `seconds` or until `answer`."""
        with self._lock:
            self._status = None
            self.hang_seconds = seconds
            self.released.clear()

    def mode(self) -> tuple[int | None, str | None, str | None]:
        with self._lock:
            return self._status, self._retry_after, self._location

    def arrived(self, handler: BaseHTTPRequestHandler, body: bytes, at: float) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self.arrivals.append(Received(handler.path, body, headers, at, None))

    def record(
        self, handler: BaseHTTPRequestHandler, body: bytes, at: float, status: int | None
    ) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self.received.append(Received(handler.path, body, headers, at, status))

    # ------------------------------------------------------------------------ reading

    def taken(self) -> list[Received]:
        """The requests answered 2xx."""
        with self._lock:
            return [r for r in self.received if r.status is not None and 200 <= r.status < 300]

    def all(self) -> list[Received]:
        """Every request received, as it arrived (also those held without an answer yet)."""
        with self._lock:
            return list(self.arrivals)

    def wait_count(self, count: int, *, taken: bool = True, timeout: float = 60) -> list[Received]:
        """Wait until at least `count` requests were received (answered 2xx when `taken`)."""

        def enough() -> list[Received] | None:
            found = self.taken() if taken else self.all()
            return found if len(found) >= count else None

        return wait_for(
            enough, timeout=timeout, interval=0.05, what=f"{count} requests at {self.url}"
        )

    def clear(self) -> None:
        with self._lock:
            self.received.clear()
            self.arrivals.clear()
