"""The read and write commands, each a table (or JSON) of what the API answered.

``systems``, ``devices``, ``settings``, ``storm-guard``, ``grid-status``, ``load-control``
and ``lifetime``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from enphase_battery.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from enphase_battery.cli.output import _cell, _jsonable, _out, _pairs, _print_json, _table
from enphase_battery.cli.session import _open_client
from enphase_battery.cli.settings import _Context
from enphase_battery.cli.writes import report_write, wait_options
from enphase_battery.client.endpoints.writes import (
    battery_settings_write,
    load_control_write,
    storm_guard_write,
)


async def _cmd_systems(ctx: _Context) -> int:
    async with _open_client(ctx) as client:
        systems = await client.list_systems()
    if ctx.json:
        _print_json(_jsonable(systems))
        return EXIT_OK
    _out(
        _table(
            ["SYSTEM", "NAME", "TIMEZONE", "STATUS", "LAST REPORT"],
            [(s.system_id, s.name, s.timezone, s.status, s.last_report_at) for s in systems],
        )
    )
    return EXIT_OK


async def _cmd_devices(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        devices = await client.get_system_devices(system_id)
    if ctx.json:
        _print_json(_jsonable(devices))
        return EXIT_OK
    rows = []
    for group in attrs.fields(type(devices.devices)):
        for device in getattr(devices.devices, group.name):
            rows.append(
                (
                    group.name,
                    device.serial_number,
                    device.product_name or device.name,
                    device.status,
                    device.last_report_at,
                )
            )
    _out(_table(["GROUP", "SERIAL", "PRODUCT", "STATUS", "LAST REPORT"], rows))
    return EXIT_OK


def _settings_rows(settings: Any) -> list[tuple[str, Any]]:
    return [
        ("system", settings.system_id),
        ("profile", settings.battery_mode),
        ("reserve", None if settings.reserve_soc is None else f"{settings.reserve_soc} %"),
        ("energy independence", settings.energy_independence),
        ("charge from grid", settings.charge_from_grid),
        (
            "shutdown level",
            None
            if settings.battery_shutdown_level is None
            else f"{settings.battery_shutdown_level} %",
        ),
    ]


async def _cmd_settings_show(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        settings = await client.get_system_battery_settings(system_id)
    _out(
        json.dumps(_jsonable(settings), indent=2) if ctx.json else _pairs(_settings_rows(settings))
    )
    return EXIT_OK


async def _cmd_settings_set(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    if args.profile is None and args.reserve is None and args.energy_independence is None:
        raise CliError(
            "nothing to change: give --profile, --reserve or --energy-independence", EXIT_USAGE
        )
    independence = None if args.energy_independence is None else args.energy_independence == "on"
    asked = battery_settings_write(
        battery_mode=args.profile, reserve_soc=args.reserve, energy_independence=independence
    )
    async with _open_client(ctx) as client:
        result = await client.update_system_battery_settings(
            system_id,
            battery_mode=args.profile,
            reserve_soc=args.reserve,
            energy_independence=independence,
            **wait_options(ctx),
        )
    return report_write(ctx, asked.body, _asked_rows(asked.expected), result, _settings_rows)


#: How the fields a write asks for are labelled in a table.
_LABELS = {
    "battery_mode": "profile",
    "reserve_soc": "reserve",
    "energy_independence": "energy independence",
    "storm_guard_status": "storm guard",
    "load_name": "load",
    "mode": "mode",
    "soc_low": "soc low",
    "essential_start_time": "essential start",
    "essential_end_time": "essential end",
    "cfg_allowed": "charge from grid",
    "dtg_allowed": "discharge to grid",
}


def _asked_rows(expected: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for name, value in expected.items():
        if name == "reserve_soc" or name == "soc_low":
            value = f"{value} %"
        elif name.startswith("essential_"):
            value = _clock(value)
        rows.append((_LABELS.get(name, name), value))
    return rows


def _storm_rows(guard: Any) -> list[tuple[str, Any]]:
    return [("storm guard", guard.storm_guard_status), ("storm alert", guard.storm_alert)]


async def _cmd_storm_guard(ctx: _Context) -> int:
    system_id = ctx.system_id()
    action = ctx.args.action
    if action == "show":
        if ctx.args.wait is not None:
            raise CliError("--wait goes with storm-guard on or off", EXIT_USAGE)
        async with _open_client(ctx) as client:
            guard = await client.get_system_storm_guard(system_id)
        if ctx.json:
            _print_json(_jsonable(guard))
        else:
            _out(_pairs(_storm_rows(guard)))
        return EXIT_OK
    asked = storm_guard_write(enabled=action == "on")
    async with _open_client(ctx) as client:
        result = await client.update_system_storm_guard(
            system_id, action == "on", **wait_options(ctx)
        )
    return report_write(ctx, asked.body, _asked_rows(asked.expected), result, _storm_rows)


async def _cmd_grid_status(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        status = await client.get_system_grid_status(system_id)
    if ctx.json:
        _print_json(_jsonable(status))
    else:
        _out(_pairs([("grid", status.grid_state), ("last report", status.last_report_date)]))
    return EXIT_OK


def _clock(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours:02d}:{rest // 60:02d}"


def _print_load_control(ctx: _Context, control: Any) -> None:
    if ctx.json:
        _print_json(_jsonable(control))
        return
    _out(
        _table(
            ["NAME", "LOAD", "MODE", "SOC LOW", "SOC HIGH", "STATUS", "ESSENTIAL"],
            [
                (
                    c.name,
                    c.load_name,
                    c.mode,
                    c.soc_low,
                    c.soc_high,
                    c.status,
                    None
                    if c.essential_start_time is None
                    else f"{_clock(c.essential_start_time)}-{_clock(c.essential_end_time)}",
                )
                for c in control.load_control_data
            ],
        )
    )


async def _cmd_load_show(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        control = await client.get_system_load_control(system_id)
    _print_load_control(ctx, control)
    return EXIT_OK


async def _cmd_load_set(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    fields: dict[str, Any] = {
        "name": args.name,
        "load_name": args.load_name,
        "mode": args.mode,
        "soc_low": args.soc_low,
        "essential_start_time": args.start,
        "essential_end_time": args.end,
    }
    asked = load_control_write(**fields)
    async with _open_client(ctx) as client:
        result = await client.update_system_load_control(system_id, **fields, **wait_options(ctx))
    asked_rows = [("circuit", asked.circuit), *_asked_rows(asked.expected)]
    return report_write(ctx, asked.body, asked_rows, result, _load_rows)


def _load_rows(control: Any) -> list[tuple[str, Any]]:
    """One row per circuit: its mode, SoC band, status and essential window."""
    rows: list[tuple[str, Any]] = []
    for c in control.load_control_data:
        window = (
            None
            if c.essential_start_time is None
            else f"{_clock(c.essential_start_time)}-{_clock(c.essential_end_time)}"
        )
        rows.append(
            (
                c.name,
                f"{_cell(c.load_name)}, {_cell(c.mode)}, soc {_cell(c.soc_low)}-"
                f"{_cell(c.soc_high)} %, {_cell(c.status)}, essential {_cell(window)}",
            )
        )
    return rows or [("circuits", None)]


async def _cmd_lifetime(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    if args.until is not None and args.until < args.since:
        raise CliError("--until is before --since", EXIT_USAGE)
    async with _open_client(ctx) as client:
        lifetime = await client.get_battery_lifetime(system_id, args.since, args.until)
    days = lifetime.days
    if ctx.json:
        _print_json(
            {
                "system_id": lifetime.system_id,
                "start_date": lifetime.start_date.isoformat(),
                "days": [_jsonable(d) for d in days],
            }
        )
        return EXIT_OK
    rows: list[tuple[Any, ...]] = [(d.date.isoformat(), d.charge_wh, d.discharge_wh) for d in days]
    rows.append(("total", sum(d.charge_wh for d in days), sum(d.discharge_wh for d in days)))
    _out(_table(["DATE", "CHARGE Wh", "DISCHARGE Wh"], rows))
    return EXIT_OK
