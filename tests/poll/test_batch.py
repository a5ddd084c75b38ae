"""``poller.batches()``: the commit rule for batches, rows and checkpoint in one SQLite
transaction, and ``kill -9`` at random moments in both modes (against ground truth)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery import CheckpointError, InvalidRequestError
from enphase_battery.poll.batch import Batch
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.store.checkpoint import MemoryCheckpoint
from tests.support.poller import (
    HOUR,
    NO_WAIT,
    Env,
    check_exactly_once,
    key_of,
    open_env,
    reported,
    truth,
)

ROOT = Path(__file__).resolve().parents[2]
CHILD = ROOT / "tests" / "support" / "batch_child.py"


def make_poller(env: Env, checkpoint: object, hours: int = 12) -> TelemetryPoller:
    return TelemetryPoller(
        env.client,
        env.system_id,
        encharges=env.serials(),
        start_at=env.sim.clock.now() - timedelta(hours=hours),
        checkpoint=checkpoint,  # type: ignore[arg-type]
        poll_interval=HOUR,
        retry_wait_s=NO_WAIT,
    )


async def next_or_none(poller: TelemetryPoller, batches: object) -> Batch | None:
    """The next batch, or None once the poller waits for its next poll."""
    following = asyncio.ensure_future(anext(batches))  # type: ignore[call-overload]
    idle = asyncio.ensure_future(poller.wait_idle())
    await asyncio.wait({following, idle}, return_when=asyncio.FIRST_COMPLETED)
    idle.cancel()
    if following.done():
        batch: Batch = following.result()
        return batch
    following.cancel()
    await asyncio.wait({following})
    return None


async def drain(poller: TelemetryPoller, size: int) -> list[Batch]:
    out: list[Batch] = []
    batches = poller.batches(max_size=size, max_wait=0.0)
    while (batch := await next_or_none(poller, batches)) is not None:
        out.append(batch)
    return out


async def test_batches_cover_everything_once_and_respect_max_size() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        store = MemoryCheckpoint()
        poller = make_poller(env, store)
        async with poller:
            got = await drain(poller, 25)
            await poller.commit()
        intervals = [iv for batch in got for iv in batch]
        assert all(1 <= len(batch) <= 25 for batch in got)
        assert sum(len(b) == 25 for b in got) >= len(got) - 4  # full but for a stream's tail
        check_exactly_once(
            env, intervals, int((env.sim.clock.now() - timedelta(hours=12)).timestamp())
        )
        assert poller.intervals_emitted == len(intervals)


async def test_a_batch_not_committed_comes_again_and_a_committed_one_does_not() -> None:
    async with open_env(history=timedelta(days=1)) as env:
        store = MemoryCheckpoint()
        async with make_poller(env, store) as poller:
            batches = poller.batches(max_size=10, max_wait=0.0)
            first = await anext(batches)
            second = await anext(batches)  # asking for it delivered the first
            assert first.committed
            assert not second.committed
            # break without commit: the second comes again
        async with make_poller(env, store) as poller:
            again = await anext(poller.batches(max_size=10, max_wait=0.0))
            assert again.intervals == second.intervals
            await again.commit()
            assert again.committed
        async with make_poller(env, store) as poller:
            after = await anext(poller.batches(max_size=10, max_wait=0.0))
            assert not set(map(key_of, after)) & set(map(key_of, again))


async def test_rows_and_checkpoint_in_one_sqlite_transaction(tmp_path: Path) -> None:
    path = tmp_path / "data.sqlite"
    async with open_env(history=timedelta(days=1)) as env:
        start = int((env.sim.clock.now() - timedelta(hours=12)).timestamp())
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE rows (source TEXT, end_at INT)")
        conn.execute("CREATE UNIQUE INDEX one ON rows (source, end_at)")
        conn.commit()

        def insert(batch: Batch) -> None:
            conn.executemany("INSERT INTO rows VALUES (?, ?)", [key_of(iv) for iv in batch])

        async with make_poller(env, path) as poller:
            batches = poller.batches(max_size=30, max_wait=0.0)
            first = await anext(batches)
            insert(first)
            await first.commit(conn)
            second = await anext(batches)
            # The rows fail (a duplicate): nothing commits, the batch is not delivered...
            insert(second)
            with pytest.raises(sqlite3.IntegrityError):
                conn.executemany("INSERT INTO rows VALUES (?, ?)", [key_of(first.intervals[0])])
            conn.rollback()
            assert not second.committed
            # ...and asking for the next batch hands it out again.
            third = await anext(batches)
            assert third.intervals[: len(second)] == second.intervals
            insert(third)
            await third.commit(conn)
            with pytest.raises(InvalidRequestError):
                await second.commit(conn)
        # A fresh poller resumes after the third batch; rows hold each interval once.
        async with make_poller(env, path) as poller:
            rest = await drain(poller, 200)
            for batch in rest:
                insert(batch)
                await batch.commit(conn)
        stored = conn.execute("SELECT source, end_at FROM rows").fetchall()
        assert len(stored) == len(set(stored))
        expected = set(truth(env, start))
        assert set(stored) >= {k for k in expected if k[1] <= int(env.sim.clock.timestamp()) - 1800}
        conn.close()


async def test_commit_conn_needs_the_checkpoints_own_file(tmp_path: Path) -> None:
    async with open_env(history=timedelta(days=1)) as env:
        other = sqlite3.connect(tmp_path / "other.sqlite")
        async with make_poller(env, tmp_path / "cp.sqlite") as poller:
            batch = await anext(poller.batches(max_size=5, max_wait=0.0))
            with pytest.raises(CheckpointError, match="one database file"):
                await batch.commit(other)
            assert not batch.committed
        async with make_poller(env, MemoryCheckpoint()) as poller:
            batch = await anext(poller.batches(max_size=5, max_wait=0.0))
            with pytest.raises(InvalidRequestError, match="cannot write its state"):
                await batch.commit(other)
        other.close()


# -- kill -9 ------------------------------------------------------------------------------

KILLS = 6


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["transactional", "own"])
async def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, mode: str) -> None:
    rng = random.Random(12 if mode == "own" else 13)
    batch_size = 40
    async with open_env(history=timedelta(days=42), reporting_latency=timedelta(0)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(days=40)
        checkpoint = tmp_path / "data.sqlite"
        sink = tmp_path / "sink.jsonl"
        config = {
            "base_url": sim.base_url,
            "token_url": sim.token_url,
            "api_key": sim.api_key,
            "client_id": sim.client_id,
            "client_secret": sim.client_secret,
            "token": sim.token.to_dict(),
            "system_id": env.system_id,
            "serials": list(env.serials()),
            "start_at": start_at.isoformat(),
            "checkpoint": str(checkpoint),
            "sink": str(sink),
            "mode": mode,
            "batch_size": batch_size,
        }
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        killed = 0
        while True:
            child = await asyncio.create_subprocess_exec(
                sys.executable, str(CHILD), str(config_path),
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )  # fmt: skip
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), 60)
            assert line.strip() == b"ready"
            if killed < KILLS:
                # Mid-rows, between rows and commit, inside the commit, mid-fetch.
                await asyncio.sleep(rng.uniform(0.05, 0.35))
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGKILL)
                code = await child.wait()
                if code == -signal.SIGKILL:
                    killed += 1
                    continue
                assert code == 0
                break  # it had finished on its own
            rest = await asyncio.wait_for(child.stdout.read(), 120)
            assert b"done" in rest
            assert await child.wait() == 0
            break
        assert killed >= KILLS - 1
        if mode == "transactional":
            with sqlite3.connect(checkpoint) as conn:
                rows = conn.execute("SELECT source, end_at FROM battery_interval").fetchall()
        else:
            rows = [tuple(json.loads(line)[:2]) for line in sink.read_text().splitlines()]
        counts = Counter((str(s), int(e)) for s, e in rows)
        # Everything the API shows as reported by now (ground truth, visible).
        expected = {k for k in truth(env, int(start_at.timestamp())) if reported(env, k)}
        missing = expected - set(counts)
        assert not missing, f"{len(missing)} lost: {sorted(missing)[:5]}"
        assert set(counts) <= expected
        repeated = sum(n - 1 for n in counts.values())
        if mode == "transactional":
            assert repeated == 0  # rows and checkpoint commit together: nothing twice
        else:
            # At most the batch in hand at each kill comes again.
            assert repeated <= KILLS * batch_size
            assert max(counts.values()) <= 1 + KILLS
