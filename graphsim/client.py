"""A client of the simulator's control API (`/_sim/`), for tests, the demo and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import requests

__all__ = ["DEFAULT_TIMEOUT", "MediaRecord", "SimulatorClient", "SimulatorError"]

DEFAULT_TIMEOUT = 10.0


class SimulatorError(Exception):
    """The control API could not be reached or refused a call."""


@dataclass(frozen=True)
class MediaRecord:
    """A media stored in the simulator, with both forms of its SHA-256."""

    id: str
    mime_type: str
    sha256: str
    sha256_b64: str
    file_size: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MediaRecord:
        """Build a record from the control API's answer."""
        return cls(
            id=str(data["id"]),
            mime_type=str(data["mime_type"]),
            sha256=str(data["sha256"]),
            sha256_b64=str(data["sha256_b64"]),
            file_size=int(data["file_size"]),
        )


class SimulatorClient:
    """Calls the control API over HTTP; not thread-safe: use one per thread."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}/_sim/{path}"
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise SimulatorError(f"{method} {url}: {exc}") from exc
        if not response.ok:
            raise SimulatorError(f"{method} {url}: HTTP {response.status_code}: {response.text}")
        return response.json()

    def add_media(
        self,
        data: bytes,
        mime_type: str,
        media_id: str | None = None,
        phone_number_id: str | None = None,
    ) -> MediaRecord:
        """Store these bytes as a media; give media_id to choose its id."""
        params = {"media_id": media_id, "phone_number_id": phone_number_id}
        answer = self._call(
            "POST", "media", data=data, headers={"Content-Type": mime_type}, params=params
        )
        return MediaRecord.from_json(answer)

    def add_generated_media(
        self,
        size: int,
        seed: int,
        mime_type: str,
        media_id: str | None = None,
        phone_number_id: str | None = None,
    ) -> MediaRecord:
        """Store `size` deterministic pseudo-random bytes derived from `seed`."""
        body = {
            "size": size,
            "seed": seed,
            "mime_type": mime_type,
            "media_id": media_id,
            "phone_number_id": phone_number_id,
        }
        return MediaRecord.from_json(self._call("POST", "media/generated", json=body))

    def download_url(self, media_id: str, *, expired: bool = False, foreign: bool = False) -> str:
        """A signed download URL of a stored media, as v24+ webhooks carry it in `url`.

        `expired`: its `ext` (expiry, Unix seconds) is already past; `foreign`: it points at
        the foreign host. Minting it is no provider request: the request log stays as it was.
        """
        body = {"expired": expired, "foreign": foreign}
        return str(self._call("POST", f"media/{quote(media_id, safe='')}/url", json=body)["url"])

    def add_fault(self, **rule: Any) -> str:
        """Add a fault rule (fields of `graphsim.faults.FaultRule`); return its id."""
        return str(self._call("POST", "faults", json=rule)["id"])

    def faults(self) -> list[dict[str, Any]]:
        """Return the fault rules with their remaining uses."""
        answer: list[dict[str, Any]] = self._call("GET", "faults")
        return answer

    def remove_fault(self, fault_id: str) -> None:
        """Drop one fault rule."""
        self._call("DELETE", f"faults/{fault_id}")

    def clear_faults(self) -> None:
        """Drop every fault rule."""
        self._call("DELETE", "faults")

    def set_latency(self, seconds: float) -> None:
        """Add this many seconds to every look-up and download."""
        self._call("PUT", "latency", json={"seconds": seconds})

    def sent_messages(self) -> list[dict[str, Any]]:
        """Return the messages the send endpoints accepted, oldest first.

        Each entry: `provider`, `phone_number_id` (Cloud API only, else None), `to` (the phone
        number, None for a send by BSUID), `recipient` (the BSUID the body named, else None),
        `body`, `wamid` (the id answered), `received_at` and the whole `payload`.
        """
        answer: list[dict[str, Any]] = self._call("GET", "messages")
        return answer

    def foreign_requests(self) -> list[dict[str, Any]]:
        """Return the requests that reached the foreign host, oldest first.

        Each entry: `method`, `path`, `query`, `headers`, `has_authorization`, `received_at`.
        """
        answer: list[dict[str, Any]] = self._call("GET", "foreign")
        return answer

    def requests(self) -> list[dict[str, Any]]:
        """Return the provider API request log, oldest first.

        Each entry: `op` (lookup, download, send, delete, upload, upload_session), `media_id`
        (the recipient for a send, `upload:...` for a session, the new media id for another
        upload), `time`, `status` (None when an interrupt fault dropped the connection),
        `user_agent`, `authorized` (a valid credential of its dialect was presented),
        `connection` (the server's number for the connection, equal for requests over one
        kept-alive connection) and `provider` (`cloud`, `360dialog` or `onprem`).
        """
        answer: list[dict[str, Any]] = self._call("GET", "requests")
        return answer

    def stats(self) -> dict[str, dict[str, int]]:
        """Return `{"lookups": {media_id: n}, "downloads": {...}, "sends": {to: n}}` (a send by
        BSUID is counted under its `recipient`)."""
        answer: dict[str, dict[str, int]] = self._call("GET", "stats")
        return answer

    def set_tokens(self, tokens: list[str]) -> None:
        """Replace the set of valid access tokens (an empty list revokes all)."""
        self._call("PUT", "tokens", json={"tokens": tokens})

    def set_d360_keys(self, keys: list[str]) -> None:
        """Replace the set of valid 360dialog API keys (an empty list revokes all)."""
        self._call("PUT", "d360/keys", json={"keys": keys})

    def set_onprem_tokens(self, tokens: list[str]) -> None:
        """Replace the set of valid On-Premises tokens (an empty list revokes all)."""
        self._call("PUT", "onprem/tokens", json={"tokens": tokens})

    def set_d360_blocking(self, limit: int, window: float = 3600.0) -> None:
        """Block a 360dialog key after `limit` look-ups of unknown media within `window` s."""
        self._call("PUT", "d360/blocking", json={"limit": limit, "window": window})

    def upload_sessions(self) -> list[dict[str, Any]]:
        """Return the resumable upload sessions, oldest first.

        Each entry: `id` (`upload:...`), `provider`, `owner` (the app id), `file_name`,
        `file_length`, `file_type`, `file_offset`, `complete`, `handle` and `sha256` (hex, of
        the received bytes, once complete), `created_at`, `completed_at`.
        """
        answer: list[dict[str, Any]] = self._call("GET", "uploads")
        return answer

    def reset(self) -> None:
        """Forget media, faults, latency, records, sessions and blocks; restore the credentials."""
        self._call("POST", "reset")

    def close(self) -> None:
        """Release the HTTP session."""
        self._session.close()

    def __enter__(self) -> SimulatorClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
