"""Checkpoint faults and the one-poller-per-checkpoint hold, through the poller on the
simulator (loopback HTTP)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from enphase_battery import CheckpointError, EnphaseError
from enphase_battery.exceptions import CheckpointInUseError
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.store.checkpoint import MemoryCheckpoint
from tests.support.poller import HOUR, NO_WAIT, Driver, Env, open_env

ROOT = Path(__file__).resolve().parents[2]


def make_poller(env: Env, checkpoint: object) -> TelemetryPoller:
    return TelemetryPoller(
        env.client,
        env.system_id,
        start_at=env.sim.clock.now() - timedelta(hours=3),
        checkpoint=checkpoint,  # type: ignore[arg-type]
        poll_interval=HOUR,
        retry_wait_s=NO_WAIT,
    )


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_second_poller_on_one_checkpoint_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    checkpoint = MemoryCheckpoint() if kind == "memory" else tmp_path / "cp.sqlite"
    async with open_env(history=timedelta(days=1)) as env:
        first = make_poller(env, checkpoint)
        async with first:
            driver = Driver(first)
            got = await driver.pull()
            assert got
            requests = env.sim.request_count
            second = make_poller(env, checkpoint)
            with pytest.raises(CheckpointInUseError) as caught:
                async with second:
                    await anext(second)
            assert isinstance(caught.value, EnphaseError)
            if kind == "sqlite":
                assert str(checkpoint) in str(caught.value)
                assert f"pid {os.getpid()}" in str(caught.value)
            # Without async with, the first anext is refused the same way.
            third = make_poller(env, checkpoint)
            with pytest.raises(CheckpointInUseError):
                await anext(third)
            await third.aclose()
            assert env.sim.request_count == requests  # refused before any request
            await driver.cancel()
        # Released on close: the next poller resumes, and has nothing to repeat.
        again = make_poller(env, checkpoint)
        driver = Driver(again)
        rest = await driver.pull()
        await driver.cancel()
        await again.aclose()
        assert not {(iv.source, iv.end_at) for iv in rest} & {(iv.source, iv.end_at) for iv in got}


HOLDER = """
import asyncio, sys, time
from enphase_battery.store.sqlite import SqliteCheckpoint
store = SqliteCheckpoint(sys.argv[1])
asyncio.run(store.acquire())
print("held", flush=True)
time.sleep(120)
"""


async def test_a_checkpoint_held_by_another_process_is_refused_until_it_dies(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cp.sqlite"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.to_thread(holder.stdout.readline)
        assert line.strip() == "held"
        async with open_env(history=timedelta(days=1)) as env:
            poller = make_poller(env, path)
            with pytest.raises(CheckpointInUseError, match=f"pid {holder.pid}"):
                async with poller:
                    pass
            holder.send_signal(signal.SIGKILL)  # the OS ends the hold with the process
            await asyncio.to_thread(holder.wait, 10)
            poller = make_poller(env, path)
            driver = Driver(poller)
            assert await driver.pull()
            await driver.cancel()
            await poller.aclose()
    finally:
        holder.kill()
        holder.wait()


async def test_an_empty_checkpoint_file_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    path.write_bytes(b"")
    async with open_env(history=timedelta(days=1)) as env:
        poller = make_poller(env, path)
        with pytest.raises(CheckpointError) as caught:
            async with poller:
                await anext(poller)
        message = str(caught.value)
        assert str(path) in message
        assert "empty" in message
        assert "delete it" in message
        assert caught.value.path == str(path)
        assert env.sim.request_count == 0
        assert path.read_bytes() == b""  # left as it was for the user to look at


async def test_a_file_that_is_not_a_checkpoint_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    path.write_bytes(b"this is a CSV file, not a database\n" * 100)
    async with open_env(history=timedelta(days=1)) as env:
        poller = make_poller(env, path)
        with pytest.raises(CheckpointError, match="not a readable SQLite checkpoint") as caught:
            await anext(poller)
        await poller.aclose()
        assert str(path) in str(caught.value)
        assert not isinstance(caught.value.__cause__, sqlite3.Error)  # one clean error
        assert env.sim.request_count == 0


async def test_a_corrupt_stream_state_is_an_error_naming_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "cp.sqlite"
    async with open_env(history=timedelta(days=1)) as env:
        poller = make_poller(env, path)
        driver = Driver(poller)
        assert await driver.pull()
        await driver.cancel()
        await poller.aclose()
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE stream_checkpoint SET state = '{\"watermark\": null}'")
        poller = make_poller(env, path)
        with pytest.raises(CheckpointError, match=f"{env.system_id}/battery is corrupt"):
            await anext(poller)
        await poller.aclose()


async def test_a_new_checkpoint_file_never_appears_half_made(tmp_path: Path) -> None:
    """The file appears complete (a crash while creating it leaves no empty file)."""
    path = tmp_path / "dir" / "cp.sqlite"
    async with open_env(history=timedelta(days=1)) as env:
        poller = make_poller(env, path)
        async with poller:
            driver = Driver(poller)
            await driver.pull(limit=1)
            await driver.cancel()
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM stream_checkpoint").fetchone()[0] >= 1
        assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []


async def test_a_checkpoint_that_cannot_be_created_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the checkpoint's directory should be")
    path = blocker / "cp.sqlite"
    async with open_env(history=timedelta(days=1)) as env:
        poller = make_poller(env, path)
        with pytest.raises(CheckpointError, match="not-a-directory"):
            async with poller:
                pass
        assert env.sim.request_count == 0
