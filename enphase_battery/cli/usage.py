"""This month's request count per API key and plan, kept in ``usage.json`` between runs,
and the ``usage`` command that shows or resets it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from enphase_battery.cli.errors import EXIT_OK
from enphase_battery.cli.output import _out, _pairs, _print_json
from enphase_battery.cli.settings import _Context
from enphase_battery.client.environment import USAGE_RESET_HINT
from enphase_battery.quota.file_backend import FileGovernorBackend
from enphase_battery.quota.governor import QuotaGovernor
from enphase_battery.quota.limits import RateLimits
from enphase_battery.quota.state import GovernorBackend

#: What a "quota spent" message tells the user to do about a local count.
RESET_HINT = USAGE_RESET_HINT


def usage_path(ctx: _Context) -> Path:
    """Where the CLI keeps the month's count (``<config dir>/usage.json``)."""
    return ctx.settings.usage_file


def open_governor(
    ctx: _Context, api_key: str, *, backend: GovernorBackend | None = None
) -> QuotaGovernor:
    """The quota governor of a CLI run: the plan's limits, the count in ``usage.json``.

    Each run is a new process; the file carries the count from one run to the next (and
    between runs at the same time).  Keyed by a hash of the API key and the plan, never
    the key, so a month 429 seen on one plan never locks another.
    """
    return QuotaGovernor(
        RateLimits.for_plan(ctx.plan),
        key=QuotaGovernor.key_for(api_key),
        backend=backend or FileGovernorBackend(usage_path(ctx)),
        reset_hint=RESET_HINT,
    )


async def _cmd_usage(ctx: _Context) -> int:
    api_key = ctx.credential("api_key")
    assert api_key is not None
    governor = open_governor(ctx, api_key)
    if ctx.args.reset:
        await governor.reset()
        _out(f"reset the {governor.plan} plan's count in {usage_path(ctx)}")
        return EXIT_OK
    usage = await governor.usage()
    if ctx.json:
        _print_json(
            {
                "plan": usage.plan,
                "month_start": usage.month_start.isoformat(),
                "month_end": usage.month_end.isoformat(),
                "used": usage.used,
                "used_background": usage.used_background,
                "monthly_quota": usage.monthly_quota,
                "remaining": usage.remaining,
                "forecast": usage.forecast,
                "spent_until": usage.exhausted_until.isoformat() if usage.exhausted_until else None,
                "file": str(usage_path(ctx)),
            }
        )
        return EXIT_OK
    rows: list[tuple[str, object]] = [
        ("plan", usage.plan),
        ("month", f"{usage.month_start:%Y-%m-%d} .. {usage.month_end:%Y-%m-%d} (UTC)"),
        ("used", f"{usage.used} of {usage.monthly_quota or 'unlimited'}"),
    ]
    # Only work marked as background (the pollers') counts here; a row saying "0" before
    # any poller ran would read as if requests went uncounted.
    if usage.used_background:
        rows.append(("background", f"{usage.used_background} (pollers)"))
    rows += [
        ("by month end", f"{usage.forecast} at this pace"),
        ("kept in", usage_path(ctx)),
    ]
    if usage.exhausted_until is not None:
        rows.append(("spent until", f"{usage.exhausted_until:%Y-%m-%d %H:%M} UTC (the API said)"))
    _out(_pairs(rows))
    if usage.exhausted_until is not None and usage.exhausted_until > datetime.now(UTC):
        _out(f"{RESET_HINT} if you changed plans or know better")
    return EXIT_OK
