"""The HTTP side of delivery: one POST to a destination, bounded in time, never redirected,
and the Standard Webhooks headers (the `standardwebhooks` package signs).

`post` never raises for the destination's failures: it answers what happened (`Answer`), a
status or a bounded reason (`timeout`, `connection`); requests' exceptions stay here.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks.webhooks import Webhook
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from wa_media.core.delivery import FailureReason, failure_of_status

__all__ = ["Answer", "DeliveryClient", "standard_headers"]

# What is read of a destination's answer at most: its status is what counts.
_ANSWER_BYTES = 64 * 1024
_CONNECT_SECONDS = 5.0


@dataclass(frozen=True)
class Answer:
    """How an attempt ended: `failure` None when the destination took it (2xx)."""

    status: int | None
    failure: FailureReason | None
    retry_after: str | None = None
    """The answer's Retry-After header, as sent."""
    detail: str = ""


def standard_headers(secret: str, msg_id: str, timestamp: float, body: bytes) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` and `webhook-signature` of `body`, signed with
    `secret` (`whsec_...`) as the Standard Webhooks specification says."""
    moment = datetime.fromtimestamp(int(timestamp), tz=UTC)
    signature = Webhook(secret).sign(msg_id, moment, body.decode("utf-8", "surrogateescape"))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": signature,
    }


class _Watch(threading.local):
    """The connection the current thread's attempt uses, for its deadline's watchdog."""

    box: list[Any] | None = None


_WATCH = _Watch()


class _Watched:
    """Notes, in the attempt's box, the connection it sends on (new or reused)."""

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        if _WATCH.box is not None:
            _WATCH.box[:] = [self]

    def request(self, *args: Any, **kwargs: Any) -> None:
        if _WATCH.box is not None:
            _WATCH.box[:] = [self]
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections an attempt's watchdog can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def _cut(box: list[Any], fired: threading.Event) -> None:
    """The deadline passed: shut the attempt's socket, whatever it is waiting for."""
    fired.set()
    connection = box[0] if box else None
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class DeliveryClient:
    """POSTs deliveries; one per worker process, shared by its threads (requests' Session
    with a pool as large as the tasks running at once). An attempt never holds its thread
    longer than `timeout`: connecting, sending, waiting for the answer and reading it
    together, cut at the deadline however slowly a server trickles bytes."""

    def __init__(self, timeout: float, pool_size: int = 10) -> None:
        self.timeout = timeout
        self._session = requests.Session()
        # Proxies and .netrc of the environment are not the destinations'.
        self._session.trust_env = False
        adapter = _WatchedAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body` within `timeout` seconds; what came of it."""
        box: list[Any] = []
        fired = threading.Event()
        watchdog = threading.Timer(self.timeout, _cut, args=(box, fired))
        watchdog.daemon = True
        _WATCH.box = box
        watchdog.start()
        try:
            return self._post(url, body, headers, fired)
        finally:
            watchdog.cancel()
            _WATCH.box = None

    def _post(
        self, url: str, body: bytes, headers: dict[str, str], fired: threading.Event
    ) -> Answer:
        late = Answer(None, "timeout", detail=f"no answer within {self.timeout:g} s")
        try:
            response = self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=(min(_CONNECT_SECONDS, self.timeout), self.timeout),
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout:
            return late
        except (requests.RequestException, OSError) as exc:
            return late if fired.is_set() else Answer(None, "connection", detail=type(exc).__name__)
        try:
            read = 0
            for chunk in response.iter_content(8192):
                read += len(chunk)
                if read >= _ANSWER_BYTES:
                    break
        except (requests.RequestException, OSError):
            pass  # the status is what counts; a broken answer body changes nothing
        finally:
            response.close()
        if fired.is_set():
            # Cut at the deadline: a status line read before the cut is not an answer.
            return late
        failure = failure_of_status(response.status_code)
        return Answer(
            response.status_code,
            failure,
            response.headers.get("Retry-After"),
            "" if failure is None else f"HTTP {response.status_code}",
        )
