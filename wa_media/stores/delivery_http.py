"""The HTTP side of delivery: one POST to a destination, bounded in time, never redirected,
and the Standard Webhooks headers (the `standardwebhooks` package signs).

`post` never raises for the destination's failures: it answers what happened (`Answer`), a
status or a bounded reason (`timeout`, `connection`); requests' exceptions stay here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks.webhooks import Webhook

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


class DeliveryClient:
    """POSTs deliveries; one per worker process, shared by its threads (requests' Session
    with a pool as large as the tasks running at once)."""

    def __init__(self, timeout: float, pool_size: int = 10) -> None:
        self.timeout = timeout
        self._session = requests.Session()
        # Proxies and .netrc of the environment are not the destinations'.
        self._session.trust_env = False
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST `body`; within `timeout` seconds: to connect, then for the answer, whose body
        is read until the deadline at most (a server trickling it is cut off)."""
        started = time.monotonic()
        deadline = started + self.timeout
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
            return Answer(None, "timeout", detail=f"no answer within {self.timeout:g} s")
        except (requests.RequestException, OSError) as exc:
            return Answer(None, "connection", detail=type(exc).__name__)
        try:
            read = 0
            for chunk in response.iter_content(8192):
                read += len(chunk)
                if read >= _ANSWER_BYTES or time.monotonic() >= deadline:
                    break
        except (requests.RequestException, OSError):
            pass  # the status is what counts; a broken answer body changes nothing
        finally:
            response.close()
        failure = failure_of_status(response.status_code)
        return Answer(
            response.status_code,
            failure,
            response.headers.get("Retry-After"),
            "" if failure is None else f"HTTP {response.status_code}",
        )
