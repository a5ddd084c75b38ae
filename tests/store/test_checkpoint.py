"""Checkpoint stores: the state's JSON form, memory and SQLite stores, ``open_store``, and a
store of the caller's own making driving the poller."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enphase_battery import InvalidRequestError
from enphase_battery.models.delivered import BATTERY
from enphase_battery.poll import open_store
from enphase_battery.poll.front import collect
from enphase_battery.poll.poller import TelemetryPoller
from enphase_battery.store.checkpoint import (
    CheckpointStore,
    MemoryCheckpoint,
    StreamState,
)
from enphase_battery.store.sqlite import SqliteCheckpoint
from tests.support.poller import HOUR, NO_WAIT, Driver, check_exactly_once, open_env

KEY = "3546743/battery"


@given(
    watermark=st.integers(0, 2**40),
    delivered=st.lists(st.integers(0, 2**40), unique=True, max_size=50),
)
def test_stream_state_json_round_trip(watermark: int, delivered: list[int]) -> None:
    state = StreamState(watermark, tuple(sorted(delivered)))
    text = state.to_json()
    assert StreamState.from_json(text) == state
    assert json.loads(text) == {"watermark": watermark, "delivered": sorted(delivered)}


def test_stream_state_from_json_defaults_and_coerces() -> None:
    assert StreamState.from_json('{"watermark": 1780000200}') == StreamState(1780000200, ())
    assert StreamState.from_json('{"watermark": "900", "delivered": ["2700"]}') == StreamState(
        900, (2700,)
    )
    for bad in ('{"delivered": []}', "", "[1, 2]", '{"watermark": "soon"}', "\x00\x01"):
        with pytest.raises(ValueError, match="not a stream state"):
            StreamState.from_json(bad)


async def test_memory_checkpoint() -> None:
    store = MemoryCheckpoint()
    assert await store.load(KEY) is None
    await store.save(KEY, StreamState(900))
    await store.save(KEY, StreamState(1800, (3600,)))
    await store.save("1/2", StreamState(0))
    assert await store.load(KEY) == StreamState(1800, (3600,))
    assert await store.load("1/2") == StreamState(0)
    await store.close()
    assert isinstance(store, CheckpointStore)


async def test_sqlite_checkpoint_wal_and_persistence(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "checkpoint.db"  # directories are created
    store = SqliteCheckpoint(path)
    assert repr(store) == f"SqliteCheckpoint({os.fspath(path)!r})"
    assert await store.load(KEY) is None
    await store.save(KEY, StreamState(900, (2700,)))
    await store.save(KEY, StreamState(1800, (2700, 3600)))  # replaces
    await store.save("1/other", StreamState(5))
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM stream_checkpoint").fetchone()[0] == 2
    # A second instance sees every committed save, even before the first one closes
    # (what a new process finds after a crash).
    other = SqliteCheckpoint(path)
    assert await other.load(KEY) == StreamState(1800, (2700, 3600))
    await other.close()
    await store.close()
    await store.close()  # idempotent
    reopened = SqliteCheckpoint(os.fspath(path))
    assert await reopened.load(KEY) == StreamState(1800, (2700, 3600))
    assert await reopened.load("1/other") == StreamState(5)
    assert await reopened.load("1/missing") is None
    await reopened.close()


async def test_open_store_dispatch(tmp_path: Path) -> None:
    first, second = open_store(None), open_store(None)
    assert isinstance(first, MemoryCheckpoint)
    assert first is not second
    from_str = open_store(os.fspath(tmp_path / "a.db"))
    from_path = open_store(tmp_path / "b.db")
    assert isinstance(from_str, SqliteCheckpoint)
    assert isinstance(from_path, SqliteCheckpoint)
    assert from_path.path == os.fspath(tmp_path / "b.db")
    store = DictStore()
    assert open_store(store) is store
    for bad in (42, object(), b"bytes"):
        with pytest.raises(TypeError):
            open_store(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        TelemetryPoller(object(), 1234567, checkpoint=42)  # type: ignore[arg-type]


class DictStore:
    """A store of the caller's own (no base class): JSON text in a dict, as a key-value
    database would keep it."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.closed = False

    async def load(self, key: str) -> StreamState | None:
        text = self.rows.get(key)
        return None if text is None else StreamState.from_json(text)

    async def save(self, key: str, state: StreamState) -> None:
        self.rows[key] = state.to_json()

    async def close(self) -> None:
        self.closed = True


async def test_custom_store_drives_the_poller() -> None:
    store = DictStore()
    assert isinstance(store, CheckpointStore)
    async with open_env(history=timedelta(days=1)) as env:
        sim = env.sim
        start_at = sim.clock.now() - timedelta(hours=6)

        def make_poller() -> TelemetryPoller:
            return TelemetryPoller(
                env.client,
                env.system_id,
                start_at=start_at,
                checkpoint=store,
                poll_interval=HOUR,
                retry_wait_s=NO_WAIT,
            )

        async with make_poller() as poller:
            first = await collect(poller, 40)
        assert len(first) == 40
        assert not store.closed  # the caller's store stays open
        keys = {f"{env.system_id}/{source}" for source in (BATTERY, *env.serials())}
        assert set(store.rows) <= keys
        assert BATTERY in poller.sources
        poller = make_poller()
        driver = Driver(poller)
        rest = await driver.pull()
        rest += await driver.tick(sim, timedelta(hours=1))
        await driver.cancel()
        await poller.aclose()
        assert not store.closed
        assert set(store.rows) == keys
        check_exactly_once(env, first + rest, int(start_at.timestamp()))
