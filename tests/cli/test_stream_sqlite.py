"""``stream --out sqlite:///PATH``: rows and checkpoint in one transaction of one file;
``kill -9`` at random moments, then a rerun: nothing lost, nothing doubled, final values
and revisions right (counted against the simulator's ground truth)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from tests.support.cli import SimulatorThread
from tests.support.sinks import (
    SINCE,
    Rows,
    check_against_truth,
    cli_values,
    run_killed,
    run_to_the_end,
    stream_argv,
)

#: Every write of a row (insert or update) and its revision, logged by triggers in the
#: same transaction: a write rolled back leaves no trace, one committed twice shows.
_WRITES = """
CREATE TABLE IF NOT EXISTS battery_interval (
    system_id INTEGER NOT NULL, source TEXT NOT NULL, end_at TEXT NOT NULL,
    charge_wh INTEGER NOT NULL, discharge_wh INTEGER NOT NULL, soc_percent INTEGER,
    partial INTEGER NOT NULL, revision INTEGER NOT NULL,
    PRIMARY KEY (system_id, source, end_at));
CREATE TABLE writes (system_id INTEGER, source TEXT, end_at TEXT, revision INTEGER);
CREATE TRIGGER written AFTER INSERT ON battery_interval BEGIN
    INSERT INTO writes VALUES (NEW.system_id, NEW.source, NEW.end_at, NEW.revision); END;
CREATE TRIGGER rewritten AFTER UPDATE ON battery_interval BEGIN
    INSERT INTO writes VALUES (NEW.system_id, NEW.source, NEW.end_at, NEW.revision); END;
"""


def read_rows(path: Path) -> Rows:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "SELECT system_id, source, end_at, charge_wh, discharge_wh, soc_percent, partial,"
            " revision FROM battery_interval"
        ).fetchall()
    finally:
        conn.close()
    return {
        (s, src, int(datetime.fromisoformat(end).timestamp())): (c, d, soc, bool(p), r)
        for (s, src, end, c, d, soc, p, r) in found
    }


def doubled_writes(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT system_id, source, end_at, revision, count(*) FROM writes"
            " GROUP BY 1, 2, 3, 4 HAVING count(*) > 1"
        ).fetchall()
    finally:
        conn.close()


def test_kill_9_at_random_moments_then_a_rerun_leaves_every_interval_once(
    late_simulator: SimulatorThread, tmp_path: Path
) -> None:
    simulator = late_simulator
    values = cli_values(simulator.sim, tmp_path)
    db = tmp_path / "battery.db"
    conn = sqlite3.connect(db)
    conn.executescript(_WRITES)
    conn.close()
    # Relative to the working directory, as SQLAlchemy spells it: four slashes, absolute.
    argv = stream_argv("--all-systems", "--since", SINCE, "--out", f"sqlite:///{db}")
    assert run_killed(simulator, values, argv, kills=4, seed=3) >= 3
    run_to_the_end(values, argv, simulator)
    rows = read_rows(db)
    check_against_truth(simulator, rows)
    assert doubled_writes(db) == []
    assert any(revision > 0 for (*_, revision) in rows.values()), "no revision was exercised"
    # The checkpoint is in the same file.
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM stream_checkpoint").fetchone()[0] > 0
    finally:
        conn.close()
