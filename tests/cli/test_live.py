"""``now``, ``live`` and ``check`` on the command line, against the simulator (the CLI
fixtures of tests/support/cli.py)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import SINCE, Run, SimulatorThread, one_error_line, subprocess_env


def fast_live(simulated: EnphaseSimulator) -> None:
    simulated.live.frame_period_s = 0.02
    simulated.live.duration_scale = 0.002


def test_now_is_one_line_and_json(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    code, out, err = cli("now", "--system", str(system_id))
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    line = lines[0]
    soc = sim.system(system_id).current_soc_percent()
    assert line.startswith("SoC ")
    # Partner plan: the grid state is asked for too.
    assert "On Grid" in line
    code, out, _ = cli("now", "--system", str(system_id), "--json")
    data = json.loads(out)
    assert data["source"] == "latest"
    assert isinstance(data["soc_percent"], int)
    assert abs(data["soc_percent"] - soc) <= 100
    assert data["grid_state"] == "On Grid"


def test_now_live_reads_one_event(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    fast_live(sim)
    code, out, err = cli("now", "--system", str(system_id), "--live", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["source"] == "live"
    assert data["soc_percent"] == sim.system(system_id).current_soc_percent()
    assert sim.live.connections == 1


def test_live_piped_prints_json_lines_and_the_spend(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    fast_live(sim)
    code, out, err = cli(
        "live", "--system", str(system_id), "--budget", "2", "--duration", "30",
        "--max-frames", "8", "--poll-interval", "0.05",
    )  # fmt: skip
    assert code == 0, err
    frames = [json.loads(line) for line in out.strip().splitlines()]
    assert len(frames) == 8
    sources = [f["source"] for f in frames]
    assert sources[0] == "live"
    assert sources[-1] == "latest"  # two connections, then the budget is spent
    assert sim.live.connections == 2
    assert "2 connection(s), $0.20 spent" in err
    assert "no live data (live budget spent); polling latest_telemetry every 0.05 s" in err


def test_live_bad_budget_and_duration_are_usage_errors(
    cli: Run, env: dict[str, str], system_id: int
) -> None:
    code, _, err = cli("live", "--system", str(system_id), "--budget", "lots")
    assert code == 2
    one_error_line(err)
    code, _, err = cli("live", "--system", str(system_id), "--duration", "10")
    assert code == 2
    assert "duration" in one_error_line(err)


def test_check_reports_spans_and_exit_code(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, system_id: int, tmp_path: Path
) -> None:
    code, out, err = cli(
        "check", "--system", str(system_id), "--since", SINCE, "--until",
        "2026-05-31T23:00:00+00:00", "--step", "6h",
    )  # fmt: skip
    assert code == 0, err
    assert "every span adds up" in out
    assert out.count(" ok") >= 2
    code, out, err = cli(
        "check", "--system", str(system_id), "--since", SINCE, "--battery", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert {s["source"] for s in data["spans"]} == {"battery"}
    assert all(s["verdict"] == "ok" for s in data["spans"])
    code, _, err = cli("check", "--system", str(system_id), "--since", SINCE, "--step", "5m")
    assert code == 2


def test_live_ctrl_c_stops_cleanly_and_shows_the_spend(
    env: dict[str, str], sim: EnphaseSimulator, system_id: int
) -> None:
    sim.live.frame_period_s = 0.05  # streams of 300 s: one connection for the whole test
    argv = [sys.executable, "-m", "enphase_battery", "live", "--system", str(system_id),
            "--budget", "5"]  # fmt: skip
    process = subprocess.Popen(
        argv, env=subprocess_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        process.stdout.readline()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert first["source"] == "live"
    assert process.returncode == 130, err
    assert "1 connection(s), $0.10 spent (budget 5 in all)" in err
    assert "Traceback" not in err
    # The stream was closed, not left to run out its 300 s.
    deadline = time.monotonic() + 5
    while sim.live.open_now and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sim.live.open_now == 0


def test_check_from_a_future_start_is_refused_before_any_request(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, system_id: int
) -> None:
    code, out, err = cli("check", "--system", str(system_id), "--since", "2999-01-01")
    assert code == 2, out
    assert "in the future" in one_error_line(err)
    assert "adds up" not in out
    assert simulator.call(lambda: simulator.sim.request_count) == 0


def test_check_that_checked_nothing_says_so(cli: Run, env: dict[str, str], system_id: int) -> None:
    # After the simulator's newest meter reading (its clock is at 2026-06-01 00:00Z), yet
    # not in the future: no span has readings at both ends.
    code, out, err = cli("check", "--system", str(system_id), "--since", "2026-06-02")
    assert code == 0, err
    assert "every span adds up" not in out
    assert "nothing was checked" in out
    # One request (the newest reading) and the grammar for it.
    assert out.rstrip().endswith("; 1 request)")
