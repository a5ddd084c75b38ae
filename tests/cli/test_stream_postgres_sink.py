"""``stream --out postgresql://DSN``: the rows in ``battery_interval`` of the
``--pg-schema`` schema, committed with the checkpoint in one fenced transaction; ``kill -9``
at random moments, then two processes sharing the systems: nothing lost, nothing doubled,
final values and revisions right (counted against the simulator's ground truth)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from enphase_battery.cli.pg_stream import LEASE_TTL_S
from tests.support.cli import SimulatorThread, subprocess_env
from tests.support.sinks import (
    JUMP,
    SINCE,
    Rows,
    check_against_truth,
    cli_values,
    run_killed,
    stream_argv,
)


async def _setup(dsn: str, schema: str) -> None:
    """The sink's table, with a log of every committed write (a trigger, in the same
    transaction) and its revision."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"""
            CREATE SCHEMA IF NOT EXISTS "{schema}";
            CREATE TABLE "{schema}".battery_interval (
                system_id bigint NOT NULL, source text NOT NULL, end_at timestamptz NOT NULL,
                charge_wh bigint NOT NULL, discharge_wh bigint NOT NULL, soc_percent integer,
                partial boolean NOT NULL, revision integer NOT NULL,
                PRIMARY KEY (system_id, source, end_at));
            CREATE TABLE "{schema}".writes (
                system_id bigint, source text, end_at timestamptz, revision integer);
            CREATE FUNCTION "{schema}".log_write() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO "{schema}".writes
                        VALUES (NEW.system_id, NEW.source, NEW.end_at, NEW.revision);
                    RETURN NEW;
                END $$;
            CREATE TRIGGER written AFTER INSERT OR UPDATE ON "{schema}".battery_interval
                FOR EACH ROW EXECUTE FUNCTION "{schema}".log_write();
        """)  # fmt: skip
    finally:
        await conn.close()


async def _read(dsn: str, schema: str) -> tuple[Rows, list[object]]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetch(f'SELECT * FROM "{schema}".battery_interval')
        doubled = await conn.fetch(
            f'SELECT system_id, source, end_at, revision, count(*) FROM "{schema}".writes'
            " GROUP BY 1, 2, 3, 4 HAVING count(*) > 1"
        )
    finally:
        await conn.close()
    rows: Rows = {
        (r["system_id"], r["source"], int(r["end_at"].timestamp())): (
            r["charge_wh"],
            r["discharge_wh"],
            r["soc_percent"],
            r["partial"],
            r["revision"],
        )
        for r in found
    }
    return rows, [tuple(r) for r in doubled]


@pytest.mark.asyncio
async def test_kill_9_then_two_processes_leave_every_interval_once(
    late_simulator: SimulatorThread, tmp_path: Path, postgres_dsn: str, pg_schema: str
) -> None:
    simulator = late_simulator
    values = cli_values(simulator.sim, tmp_path)
    await _setup(postgres_dsn, pg_schema)
    argv = stream_argv(
        "--all-systems", "--since", SINCE, "--out", postgres_dsn, "--pg-schema", pg_schema
    )
    # run_killed is synchronous (it waits on the processes): off the loop.
    killed = await asyncio.to_thread(run_killed, simulator, values, argv, kills=3, seed=5)
    assert killed >= 2
    # The killed runs' leases hold their systems until the TTL: a run started before then
    # would find every system held and be "caught up" at once.
    await asyncio.sleep(LEASE_TTL_S + 1)
    # Two processes at once share the systems.
    for _ in range(3):
        simulator.call(simulator.sim.clock.advance, JUMP)
        runs = [
            subprocess.Popen(
                [*argv, "--until-caught-up"],
                env=subprocess_env(values),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for run in runs:
            _, err = await asyncio.to_thread(run.communicate, timeout=300)
            assert run.returncode == 0, err
            assert "Traceback" not in err
    rows, doubled = await _read(postgres_dsn, pg_schema)
    check_against_truth(simulator, rows)
    assert doubled == []
    assert any(revision > 0 for (*_, revision) in rows.values()), "no revision was exercised"


def test_a_checkpoint_elsewhere_is_refused_before_any_request(
    late_simulator: SimulatorThread, tmp_path: Path
) -> None:
    values = cli_values(late_simulator.sim, tmp_path)
    done = subprocess.run(
        stream_argv("--all-systems", "--out", "postgresql://127.0.0.1:1/x",
                    "--checkpoint", str(tmp_path / "cp.sqlite")),
        env=subprocess_env(values), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "leave out --checkpoint" in done.stderr
    assert late_simulator.call(lambda: late_simulator.sim.request_count) == 0
