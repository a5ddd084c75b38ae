"""``enphase-battery stream --checkpoint postgresql://...`` from two terminals at once: the
systems split between the runs, every interval written once in all, the same intervals a
single run with a SQLite checkpoint writes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import ROOT, Run, SimulatorThread, subprocess_env


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(
        seed=6, systems=6, encharges=1, plan="partner", history=timedelta(hours=4)
    )
    yield thread
    thread.close()


def keys(path: Path) -> list[tuple[int, str, str]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [(r["system_id"], r["source"], r["end_at"]) for r in rows]


@pytest.mark.slow
def test_two_terminals_share_the_systems_through_postgres(
    cli: Run,
    env: dict[str, str],
    sim: EnphaseSimulator,
    tmp_path: Path,
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    since = (sim.clock.now() - timedelta(hours=4)).isoformat()
    common = ["stream", "--all-systems", "--until-caught-up", "--since", since]
    shared = ["--checkpoint", postgres_dsn, "--pg-schema", pg_schema]
    outs = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "enphase_battery", *common, *shared, "--out", str(out)],
            env=subprocess_env(env),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    for run in runs:
        _, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    together = [k for out in outs for k in keys(out)]
    assert len(together) == len(set(together))  # nothing twice, across both terminals
    # The same intervals as one run on a SQLite checkpoint of its own.
    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        *common, "--checkpoint", str(tmp_path / "ref.sqlite"), "--out", str(reference)
    )
    assert code == 0, err
    assert set(together) == set(keys(reference))
    assert {k[0] for k in together} == set(sim.system_ids)
    # A third run on the shared checkpoint finds nothing new (the simulated clock stood still).
    third = tmp_path / "three.jsonl"
    code, _, err = cli(*common, *shared, "--out", str(third))
    assert code == 0, err
    assert keys(third) == []
