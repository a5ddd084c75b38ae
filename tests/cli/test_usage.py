"""``usage.json``, a month 429, and ``enphase-battery usage [--reset]`` (issue 8, item 12)."""

from __future__ import annotations

import json
from pathlib import Path

from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import Run, SimulatorThread, one_error_line

# The CLI tests' fixtures: a simulator in a thread, a config dir, credentials in env.


def test_a_month_429_locks_only_that_plan_says_where_and_resets(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, config_dir: Path
) -> None:
    sim: EnphaseSimulator = simulator.sim
    simulator.call(sim.faults.exhaust_monthly_quota)
    code, _, err = cli("systems")
    assert code == 4
    simulator.call(sim.limiter.reset)  # the server would take requests again
    before = sim.request_count
    code, _, err = cli("systems")
    # The local count follows the server's word for the rest of the month: no request.
    assert code == 4
    assert sim.request_count == before
    line = one_error_line(err)
    assert str(config_dir / "usage.json") in line
    assert "enphase-battery usage --reset" in line
    # Another plan is not locked by the Partner plan's count.
    code, _, err = cli("--plan", "kilowatt", "systems")
    assert code == 0, err
    # usage shows the count and where it lives; --reset clears it.
    code, out, _ = cli("usage", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["plan"] == "partner"
    assert shown["remaining"] == 0
    assert shown["file"] == str(config_dir / "usage.json")
    assert cli("usage", "--reset")[0] == 0
    code, _, err = cli("systems")
    assert code == 0, err


def test_usage_shows_this_months_count(cli: Run, env: dict[str, str]) -> None:
    assert cli("systems")[0] == 0
    assert cli("systems")[0] == 0
    code, out, _ = cli("usage")
    assert code == 0
    assert "2 of 1500000" in out
    # One "name  value" row per line from the first: no blank header line, and no
    # background row claiming 0 requests when nothing ran as background work.
    lines = out.splitlines()
    assert lines[0].split() == ["plan", "partner"]
    assert not any(line.startswith(("background", "by pollers")) for line in lines)
