"""``tariff``, ``battery-mode show|set`` and ``--wait`` on every ``set``, against the simulator.

``main(argv)`` runs its own event loop, so the simulator serves from a thread with a loop
of its own (as in the other CLI tests); its gateway takes :data:`DELAY_S` to apply a write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery import FileTokenStore
from enphase_battery.cli import main
from tests.support.cli import Run, SimulatorThread

DELAY_S = 0.3
#: Fast confirmation reads for the tests.
WAIT = ("--wait", "5", "--wait-interval", "0.1")


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(
        seed=3, systems=2, encharges=[1, 0], plan="partner", history=timedelta(days=1),
        write_delay_s=DELAY_S,
    )  # fmt: skip
    yield thread
    thread.close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, simulator: SimulatorThread) -> None:
    sim = simulator.sim
    for name in list(os.environ):
        if name.startswith("ENPHASE_"):
            monkeypatch.delenv(name)
    values = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path / "home"),
        "ENPHASE_API_KEY": sim.api_key,
        "ENPHASE_CLIENT_ID": sim.client_id,
        "ENPHASE_CLIENT_SECRET": sim.client_secret,
        "ENPHASE_BASE_URL": sim.base_url,
        "ENPHASE_TOKEN_URL": sim.token_url,
        "ENPHASE_AUTHORIZE_URL": sim.authorize_url,
        # The fastest plan: its limiter spaces requests 0.2 s apart.
        "ENPHASE_PLAN": "partner",
        "ENPHASE_SYSTEM_ID": str(sim.system_ids[0]),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    FileTokenStore(tmp_path / "config" / "enphase-battery" / "token.json").save_sync(sim.token)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], env: None) -> Run:
    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_tariff_table_and_json(cli: Run) -> None:
    code, out, err = cli("tariff")
    assert code == 0, err
    assert out.splitlines()[0].split() == ["currency", "USD"]
    header = next(line for line in out.splitlines() if "SEASON" in line)
    assert header.split()[:4] == ["SEASON", "FROM", "DAYS", "START"]
    assert any(line.split()[:1] == ["buy"] and "17:00" in line for line in out.splitlines())
    code, out, err = cli("tariff", "--json")
    assert code == 0, err
    body = json.loads(out)
    periods = body["tariff"]["seasons"][0]["days"][0]["periods"]
    assert [p["start"] for p in periods] == ["00:00:00", "17:00:00", "21:00:00"]


def test_battery_mode_set_and_wait_applied(cli: Run, simulator: SimulatorThread) -> None:
    code, out, err = cli("battery-mode", "show", "--json")
    assert code == 0, err
    assert json.loads(out) == {"cfg_allowed": False, "dtg_allowed": False}

    code, out, err = cli("battery-mode", "set", "--cfg", "on", "--dtg", "off", *WAIT)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "asked"
    assert lines[1].split() == ["charge", "from", "grid", "on"]
    assert "API answered" in lines
    assert any("Battery mode updated successfully" in line for line in lines)
    gateway = next(line for line in lines if line.startswith("gateway:"))
    assert gateway.startswith("gateway: applied (")
    assert lines[-2].split() == ["charge", "from", "grid", "on"]

    code, out, err = cli("battery-mode", "set", "--cfg", "off", "--dtg", "on", "--json", *WAIT)
    assert code == 0, err
    report = json.loads(out)
    assert report["asked"] == {"CFG_allowed": False, "DTG_allowed": True}
    assert report["answer"] == {"message": "Battery mode updated successfully"}
    assert report["gateway"]["outcome"] == "applied"
    assert report["gateway"]["state"] == {"cfg_allowed": False, "dtg_allowed": True}
    assert report["gateway"]["reads"] >= 2  # the first read came before the gateway


def test_battery_mode_set_without_wait_prints_no_gateway(cli: Run) -> None:
    code, out, err = cli("battery-mode", "set", "--cfg", "on", "--dtg", "on", "--json")
    assert code == 0, err
    assert set(json.loads(out)) == {"asked", "answer"}


def test_wait_pending_and_overridden_exit_6(cli: Run, simulator: SimulatorThread) -> None:
    simulator.call(simulator.sim.writes.refuse_next)
    code, out, err = cli(
        "battery-mode", "set", "--cfg", "on", "--dtg", "on", "--wait", "0.6",
        "--wait-interval", "0.1", "--json",
    )  # fmt: skip
    assert code == 6, err
    report = json.loads(out)
    assert report["gateway"]["outcome"] == "pending"
    assert report["gateway"]["mismatched"] == ["cfg_allowed", "dtg_allowed"]

    code, out, err = cli("storm-guard", "on", "--wait", "0.2", "--wait-interval", "0.05")
    assert code == 6, err
    assert "gateway: pending" in out
    assert "not shown as asked: storm_guard_status" in out

    # Applied, then put back while --settle keeps watching: overridden.
    simulator.call(simulator.sim.writes.configure, {"next": ["revert"], "revert_after_s": 0.6})
    code, out, err = cli(
        "battery-mode", "set", "--cfg", "on", "--dtg", "on", "--wait", "5",
        "--wait-interval", "0.1", "--settle", "2.5",
    )  # fmt: skip
    assert code == 6, err
    assert "gateway: overridden" in out
    assert "not shown as asked: cfg_allowed, dtg_allowed" in out


def test_wait_on_every_existing_set(cli: Run) -> None:
    code, out, err = cli("settings", "set", "--reserve", "42", "--json", *WAIT)
    assert code == 0, err
    report = json.loads(out)
    assert report["asked"] == {"reserve_soc": 42}
    assert report["answer"]["reserve_soc"] == 42
    assert report["gateway"]["outcome"] == "applied"
    assert report["gateway"]["state"]["reserve_soc"] == 42

    code, out, err = cli("storm-guard", "on", *WAIT)
    assert code == 0, err
    assert "gateway: applied" in out

    code, out, err = cli(
        "load-control", "set", "--name", "NC2", "--mode", "Basic", "--start", "07:30", *WAIT
    )
    assert code == 0, err
    assert out.splitlines()[:4] == [
        "asked",
        "  circuit          NC2",
        "  mode             Basic",
        "  essential start  07:30",
    ]
    assert "gateway: applied" in out


def test_pv_only_and_usage_errors_are_one_line(cli: Run, simulator: SimulatorThread) -> None:
    pv_only = str(simulator.sim.system_ids[1])
    code, _, err = cli("battery-mode", "show", "--system", pv_only)
    assert code == 1
    assert "PV only site" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("battery-mode", "set", "--cfg", "on")
    assert code == 2
    assert "--dtg" in err
    code, _, err = cli("storm-guard", "show", "--wait")
    assert code == 2
    assert "--wait goes with" in err
    code, _, err = cli("battery-mode", "set", "--cfg", "on", "--dtg", "on", "--wait", "0")
    assert code == 2
    assert simulator.sim.writes.counts["accepted"] == 0
