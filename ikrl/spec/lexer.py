"""What the spec grammar and the brace patterns share: quoted values and caret errors.

Examples:
    >>> quote_end("a='x,y'+b", 2)
    7
    >>> print(caret_error("spec", "a+(", 2, "expected a name at position 2"))
    bad spec 'a+(': expected a name at position 2
     a+(
       ^
"""

from __future__ import annotations

from ikrl.errors import SpecSyntaxError

__all__ = ["caret_error", "quote_end"]


def quote_end(text: str, start: int) -> int | None:
    """The position just after the quote closing the one at ``text[start]`` (``'`` or ``"``),
    skipping backslash escapes; None when it is never closed."""
    quote = text[start]
    pos = start + 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
            continue
        if text[pos] == quote:
            return pos + 1
        pos += 1
    return None


def caret_error(what: str, text: str, pos: int, message: str) -> SpecSyntaxError:
    """``bad <what> '<text>': <message>`` with the text and a caret under ``pos`` below it."""
    pointer = " " * (pos + 1) + "^"
    return SpecSyntaxError(f"bad {what} {text!r}: {message}\n {text}\n{pointer}")
