"""What the engine fetched and the consumer has not taken yet, in runs of one stream.

A window of one stream comes in as one :class:`Run` (its intervals and their end times,
as :meth:`~enphase_battery.poll.stream_log.StreamLog.accept` gave them), not as one queue entry
per interval: handing out an interval is an index step, a batch takes slices, and a
week of catch-up costs no object per interval beyond the interval itself.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

from enphase_battery.models.delivered import TelemetryInterval
from enphase_battery.poll.stream_log import StreamLog

__all__ = ["ReadyQueue", "Run"]


class Run:
    """Intervals of one stream in the order they go out, from index ``start`` on."""

    __slots__ = ("ends", "intervals", "start", "stream")

    def __init__(
        self, stream: StreamLog, intervals: list[TelemetryInterval], ends: list[int]
    ) -> None:
        self.stream = stream
        self.intervals = intervals
        #: End times (epoch seconds), index for index with ``intervals``.
        self.ends = ends
        self.start = 0

    def __len__(self) -> int:
        return len(self.intervals) - self.start

    def __repr__(self) -> str:
        return f"Run({self.stream.store_key!r}, {len(self)} intervals)"


class ReadyQueue:
    """Runs in the order they were offered; :attr:`count` intervals in all."""

    __slots__ = ("_runs", "count")

    def __init__(self) -> None:
        # Oldest first; the head run's next interval is at its ``start``.
        self._runs: collections.deque[Run] = collections.deque()
        #: Intervals queued.
        self.count = 0

    def offer(self, stream: StreamLog, intervals: list[TelemetryInterval], ends: list[int]) -> None:
        """Queue ``intervals`` of ``stream`` (ends index for index) after the rest."""
        if intervals:
            self._runs.append(Run(stream, intervals, ends))
            self.count += len(intervals)

    def pop(self) -> tuple[Run, int]:
        """The next interval: its run and its index there (the queue must not be empty)."""
        run = self._runs[0]
        index = run.start
        run.start = index + 1
        if index + 1 == len(run.intervals):
            self._runs.popleft()
        self.count -= 1
        return run, index

    def take(self, limit: int) -> list[Run]:
        """Up to ``limit`` intervals from the front, as runs of their own."""
        taken: list[Run] = []
        runs = self._runs
        while limit > 0 and runs:
            run = runs[0]
            start = run.start
            stop = min(len(run.intervals), start + limit)
            if start == 0 and stop == len(run.intervals):
                part = runs.popleft()  # the whole run: no copy
            else:
                part = Run(run.stream, run.intervals[start:stop], run.ends[start:stop])
                run.start = stop
                if stop == len(run.intervals):
                    runs.popleft()
            taken.append(part)
            limit -= stop - start
            self.count -= stop - start
        return taken

    def put_back(self, runs: Iterable[Run]) -> None:
        """Return ``runs`` (taken before, in order) to the front, in their order."""
        back = list(runs)
        self._runs.extendleft(reversed(back))
        self.count += sum(map(len, back))

    def forget(self, stream: StreamLog) -> None:
        """Drop everything queued of ``stream``."""
        self._runs = collections.deque(run for run in self._runs if run.stream is not stream)
        self.count = sum(map(len, self._runs))
