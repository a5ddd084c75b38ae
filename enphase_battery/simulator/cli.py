"""``enphase-battery simulate``: argparse wiring for running the simulator standalone."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from enphase_battery.simulator.ratelimit import PLANS
from enphase_battery.simulator.uplink import FleetMix

__all__ = ["add_simulate_parser", "build_parser", "main", "run_simulate"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default 127.0.0.1; anything else exposes the simulator)",
    )
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787; 0: any)")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (default 1; 0 freezes the clock)",
    )
    parser.add_argument("--systems", type=int, default=2, help="number of systems (default 2)")
    parser.add_argument("--encharges", type=int, default=2, help="Encharges per system (default 2)")
    parser.add_argument(
        "--plan", choices=sorted(PLANS), default="partner", help="API plan (default partner)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--start",
        type=_parse_start,
        default=None,
        help="simulated start: an ISO 8601 time or 'now' (default 2026-06-01T00:00Z)",
    )
    parser.add_argument(
        "--history-days", type=float, default=7.0, help="days of history (default 7)"
    )
    parser.add_argument(
        "--late-probability",
        type=float,
        default=0.0,
        help="chance a device interval arrives hours late (default 0)",
    )
    parser.add_argument(
        "--cellular",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of systems on cellular, uploading every ~6 h in a batch (default 0)",
    )
    parser.add_argument(
        "--offline",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of systems offline for a day within the first 3 days, then backfilling"
        " (default 0)",
    )
    parser.add_argument(
        "--write-delay",
        type=float,
        default=0.0,
        metavar="S",
        help="real seconds before an accepted write shows in the GETs (default 0);"
        " POST /__admin/writes also refuses or reverts the next writes",
    )
    parser.add_argument(
        "--token-file",
        default=None,
        help="write the initial OAuth2 token to this JSON file instead of printing it",
    )


def _parse_start(value: str) -> datetime:
    if value.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _announce(text: str) -> None:
    print(text, flush=True)


def add_simulate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` sub-command to an ``argparse`` subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="run the embedded Enphase v4 API simulator",
        description="Serve a simulated Enphase v4 battery API on loopback until Ctrl-C.",
    )
    _add_arguments(parser)
    return parser


def run_simulate(args: argparse.Namespace) -> int:
    """Run the simulator the parsed ``args`` describe; returns the exit status."""
    # Imported here, not at the top: ``enphase-battery --help`` builds this parser and
    # should not load the whole simulator (aiohttp.web, the physics) to do it.
    from enphase_battery.simulator.runner import serve

    if not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host}: the simulator and its admin routes are "
            "reachable from other machines",
            file=sys.stderr,
        )
    try:
        asyncio.run(
            serve(
                token_file=args.token_file,
                announce=_announce,
                start=args.start,
                host=args.host,
                port=args.port,
                speed=args.speed,
                systems=args.systems,
                encharges=args.encharges,
                plan=args.plan,
                # --plan is the plan the user wants to try: its access controls too, as
                # the real API applies them (a Watt key gets 403 for device/config routes).
                enforce_plan_access=True,
                seed=args.seed,
                history=timedelta(days=args.history_days),
                late_probability=args.late_probability,
                fleet_mix=FleetMix(cellular=args.cellular, offline=args.offline),
                write_delay_s=args.write_delay,
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"cannot serve on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 1
    except ValueError as err:
        print(f"invalid simulator option: {err}", file=sys.stderr)
        return 2
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m enphase_battery.simulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m enphase_battery.simulator",
        description="Serve a simulated Enphase v4 battery API on loopback until Ctrl-C.",
    )
    _add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m enphase_battery.simulator``."""
    return run_simulate(build_parser().parse_args(argv))
