"""Values as a terminal may show them: whatever a webhook or a provider wrote, escaped."""

from __future__ import annotations

__all__ = ["shown"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shown(value: object) -> str:
    """`value` as text with every character a terminal would act on escaped: control
    characters (escape sequences, carriage returns, ...), format characters such as the
    right-to-left override, line and paragraph separators, unpaired surrogates. Nothing else
    changes: letters of every script are shown as they are."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(_escaped(char) for char in text)
