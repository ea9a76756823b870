"""How Meta names a WhatsApp user: a phone number, or a business-scoped user id. Pure."""

from __future__ import annotations

import re

__all__ = ["is_bsuid", "phone_address", "recipient_address"]

# A BSUID is the user's ISO 3166 alpha-2 country code, a period and up to 128 letters and
# digits (`US.13491208655302741918`); a parent BSUID has `ENT.` after the country code
# (`US.ENT.11815799212886844830`). Meta's "Business-scoped user IDs" page gives both forms.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
# A phone number as WhatsApp ids carry it: the country code and number, 6 to 15 ASCII digits
# (E.164 allows 15 at most), which a `+` may lead.
_PHONE = re.compile(r"\+?([0-9]{6,15})")


def is_bsuid(value: str) -> bool:
    """Whether `value` is a (parent) business-scoped user id rather than a phone number."""
    return _BSUID.fullmatch(value) is not None


def phone_address(value: str) -> str | None:
    """`value` as a phone number a message may be sent to (its `+` dropped), or None."""
    phone = _PHONE.fullmatch(value)
    return None if phone is None else phone.group(1)


def recipient_address(value: str) -> str | None:
    """`value` as a message may be sent to it: a phone number (its `+` dropped) or a BSUID;
    None when it is neither, and nothing may be sent to it."""
    phone = phone_address(value)
    if phone is not None:
        return phone
    return value if is_bsuid(value) else None
