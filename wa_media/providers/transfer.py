"""Moving bytes to and from a provider: streamed chunks, progress, hashing while writing."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

import requests
from requests.adapters import HTTPAdapter

from wa_media.core.errors import IntegrityError, SizeMismatch, TemporaryError, TimedOut, TooBig
from wa_media.core.provider import Fetched, Progress

__all__ = [
    "CHUNK_SIZE",
    "NETWORK_ERRORS",
    "POOL_SIZE",
    "TIMEOUT",
    "USER_AGENT",
    "Deadline",
    "FileBody",
    "ProgressCounter",
    "Stopwatch",
    "Tally",
    "current_deadline",
    "new_session",
    "request_timeout",
    "response_chunks",
    "under_deadline",
    "write_verified",
]

USER_AGENT = "wa-media-archiver/0.1 (+https://github.com/wa-media-archiver)"
# (connect, read) seconds for every call. The read timeout bounds one wait for bytes, not a
# transfer: a peer sending a byte every 29 s never trips it. A try's Deadline bounds the whole.
TIMEOUT = (5.0, 30.0)
CHUNK_SIZE = 256 * 1024
# Connections a session keeps per host (requests' default); a worker running more tasks at once
# asks for more, one per task.
POOL_SIZE = 10
NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def new_session(
    session: requests.Session | None = None, *, pool_size: int = POOL_SIZE
) -> requests.Session:
    """A session (a new one, or the given one) that sends our one explicit User-Agent.

    A new one keeps up to `pool_size` connections per host: urllib3's pools are thread-safe, so
    the tasks of a process share one session, each reusing a connection of its own.
    """
    if session is None:
        session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=max(POOL_SIZE, pool_size))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket a streamed response is read from (urllib3's connection, or http.client's)."""
    raw: Any = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:
        # http.client's buffered file over the socket: _fp.fp.raw is the SocketIO.
        sock = getattr(
            getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None
        )
    return sock if isinstance(sock, socket.socket) else None


class Deadline:
    """When a try must be over, whatever its peers do.

    A socket's read timeout bounds each wait for bytes, not a transfer: a provider (or a
    middlebox) that sends a byte every 29 s keeps a 30 s read timeout from ever firing. While a
    response is `guarded`, a timer shuts its socket down when the deadline passes, which ends
    the read waiting on it at once; the read then fails, and `response_chunks` turns that into
    TimedOut. Requests sent under a deadline wait no longer than the time left for any one read.
    """

    def __init__(self, seconds: float, setting: str = "MEDIA_TRY_SECONDS") -> None:
        self.seconds = seconds
        self.setting = setting
        self.at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._cut = False

    def remaining(self) -> float:
        """Seconds left; 0 once passed."""
        return max(0.0, self.at - time.monotonic())

    @property
    def cut(self) -> bool:
        """Whether a connection was shut down because the deadline passed."""
        return self._cut

    def error(self, what: str) -> TimedOut:
        """The error of a try that ran past the deadline while doing `what`."""
        return TimedOut(
            f"{what} ran past the try's deadline ({self.setting}={self.seconds:g} s)"
            + ("; its connection was closed" if self._cut else "")
        )

    def check(self, what: str) -> None:
        """TimedOut once the deadline has passed."""
        if time.monotonic() >= self.at:
            raise self.error(what)

    def timeout(self, what: str) -> tuple[float, float]:
        """A request's (connect, read) timeout: TIMEOUT, cut to the time left."""
        self.check(what)
        left = self.remaining()
        return (min(TIMEOUT[0], left), min(TIMEOUT[1], left))

    @contextmanager
    def guarding(self, response: requests.Response) -> Iterator[None]:
        """Shut the response's socket down if the deadline passes before the block ends."""
        done = False

        def cut() -> None:
            with self._lock:
                # Never a socket the block has finished with: it may be back in the pool.
                if done:
                    return
                sock = _socket_of(response)
                if sock is None:
                    return
                self._cut = True
                # socket.socket's own shutdown, never SSLSocket's, which would drop the TLS state
                # under the thread reading it; the read then sees the end of the stream (or an
                # error) at once. Already closed, there is nothing to cut.
                with suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

        timer = threading.Timer(self.remaining(), cut)
        timer.daemon = True
        timer.name = "try-deadline"
        timer.start()
        try:
            yield
        finally:
            with self._lock:
                done = True
            timer.cancel()


_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "wa_try_deadline", default=None
)


def current_deadline() -> Deadline | None:
    """The deadline of the try this thread is running, if any."""
    return _DEADLINE.get()


@contextmanager
def under_deadline(deadline: Deadline) -> Iterator[Deadline]:
    """Run the block's provider calls and transfers under `deadline` (this thread only)."""
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def request_timeout(what: str) -> tuple[float, float]:
    """TIMEOUT, cut to what is left of the current try's deadline (TimedOut when none is)."""
    deadline = current_deadline()
    return TIMEOUT if deadline is None else deadline.timeout(what)


def response_chunks(response: requests.Response, what: str) -> Iterator[bytes]:
    """A streamed response's body in chunks; a broken connection is a TemporaryError, and one
    cut by the try's deadline (`Deadline.guarding`) is TimedOut."""
    deadline = current_deadline()
    try:
        yield from response.iter_content(CHUNK_SIZE)
    except (*NETWORK_ERRORS, OSError) as exc:
        if deadline is not None and deadline.cut:
            raise deadline.error(what) from None
        if not isinstance(exc, NETWORK_ERRORS):
            raise
        raise TemporaryError(f"{what} broke off: {type(exc).__name__}") from None
    if deadline is not None and deadline.cut:
        # A body without a length ends where its connection does: cut, it only looks complete.
        raise deadline.error(what)


class ProgressCounter:
    """Reports each byte of a file once, however often a resumed upload sends it again."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._reached = 0

    def reached(self, position: int) -> None:
        """The transfer got to this position in the file."""
        if position > self._reached:
            if self._progress is not None:
                self._progress(position - self._reached)
            self._reached = position


class FileBody:
    """A file's bytes from an offset, as a streamed request body that reports progress.

    requests and requests-toolbelt read it in blocks and take the bytes left from `len`, so
    the file is never read whole into memory.
    """

    def __init__(self, file: BinaryIO, offset: int, counter: ProgressCounter) -> None:
        file.seek(offset)
        self._file = file
        self._counter = counter
        self._end = os.fstat(file.fileno()).st_size

    @property
    def len(self) -> int:
        """How many bytes are left to read."""
        return max(0, self._end - self._file.tell())

    def read(self, size: int = -1) -> bytes:
        """The next bytes of the file."""
        data = self._file.read(size)
        self._counter.reached(self._file.tell())
        return data


class Stopwatch:
    """Adds up the time spent in what it times: blocks, or waits for an iterator's items."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Time the block."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    def through(self, items: Iterable[bytes]) -> Iterator[bytes]:
        """Pass the items on, timing each wait for the next one."""
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - started
            yield item


class Tally:
    """Hashes and counts the bytes of a download as they pass, refusing more than `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.hashing = Stopwatch()
        self._hasher = hashlib.sha256()

    def through(self, chunks: Iterator[bytes], announced: int | None = None) -> Iterator[bytes]:
        """Pass the chunks on, stopping as soon as they run past the limit or `announced`."""
        for chunk in chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                raise TooBig(f"download passed MAX_MEDIA_BYTES={self.limit}; stopped")
            if announced is not None and self.size > announced:
                raise SizeMismatch(f"download passed the {announced} bytes announced; stopped")
            with self.hashing.timing():
                self._hasher.update(chunk)
            yield chunk

    @property
    def sha256(self) -> str:
        """Hex digest of the bytes so far."""
        return self._hasher.hexdigest()

    def verify(self, fetched: Fetched) -> None:
        """IntegrityError unless the bytes match the size and digest the provider announced."""
        if fetched.size is not None and self.size != fetched.size:
            raise SizeMismatch(f"downloaded {self.size} bytes, provider announced {fetched.size}")
        if fetched.sha256 is not None and not hmac.compare_digest(self.sha256, fetched.sha256):
            raise IntegrityError("sha256 of the download differs from the provider's")


def write_verified(
    fetched: Fetched, out: BinaryIO, *, limit: int, progress: Progress | None = None
) -> Tally:
    """Write a fetched media's bytes to `out`, verified against what the provider announced."""
    tally = Tally(limit)
    for chunk in tally.through(fetched.chunks, fetched.size):
        out.write(chunk)
        if progress is not None:
            progress(len(chunk))
    tally.verify(fetched)
    return tally
