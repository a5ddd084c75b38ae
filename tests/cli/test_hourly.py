"""``enphase-battery stream --hourly`` against the simulator: the final rows (upserted on
``(system_id, source, start)``) equal the rows of every interval the API showed, across
restarts mid-hour, ``--all-systems``, CSV and ``kill -9``."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enphase_battery.models.delivered import BATTERY
from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import (
    SINCE,
    Run,
    SimulatorThread,
    one_error_line,
    read_jsonl,
    subprocess_env,
)
from tests.support.hourly import (
    expected_rows,
    hourly_simulator,
    key_of,
    requests_seen,
    upserted,
)


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = hourly_simulator()
    yield thread
    thread.close()


def read_csv_rows(path: Path) -> list[dict[str, Any]]:
    def number(text: str, kind: type) -> Any:
        return None if text == "" else kind(text)

    with path.open(newline="") as handle:
        return [
            {
                "system_id": int(r["system_id"]),
                "source": r["source"],
                "start": r["start"],
                "charge_wh": int(r["charge_wh"]),
                "discharge_wh": int(r["discharge_wh"]),
                "charge_sum_wh": int(r["charge_sum_wh"]),
                "discharge_sum_wh": int(r["discharge_sum_wh"]),
                "soc_mean": number(r["soc_mean"], float),
                "soc_min": number(r["soc_min"], int),
                "soc_max": number(r["soc_max"], int),
                "intervals": int(r["intervals"]),
                "partial": {"true": True, "false": False}[r["partial"]],
            }
            for r in csv.DictReader(handle)
        ]


def test_a_restart_mid_hour_keeps_the_hour_and_the_sums(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path, system_id: int
) -> None:
    out = tmp_path / "hourly.jsonl"
    checkpoint = tmp_path / "hourly.sqlite"
    common = ("stream", "--system", str(system_id), "--hourly", "--out", str(out),
              "--checkpoint", str(checkpoint))  # fmt: skip
    # 10 intervals of two streams: the run stops inside an hour.
    code, _, err = cli(*common, "--since", SINCE, "--max-intervals", "10")
    assert code == 0, err
    first = read_jsonl(out)
    assert first
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(f"done: 10 intervals in {len(first)} hourly rows written")
    )
    # New data meanwhile: the resumed run completes the cut hour and goes on.
    simulator.call(simulator.sim.clock.advance, timedelta(hours=2))
    code, _, err = cli(*common, "--until-caught-up", "--poll-interval", "0")
    assert code == 0, err
    written = read_jsonl(out)
    second = written[len(first) :]
    corrected = {key_of(r) for r in first} & {key_of(r) for r in second}
    assert corrected, "the hour cut by the restart is written again, completed"
    for key in corrected:
        before = next(r for r in reversed(first) if key_of(r) == key)
        after = next(r for r in reversed(second) if key_of(r) == key)
        assert before["intervals"] < after["intervals"] == 4

    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE, "--out", str(reference),
        "--checkpoint", str(tmp_path / "reference.sqlite"), "--until-caught-up",
        "--poll-interval", "0",
    )  # fmt: skip
    assert code == 0, err
    expected = expected_rows(simulator, read_jsonl(reference))
    assert upserted(written) == expected
    assert {key[1] for key in expected} == {BATTERY, *simulator.sim.encharge_serials(system_id)}
    # Rows go out ascending per stream, each with the sums through its hour.
    for record in written:
        assert record["start"].endswith(":00:00+00:00")


def test_all_systems_csv_resumes_with_one_header(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path
) -> None:
    out = tmp_path / "fleet.csv"
    checkpoint = tmp_path / "fleet.sqlite"
    common = ("stream", "--all-systems", "--hourly", "--format", "csv", "--out", str(out),
              "--checkpoint", str(checkpoint))  # fmt: skip
    code, _, err = cli(*common, "--since", SINCE, "--max-intervals", "30")
    assert code == 0, err
    simulator.call(simulator.sim.clock.advance, timedelta(minutes=75))
    code, _, err = cli(*common, "--until-caught-up")
    assert code == 0, err
    assert out.read_text().count("system_id,") == 1
    written = read_csv_rows(out)

    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        "stream", "--all-systems", "--since", SINCE, "--out", str(reference),
        "--checkpoint", str(tmp_path / "reference.sqlite"), "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    expected = expected_rows(simulator, read_jsonl(reference))
    assert len({key[0] for key in expected}) == 2
    assert upserted(written) == expected


def test_hourly_refuses_a_checkpoint_of_the_other_kind(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path, system_id: int
) -> None:
    plain, hourly = tmp_path / "plain.sqlite", tmp_path / "hourly.sqlite"
    for checkpoint, flags in ((plain, ()), (hourly, ("--hourly",))):
        code, _, err = cli(
            "stream", "--system", str(system_id), "--since", SINCE, "--checkpoint",
            str(checkpoint), "--max-intervals", "3", "--out", str(tmp_path / "x"), *flags,
        )  # fmt: skip
        assert code == 0, err
    before = requests_seen(simulator)
    code, out, err = cli(
        "stream", "--system", str(system_id), "--hourly", "--checkpoint", str(plain)
    )
    assert code == 2, err
    assert "without --hourly" in one_error_line(err)
    code, out, err = cli("stream", "--system", str(system_id), "--checkpoint", str(hourly))
    assert code == 2, err
    assert "is an --hourly one" in one_error_line(err)
    code, out, err = cli("stream", "--all-systems", "--checkpoint", str(hourly))
    assert code == 2, err
    assert out == ""
    assert requests_seen(simulator) == before


# -- kill -9 ------------------------------------------------------------------------------

KILLS = 3


@pytest.fixture
def long_simulator() -> Iterator[SimulatorThread]:
    """30 days of history: a backfill long enough to kill in the middle."""
    thread = SimulatorThread(
        seed=3, systems=1, encharges=1, plan="partner", history=timedelta(days=30)
    )
    yield thread
    thread.close()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_stop_mid_backfill_loses_no_hour_and_no_correction(
    long_simulator: SimulatorThread,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stop: signal.Signals,
) -> None:
    """SIGKILL (or SIGINT) at random moments of a backfill (mid-fetch, mid-write, between
    the write and the commit): the resumed output, upserted, equals the rows of every
    interval."""
    simulator = long_simulator
    sim: EnphaseSimulator = simulator.sim
    values = {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "HOME": str(tmp_path / "home"),
        "ENPHASE_API_KEY": sim.api_key,
        "ENPHASE_CLIENT_ID": sim.client_id,
        "ENPHASE_CLIENT_SECRET": sim.client_secret,
        "ENPHASE_BASE_URL": sim.base_url,
        "ENPHASE_TOKEN_URL": sim.token_url,
        "ENPHASE_AUTHORIZE_URL": sim.authorize_url,
        "ENPHASE_PLAN": "partner",
    }
    from enphase_battery import FileTokenStore

    FileTokenStore(tmp_path / "config" / "enphase-battery" / "token.json").save_sync(sim.token)
    system = sim.system_ids[0]
    out = tmp_path / "hourly.jsonl"
    checkpoint = tmp_path / "cp.sqlite"
    since = "2026-05-03T06:00:00+00:00"  # 4 weeks: about 2 s of requests on Partner
    argv = [sys.executable, "-m", "enphase_battery", "stream", "--system", str(system),
            "--hourly", "--since", since, "--out", str(out), "--checkpoint", str(checkpoint),
            "--poll-interval", "3600"]  # fmt: skip
    rng = random.Random(17)
    killed = 0
    for _ in range(KILLS):
        seen = requests_seen(simulator)
        process = subprocess.Popen(
            argv, env=subprocess_env(values), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            # Counted from the run's first request, not from the spawn (a loaded machine
            # can take seconds to start the interpreter).
            deadline = time.monotonic() + 60
            while requests_seen(simulator) == seen and process.poll() is None:
                assert time.monotonic() < deadline, "the stream made no request in 60 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.2, 2.0))
            process.send_signal(stop)
            _, err = process.communicate(timeout=20)
        finally:
            process.kill()
        if process.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130):
            killed += 1
        assert "Traceback" not in err
        if stop == signal.SIGINT:
            assert process.returncode == 130, err
            assert "interrupted: " in err
    assert killed >= KILLS - 1

    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name in ("ENPHASE_SYSTEM_ID", "ENPHASE_CONFIG", "ENPHASE_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    from enphase_battery.cli import main

    assert main(["stream", "--system", str(system), "--hourly", "--out", str(out),
                 "--checkpoint", str(checkpoint), "--until-caught-up"]) == 0  # fmt: skip
    reference = tmp_path / "reference.jsonl"
    assert main(["stream", "--system", str(system), "--since", since, "--out", str(reference),
                 "--checkpoint", str(tmp_path / "reference.sqlite"),
                 "--until-caught-up"]) == 0  # fmt: skip
    written = read_jsonl(out)  # every line whole: a batch's rows go out in one write
    expected = expected_rows(simulator, read_jsonl(reference))
    assert len(expected) > 24 * 20
    assert upserted(written) == expected


@pytest.fixture
def late_simulator() -> Iterator[SimulatorThread]:
    """Two Encharges, a third of their intervals 3 hours late: battery intervals go out
    partial and come again revised."""
    thread = SimulatorThread(
        seed=5, systems=1, encharges=2, plan="partner", history=timedelta(days=2),
        late_probability=0.3, late_delay=timedelta(hours=3),
    )  # fmt: skip
    yield thread
    thread.close()


def test_revised_intervals_rewrite_their_hours_and_the_sums_after_them(
    late_simulator: SimulatorThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    simulator = late_simulator
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
        "ENPHASE_PLAN": "partner",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    from enphase_battery import FileTokenStore
    from enphase_battery.cli import main

    FileTokenStore(tmp_path / "config" / "enphase-battery" / "token.json").save_sync(sim.token)
    system = str(sim.system_ids[0])
    out, reference = tmp_path / "hourly.jsonl", tmp_path / "reference.jsonl"
    hourly = ["stream", "--system", system, "--hourly", "--out", str(out),
              "--checkpoint", str(tmp_path / "hourly.sqlite"), "--since", SINCE,
              "--until-caught-up", "--poll-interval", "0"]  # fmt: skip
    plain = ["stream", "--system", system, "--out", str(reference),
             "--checkpoint", str(tmp_path / "reference.sqlite"), "--since", SINCE,
             "--until-caught-up", "--poll-interval", "0"]  # fmt: skip
    assert main(hourly) == 0
    assert main(plain) == 0
    first = read_jsonl(out)
    # The late readings arrive; the partial intervals are re-read and revised.
    simulator.call(sim.clock.advance, timedelta(hours=2, minutes=30))
    assert main(hourly) == 0
    assert main(plain) == 0
    intervals = read_jsonl(reference)
    revised = [r for r in intervals if r["revision"] > 0]
    assert revised, "the run saw revisions"
    written = read_jsonl(out)
    expected = expected_rows(simulator, intervals)
    assert upserted(written) == expected
    # Each revised interval's hour was written again, and so was every later hour of
    # that stream whose sum it changed.
    second = upserted(written[len(first) :])
    for record in revised:
        end_at = datetime.fromisoformat(record["end_at"])
        hour = (end_at - timedelta(minutes=15)).replace(minute=0).isoformat()
        assert (record["system_id"], record["source"], hour) in second
