"""``enphase-battery stream --all-systems`` and repeated ``--system``: one checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery.simulator import EnphaseSimulator
from tests.support.cli import Run, SimulatorThread


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = SimulatorThread(
        seed=4, systems=3, encharges=1, plan="partner", history=timedelta(hours=6)
    )
    yield thread
    thread.close()


def rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def test_stream_all_systems_writes_every_systems_rows_once_and_resumes(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, tmp_path: Path, config_dir: Path
) -> None:
    out = tmp_path / "fleet.jsonl"
    code, _, err = cli(
        "stream",
        "--all-systems",
        "--until-caught-up",
        "--since",
        (sim.clock.now() - timedelta(hours=6)).isoformat(),
        "--out",
        str(out),
    )
    assert code == 0, err
    written = rows(out)
    assert {r["system_id"] for r in written} == set(sim.system_ids)
    keys = [(r["system_id"], r["source"], r["end_at"]) for r in written]
    assert len(keys) == len(set(keys))
    sources = {(r["system_id"], r["source"]) for r in written}
    assert len(sources) == 2 * len(sim.system_ids)  # battery + one Encharge each
    assert (config_dir / "stream-fleet.sqlite").exists()
    # A rerun on the same checkpoint has nothing new (the simulated clock stood still).
    code, _, err = cli("stream", "--all-systems", "--until-caught-up", "--out", str(out))
    assert code == 0, err
    assert len(rows(out)) == len(written)


def test_stream_repeated_system_follows_those_only(
    cli: Run, env: dict[str, str], sim: EnphaseSimulator, tmp_path: Path
) -> None:
    first, _second, third = sim.system_ids
    out = tmp_path / "two.jsonl"
    code, _, err = cli(
        "stream",
        "--system",
        str(first),
        "--system",
        str(third),
        "--until-caught-up",
        "--since",
        (sim.clock.now() - timedelta(hours=2)).isoformat(),
        "--checkpoint",
        str(tmp_path / "two.sqlite"),
        "--out",
        str(out),
    )
    assert code == 0, err
    assert {r["system_id"] for r in rows(out)} == {first, third}


def test_all_systems_with_a_per_system_flag_is_refused(cli: Run, env: dict[str, str]) -> None:
    code, _, err = cli("stream", "--all-systems", "--encharge", "123456789012")
    assert code == 2
    assert "--encharge" in err
