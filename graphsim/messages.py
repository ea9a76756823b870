"""Text sends: checking a send body and recording an accepted message (shared by dialects)."""

from __future__ import annotations

import time
from typing import Any

from graphsim.records import Provider
from graphsim.state import SimState

__all__ = ["MAX_TEXT_LENGTH", "record_send", "text_problem"]

MAX_TEXT_LENGTH = 4096


def text_problem(payload: dict[str, Any], *, cloud: bool) -> str | None:
    """Return what is wrong with a text send body (DOMAIN.md sections 4, 5), or None.

    The Cloud API (and 360dialog) require `messaging_product`; On-Premises has none.
    """
    if cloud and payload.get("messaging_product") != "whatsapp":
        return "Parameter messaging_product must be 'whatsapp'"
    to = payload.get("to")
    if not isinstance(to, str) or not to.strip():
        return "Parameter 'to' is required"
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
    """Record an accepted text message (its body already checked by `text_problem`)."""
    state.records.add_message(
        {
            "provider": provider,
            "phone_number_id": phone_number_id,
            "to": payload["to"],
            "body": payload["text"]["body"],
            "wamid": message_id,
            "received_at": time.time(),
            "payload": payload,
        }
    )
