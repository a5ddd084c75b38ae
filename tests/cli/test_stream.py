"""``enphase-battery stream`` against the simulator: when it stops, what it refuses, and
whether its progress lines are true."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enphase_battery.simulator import EnphaseSimulator
from enphase_battery.store.sqlite import SqliteCheckpoint
from tests.support.cli import (
    SINCE,
    Run,
    SimulatorThread,
    keys,
    one_error_line,
    read_jsonl,
    subprocess_env,
)


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    """As in tests/support/cli.py, with 30 days of history: a backfill long enough to interrupt."""
    thread = SimulatorThread(
        seed=3, systems=1, encharges=1, plan="partner", history=timedelta(days=30)
    )
    yield thread
    thread.close()


def requests_seen(simulator: SimulatorThread) -> int:
    return simulator.call(lambda: simulator.sim.request_count)


def test_until_caught_up_exits_with_poll_interval_zero(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path, system_id: int
) -> None:
    out = tmp_path / "out.jsonl"
    began = time.monotonic()
    code, _, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE, "--out", str(out),
        "--poll-interval", "0", "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    assert time.monotonic() - began < 30
    written = keys(read_jsonl(out))
    assert len(written) == len(set(written)) > 2 * 40
    # A few polls at most, not hundreds of requests a minute.
    assert requests_seen(simulator) < 20
    assert err.strip().splitlines()[-1].startswith(f"done: {len(written)} intervals written")


def test_since_outside_two_years_exits_2_before_any_request(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, system_id: int, config_dir: Path
) -> None:
    now = datetime.now(UTC)
    for since in (now + timedelta(days=400), now - timedelta(days=900)):
        code, _, err = cli("stream", "--system", str(system_id), "--since", since.isoformat())
        assert code == 2, err
        assert "two years back" in one_error_line(err)
    assert requests_seen(simulator) == 0
    assert not list(config_dir.glob("stream-*"))  # nothing remembered, nothing created


def test_a_second_stream_on_a_held_checkpoint_is_refused_with_one_line(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path, system_id: int
) -> None:
    checkpoint = tmp_path / "cp.sqlite"
    holder = SqliteCheckpoint(checkpoint)  # what a running stream (or SDK poller) holds
    asyncio.run(holder.acquire())
    try:
        code, out, err = cli(
            "stream", "--system", str(system_id), "--since", SINCE,
            "--checkpoint", str(checkpoint), "--until-caught-up",
        )  # fmt: skip
    finally:
        asyncio.run(holder.close())
    assert code == 1, err
    assert out == ""
    line = one_error_line(err)
    assert "in use by another poller" in line
    assert str(checkpoint) in line
    code, out, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE,
        "--checkpoint", str(checkpoint), "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    assert out


def test_an_empty_checkpoint_is_one_line_and_no_output(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, tmp_path: Path, system_id: int
) -> None:
    checkpoint = tmp_path / "cp.sqlite"
    checkpoint.write_bytes(b"")
    code, out, err = cli(
        "stream", "--system", str(system_id), "--checkpoint", str(checkpoint), "--until-caught-up"
    )
    assert code == 1, err
    assert out == ""
    line = one_error_line(err)
    assert str(checkpoint) in line
    assert "empty" in line


def test_piped_progress_lines_are_true(
    cli: Run, env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    out = tmp_path / "out.jsonl"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--since", SINCE, "--out", str(out),
        "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    written = len(read_jsonl(out))
    lines = err.strip().splitlines()
    # Backfilling first (0 written so far, or some), then live once all of it is written,
    # and a last line with the final count.
    assert lines[0].startswith("backfilling: ")
    live = [line for line in lines if line.startswith("live: ")]
    assert live
    assert live[0].startswith(f"live: {written} intervals written")
    assert lines[-1].startswith(f"done: {written} intervals written")
    for line in lines:
        count = int(line.split(": ", 1)[1].split(" ", 1)[0])
        assert count <= written


@pytest.mark.slow
def test_interrupted_stream_prints_a_final_count_and_loses_nothing(
    env: dict[str, str],
    simulator: SimulatorThread,
    sim: EnphaseSimulator,
    cli: Run,
    tmp_path: Path,
    system_id: int,
) -> None:
    """SIGINT at random moments of a backfill (mid-fetch, mid-write, while waiting): the
    last line is the true count, and the resumed output has every interval once."""
    out = tmp_path / "out.jsonl"
    checkpoint = tmp_path / "cp.sqlite"
    since = "2026-05-03T06:00:00+00:00"  # 4 weeks: about 2 s of requests on Partner
    argv = [sys.executable, "-m", "enphase_battery", "stream", "--system", str(system_id),
            "--since", since, "--out", str(out), "--checkpoint", str(checkpoint),
            "--poll-interval", "3600"]  # fmt: skip
    rng = random.Random(16)
    for _ in range(4):
        before = len(read_jsonl(out)) if out.exists() else 0
        seen = requests_seen(simulator)
        process = subprocess.Popen(
            argv, env=subprocess_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            # The random moment counts from the stream's first request (its devices
            # list, once it has remembered --since), not from the spawn: on a loaded
            # machine the interpreter alone can take seconds to start, and a signal
            # then lands before the backfill (or before Python's handler exists).
            deadline = time.monotonic() + 60
            while requests_seen(simulator) == seen and process.poll() is None:
                assert time.monotonic() < deadline, "the stream made no request in 60 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 2.0))
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=20)
        finally:
            process.kill()
        assert process.returncode == 130, err
        assert "Traceback" not in err
        assert "progress saved" not in err
        final = [line for line in err.splitlines() if line.startswith("interrupted: ")]
        now_written = len(read_jsonl(out)) if out.exists() else 0
        if now_written > before or final:
            assert final, err
            assert final[-1].startswith(f"interrupted: {now_written - before} intervals written")
    code, _, err = cli(
        "stream", "--system", str(system_id), "--out", str(out), "--checkpoint",
        str(checkpoint), "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    resumed = keys(read_jsonl(out))
    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        "stream", "--system", str(system_id), "--since", since, "--out", str(reference),
        "--checkpoint", str(tmp_path / "reference.sqlite"), "--until-caught-up",
    )  # fmt: skip
    assert code == 0, err
    assert len(resumed) == len(set(resumed))
    assert sorted(resumed) == sorted(keys(read_jsonl(reference)))


def test_interrupted_login_does_not_claim_progress_was_saved(
    env: dict[str, str], token_path: Path
) -> None:
    token_path.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "enphase_battery", "auth", "login", "--listen", "0",
         "--timeout", "20"],
        env=subprocess_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # wait for the authorize URL: it is listening
            line = process.stderr.readline()
            if not line or line.strip().startswith("http"):
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "saved" not in err
    assert not token_path.exists()


def test_revise_for_outside_what_the_poller_honours_exits_2_before_any_request(
    cli: Run, env: dict[str, str], simulator: SimulatorThread, system_id: int, config_dir: Path
) -> None:
    for value in ("30m", "8d", "-1h", "soon", "nan"):
        code, _, err = cli("stream", "--system", str(system_id), "--revise-for", value)
        assert code == 2, (value, err)
        assert "--revise-for" in one_error_line(err)
    assert requests_seen(simulator) == 0
    assert not list(config_dir.glob("stream-*"))
