"""Text sends: checking a send body and recording an accepted message (shared by dialects)."""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any

from graphsim.records import Provider
from graphsim.state import SimState

__all__ = [
    "MAX_TEXT_LENGTH",
    "addressee",
    "is_bsuid",
    "new_wamid",
    "record_send",
    "text_problem",
]

MAX_TEXT_LENGTH = 4096

# Meta's business-scoped user id: an ISO 3166 alpha-2 country code, a period and up to 128
# letters and digits (`US.13491208655302741918`); a parent BSUID has `ENT.` after the country
# code (`US.ENT.11815799212886844830`).
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def new_wamid() -> str:
    """A fresh, unique WhatsApp message id shaped like Meta's: the id of an accepted send."""
    token = base64.b64encode(secrets.token_bytes(27)).decode()
    return f"wamid.HBgL{token}"


def is_bsuid(value: str) -> bool:
    """Whether `value` is shaped like a (parent) business-scoped user id."""
    return _BSUID.fullmatch(value) is not None


def _given(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    return value if isinstance(value, str) and value.strip() else None


def addressee(payload: dict[str, Any]) -> str | None:
    """Whom a send body addresses: `to` (a phone number), else `recipient` (a BSUID).

    As Meta documents it, `to` wins when a body names both.
    """
    return _given(payload, "to") or _given(payload, "recipient")


def _address_problem(payload: dict[str, Any], *, cloud: bool) -> str | None:
    to, recipient = payload.get("to"), payload.get("recipient")
    # The On-Premises API knows phone numbers (wa_id) only: it ignores a `recipient`.
    if cloud and recipient is not None:
        if not (isinstance(recipient, str) and is_bsuid(recipient)):
            return "Parameter 'recipient' must be a business-scoped user id"
        if to is None:
            return None
    if _given(payload, "to") is None:
        if cloud:
            return "Parameter 'to' or 'recipient' is required"
        return "Parameter 'to' is required"
    return None


def text_problem(payload: dict[str, Any], *, cloud: bool) -> str | None:
    """Return what is wrong with a text send body (`POST /messages`), or None.

    The Cloud API (and 360dialog) require `messaging_product`, and address a customer by phone
    number (`to`) or by business-scoped user id (`recipient`); On-Premises has neither
    `messaging_product` nor `recipient`.
    """
    if cloud and payload.get("messaging_product") != "whatsapp":
        return "Parameter messaging_product must be 'whatsapp'"
    problem = _address_problem(payload, cloud=cloud)
    if problem is not None:
        return problem
    if payload.get("recipient_type", "individual") != "individual":
        return "Parameter recipient_type must be 'individual'"
    if payload.get("type") != "text":
        return "Only messages of type 'text' are simulated"
    text = payload.get("text")
    if not isinstance(text, dict):
        return "Parameter 'text' must be an object"
    body = text.get("body")
    if not isinstance(body, str) or not body:
        return "Parameter text.body is required"
    if len(body) > MAX_TEXT_LENGTH:
        return f"Parameter text.body is longer than {MAX_TEXT_LENGTH} characters"
    if not isinstance(text.get("preview_url", False), bool):
        return "Parameter text.preview_url must be a boolean"
    return None


def record_send(
    state: SimState,
    provider: Provider,
    payload: dict[str, Any],
    message_id: str,
    phone_number_id: str | None = None,
) -> None:
    """Record an accepted text message (its body already checked by `text_problem`): `to`
    and `recipient` as the body gave them (None when absent)."""
    state.records.add_message(
        {
            "provider": provider,
            "phone_number_id": phone_number_id,
            "to": _given(payload, "to"),
            "recipient": _given(payload, "recipient"),
            "body": payload["text"]["body"],
            "wamid": message_id,
            "received_at": time.time(),
            "payload": payload,
        }
    )
