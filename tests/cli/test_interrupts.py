"""Ctrl-C at the earliest moments of a run: exit 130, one line, no traceback, nothing lost.

Each run is a real process running what the installed ``enphase-battery`` script runs
(``from enphase_battery.cli import main; sys.exit(main())``), with an import hook that
marks a moment: the first import of a given module.  At that moment the process sends
itself a real SIGINT (the moments are then exact), or tells the test, which sends SIGINT
after a random delay.  The moments count from the CLI's first module rather than from the
spawn: the interpreter's own start-up is not the CLI's (before Python installs its
handler a SIGINT simply ends the process; during ``site`` Python prints its own traceback).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import (
    Run,
    SimulatorThread,
    keys,
    read_jsonl,
    subprocess_env,
    without_coverage,
)

LAUNCHER = """\
import os, signal, sys

class Moment:
    # The first import of $CTRL_C_AT sends this process SIGINT; that of $MARK_AT prints
    # "loading" on stdout for the test.
    def find_spec(self, name, path=None, target=None):
        if name == os.environ.get("CTRL_C_AT"):
            os.environ.pop("CTRL_C_AT")
            os.kill(os.getpid(), signal.SIGINT)
        if name == os.environ.get("MARK_AT"):
            os.environ.pop("MARK_AT")
            os.write(1, b"loading\\n")
        return None

sys.meta_path.insert(0, Moment())
from enphase_battery.cli import main
sys.exit(main())
"""


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    """As in tests/support/cli.py, with 30 days of history: a backfill long enough to interrupt."""
    thread = SimulatorThread(
        seed=3, systems=1, encharges=1, plan="partner", history=timedelta(days=30)
    )
    yield thread
    thread.close()


def spawn(env: dict[str, str], argv: list[str], **moments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *argv],
        env=without_coverage(subprocess_env({**env, **moments})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def assert_interrupted(process: subprocess.Popen[str], err: str) -> None:
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    assert "Warning" not in err  # "coroutine ... was never awaited", "Task was destroyed"
    assert err.strip().splitlines()[-1] == "enphase-battery: interrupted", err


#: Modules a run loads early, in order: asyncio and argparse with the command line (the
#: old CLI loaded them as its module was imported, outside main: a traceback, exit -2),
#: aiohttp with the commands, then cattrs with the first answer or sqlite3 with the
#: stream's checkpoint (while the command runs: its task is cancelled).
MOMENTS = ["asyncio", "argparse", "aiohttp"]


@pytest.mark.parametrize("moment", [*MOMENTS, "cattrs"])
def test_ctrl_c_at_each_early_moment_of_a_command_exits_130(
    env: dict[str, str], system_id: int, moment: str
) -> None:
    for argv in (["systems"], ["settings", "show", "--system", str(system_id)]):
        process = spawn(env, argv, CTRL_C_AT=moment)
        out, err = process.communicate(timeout=60)
        assert_interrupted(process, err)
        assert err.strip() == "enphase-battery: interrupted"
        assert out == ""


@pytest.mark.parametrize("moment", [*MOMENTS, "sqlite3"])
def test_ctrl_c_at_each_early_moment_of_a_stream_exits_130_and_loses_nothing(
    env: dict[str, str], cli: Run, tmp_path: Path, system_id: int, moment: str
) -> None:
    out = tmp_path / "out.jsonl"
    since = "2026-05-25T06:00:00+00:00"
    argv = ["stream", "--system", str(system_id), "--out", str(out), "--since", since,
            "--poll-interval", "3600"]  # fmt: skip
    process = spawn(env, argv, CTRL_C_AT=moment)
    _, err = process.communicate(timeout=60)
    assert_interrupted(process, err)
    # Stopped before its arguments were read, the run knew no --since: the rerun is the
    # same command.  Stopped once the stream had opened its checkpoint, --since was
    # remembered: a rerun without it starts there.
    rerun_since = since if moment in MOMENTS else None
    assert_resumes(cli, tmp_path, system_id, out, since, rerun_since=rerun_since)


def assert_resumes(
    cli: Run, tmp_path: Path, system_id: int, out: Path, since: str, *, rerun_since: str | None
) -> None:
    """A rerun (with ``--since rerun_since`` if given) completes ``out``: every interval
    from ``since`` once, as an uninterrupted run from ``since`` writes them."""
    rerun = ["stream", "--system", str(system_id), "--out", str(out), "--until-caught-up"]
    code, _, err = cli(*rerun, *(["--since", rerun_since] if rerun_since else []))
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


@pytest.mark.slow
def test_ctrl_c_a_random_moment_after_the_cli_starts_loading_exits_130_and_loses_nothing(
    env: dict[str, str],
    simulator: SimulatorThread,
    sim: EnphaseSimulator,
    cli: Run,
    tmp_path: Path,
    system_id: int,
) -> None:
    """SIGINT from the test, 0 to 1.5 s after the CLI's first module (asyncio) starts to
    load: while it loads, parses, builds the client, makes its first requests, backfills."""
    out = tmp_path / "out.jsonl"
    since = "2026-05-10T06:00:00+00:00"  # 3 weeks: about 2 s of requests on Partner
    stream = ["stream", "--system", str(system_id), "--out", str(out), "--since", since,
              "--poll-interval", "3600"]  # fmt: skip
    rng = random.Random(130)
    delays = [0.0, 0.0, *(rng.uniform(0.0, 1.5) for _ in range(5))]
    login = ["auth", "login", "--listen", "0", "--timeout", "60"]
    for delay, argv in [(d, stream) for d in delays] + [(d, login) for d in delays[:3]]:
        process = spawn(env, argv, MARK_AT="asyncio")
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "loading\n"
            time.sleep(delay)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
        assert_interrupted(process, err)
        if argv is login:
            assert "saved" not in err
    # The same command again (the first runs may have stopped before reading --since).
    assert_resumes(cli, tmp_path, system_id, out, since, rerun_since=since)


def test_a_sigint_ignored_at_start_stays_ignored_and_sigterm_still_stops_the_stream(
    env: dict[str, str], tmp_path: Path, system_id: int
) -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored: the CLI
    leaves it so (as Python does), and SIGTERM still stops the stream gracefully."""
    out = tmp_path / "out.jsonl"
    argv = ["stream", "--system", str(system_id), "--out", str(out), "--since",
            "2026-05-31T12:00:00+00:00", "--poll-interval", "3600"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, *argv],
        env=without_coverage(subprocess_env(env)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stderr is not None
        # The stream is under way (its progress line): SIGTERM now is the command's.
        line = process.stderr.readline()
        assert line.startswith(("backfilling: ", "live: ")), line
        process.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "enphase-battery: interrupted", err
