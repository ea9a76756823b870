"""A media's bytes as a streamed response, with the download faults applied on the way."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from werkzeug.wrappers import Response

from graphsim.faults import FaultRule
from graphsim.media import Media

__all__ = ["media_response"]


def _trickled(
    pieces: Iterator[bytes], size: int, every: float, closing: threading.Event
) -> Iterator[bytes]:
    """The same bytes, `size` at a time, one piece every `every` seconds; cut short (the body
    left unfinished) when the server stops."""
    first = True
    for piece in pieces:
        for start in range(0, len(piece), size):
            if not first and closing.wait(every):
                return
            first = False
            yield piece[start : start + size]


def _stream(media: Media, rule: FaultRule | None) -> Iterator[bytes]:
    size = media.file_size
    # Truncation stops after half the bytes while Content-Length still promises all of them;
    # the server closes a connection whose body fell short, so the client sees a short body.
    stop = size // 2 if rule and rule.truncate else size
    flip = size // 2 if rule and rule.corrupt else -1
    sent = 0
    for chunk in media.chunks():
        if sent >= stop:
            return
        piece = chunk[: stop - sent]
        if sent <= flip < sent + len(piece):
            altered = bytearray(piece)
            altered[flip - sent] ^= 0xFF
            piece = bytes(altered)
        yield piece
        sent += len(piece)


def media_response(
    media: Media, rule: FaultRule | None, closing: threading.Event | None = None
) -> Response:
    """Stream a media's bytes with its type and full length, truncated, corrupted or trickled by
    `rule`; a trickle stops when `closing` is set (the server stopping)."""
    body = _stream(media, rule)
    if rule is not None and rule.trickle_bytes is not None:
        body = _trickled(
            body, rule.trickle_bytes, rule.trickle_seconds, closing or threading.Event()
        )
    return Response(
        body,
        status=200,
        headers={"Content-Length": str(media.file_size)},
        content_type=media.mime_type,
        direct_passthrough=True,
    )
