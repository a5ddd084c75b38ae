"""``tariff`` and ``battery-mode show|set``: the Commissioning API's battery operations
(Partner plan).

``tariff`` prints one row per period of each season's day groups (when it starts, its
rate, whether the battery may charge from / discharge to the grid, the forced-charge
window); ``battery-mode set --cfg on|off --dtg on|off`` sets both flags at once, as the
API requires, and prints what was asked, what the API answered and, with ``--wait``, what
the gateway shows (:mod:`.writes`).
"""

from __future__ import annotations

from typing import Any

from enphase_battery.cli.errors import EXIT_OK
from enphase_battery.cli.output import _jsonable, _out, _pairs, _print_json, _table
from enphase_battery.cli.session import _open_client
from enphase_battery.cli.settings import _Context
from enphase_battery.cli.writes import report_write, wait_options
from enphase_battery.client.endpoints.writes import battery_mode_write
from enphase_battery.models.commissioning import SystemTariff, TariffSeason

__all__ = ["_cmd_battery_mode_set", "_cmd_battery_mode_show", "_cmd_tariff"]


def _season_rows(kind: str, seasons: tuple[TariffSeason, ...]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for season in seasons:
        for group in season.days:
            cfg = group.enable_charge_from_grid
            dtg = group.enable_discharge_to_grid
            window = group.must_charge_window
            must = None if window is None else f"{window[0]:%H:%M}+{window[1]}"
            for period in group.periods:
                rows.append(
                    (
                        kind,
                        season.id,
                        season.start,
                        ",".join(group.days) or group.id,
                        None if period.start is None else f"{period.start:%H:%M}",
                        None if period.rate is None else str(period.rate),
                        season.enable_charge_from_grid if cfg is None else cfg,
                        season.enable_discharge_to_grid if dtg is None else dtg,
                        must,
                    )
                )
    return rows


def _print_tariff(ctx: _Context, answer: SystemTariff) -> None:
    if ctx.json:
        _print_json(_jsonable(answer))
        return
    tariff = answer.tariff
    rate = tariff.single_rate
    header = [
        ("currency", tariff.currency),
        ("single rate", None if rate is None or rate.rate is None else str(rate.rate)),
        ("single sell", None if rate is None or rate.sell is None else str(rate.sell)),
        ("task", None if answer.task is None else answer.task.status),
    ]
    rows = _season_rows("buy", tariff.seasons) + _season_rows("sell", tariff.seasons_sell)
    _out(_pairs(header))
    if rows:
        _out(
            _table(
                ["", "SEASON", "FROM", "DAYS", "START", "RATE", "CFG", "DTG", "MUST CHARGE"],
                rows,
            )
        )


async def _cmd_tariff(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        answer = await client.get_system_tariff(system_id)
    _print_tariff(ctx, answer)
    return EXIT_OK


def _mode_rows(settings: Any) -> list[tuple[str, Any]]:
    return [
        ("charge from grid", settings.cfg_allowed),
        ("discharge to grid", settings.dtg_allowed),
    ]


def _message_rows(update: Any) -> list[tuple[str, Any]]:
    return [("message", update.message)]


async def _cmd_battery_mode_show(ctx: _Context) -> int:
    system_id = ctx.system_id()
    async with _open_client(ctx) as client:
        settings = await client.get_battery_mode(system_id)
    if ctx.json:
        _print_json(_jsonable(settings))
    else:
        _out(_pairs(_mode_rows(settings)))
    return EXIT_OK


async def _cmd_battery_mode_set(ctx: _Context) -> int:
    args = ctx.args
    system_id = ctx.system_id()
    cfg, dtg = args.cfg == "on", args.dtg == "on"
    asked = battery_mode_write(cfg_allowed=cfg, dtg_allowed=dtg)
    async with _open_client(ctx) as client:
        result = await client.update_battery_mode(
            system_id, cfg_allowed=cfg, dtg_allowed=dtg, **wait_options(ctx)
        )
    return report_write(
        ctx, asked.body, _mode_rows_of(asked.expected), result, _mode_rows, _message_rows
    )


def _mode_rows_of(expected: Any) -> list[tuple[str, Any]]:
    return [
        ("charge from grid", expected["cfg_allowed"]),
        ("discharge to grid", expected["dtg_allowed"]),
    ]
