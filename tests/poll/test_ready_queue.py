"""The delivery's queue of runs and the store's no-wait save rule: pure, no HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from enphase_battery.models.delivered import INTERVAL_S, TelemetryInterval
from enphase_battery.poll.ready_queue import ReadyQueue
from enphase_battery.poll.stream_log import StreamLog
from enphase_battery.store.checkpoint import MemoryCheckpoint, StreamState, live_store, nowait_saver

BASE = 1_780_000_200


def run_of(log: StreamLog, first: int, count: int) -> tuple[list[TelemetryInterval], list[int]]:
    ends = [BASE + INTERVAL_S * (first + k) for k in range(count)]
    intervals = [
        TelemetryInterval(log.system_id, log.source, datetime.fromtimestamp(e, UTC), 0, 0, 1, 1, 1)
        for e in ends
    ]
    return intervals, ends


def drain(queue: ReadyQueue) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    while queue.count:
        run, index = queue.pop()
        out.append((run.stream.source, run.ends[index]))
    return out


def test_runs_go_out_in_order_through_pop_take_and_put_back() -> None:
    a, b = StreamLog((1, "a"), None), StreamLog((1, "b"), None)
    queue = ReadyQueue()
    queue.offer(a, *run_of(a, 1, 5))
    queue.offer(b, *run_of(b, 1, 3))
    queue.offer(a, [], [])  # nothing: no run
    assert queue.count == 8
    first, index = queue.pop()
    assert (first.stream, first.ends[index]) == (a, BASE + INTERVAL_S)
    taken = queue.take(6)  # the rest of a's run (4), then 2 of b's 3
    assert [(r.stream.source, r.ends) for r in taken] == [
        ("a", [BASE + INTERVAL_S * k for k in range(2, 6)]),
        ("b", [BASE + INTERVAL_S, BASE + 2 * INTERVAL_S]),
    ]
    assert all(r.start == 0 and len(r) == len(r.ends) for r in taken)
    assert queue.count == 1
    queue.put_back(taken)  # a batch cancelled before it went out comes first again
    assert queue.count == 7
    assert drain(queue) == [
        *(("a", BASE + INTERVAL_S * k) for k in range(2, 6)),
        *(("b", BASE + INTERVAL_S * k) for k in range(1, 4)),
    ]


def test_forget_drops_every_run_of_one_stream() -> None:
    a, b = StreamLog((1, "a"), None), StreamLog((1, "b"), None)
    queue = ReadyQueue()
    for log in (a, b, a):
        queue.offer(log, *run_of(log, 1, 2))
    queue.pop()
    queue.forget(a)
    assert queue.count == 2
    assert drain(queue) == [("b", BASE + INTERVAL_S), ("b", BASE + 2 * INTERVAL_S)]


class AlsoWritesElsewhere(MemoryCheckpoint):
    """A store whose save does more than its parent's (a mirror, a metric)."""

    def __init__(self) -> None:
        super().__init__()
        self.saved: list[str] = []

    async def save(self, key: str, state: StreamState) -> None:
        self.saved.append(key)
        await super().save(key, state)


class FastMirror(AlsoWritesElsewhere):
    def save_nowait(self, key: str, state: StreamState) -> bool:
        self.saved.append(key)
        return super().save_nowait(key, state)


def test_a_subclass_that_overrides_save_keeps_its_save_in_use() -> None:
    plain = MemoryCheckpoint()
    assert nowait_saver(plain) == plain.save_nowait
    # Its save() must run: the no-wait shortcut of the parent would skip it.
    assert nowait_saver(AlsoWritesElsewhere()) is None
    mirror = FastMirror()
    saver = nowait_saver(mirror)
    assert saver is not None
    assert saver("1/battery", StreamState(BASE))
    assert mirror.saved == ["1/battery"]
    assert mirror.states == {"1/battery": StreamState(BASE)}


def test_a_memory_checkpoint_shows_what_a_followed_stream_has_committed() -> None:
    store = MemoryCheckpoint()
    assert live_store(store) is store
    log = StreamLog((1, "battery"), None)
    log.start_at(BASE)
    store.follow(log.store_key, log.state)
    assert store.states == {"1/battery": StreamState(BASE)}
    log.mark_delivered(BASE + INTERVAL_S, 86_400.0)  # the consumer asked for the next one
    assert asyncio.run(store.load("1/battery")) == StreamState(BASE + INTERVAL_S)
    store.unfollow(log.store_key)  # the poller closed: the state of that moment stays
    log.mark_delivered(BASE + 2 * INTERVAL_S, 86_400.0)
    assert store.states == {"1/battery": StreamState(BASE + INTERVAL_S)}
    # A subclass whose save does more is saved to, never followed.
    assert live_store(AlsoWritesElsewhere()) is None
