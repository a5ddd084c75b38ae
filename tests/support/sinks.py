"""Shared by the sink tests: a simulator with late data, CLI runs killed at random
moments (``kill -9``) while the simulated clock moves, and the check of what a sink
holds against the simulator's ground truth."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from enphase_battery import FileTokenStore
from enphase_battery.models.delivered import BATTERY
from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import SimulatorThread, subprocess_env

#: Where the runs start: a day and a half of backfill, then live intervals.
SINCE = "2026-05-30T00:00:00+00:00"
#: Each kill comes this long (real seconds) after the run's first request, at random.
KILL_AFTER = (0.3, 2.5)
#: The simulated clock moves this far after each poll (late parts then arrive mid-run).
STEP = timedelta(minutes=20)

#: The simulated clock moves this far before each run.
JUMP = timedelta(hours=1)

Key = tuple[int, str, int]
#: (charge_wh, discharge_wh, soc_percent, partial, revision) by (system, source, end_at s).
Rows = dict[Key, tuple[int, int, int | None, bool, int]]


def cli_values(sim: EnphaseSimulator, tmp_path: Path) -> dict[str, str]:
    """The environment of a CLI run against ``sim``, with its token saved."""
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
    FileTokenStore(tmp_path / "config" / "enphase-battery" / "token.json").save_sync(sim.token)
    return values


def requests_seen(simulator: SimulatorThread) -> int:
    return simulator.call(lambda: simulator.sim.request_count)


def stream_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "enphase_battery", "stream", *args]


def run_killed(
    simulator: SimulatorThread,
    values: dict[str, str],
    argv: list[str],
    *,
    kills: int,
    seed: int,
    during: Any = None,
) -> int:
    """Start ``argv`` ``kills`` times and ``kill -9`` it at a random moment after its
    first request, moving the simulated clock on after each poll and by an hour before
    each run (intervals left partial then get their late parts: revisions); ``during(i)``
    is called mid-run ``i`` (a server restart).  Returns how many runs were killed."""
    rng = random.Random(seed)
    killed = 0
    for i in range(kills):
        simulator.call(simulator.sim.clock.advance, JUMP)
        seen = requests_seen(simulator)
        process = subprocess.Popen(
            argv, env=subprocess_env(values), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while requests_seen(simulator) == seen and process.poll() is None:
                assert time.monotonic() < deadline, "the stream made no request in 60 s"
                time.sleep(0.01)
            until = time.monotonic() + rng.uniform(*KILL_AFTER)
            last = requests_seen(simulator)
            if during is not None:
                during(i)
            while time.monotonic() < until and process.poll() is None:
                now_seen = requests_seen(simulator)
                if now_seen - last >= 4:
                    simulator.call(simulator.sim.clock.advance, STEP)
                    last = now_seen
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            _, err = process.communicate(timeout=20)
        finally:
            process.kill()
        assert "Traceback" not in err, err
        if process.returncode == -signal.SIGKILL:
            killed += 1
    return killed


def run_to_the_end(
    values: dict[str, str], argv: list[str], simulator: SimulatorThread | None = None
) -> str:
    """Run ``argv`` with ``--until-caught-up`` (three times, an hour apart on the
    simulated clock, when given the ``simulator``); each must end with 0.  Returns the
    last stderr."""
    for _ in range(1 if simulator is None else 3):
        if simulator is not None:
            simulator.call(simulator.sim.clock.advance, JUMP)
        done = subprocess.run(
            [*argv, "--until-caught-up"], env=subprocess_env(values),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
    return done.stderr


def check_against_truth(simulator: SimulatorThread, rows: Rows, since: str = SINCE) -> int:
    """Every row is an interval of the simulator; every interval every device has
    reported is there once, with its final values, not partial.  Returns how many."""
    sim = simulator.sim
    start = datetime.fromisoformat(since)
    now = simulator.call(sim.clock.timestamp)
    truth: dict[Key, tuple[int, int, int | None]] = {}
    complete: set[Key] = set()
    for system in sim.system_ids:
        for b in simulator.call(sim.ground_truth_battery, system, start, now):
            if b.devices:
                truth[(system, BATTERY, int(b.end_at))] = (
                    b.charge_wh, b.discharge_wh, b.soc_percent,
                )  # fmt: skip
        for serial in simulator.call(sim.encharge_serials, system):
            for e in simulator.call(sim.ground_truth_encharge, system, serial, start, now):
                key = (system, serial, int(e.end_at))
                truth[key] = (e.charge_wh, e.discharge_wh, e.soc_percent)
    for key in truth:
        if simulator.call(_reported, sim, key):
            complete.add(key)
    unknown = set(rows) - set(truth)
    assert not unknown, sorted(unknown)[:5]
    missing = complete - set(rows)
    assert not missing, sorted(missing)[:5]
    wrong = [
        (key, rows[key], truth[key])
        for key in complete
        if rows[key][:3] != truth[key] or rows[key][3]
    ]
    assert not wrong, wrong[:5]
    assert len(complete) > 100
    return len(complete)


def _reported(sim: EnphaseSimulator, key: Key) -> bool:
    system_id, source, end_at = key
    system = sim.system(system_id)
    now = sim.clock.timestamp()
    devices = [
        d
        for d in system.encharges
        if (source == BATTERY or d.serial == source) and 0 <= d.index(end_at) < len(d)
    ]
    return bool(devices) and all(sim.arrival.visible_at(d, d.index(end_at)) <= now for d in devices)
