"""``stream --out influxdb://HOST:PORT/DB`` against a real ``influxd``: ``kill -9`` at random
moments, the server restarted in the middle of a run, then a rerun: every interval once
(one point per key), final values and revisions right, nothing skipped."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from tests.support.cli import SimulatorThread, subprocess_env
from tests.support.servers import Influx
from tests.support.sinks import (
    SINCE,
    Rows,
    check_against_truth,
    cli_values,
    run_killed,
    run_to_the_end,
    stream_argv,
)


def read_points(influx: Influx, database: str = "enphase") -> Rows:
    points = influx.query(database, "SELECT * FROM battery_interval")
    rows: Rows = {
        (int(p["system_id"]), p["source"], p["time"]): (
            p["charge_wh"],
            p["discharge_wh"],
            p["soc_percent"],
            p["partial"],
            p["revision"],
        )
        for p in points
    }
    assert len(rows) == len(points)  # one point per (system, source, end_at)
    return rows


def test_kill_9_and_a_server_restart_mid_run_then_a_rerun_leave_every_point_once(
    late_simulator: SimulatorThread, tmp_path: Path, influx: Influx
) -> None:
    simulator = late_simulator
    values = cli_values(simulator.sim, tmp_path)
    argv = stream_argv(
        "--all-systems", "--since", SINCE, "--out", f"influxdb://127.0.0.1:{influx.port}/enphase",
        "--checkpoint", str(tmp_path / "checkpoint.sqlite"),
    )  # fmt: skip
    restarts: list[threading.Thread] = []

    def restart_during(run: int) -> None:
        if run == 1:
            # Down for a second while the stream writes: its writes wait and go on.
            thread = threading.Thread(target=influx.restart)
            thread.start()
            restarts.append(thread)

    killed = run_killed(simulator, values, argv, kills=4, seed=9, during=restart_during)
    for thread in restarts:
        thread.join()
    assert killed >= 3
    run_to_the_end(values, argv, simulator)
    rows = read_points(influx)
    check_against_truth(simulator, rows)
    assert any(revision > 0 for (*_, revision) in rows.values()), "no revision was exercised"


def test_a_stream_waits_for_a_server_that_is_down_and_skips_nothing(
    late_simulator: SimulatorThread, tmp_path: Path, influx: Influx
) -> None:
    """The server is down when the run starts writing and comes back 3 s later: the run
    ends 0 with every interval written, and says once that it is retrying."""
    simulator = late_simulator
    values = cli_values(simulator.sim, tmp_path)
    argv = stream_argv(
        "--all-systems", "--since", SINCE, "--out", f"influxdb://127.0.0.1:{influx.port}/enphase",
        "--checkpoint", str(tmp_path / "checkpoint.sqlite"), "--until-caught-up",
    )  # fmt: skip
    process = subprocess.Popen(
        argv, env=subprocess_env(values), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    # The database is created at start (the server is up); then it goes down.
    time.sleep(0.5)
    influx.stop()
    time.sleep(3)
    influx.start()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("retrying with back-off") <= 1, err
    rows = read_points(influx)
    check_against_truth(simulator, rows)


def test_credentials_on_the_command_line_are_refused(
    late_simulator: SimulatorThread, tmp_path: Path
) -> None:
    values = cli_values(late_simulator.sim, tmp_path)
    done = subprocess.run(
        stream_argv("--all-systems", "--out", "influxdb://me:hunter2@127.0.0.1:1/db"),
        env=subprocess_env(values), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "ENPHASE_INFLUXDB_USER" in done.stderr
    assert "hunter2" not in done.stderr
