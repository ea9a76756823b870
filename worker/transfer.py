"""Moving bytes to and from a provider: streamed chunks, progress, hashing while writing."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

import requests
from requests.adapters import HTTPAdapter

from worker.errors import IntegrityError, SizeMismatch, TemporaryError, TooBig
from worker.provider import Fetched, Progress

__all__ = [
    "CHUNK_SIZE",
    "NETWORK_ERRORS",
    "POOL_SIZE",
    "TIMEOUT",
    "USER_AGENT",
    "FileBody",
    "ProgressCounter",
    "Stopwatch",
    "Tally",
    "new_session",
    "response_chunks",
    "write_verified",
]

USER_AGENT = "wa-media-archiver/0.1 (+https://github.com/wa-media-archiver)"
# (connect, read) seconds for every call; the read timeout bounds a stalled transfer too.
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


def response_chunks(response: requests.Response, what: str) -> Iterator[bytes]:
    """A streamed response's body in chunks; a broken connection is a TemporaryError."""
    try:
        yield from response.iter_content(CHUNK_SIZE)
    except NETWORK_ERRORS as exc:
        raise TemporaryError(f"{what} broke off: {type(exc).__name__}") from None


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
