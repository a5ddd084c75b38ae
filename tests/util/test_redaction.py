"""The one secret scrubber used by the client, the token manager and the CLI."""

from __future__ import annotations

from enphase_battery.util.redaction import scrub


def test_text_and_nested_bodies_are_scrubbed() -> None:
    body = {"details": "bad key abcd1234", "errors": ["abcd1234", 3], "code": 401}
    assert scrub(body, ("abcd1234",)) == {
        "details": "bad key ***",
        "errors": ["***", 3],
        "code": 401,
    }


def test_longer_secret_first_so_no_tail_is_left() -> None:
    # "abcd" is a prefix of the refresh token: masking it first would leave "5678" behind.
    assert scrub("rt=abcd5678", ("abcd", "abcd5678")) == "rt=***"


def test_token_keys_are_masked_whole() -> None:
    assert scrub({"refresh_token": "unknown-old-token"}, ()) == {"refresh_token": "***"}


def test_short_secrets_are_left_alone() -> None:
    assert scrub("a b c", ("b",)) == "a b c"
