"""Quote a bad value in an error message, shortened: a 1 MB label must not make a 1 MB error line."""

from __future__ import annotations

import reprlib

LIMIT = 80

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = LIMIT
_repr.maxlevel = 3  # nested lists and dicts print as [...] below this depth (no recursion limit hit)


def quote(value: object, limit: int = LIMIT) -> str:
    """``repr(value)`` cut to about ``limit`` characters; the full length is said when cut."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        # repr() of an int over 4300 digits raises; its size is all an error needs to say.
        return f"<integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
    try:
        text = _repr.repr(value)
    except (ValueError, RecursionError):  # a huge int deep inside, or a self-referencing object
        return f"<{type(value).__name__} too large to print>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if isinstance(value, str | bytes) and len(value) > limit:
        text += f" ({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    return text


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters (for wrapped library errors)."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


__all__ = ["LIMIT", "one_line", "quote"]
