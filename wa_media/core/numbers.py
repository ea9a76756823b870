"""Numbers a provider sends, as JSON integers or as text: ASCII digits only (pure)."""

from __future__ import annotations

__all__ = ["MAX_DIGITS", "ascii_int"]

# Every number a provider sends us (an error code, a size, an offset, seconds to wait) fits in
# 18 digits; a longer one is nonsense, and past 4300 digits `int()` itself refuses it.
MAX_DIGITS = 18
_BOUND = 10**MAX_DIGITS
# HTTP's optional whitespace around a header's value.
_OWS = " \t"


def ascii_int(value: object) -> int | None:
    """A non-negative integer of at most 18 digits, given as an int or as ASCII digits; else None.

    `str.isdigit()` and `int()` accept more than a provider means: Arabic-Indic and other
    Unicode digits, signs, underscores, any script's spaces; and `"²"` passes `isdigit()`
    but makes `int()` raise.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < _BOUND else None
    if isinstance(value, str):
        text = value.strip(_OWS)
        if 0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit():
            return int(text)
    return None
