"""Fault rules: what the simulator does wrong, for which operation, how many times."""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from graphsim.errors import GraphError, default_code, graph_error

__all__ = ["FOREVER", "OPS", "FaultBook", "FaultRule", "Op"]

Op = Literal["lookup", "download", "send", "delete", "upload", "any"]
OPS: tuple[Op, ...] = get_args(Op)
FOREVER = -1

_LOOKUP_EFFECTS = ("expired", "foreign", "url_host", "file_size", "sha256")
_DOWNLOAD_EFFECTS = ("truncate", "corrupt", "redirect", "trickle_bytes")
_UPLOAD_EFFECTS = ("interrupt_after",)
_EFFECTS = ("status", "latency", *_LOOKUP_EFFECTS, *_DOWNLOAD_EFFECTS, *_UPLOAD_EFFECTS)

# JSON types accepted per field; bool is rejected where an int is expected (bool subclasses int).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "op": (str,),
    "media_id": (str,),
    "times": (int,),
    "status": (int,),
    "error": (dict,),
    "retry_after": (int,),
    "latency": (int, float),
    "truncate": (bool,),
    "corrupt": (bool,),
    "redirect": (bool,),
    "expired": (bool,),
    "foreign": (bool,),
    "url_host": (str,),
    "file_size": (int,),
    "sha256": (str,),
    "interrupt_after": (int,),
    "trickle_bytes": (int,),
    "trickle_seconds": (int, float),
}


def _check_type(name: str, value: object) -> None:
    expected = _FIELD_TYPES[name]
    if value is None and name not in ("op", "times"):
        return
    if isinstance(value, bool) and bool not in expected:
        raise ValueError(f"fault field {name!r} must be {expected[0].__name__}")
    if not isinstance(value, expected):
        raise ValueError(f"fault field {name!r} must be {expected[0].__name__}")


def _is_set(value: object) -> bool:
    # Compared by identity: 0 (e.g. file_size=0) is a real setting, but 0 == False.
    return (
        value is not None and value is not False and not (isinstance(value, float) and value == 0.0)
    )


@dataclass(frozen=True)
class FaultRule:
    """One fault: the operation and optional key it matches, and its effects."""

    op: Op
    media_id: str | None = None
    times: int = 1
    status: int | None = None
    error: dict[str, Any] | None = None
    retry_after: int | None = None
    latency: float = 0.0
    truncate: bool = False
    corrupt: bool = False
    # Answer 302 to the foreign host: a client following it blindly carries its token there.
    redirect: bool = False
    expired: bool = False
    foreign: bool = False
    # Hand out the download URL on this host (same scheme, port, path and query): an address of
    # the machine other than the one the client called, as a rewritten or downgraded URL would.
    url_host: str | None = None
    file_size: int | None = None
    sha256: str | None = None
    # Take this many bytes of an upload's body, keep them, then drop the connection unanswered.
    interrupt_after: int | None = None
    # Send a download's body `trickle_bytes` at a time, one piece every `trickle_seconds`: a
    # provider (or a middlebox) that keeps a connection alive without ever finishing it.
    trickle_bytes: int | None = None
    trickle_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"fault op must be one of {', '.join(OPS)}")
        if self.times != FOREVER and self.times < 1:
            raise ValueError("fault times must be positive, or -1 for forever")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError("fault status must be an HTTP error status (400-599)")
        if self.status is None and (self.error is not None or self.retry_after is not None):
            raise ValueError("a fault error or retry_after needs a status")
        if self.error is not None and not isinstance(self.error.get("code", 0), int):
            raise ValueError("a fault error code must be an int")
        if self.latency < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("fault latency and retry_after must not be negative")
        if self.interrupt_after is not None and self.interrupt_after < 0:
            raise ValueError("fault interrupt_after must not be negative")
        if self.url_host is not None and not re.fullmatch(
            r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", self.url_host
        ):
            raise ValueError("fault url_host must be a host name or address")
        if self.trickle_bytes is not None and self.trickle_bytes < 1:
            raise ValueError("fault trickle_bytes must be positive")
        if (self.trickle_bytes is None) != (self.trickle_seconds <= 0):
            raise ValueError("fault trickle_bytes and trickle_seconds (positive) go together")
        self._check_effects()

    def _check_effects(self) -> None:
        active = [name for name in _EFFECTS if _is_set(getattr(self, name))]
        if not active:
            raise ValueError(f"a fault needs at least one effect among {', '.join(_EFFECTS)}")
        for name in active:
            if name in _LOOKUP_EFFECTS and self.op not in ("lookup", "any"):
                raise ValueError(f"fault effect {name!r} applies to look-ups only")
            if name in _DOWNLOAD_EFFECTS and self.op not in ("download", "any"):
                raise ValueError(f"fault effect {name!r} applies to downloads only")
            if name in _UPLOAD_EFFECTS and self.op not in ("upload", "any"):
                raise ValueError(f"fault effect {name!r} applies to uploads only")
        if self.redirect and (self.truncate or self.corrupt or self.trickle_bytes is not None):
            raise ValueError("a redirect has no body to truncate, corrupt or trickle")
        if self.interrupt_after is not None and self.status is not None:
            raise ValueError("an interrupted upload gets no answer, so no status")

    @classmethod
    def from_json(cls, data: object) -> FaultRule:
        """Validate a rule received as JSON; raise `ValueError` naming the bad field."""
        if not isinstance(data, dict):
            raise ValueError("a fault rule must be a JSON object")
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        if "op" not in data:
            raise ValueError("a fault rule needs an op")
        for name, value in data.items():
            _check_type(name, value)
        fields = {name: value for name, value in data.items() if value is not None}
        for name in ("latency", "trickle_seconds"):
            if name in fields:
                fields[name] = float(fields[name])
        return cls(**cast(dict[str, Any], fields))

    def to_json(self) -> dict[str, Any]:
        """Return the rule as JSON, leaving out unset fields."""
        return {k: v for k, v in dataclasses.asdict(self).items() if _is_set(v)}

    def matches(self, op: Op, key: str | None) -> bool:
        """Whether this rule applies to an operation on its key.

        The key is the media id of a look-up, download or delete, the recipient of a send,
        and the file name of a resumable upload (None for other uploads: they have no name).
        """
        if self.op not in (op, "any"):
            return False
        return self.media_id is None or self.media_id == key

    def error_body(self) -> GraphError:
        """Return the Graph error body this rule answers with (it must have a status)."""
        assert self.status is not None
        extra = self.error or {}
        return graph_error(int(extra.get("code", default_code(self.status))), extra=extra)


@dataclass
class _Entry:
    id: str
    rule: FaultRule
    remaining: int


class FaultBook:
    """The thread-safe, ordered set of active fault rules and the global latency."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._ids = itertools.count(1)
        self._latency = 0.0

    def add(self, rule: FaultRule) -> str:
        """Append a rule (earlier rules win) and return its id."""
        with self._lock:
            entry = _Entry(f"fault-{next(self._ids)}", rule, rule.times)
            self._entries.append(entry)
            return entry.id

    def remove(self, fault_id: str) -> bool:
        """Drop one rule; return whether it existed."""
        with self._lock:
            kept = [e for e in self._entries if e.id != fault_id]
            found = len(kept) != len(self._entries)
            self._entries = kept
            return found

    def clear(self) -> None:
        """Drop every rule (the global latency is kept)."""
        with self._lock:
            self._entries.clear()

    def take(self, op: Op, key: str | None) -> FaultRule | None:
        """Return the first matching rule with uses left, consuming one use atomically."""
        with self._lock:
            for entry in self._entries:
                if entry.remaining != 0 and entry.rule.matches(op, key):
                    if entry.remaining != FOREVER:
                        entry.remaining -= 1
                    return entry.rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        """Return every rule with its id and remaining uses (-1: forever)."""
        with self._lock:
            return [
                {"id": e.id, "remaining": e.remaining, **e.rule.to_json()} for e in self._entries
            ]

    @property
    def latency(self) -> float:
        """Seconds added to every look-up and download."""
        with self._lock:
            return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must not be negative")
        with self._lock:
            self._latency = seconds
