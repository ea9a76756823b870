"""A media's bytes as a streamed response, with the download faults applied on the way."""

from __future__ import annotations

from collections.abc import Iterator

from werkzeug.wrappers import Response

from graphsim.faults import FaultRule
from graphsim.media import Media

__all__ = ["media_response"]


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


def media_response(media: Media, rule: FaultRule | None) -> Response:
    """Stream a media's bytes with its type and full length, truncated or corrupted by `rule`."""
    return Response(
        _stream(media, rule),
        status=200,
        headers={"Content-Length": str(media.file_size)},
        content_type=media.mime_type,
        direct_passthrough=True,
    )
