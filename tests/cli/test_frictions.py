"""Issue 20, item 3: the CLI frictions a new user hit, each with its test."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.cli import SINCE, Run, subprocess_env


def test_csv_spells_partial_as_jsonl_does(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    code, out, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE, "--format", "csv",
        "--max-intervals", "5", "--checkpoint", str(tmp_path / "cp.sqlite"),
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows
    assert {row["partial"] for row in rows} <= {"true", "false"}


def test_json_backend_that_cannot_be_had_is_one_line_and_exit_2(tmp_path: Path) -> None:
    # orjson made unimportable for this process: a module of that name that fails.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "orjson.py").write_text("raise ImportError('No module named orjson')\n")
    values = subprocess_env({"ENPHASE_BATTERY_JSON": "orjson"})
    values["PYTHONPATH"] = f"{shadow}:{values['PYTHONPATH']}"
    for value in ("orjson", "bogus"):
        values["ENPHASE_BATTERY_JSON"] = value
        done = subprocess.run(
            [sys.executable, "-m", "enphase_battery", "systems"],
            env=values, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "ENPHASE_BATTERY_JSON" in done.stderr


def test_a_rerun_with_the_same_since_does_not_warn(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    out = str(tmp_path / "o.jsonl")
    base = ("stream", "--system", str(system_id), "--since", SINCE,
            "--checkpoint", str(tmp_path / "cp.sqlite"), "--out", out)  # fmt: skip
    for _ in range(2):
        code, _, err = cli(*base, "--max-intervals", "2")
        assert code == 0, err
        assert "already has a position" not in err
    # A different --since still says it is not applied.
    code, _, err = cli(*base[:4], "2026-05-31T18:00:00+00:00", *base[5:], "--max-intervals", "1")
    assert code == 0, err
    assert "already has a position" in err


def test_a_short_poll_interval_is_shown_in_seconds(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    from enphase_battery.cli.stream import _every

    assert _every(1) == "1 s"
    assert _every(90) == "90 s"
    assert _every(900) == "15 min"
    assert _every(3 * 3600) == "3.0 h"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--poll-interval", "1", "--until-caught-up",
        "--checkpoint", str(tmp_path / "cp.sqlite"), "--out", str(tmp_path / "o.jsonl"),
    )  # fmt: skip
    assert code == 0, err
    assert "every 0 min" not in err


def test_telemetry_with_an_unknown_encharge_exits_2_with_the_known_serials(
    cli: Run, env: dict[str, str], system_id: int, sim: object
) -> None:
    code, _, err = cli("telemetry", "--system", str(system_id), "--since", SINCE,
                         "--encharge", "999")  # fmt: skip
    assert code == 2, err
    line = err.strip()
    assert "unknown Encharge 999" in line
    serials = sim.encharge_serials(system_id)  # type: ignore[attr-defined]
    assert all(serial in line for serial in serials)
    # And stream says the same.
    code, _, stream_err = cli("stream", "--system", str(system_id), "--encharge", "999",
                              "--until-caught-up")  # fmt: skip
    assert code == 2
    assert stream_err.strip().split(";")[0] == line.split(";")[0]


def test_an_idle_fleet_says_when_it_polls_next_and_a_stop_prints_the_summary(
    env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "fleet.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "enphase_battery", "stream", "--all-systems", "--since", SINCE,
         "--out", str(out), "--checkpoint", str(tmp_path / "cp.sqlite")],
        env=subprocess_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("next poll in" in line for line in lines):
            assert process.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    finally:
        process.kill()
    reader.join(timeout=10)
    assert process.returncode == 130
    text = "".join(lines)
    assert "Traceback" not in text
    assert any(line.startswith("interrupted: 1 systems, ") for line in lines), text


def test_a_wait_for_the_plans_spacing_is_said_once_on_a_terminal(
    env: dict[str, str], system_id: int, tmp_path: Path
) -> None:
    """On Watt (one request every 6 s) `now` makes three requests: a terminal is told once
    what it waits for; a script's stderr (not a terminal) stays silent."""
    values = {**env, "ENPHASE_PLAN": "watt"}
    argv = [sys.executable, "-m", "enphase_battery", "now", "--system", str(system_id)]
    main, terminal = pty.openpty()
    try:
        done = subprocess.run(
            argv, env=subprocess_env(values), stdout=subprocess.PIPE, stderr=terminal,
            text=True, timeout=120,
        )  # fmt: skip
        os.close(terminal)
        seen = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(main, 4096):
                seen += chunk
    finally:
        os.close(main)
    assert done.returncode == 0, seen
    notices = [line for line in seen.decode().splitlines() if "waiting" in line]
    assert len(notices) == 1, seen
    assert notices[0].startswith("enphase-battery: waiting ")
    assert "watt plan's spacing (one request every 6 s)" in notices[0]
    piped = subprocess.run(
        argv, env=subprocess_env(values), capture_output=True, text=True, timeout=120
    )
    assert piped.returncode == 0, piped.stderr
    assert "waiting" not in piped.stderr


def test_live_on_a_plan_without_live_data_spends_nothing_and_shows_the_soc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Watt has no live_data: the 403 is not reported as spent, and the fallback frame
    carries the SoC `now` shows (the same source: the battery telemetry's newest SoC)."""
    import json
    from datetime import timedelta

    from enphase_battery.cli import main
    from tests.support.cli import SimulatorThread
    from tests.support.sinks import cli_values

    thread = SimulatorThread(seed=3, systems=1, encharges=1, plan="watt",
                             history=timedelta(days=1), enforce_plan_access=True)  # fmt: skip
    try:
        values = cli_values(thread.sim, tmp_path)
        values["ENPHASE_PLAN"] = "watt"
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        system = str(thread.sim.system_ids[0])
        assert main(["live", "--system", system, "--max-frames", "1"]) == 0
        out, err = capsys.readouterr()
        frame = json.loads(out.strip().splitlines()[0])
        assert frame["source"] == "latest"
        assert "0 connection(s), $0.00 spent" in err, err
        assert main(["now", "--system", system, "--json"]) == 0
        now = json.loads(capsys.readouterr().out)
        assert isinstance(frame["battery_soc"], int)
        assert frame["battery_soc"] == now["soc_percent"]
    finally:
        thread.close()
