"""What the CLI prints: counts in words."""

from __future__ import annotations


def test_plural_is_singular_for_one() -> None:
    from enphase_battery.cli.output import _plural

    assert _plural(1, "request") == "1 request"
    assert [_plural(n, "interval") for n in (0, 2)] == ["0 intervals", "2 intervals"]
