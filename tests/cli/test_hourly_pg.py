"""``enphase-battery stream --hourly --checkpoint postgresql://...``: the hourly state in
the checkpoint's schema, committed with each batch; a restart mid-hour and a second
terminal sharing the systems end on the rows of one pass over the intervals."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.support.cli import (
    ROOT,
    SINCE,
    Run,
    SimulatorThread,
    one_error_line,
    read_jsonl,
    subprocess_env,
)
from tests.support.hourly import expected_rows, hourly_simulator, key_of, requests_seen, upserted


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    thread = hourly_simulator()
    yield thread
    thread.close()


def test_hourly_on_postgres_resumes_and_shares_the_systems(
    cli: Run,
    env: dict[str, str],
    simulator: SimulatorThread,
    tmp_path: Path,
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    shared = ("--checkpoint", postgres_dsn, "--pg-schema", pg_schema)
    common = ("stream", "--all-systems", "--hourly", "--since", SINCE, *shared)
    first_out = tmp_path / "first.jsonl"
    # Cut short inside an hour, then resumed: the cut hour is written again, complete.
    code, _, err = cli(*common, "--out", str(first_out), "--max-intervals", "10")
    assert code == 0, err
    first = read_jsonl(first_out)
    assert first
    simulator.call(simulator.sim.clock.advance, timedelta(hours=2))
    # Two terminals at once on the shared schema: the systems split between them, each
    # going on from the hourly state the first run committed.
    outs = [tmp_path / "one.jsonl", tmp_path / "two.jsonl"]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "enphase_battery", *common, "--until-caught-up",
             "--out", str(out)],
            env=subprocess_env(env),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]  # fmt: skip
    for run in runs:
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err
    later = [read_jsonl(out) for out in outs]
    # A system's rows come from one run or, handed over, its later rows from the other;
    # per file in order, the newest row of each hour is what the consumer keeps.
    final = upserted(first)
    for rows in later:
        final.update(upserted(rows))
    reference = tmp_path / "reference.jsonl"
    code, _, err = cli(
        "stream", "--all-systems", "--since", SINCE, "--until-caught-up", "--out",
        str(reference), "--checkpoint", str(tmp_path / "reference.sqlite"),
    )  # fmt: skip
    assert code == 0, err
    expected = expected_rows(simulator, read_jsonl(reference))
    assert set(final) == set(expected)
    handed = {key_of(r)[0] for r in later[0]} & {key_of(r)[0] for r in later[1]}
    for key, row in expected.items():
        if key[0] not in handed:
            assert final[key] == row, key


def test_hourly_and_plain_runs_refuse_a_schema_of_the_other_kind(
    cli: Run,
    env: dict[str, str],
    simulator: SimulatorThread,
    tmp_path: Path,
    postgres_dsn: str,
    pg_schema: str,
) -> None:
    shared = ("--checkpoint", postgres_dsn, "--pg-schema", pg_schema)
    code, _, err = cli(
        "stream", "--all-systems", "--since", SINCE, *shared, "--max-intervals", "3",
        "--out", str(tmp_path / "plain.jsonl"),
    )  # fmt: skip
    assert code == 0, err
    before = requests_seen(simulator)
    code, _, err = cli("stream", "--all-systems", "--hourly", *shared)
    assert code == 2, err
    assert "without --hourly" in one_error_line(err)
    assert requests_seen(simulator) == before
    other = pg_schema + "_h"
    try:
        code, _, err = cli(
            "stream", "--all-systems", "--hourly", "--since", SINCE, "--checkpoint",
            postgres_dsn, "--pg-schema", other, "--max-intervals", "3", "--format", "csv",
            "--out", str(tmp_path / "h.csv"),
        )  # fmt: skip
        assert code == 0, err
        # One header, the hourly rows' own (not the intervals' as well).
        lines = (tmp_path / "h.csv").read_text().splitlines()
        assert lines[0].startswith("system_id,source,start,")
        assert sum(line.startswith("system_id,") for line in lines) == 1
        before = requests_seen(simulator)
        code, _, err = cli(
            "stream", "--all-systems", "--checkpoint", postgres_dsn, "--pg-schema", other
        )
        assert code == 2, err
        assert "is an --hourly one" in one_error_line(err)
        assert requests_seen(simulator) == before
    finally:
        asyncio.run(_drop(postgres_dsn, other))


async def _drop(dsn: str, schema: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
