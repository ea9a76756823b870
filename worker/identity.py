"""How Meta names a WhatsApp user: a phone number, or a business-scoped user id. Pure."""

from __future__ import annotations

import re

__all__ = ["is_bsuid"]

# A BSUID is the user's ISO 3166 alpha-2 country code, a period and up to 128 letters and
# digits (`US.13491208655302741918`); a parent BSUID has `ENT.` after the country code
# (`US.ENT.11815799212886844830`). Meta's "Business-scoped user IDs" page gives both forms.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def is_bsuid(value: str) -> bool:
    """Whether `value` is a (parent) business-scoped user id rather than a phone number."""
    return _BSUID.fullmatch(value) is not None
