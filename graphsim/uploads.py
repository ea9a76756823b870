"""Handlers of uploads in the Graph dialects: form-data media and resumable sessions.

The Cloud API serves them under `/{version}/` (sessions also without the version) and
360dialog under `/d360/`; the uploaded bytes of a form become a media in the shared store,
those of a session stay with the session (its handle is no media id).
"""

from __future__ import annotations

import contextlib
from typing import IO, NoReturn

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Request, Response

from graphsim.dialects import MediaDialect
from graphsim.mediatypes import MAX_UPLOAD_SIZE, RESUMABLE_TYPES, upload_problem
from graphsim.records import LOGGED_KEY
from graphsim.responses import Refusal, json_response
from graphsim.serving import HangUp, raw_header
from graphsim.sessions import SESSION_PREFIX, OffsetMismatch, UploadTooLong
from graphsim.state import SimState

__all__ = [
    "create_session",
    "hang_up_after",
    "read_body",
    "session_status",
    "upload_media",
    "upload_to_session",
]

_READ_CHUNK = 64 * 1024
# Room for the multipart boundaries and the small fields beside the file.
_FORM_OVERHEAD = 64 * 1024
# Enough of a file's start to tell an animated sticker from a static one.
_HEAD = 32


def read_body(stream: IO[bytes], limit: int) -> bytes:
    """Read a request body up to `limit` bytes (fewer when it ends first)."""
    data = bytearray()
    while len(data) < limit:
        chunk = stream.read(min(_READ_CHUNK, limit - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def hang_up_after(request: Request, after: int) -> NoReturn:
    """Read `after` bytes of the body (they are lost), then drop the request unanswered."""
    read_body(request.stream, after)
    raise HangUp()


def _is_count(text: str) -> bool:
    # `isdigit()` alone takes other scripts' digits, and "²", on which `int()` raises.
    return text.isascii() and text.isdigit()


def _mime(content_type: str) -> str:
    return parse_options_header(content_type)[0].lower()


def upload_media(
    state: SimState, request: Request, dialect: MediaDialect, phone_number_id: str | None = None
) -> Response:
    """`POST /{version}/{phone_number_id}/media`: store a form-data `file` as a new media."""
    dialect.require_auth(state, request)
    rule = dialect.apply_fault(state, "upload", None)
    if rule is not None and rule.interrupt_after is not None:
        hang_up_after(request, rule.interrupt_after)
    # werkzeug refuses a longer body before parsing it, so no huge form is ever spooled.
    request.max_content_length = MAX_UPLOAD_SIZE + _FORM_OVERHEAD
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        return dialect.bad_media(f"Media file size too big: max {MAX_UPLOAD_SIZE} bytes")
    if form.get("messaging_product") != "whatsapp":
        return dialect.bad_request("Parameter messaging_product must be 'whatsapp'")
    upload = files.get("file")
    if upload is None:
        return dialect.bad_request("Parameter file is required")
    declared = form.get("type", "")
    content_type = upload.content_type or declared
    if "/" not in content_type:
        return dialect.bad_request("The file must carry its MIME type")
    # The media guide names a MIME type mismatch as the common cause of 131053.
    if "/" in declared and _mime(declared) != _mime(content_type):
        return dialect.bad_media(f"MIME type mismatch: file is {content_type}, type {declared}")
    data = upload.read()
    problem = upload_problem(content_type, len(data), data[:_HEAD])
    if problem is not None:
        return dialect.bad_media(problem)
    media = state.media.add_bytes(data, content_type, phone_number_id=phone_number_id)
    request.environ[LOGGED_KEY] = media.id
    return json_response({"id": media.id})


def _session_args(request: Request) -> tuple[str, int, str] | str:
    """The `file_name`, `file_length` and `file_type` of a new session, or what is wrong."""
    name = request.args.get("file_name", "")
    length = request.args.get("file_length", "")
    file_type = request.args.get("file_type", "")
    if not name:
        return "Parameter file_name is required"
    if not _is_count(length) or int(length) < 1:
        return "Parameter file_length must be a positive integer"
    if _mime(file_type) not in RESUMABLE_TYPES:
        return f"Parameter file_type must be one of {', '.join(sorted(RESUMABLE_TYPES))}"
    return name, int(length), file_type


def create_session(
    state: SimState, request: Request, dialect: MediaDialect, app_id: str | None = None
) -> Response:
    """`POST /{version}/{app_id}/uploads?file_name=&file_length=&file_type=`: open a session."""
    dialect.require_auth(state, request)
    parsed = _session_args(request)
    if isinstance(parsed, str):
        return dialect.bad_request(parsed)
    session_id = state.sessions.create(dialect.provider, app_id, *parsed)
    request.environ[LOGGED_KEY] = session_id
    return json_response({"id": session_id})


def session_status(
    state: SimState, request: Request, dialect: MediaDialect, session: str
) -> Response:
    """`GET /{version}/upload:{session}`: the session's current offset, to resume from."""
    session_id = SESSION_PREFIX + session
    dialect.require_auth(state, request)
    progress = state.sessions.peek(session_id)
    if progress is None:
        return dialect.unknown_session(session_id)
    return json_response({"id": session_id, "file_offset": progress.file_offset})


def _offset(request: Request, dialect: MediaDialect) -> int:
    value = (raw_header(request.environ, "file_offset") or "0").strip()
    if not _is_count(value):
        raise Refusal(dialect.bad_request("Header file_offset must be a non-negative integer"))
    return int(value)


def upload_to_session(
    state: SimState, request: Request, dialect: MediaDialect, session: str
) -> Response:
    """`POST /{version}/upload:{session}` with `file_offset` and bytes: the handle when done."""
    session_id = SESSION_PREFIX + session
    dialect.require_auth(state, request)
    progress = state.sessions.peek(session_id)
    if progress is None:
        return dialect.unknown_session(session_id)
    offset = _offset(request, dialect)
    rule = dialect.apply_fault(state, "upload", progress.file_name)
    if offset != progress.file_offset:
        return dialect.bad_offset(progress.file_offset, offset)
    remaining = progress.file_length - offset
    if rule is not None and rule.interrupt_after is not None:
        # The bytes that arrived before the break count, as they would at Meta.
        received = read_body(request.stream, min(rule.interrupt_after, remaining))
        with contextlib.suppress(OffsetMismatch):  # another request moved the offset meanwhile
            state.sessions.append(session_id, offset, received)
        raise HangUp()
    data = read_body(request.stream, remaining + 1)
    try:
        new_offset, handle = state.sessions.append(session_id, offset, data)
    except OffsetMismatch as exc:  # another request moved the offset meanwhile
        return dialect.bad_offset(exc.expected, offset)
    except UploadTooLong:
        return dialect.bad_request(f"More bytes than file_length {progress.file_length}")
    if handle is not None:
        return json_response({"h": handle})
    return json_response({"id": session_id, "file_offset": new_offset})
