"""What every write command prints, and its ``--wait``.

A write prints three things: what was asked (the fields sent), what the API answered,
and, with ``--wait``, what the gateway shows once the confirmation ends (applied,
pending or overridden, with the state read last).  As a table::

    asked
      storm guard  on
    API answered
      storm guard  on
      storm alert  off
    gateway: applied (2 reads, 0.4 s)
      storm guard  on
      storm alert  off

With ``--json``: ``{"asked": {...}, "answer": {...}, "gateway": {"outcome", "reads",
"waited_s", "mismatched", "state"}}``.  A wait that ends pending or overridden exits
:data:`EXIT_NOT_APPLIED`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from enphase_battery.cli.argtypes import _seconds
from enphase_battery.cli.errors import EXIT_OK
from enphase_battery.cli.output import _jsonable, _out, _pairs, _print_json
from enphase_battery.cli.settings import _Context
from enphase_battery.models.confirmation import WriteConfirmation

__all__ = [
    "DEFAULT_WAIT_S",
    "EXIT_NOT_APPLIED",
    "add_wait_arguments",
    "report_write",
    "wait_options",
]

#: Exit code of a write whose ``--wait`` ended with the gateway not showing it.
EXIT_NOT_APPLIED = 6
#: ``--wait`` without a value: seconds to wait for the gateway.
DEFAULT_WAIT_S = 120.0

#: How a command shows a state: (label, value) rows for a model.
Rows = Callable[[Any], Iterable[tuple[str, Any]]]


def add_wait_arguments(parser: argparse.ArgumentParser) -> None:
    """``--wait [S]``, ``--wait-interval S`` and ``--settle S`` on a write command."""
    parser.add_argument(
        "--wait",
        nargs="?",
        type=_seconds,
        const=DEFAULT_WAIT_S,
        metavar="S",
        help="after the API's answer, read the setting back until the gateway shows it, for"
        f" at most S seconds (default {DEFAULT_WAIT_S:g}); exits {EXIT_NOT_APPLIED} when it"
        " does not (still pending, or overridden)",
    )
    parser.add_argument(
        "--wait-interval",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="with --wait: seconds between reads (default 10; each read counts against the quota)",
    )
    parser.add_argument(
        "--settle",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="with --wait: once the gateway shows the change, keep reading S seconds more;"
        " a change put back meanwhile is 'overridden' (default 0: stop at the first match)",
    )


def wait_options(ctx: _Context) -> dict[str, Any]:
    """The update method's keyword arguments for ``--wait`` (none without it)."""
    timeout = ctx.args.wait
    if timeout is None:
        return {}
    return {
        "confirm": True,
        "timeout_s": timeout,
        "interval_s": min(ctx.args.wait_interval, timeout),
        "settle_s": ctx.args.settle,
    }


def report_write(
    ctx: _Context,
    asked: Mapping[str, Any],
    asked_rows: Iterable[tuple[str, Any]],
    result: Any,
    state_rows: Rows,
    answer_rows: Rows | None = None,
) -> int:
    """Print what was asked, what the API answered and (``--wait``) what the gateway shows;
    the exit code.  ``answer_rows`` shows the API's answer where it is not a state (a
    battery_mode PUT answers a message)."""
    answer_rows = answer_rows or state_rows
    confirmation = result if isinstance(result, WriteConfirmation) else None
    answer = confirmation.answer if confirmation is not None else result
    code = EXIT_OK
    if confirmation is not None and not confirmation.applied:
        code = EXIT_NOT_APPLIED
    if ctx.json:
        report: dict[str, Any] = {"asked": _jsonable(dict(asked)), "answer": _jsonable(answer)}
        if confirmation is not None:
            report["gateway"] = {
                "outcome": confirmation.outcome.value,
                "reads": confirmation.reads,
                "waited_s": round(confirmation.waited_s, 3),
                "mismatched": list(confirmation.mismatched),
                "state": _jsonable(confirmation.observed),
            }
        _print_json(report)
        return code
    lines = [
        "asked",
        _indent(_pairs(asked_rows)),
        "API answered",
        _indent(_pairs(answer_rows(answer))),
    ]
    if confirmation is not None:
        lines.append(
            f"gateway: {confirmation.outcome.value} ({confirmation.reads} read"
            f"{'' if confirmation.reads == 1 else 's'}, {confirmation.waited_s:.1f} s)"
        )
        if confirmation.observed is not None:
            lines.append(_indent(_pairs(state_rows(confirmation.observed))))
        if confirmation.mismatched:
            lines.append(f"  not shown as asked: {', '.join(confirmation.mismatched)}")
    _out("\n".join(lines))
    return code


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
