"""Removing secrets from text and error bodies before they reach an exception or a log."""

from __future__ import annotations

from typing import Any

__all__ = ["scrub"]

MASK = "***"


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
