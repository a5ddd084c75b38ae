"""Cleaning what reaches an exception, a log or a terminal: no secrets, no control codes.

:func:`scrub` removes secrets from text and error bodies; :func:`printable` makes text
from a server safe and short enough for a one-line message.
"""

from __future__ import annotations

import unicodedata
from typing import Any

__all__ = ["MAX_MESSAGE_CHARS", "printable", "scrub"]

MASK = "***"

#: The longest error message the SDK builds; a server's 5 MB ``details`` is cut to this.
MAX_MESSAGE_CHARS = 500

# Bidirectional overrides reorder what a terminal shows; they are format (Cf) characters.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` without control characters (ESC, BEL, bidi overrides...), at most ``limit`` long.

    Line breaks and tabs become spaces, so the result stays on one line.  A cut text says
    how much was left out.
    """
    if text.isprintable() and len(text) <= limit:
        return text
    cleaned = "".join(
        " "
        if ch in "\n\r\t"
        else ""
        if unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS
        else ch
        for ch in text[: limit * 4]
    )
    if len(cleaned) <= limit and len(text) <= limit * 4:
        return cleaned
    cut = cleaned[:limit].rstrip()
    return f"{cut}... ({len(text) - len(cut)} more characters)"


def scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` (text, or parsed JSON) with every secret replaced by ``***``.

    Values under a key that names a token are masked whole, whatever they hold: a server
    may echo a token we no longer know.  Secrets shorter than four characters are left
    alone, as replacing them would garble the text without hiding anything.  Longer
    secrets go first, so one that contains another is masked whole.
    """
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= 4:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: MASK if "token" in str(k) else scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value
